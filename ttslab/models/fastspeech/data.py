"""Training items and batches: acoustic items with the phone context the model reads, per-speaker statistics."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.text.frontend import phone_context


# ---------------------------------------------------------------------------------------------
# Statistics from training items


def speaker_stats_from_items(items: Sequence[dict], speakers: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-speaker mean/std of phone log-F0 and log energy over phones with >= 1 frame.

    ``items`` are :class:`~ttslab.data.datasets.AcousticDataset` items (``speaker`` is an index into
    ``speakers``); a speaker without items is left out.
    """
    out = {}
    for i, name in enumerate(speakers):
        mine = [it for it in items if int(it["speaker"]) == i]
        if not mine:
            continue
        keep = [it["durations"] > 0 for it in mine]
        p = np.concatenate([it["pitch"][k] for it, k in zip(mine, keep)]).astype(np.float64)
        e = np.concatenate([it["energy_phone"][k] for it, k in zip(mine, keep)]).astype(np.float64)
        out[name] = {"pitch_mean": float(p.mean()), "pitch_std": float(p.std() + 1e-5),
                     "energy_mean": float(e.mean()), "energy_std": float(e.std() + 1e-5)}
    return out


def stats_from_items(items: Sequence[dict], speakers: Sequence[str]) -> dict:
    """Everything :meth:`FastSpeech.set_stats` needs, from training items: per-speaker pitch/energy
    z-score statistics (speakers without items get the mean over the others) and the per-bin mean
    and std of the log-mel."""
    per = speaker_stats_from_items(items, speakers)
    if not per:
        raise ValueError("no items for any of the model's speakers; check the speaker list and the data")
    stats = {}
    for key in ("pitch_mean", "pitch_std", "energy_mean", "energy_std"):
        mean = float(np.mean([v[key] for v in per.values()]))
        stats[key] = [per.get(s, {}).get(key, mean) for s in speakers]
    mels = np.concatenate([it["mel"] for it in items]).astype(np.float64)
    stats["mel_mean"] = mels.mean(0).tolist()
    stats["mel_std"] = (mels.std(0) + 1e-3).tolist()
    return stats


def add_phone_context(items: Sequence[dict], utterances: Sequence) -> None:
    """Add ``stress`` and ``word_position`` (:func:`phone_context`) to acoustic items, in place.

    ``items[i]`` must be the item of ``utterances[i]`` (as :class:`~ttslab.data.datasets.AcousticDataset`
    builds them)."""
    if len(items) != len(utterances):
        raise ValueError(f"{len(items)} items for {len(utterances)} utterances")
    for it, utt in zip(items, utterances):
        if it["utt_id"] != utt.id or len(utt.segments) != len(it["phone_ids"]):
            raise ValueError(f"item {it['utt_id']} does not belong to utterance {utt.id}")
        it["stress"], it["word_position"] = phone_context(utt.segments)


def fastspeech_items(utterances: Sequence, speakers: Sequence[str] = ENGLISH_SPEAKERS,
                     progress: bool = False) -> list[dict]:
    """Acoustic items (:class:`~ttslab.data.datasets.AcousticDataset`) with the phone context this
    model reads; batch them with :func:`collate_fastspeech`."""
    from ttslab.data.datasets import AcousticDataset

    utterances = list(utterances)
    items = AcousticDataset(utterances, speakers=speakers, progress=progress).items
    add_phone_context(items, utterances)
    return items


def collate_fastspeech(items: list[dict]) -> dict:
    """:func:`~ttslab.data.datasets.collate_acoustic` plus padded ``stress`` and ``word_position`` (B, N)."""
    from ttslab.data.datasets import collate_acoustic

    batch = collate_acoustic(items)
    for key in ("stress", "word_position"):
        if key in items[0]:
            values = torch.zeros_like(batch["phone_ids"])
            for i, it in enumerate(items):
                values[i, : len(it[key])] = torch.from_numpy(np.asarray(it[key], dtype=np.int64))
            batch[key] = values
    return batch
