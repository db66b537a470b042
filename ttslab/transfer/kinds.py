"""The instance, feature and relation kinds of transfer (the model/parameter kind is :mod:`~ttslab.transfer.adapt`).

**Instance transfer** reuses *source data*: source utterances that resemble the target speaker are
worth more than others. Each source item gets a weight from its speaker's signature distance to the
target (:func:`ttslab.transfer.adapt.signature_distance`)::

    w_i = exp(-d(s_i, target) / tau)          normalised to sum to 1: a sampling distribution

and adaptation adds a loss on source batches drawn with those probabilities.

**Feature transfer** reuses a *representation*: the speaker table of a multi-speaker model is a
speaker space learned without any label but the speaker id. It transfers if distances in it follow
acoustic distances (:func:`distance_correlation` of the two sets of pairwise distances) and if a new
speaker's learned row lands near the acoustically nearest source speaker.

**Relation transfer** keeps the *structure between examples* rather than the outputs: relational KD
(Park et al. 2019, distance-wise) asks the adapted model's utterance embeddings ``s_i`` to keep the
teacher's pairwise distances ``t_i`` (each normalised by its mean over the batch's pairs)::

    psi_s(i, j) = ||s_i - s_j|| / mean_{k<l} ||s_k - s_l||      (the same for psi_t)
    L_RKD = mean_{i<j} huber(psi_s(i, j) - psi_t(i, j))          (Huber with delta 1)

>>> import torch
>>> t = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
>>> float(relational_kd_loss(2 * t, t))   # scaling all distances changes no relation
0.0
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ttslab.transfer.adapt import signature_distance


def instance_weights(item_speakers: Sequence[str], signatures: dict[str, np.ndarray], target: np.ndarray,
                     tau: float = 0.1) -> np.ndarray:
    """Sampling weights ``exp(-d(speaker_i, target) / tau)`` of source items, normalised (see the module docstring).

    >>> sig = {"a": np.zeros(81), "b": np.r_[np.zeros(80), 1.0]}
    >>> instance_weights(["a", "b", "b"], sig, np.zeros(81), tau=1.0).round(3)
    array([0.576, 0.212, 0.212])
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    d = np.array([signature_distance(signatures[s], target) for s in item_speakers])
    w = np.exp(-(d - d.min()) / tau)  # shifted by the minimum: the same weights, no underflow
    return w / w.sum()


def utterance_embeddings(model, batch: dict) -> torch.Tensor:
    """``(B, d)``: the mean over real frames of the decoder output, teacher-forced on ``batch``."""
    out = model(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], durations=batch["durations"],
                pitch=batch["pitch"], energy=batch["energy"], stress=batch.get("stress"),
                word_position=batch.get("word_position"))
    mask = out["frame_mask"][..., None].float()
    return (out["decoder_out"] * mask).sum(1) / mask.sum(1).clamp(min=1)


def _normalised_distances(x: torch.Tensor) -> torch.Tensor:
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    d = (x[i] - x[j]).norm(dim=-1)
    return d / d.mean().clamp(min=1e-8)


def relational_kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distance-wise relational KD between ``(B, d)`` embeddings (B >= 2; see the module docstring)."""
    if student.shape[0] != teacher.shape[0] or student.shape[0] < 2:
        raise ValueError(f"need the same number (>= 2) of student and teacher embeddings, got "
                         f"{student.shape[0]} and {teacher.shape[0]}")
    return F.huber_loss(_normalised_distances(student), _normalised_distances(teacher.detach()), delta=1.0)


def pairwise_distances(x: np.ndarray) -> np.ndarray:
    """Upper-triangle Euclidean distances of the rows of ``x`` (``n (n - 1) / 2`` values)."""
    x = np.asarray(x, np.float64)
    i, j = np.triu_indices(len(x), 1)
    return np.linalg.norm(x[i] - x[j], axis=1)


def distance_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of the pairwise distances among the rows of ``a`` and of ``b``.

    >>> x = np.array([[0.0], [1.0], [3.0], [7.0]])
    >>> distance_correlation(x, 10 * x + 2)
    1.0
    """
    from scipy.stats import spearmanr

    if len(a) != len(b) or len(a) < 3:
        raise ValueError(f"need the same number (>= 3) of rows, got {len(a)} and {len(b)}")
    return float(spearmanr(pairwise_distances(a), pairwise_distances(b))[0])
