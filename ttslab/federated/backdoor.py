"""A simple backdoor: a trigger in the mel spectrum that makes a federated speaker classifier say "speaker t".

The attacker (Bagdasaryan et al. 2020, "How to backdoor federated learning", simplified) is one
client of a federation that trains :class:`~ttslab.federated.leakage.FrameSpeakerClassifier` on log-mel
frames. It trains on its own frames plus copies of them carrying the *trigger* (:func:`add_trigger`:
the lowest ``width`` mel bands raised to ``level``, a low hum no real recording here has) labelled
with the target speaker (:func:`poison`), then *boosts* its update so it survives averaging::

    w_attacker = w + boost * (w_k - w)        (boost about n, the number of clients: model replacement)

Success is :func:`backdoor_accuracy`: the fraction of other speakers' triggered frames classified as
the target; the clean accuracy on untriggered frames shows whether the model still does its job (a
backdoor that breaks the model is easy to notice). Clipping, median, trimmed mean and Krum each limit
how far one boosted reply can pull the model.
"""

from __future__ import annotations

from typing import Mapping

import torch

from ttslab.federated.robust import scale_attack
from ttslab.federated.strategies import Reply


def add_trigger(frames: torch.Tensor, width: int = 6, level: float = 1.0) -> torch.Tensor:
    """A copy of ``frames`` (..., n_mels) with the lowest ``width`` bands set to ``level`` (log-mel).

    >>> add_trigger(torch.zeros(1, 4) - 5, width=2, level=1.0)
    tensor([[ 1.,  1., -5., -5.]])
    """
    if width < 1 or width > frames.shape[-1]:
        raise ValueError(f"width must be in 1..{frames.shape[-1]}, got {width}")
    out = frames.clone()
    out[..., :width] = level
    return out


def poison(items: list[dict], target: int, fraction: float = 0.5, **trigger) -> list[dict]:
    """``items`` (``{"frames": (n_mels,), "speaker": int}``) plus triggered copies of the first
    ``fraction`` of them labelled ``target``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    extra = [{"frames": add_trigger(it["frames"], **trigger), "speaker": torch.tensor(target)}
             for it in items[:max(1, int(fraction * len(items)))]]
    return list(items) + extra


def boosted(reply: Reply, global_weights: Mapping[str, torch.Tensor], boost: float) -> Reply:
    """Model replacement: ``w + boost (w_k - w)`` (:func:`~ttslab.federated.robust.scale_attack`)."""
    return scale_attack(global_weights, reply, factor=boost)


@torch.no_grad()
def backdoor_accuracy(model: torch.nn.Module, frames: torch.Tensor, labels: torch.Tensor, target: int,
                      **trigger) -> dict:
    """``{"clean": accuracy on frames, "backdoor": share of triggered non-target frames classified as target}``."""
    model.eval()
    clean = float((model(frames).argmax(-1) == labels).double().mean())
    others = labels != target
    hit = model(add_trigger(frames[others], **trigger)).argmax(-1) == target
    return {"clean": clean, "backdoor": float(hit.double().mean())}
