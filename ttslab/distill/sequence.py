"""Sequence-level distillation (Kim & Rush 2016; FastSpeech's own recipe): the student trains on what the
teacher *generates*, not on the recordings.

:func:`teacher_generated_items` replaces each training item's targets by the teacher's inference output
for the same phones and speaker, computed once (the teacher is frozen, so there is nothing to gain from
recomputing it every step)::

    mel        <- teacher mel (postnet output when there is one)                      (T', 80)
    durations  <- teacher durations (sum = T')   or the recorded ones (``teacher_durations=False``)
    pitch      <- log of the teacher's phone F0;  energy_phone <- the teacher's phone log energy
    f0, energy <- those phone values repeated over each phone's frames (frame-level copies, for collation)

The items then go through the model's ordinary loss (:func:`~ttslab.models.fastspeech.fastspeech_loss`
via :func:`~ttslab.models.fastspeech.collate_fastspeech`): the targets are smoother and consistent
with one another (one mel per text, no recording noise or prosodic variation the text cannot predict),
which is what makes them easier for a small student (Kim & Rush's explanation; FastSpeech 1 used it
to train a non-autoregressive student from an autoregressive teacher).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


@torch.no_grad()
def teacher_generated_items(teacher, items: Sequence[dict], *, teacher_durations: bool = True,
                            postnet: bool = True, batch_size: int = 1) -> list[dict]:
    """Copies of FastSpeech training ``items`` (:func:`~ttslab.models.fastspeech.fastspeech_items`) whose
    targets are ``teacher``'s output (see the module docstring). ``item["speaker"]`` indexes the
    teacher's speaker table.

    The teacher runs where it lives (a GPU makes this seconds for a corpus), ``batch_size`` utterances of
    similar length per forward (padded; the masks keep padding out, so each result equals the
    one-utterance :meth:`~ttslab.models.fastspeech.FastSpeech.infer` up to float rounding -- exactly at
    ``batch_size=1``). The returned arrays are on the CPU, in the order of ``items``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for it in items:
        for key in ("phone_ids", "speaker", "stress", "word_position"):
            if key not in it:
                raise KeyError(f"item {it.get('utt_id')} has no {key!r}: build the items with fastspeech_items()")
    device = teacher.mel_mean.device
    was_training = teacher.training
    teacher.eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i]["phone_ids"]))  # little padding per batch
    out: list[dict | None] = [None] * len(items)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            lengths = [len(items[i]["phone_ids"]) for i in chunk]

            def padded(key):
                x = torch.zeros(len(chunk), max(lengths), dtype=torch.long)
                for row, i in enumerate(chunk):
                    x[row, :lengths[row]] = torch.as_tensor(np.asarray(items[i][key]), dtype=torch.long)
                return x.to(device)

            speaker = torch.tensor([int(items[i]["speaker"]) for i in chunk], device=device)
            r = teacher(padded("phone_ids"), speaker, torch.tensor(lengths, device=device),
                        durations=None if teacher_durations else padded("durations"),
                        stress=padded("stress"), word_position=padded("word_position"))
            log_f0, log_e = teacher.denormalize_variances(r["pitch_used"], r["energy_used"], speaker)
            mels = r["mel_postnet" if postnet else "mel"].float().cpu().numpy()
            durs, log_f0, log_e = r["durations"].cpu().numpy(), log_f0.float().cpu().numpy(), log_e.float().cpu().numpy()
            frames = r["frame_lengths"].cpu().numpy()
            for row, i in enumerate(chunk):
                n = lengths[row]
                durations = durs[row, :n].astype(np.int64)
                pitch = log_f0[row, :n].astype(np.float32)
                energy = log_e[row, :n].astype(np.float32)
                out[i] = {**items[i], "mel": mels[row, :frames[row]].astype(np.float32), "durations": durations,
                          "pitch": pitch, "energy_phone": energy,
                          "f0": np.repeat(np.exp(pitch), durations).astype(np.float32),
                          "energy": np.repeat(energy, durations)}
    finally:
        teacher.train(was_training)
    return out
