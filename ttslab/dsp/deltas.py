"""Dynamic (delta) features and the matching window matrix ``W`` used by MLPG.

A window ``w`` of odd length ``2L+1`` turns a static track ``c`` into

    delta_w(c)[t] = sum_{k=-L..L} w[k+L] * c[clip(t + k, 0, T-1)]

**Edge handling** (``edges=``), i.e. what a window reads where it runs off the utterance:

* ``"replicate"`` (the default, "edges clipped"): frames outside ``[0, T-1]`` take the value of the
  nearest edge frame, ``c[clip(t + k, 0, T-1)]`` as above, so a constant track has zero deltas
  everywhere, the edges included.
* ``"zero"``: taps that fall outside ``[0, T-1]`` are dropped (they read 0),

      delta_w(c)[t] = sum_{k=-L..L, 0 <= t+k < T} w[k+L] * c[t + k]

  the convention of nnmnkwii's ``delta_features`` and of its MLPG window matrices (``build_win_mats``,
  banded matrices cut at the edges). It invents a jump at each end of every non-zero feature (the
  delta of a constant ``a`` is ``+-a/2`` at the edges), but it is what those reference implementations
  and models trained on their features expect. Away from the edges (``L <= t < T - L``) the two agree.

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
EDGES = ("replicate", "zero")


def check_edges(edges: str) -> str:
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {EDGES}, got {edges!r}")
    return edges


def window_taps(T: int, window, edges: str = "replicate") -> list[tuple[np.ndarray, np.ndarray]]:
    """For each tap ``j`` of ``window``: ``(frame it reads at every t, its coefficient at every t)``.

    The frame is ``clip(t + j - L, 0, T-1)``; the coefficient is ``w[j]``, or 0 where
    ``edges="zero"`` and ``t + j - L`` is outside ``[0, T-1]`` (that tap does not exist there).

    >>> [(f.tolist(), c.tolist()) for f, c in window_taps(2, [-0.5, 0.0, 0.5], edges="zero")][::2]
    [([0, 0], [0.0, -0.5]), ([1, 1], [0.5, 0.0])]
    """
    check_edges(edges)
    w = np.asarray(window, dtype=np.float64)
    L = len(w) // 2
    t = np.arange(T)
    taps = []
    for j in range(len(w)):
        source = t + j - L
        inside = (source >= 0) & (source < T)
        coef = np.full(T, w[j]) if edges == "replicate" else np.where(inside, w[j], 0.0)
        taps.append((np.clip(source, 0, T - 1), coef))
    return taps


def check_windows(windows: Sequence[Sequence[float]]) -> list[np.ndarray]:
    wins = [np.asarray(w, dtype=np.float64) for w in windows]
    if not wins:
        raise ValueError("need at least one window, e.g. DELTA_WINDOWS")
    for w in wins:
        if w.ndim != 1 or len(w) % 2 == 0:
            raise ValueError(f"each window must be 1-D with an odd length (centred on the frame), got {w.tolist()}")
    return wins


def delta_features(x, windows: Sequence[Sequence[float]] = DELTA_WINDOWS, edges: str = "replicate") -> np.ndarray:
    """Stack ``[delta_w1(x) | delta_w2(x) | ...]`` per frame: ``(T, D)`` -> ``(T, D*K)``; ``edges`` as above.

    >>> delta_features(np.array([[0.], [1.], [4.]])).tolist()
    [[0.0, 0.5, 1.0], [1.0, 2.0, 2.0], [4.0, 1.5, -3.0]]
    >>> delta_features(np.array([[0.], [1.], [4.]]), edges="zero").tolist()
    [[0.0, 0.5, 1.0], [1.0, 2.0, 2.0], [4.0, -0.5, -7.0]]
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
        delta = np.zeros_like(x)
        for source, coef in window_taps(T, w, edges):
            delta += coef[:, None] * x[source]
        out.append(delta)
    return np.concatenate(out, axis=1)


def delta_window_matrix(T: int, windows: Sequence[Sequence[float]] = DELTA_WINDOWS,
                        edges: str = "replicate") -> scipy.sparse.csr_matrix:
    """Sparse ``W`` of shape ``(T*K, T)`` with ``(W @ c).reshape(T, K*D) == delta_features(c, windows, edges)``.

    Row ``t*K + k`` holds window ``k`` at frame ``t``: ``W[t*K + k, s] = sum_{j : source_j(t) = s} coef_j(t)``
    over the taps of :func:`window_taps` (replicate: clipped taps pile onto the edge column; zero: they
    are absent, so the edge rows hold a truncated window).

    >>> W = delta_window_matrix(3)
    >>> W.shape, W.toarray()[3:6].tolist()   # rows of frame 1: static, delta, delta-delta
    ((9, 3), [[0.0, 1.0, 0.0], [-0.5, 0.0, 0.5], [1.0, -2.0, 1.0]])
    >>> W.toarray()[:3].tolist()             # frame 0, replicate: c[-1] reads c[0]
    [[1.0, 0.0, 0.0], [-0.5, 0.5, 0.0], [-1.0, 1.0, 0.0]]
    >>> delta_window_matrix(3, edges="zero").toarray()[:3].tolist()   # frame 0, zero: the c[-1] tap is cut
    [[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [-2.0, 1.0, 0.0]]
    """
    if T < 1:
        raise ValueError(f"need at least one frame, got T={T}")
    wins = check_windows(windows)
    K = len(wins)
    rows, cols, vals = [], [], []
    for k, w in enumerate(wins):
        for source, coef in window_taps(T, w, edges):
            rows.append(np.arange(T) * K + k)
            cols.append(source)
            vals.append(coef)
    # coo -> csr sums duplicate (row, col) entries: the clipped taps pile onto the edge frame.
    W = scipy.sparse.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(T * K, T))
    W = W.tocsr()
    W.eliminate_zeros()  # the zero centre tap of the delta window, and the cut taps of edges="zero"
    return W
