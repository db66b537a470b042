"""Dynamic (delta) features and the matching window matrix ``W`` used by MLPG.

A window ``w`` of odd length ``2L+1`` turns a static track ``c`` into

    delta_w(c)[t] = sum_{k=-L..L} w[k+L] * c[clip(t + k, 0, T-1)]

**Edge handling: replicate** ("edges clipped"): frames outside ``[0, T-1]`` take the value of the
nearest edge frame, so a constant track has zero deltas everywhere, the edges included. (Zero
padding instead would invent a large jump at each end of every non-zero feature.)

:func:`delta_window_matrix` writes the same operation as one sparse matrix ``W`` of shape
``(T*K, T)`` for ``K`` windows, with row ``t*K + k`` holding window ``k`` at frame ``t`` (clipped
indices add up on the edge column). Then, for ``c`` of shape ``(T, D)``::

    (W @ c).reshape(T, K*D) == delta_features(c)

which is what maximum-likelihood parameter generation (MLPG) inverts:
``c* = (W' P W)^-1 W' P mu`` for predicted means ``mu`` and precisions ``P`` of ``[c, dc, ddc]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse

# Static, delta and delta-delta windows of HTS / Merlin.
DELTA_WINDOWS: tuple[tuple[float, ...], ...] = ((1.0,), (-0.5, 0.0, 0.5), (1.0, -2.0, 1.0))


def check_windows(windows: Sequence[Sequence[float]]) -> list[np.ndarray]:
    wins = [np.asarray(w, dtype=np.float64) for w in windows]
    if not wins:
        raise ValueError("need at least one window, e.g. DELTA_WINDOWS")
    for w in wins:
        if w.ndim != 1 or len(w) % 2 == 0:
            raise ValueError(f"each window must be 1-D with an odd length (centred on the frame), got {w.tolist()}")
    return wins


def delta_features(x, windows: Sequence[Sequence[float]] = DELTA_WINDOWS) -> np.ndarray:
    """Stack ``[delta_w1(x) | delta_w2(x) | ...]`` per frame: ``(T, D)`` -> ``(T, D*K)``, replicate edges.

    >>> delta_features(np.array([[0.], [1.], [4.]])).tolist()
    [[0.0, 0.5, 1.0], [1.0, 2.0, 2.0], [4.0, 1.5, -3.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must have shape (T, D) with T > 0, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values; fix them before computing deltas")
    T = len(x)
    out = []
    for w in check_windows(windows):
        L = len(w) // 2
        idx = np.clip(np.arange(T)[:, None] + np.arange(-L, L + 1)[None, :], 0, T - 1)  # (T, 2L+1)
        out.append(np.einsum("tkd,k->td", x[idx], w))
    return np.concatenate(out, axis=1)


def delta_window_matrix(T: int, windows: Sequence[Sequence[float]] = DELTA_WINDOWS) -> scipy.sparse.csr_matrix:
    """Sparse ``W`` of shape ``(T*K, T)`` with ``(W @ c).reshape(T, K*D) == delta_features(c)``.

    >>> W = delta_window_matrix(3)
    >>> W.shape, W.toarray()[3:6].tolist()   # rows of frame 1: static, delta, delta-delta
    ((9, 3), [[0.0, 1.0, 0.0], [-0.5, 0.0, 0.5], [1.0, -2.0, 1.0]])
    """
    if T < 1:
        raise ValueError(f"need at least one frame, got T={T}")
    wins = check_windows(windows)
    K = len(wins)
    rows, cols, vals = [], [], []
    for k, w in enumerate(wins):
        L = len(w) // 2
        for j, coef in enumerate(w):
            t = np.arange(T)
            rows.append(t * K + k)
            cols.append(np.clip(t + j - L, 0, T - 1))
            vals.append(np.full(T, coef))
    # coo -> csr sums duplicate (row, col) entries: the clipped taps pile onto the edge frame.
    W = scipy.sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(T * K, T))
    W = W.tocsr()
    W.eliminate_zeros()  # the zero centre tap of the delta window
    return W
