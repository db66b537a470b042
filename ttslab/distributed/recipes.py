"""The models the torchrun entry point (:mod:`ttslab.distributed.run`) can train, with their losses
in the form :func:`ttslab.distributed.fit_ddp` needs for an exact data-parallel equivalence.

* ``tiny-fastspeech``: :class:`ttslab.models.fastspeech.FastSpeech` of size ``tiny`` on utterances of a
  corpus. Its loss (:func:`ttslab.models.fastspeech.loss_terms`) has two denominators: the mel and
  postnet L1 are means over real frames, the duration/pitch/energy MSEs means over real phones. A
  shard of the global batch has its own numbers of frames and phones, so the loss is returned as
  ``{"frames": mel + postnet, "phones": duration + pitch + energy}`` with :func:`fastspeech_weights`
  giving each group's count: each group is scaled by the shard's share of its global count.
* ``mlp``: a two-layer perceptron predicting the next log-mel frame from the current one, on the same
  utterances' frames; its MSE is a plain mean over equal items (one denominator, the item count).

:func:`build` returns a :class:`Recipe` with the same initial weights for the same seed on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ttslab.models.fastspeech import (FastSpeech, collate_fastspeech, fastspeech_items, loss_terms,
                                      stats_from_items)
from ttslab.train import Batches

MODELS = ("tiny-fastspeech", "mlp")


@dataclass
class Recipe:
    """A model, its loss and weights (see :func:`ttslab.distributed.fit_ddp`), and its batches."""

    name: str
    model: torch.nn.Module
    loss_fn: Callable
    weight_fn: Callable | None
    batches: Batches
    model_config: dict


def fastspeech_grouped_loss(model, batch: dict):
    """FastSpeech's teacher-forced loss as ``({"frames": ..., "phones": ...}, logs)`` (module docstring);
    the sum of the two groups is :func:`ttslab.models.fastspeech.fastspeech_loss`."""
    out = model(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], durations=batch["durations"],
                pitch=batch["pitch"], energy=batch["energy"], stress=batch.get("stress"),
                word_position=batch.get("word_position"))
    terms = loss_terms(out, batch)
    frames = terms["mel"] + terms.get("postnet", torch.zeros((), device=terms["mel"].device))
    phones = terms["duration"] + terms["pitch"] + terms["energy"]
    return {"frames": frames, "phones": phones}, {k: float(v.detach()) for k, v in terms.items()}


def fastspeech_weights(batch: dict) -> dict:
    """The denominators of :func:`fastspeech_grouped_loss`: real frames and real phones in ``batch``."""
    return {"frames": batch["mel_lengths"].sum(), "phones": batch["phone_lengths"].sum()}


class FramePredictor(torch.nn.Module):
    """``mel[t] -> mel[t + 1]``: Linear, tanh, Linear."""

    def __init__(self, n_mels: int, hidden: int = 64):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n_mels, hidden), torch.nn.Tanh(),
                                       torch.nn.Linear(hidden, n_mels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mlp_loss(model, batch: dict):
    """Mean squared error over the items (frames) of ``batch``: one denominator."""
    loss = (model(batch["x"]) - batch["y"]).pow(2).mean()
    return loss, {}


def collate_frames(items: list) -> dict:
    return {"x": torch.stack([x for x, _ in items]), "y": torch.stack([y for _, y in items])}


def build(name: str, utterances, speakers, *, batch_size: int, seed: int = 0, frames_per_utt: int = 64) -> Recipe:
    """The :class:`Recipe` ``name`` (:data:`MODELS`) on ``utterances`` with global batches of ``batch_size``."""
    from ttslab.train.fastspeech import model_config

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; use one of {MODELS}")
    items = fastspeech_items(utterances, speakers)
    if name == "tiny-fastspeech":
        config = model_config("tiny", speakers)
        torch.manual_seed(seed)
        model = FastSpeech(config)
        model.set_stats(stats_from_items(items, config.speakers))
        batches = Batches(items, batch_size, collate_fastspeech, lengths=[len(it["mel"]) for it in items], seed=seed)
        return Recipe(name, model, fastspeech_grouped_loss, fastspeech_weights, batches, config.to_dict())
    frames = []
    for it in items:
        mel = torch.as_tensor(it["mel"], dtype=torch.float32)[: frames_per_utt + 1]
        frames += [(mel[t], mel[t + 1]) for t in range(len(mel) - 1)]
    torch.manual_seed(seed)
    model = FramePredictor(frames[0][0].numel())
    batches = Batches(frames, batch_size, collate_frames, seed=seed)
    return Recipe(name, model, mlp_loss, None, batches, {"model": "mlp", "n_mels": frames[0][0].numel(), "hidden": 64})
