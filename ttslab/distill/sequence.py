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
                            postnet: bool = True) -> list[dict]:
    """Copies of FastSpeech training ``items`` (:func:`~ttslab.models.fastspeech.fastspeech_items`) whose
    targets are ``teacher``'s output (see the module docstring). ``item["speaker"]`` indexes the
    teacher's speaker table."""
    out = []
    for it in items:
        for key in ("phone_ids", "speaker", "stress", "word_position"):
            if key not in it:
                raise KeyError(f"item {it.get('utt_id')} has no {key!r}: build the items with fastspeech_items()")
        forced = None if teacher_durations else np.asarray(it["durations"])
        r = teacher.infer({k: it[k] for k in ("phone_ids", "stress", "word_position")}, int(it["speaker"]),
                          durations=forced, postnet=postnet)
        durations = r["durations"].numpy().astype(np.int64)
        log_f0 = np.log(r["pitch"].numpy()).astype(np.float32)
        energy = r["energy"].numpy().astype(np.float32)
        out.append({**it, "mel": r["mel"].numpy().astype(np.float32), "durations": durations, "pitch": log_f0,
                    "energy_phone": energy, "f0": np.repeat(np.exp(log_f0), durations).astype(np.float32),
                    "energy": np.repeat(energy, durations)})
    return out
