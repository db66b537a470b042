"""State durations: even spreading inside short phones, and HSMM-style allocation at a speaking rate."""

from __future__ import annotations

import numpy as np


def spread_states(n_frames: int, n_states: int) -> np.ndarray:
    """State of each frame when a phone is split evenly: frame ``j`` -> ``floor((j + 1/2) S / n)``.

    For phones shorter than ``S`` frames this skips states symmetrically (HTS would need skip
    transitions for that); for longer ones it is the uniform segmentation that starts Baum-Welch.

    >>> spread_states(3, 5).tolist(), spread_states(7, 5).tolist()
    ([0, 2, 4], [0, 1, 1, 2, 3, 3, 4])
    """
    return np.floor((np.arange(n_frames) + 0.5) * n_states / max(n_frames, 1)).astype(np.int64)


def allocate_durations(means, variances, rate: float = 1.0) -> np.ndarray:
    """Whole frames per state ``(P, S)`` from the duration Gaussians, at speaking rate ``rate``.

    Target ``T = sum(mu) / rate`` frames; ``d = mu + rho * s2`` with ``rho = (T - sum mu) / sum s2``
    (the maximum-likelihood durations that add up to ``T``); states that would go below 0 stay at 0
    and ``rho`` is solved again over the others, so the total still comes out at ``T``. Rounding is
    done on the running sum, so the total is kept; a phone gets at least one frame.

    >>> allocate_durations([[2.0, 4.0]], [[1.0, 1.0]]).tolist()
    [[2, 4]]
    >>> allocate_durations([[2.0, 4.0]], [[0.1, 3.0]], rate=2.0).tolist()   # the variable state absorbs it
    [[2, 1]]
    """
    means = np.asarray(means, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if not rate > 0:
        raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
    target = means.sum() / rate
    free = np.ones(means.shape, dtype=bool)
    for _ in range(means.size):  # states pushed below 0 are fixed at 0 and rho re-solved for the others
        rho = (target - means[free].sum()) / variances[free].sum()
        d = np.where(free, means + rho * variances, 0.0)
        if d.min() >= 0.0:
            break
        free &= d > 0.0
    boundaries = np.round(np.cumsum(d.ravel()))
    frames = np.diff(np.concatenate([[0.0], boundaries])).astype(np.int64).reshape(d.shape)
    empty = frames.sum(axis=1) == 0
    frames[empty, frames.shape[1] // 2] = 1  # no phone vanishes
    return frames
