"""Maximum-likelihood parameter generation (MLPG) with and without global variance.

An acoustic model (HMM state, GMM mixture, DNN) predicts, for every frame ``t``, a Gaussian over the
*observation* ``o_t = [c_t | dc_t | ddc_t]``: the static features and their dynamic (delta)
features. The statics are what we need; the deltas say how the statics move. MLPG (Tokuda et al.
2000) finds the one static trajectory ``c`` (shape ``(T, D)``) whose stacked observation
``o = W c`` is most likely under those Gaussians::

    c* = argmax_c  log N(W c; mu, Sigma)
       = (W' P W)^-1 W' P mu          P = Sigma^-1  (diagonal: precisions of mu)

``W`` is :func:`ttslab.dsp.deltas.delta_window_matrix` (the same windows and the same edges as
:func:`~ttslab.dsp.deltas.delta_features`), so ``mlpg(delta_features(c), any_variances)`` gives back
``c``. With diagonal covariances every feature dimension ``d`` is its own problem.

**Edges.** Near the ends of the utterance a window of half-width ``L`` reaches frames that do not
exist. ``edges="replicate"`` (the default, as in :func:`~ttslab.dsp.deltas.delta_features`) reads
the nearest edge frame there, ``c[clip(t + j - L, 0, T-1)]``: the delta rows of frame 0 are
``[-1/2, 1/2, 0, ...]`` and ``[-1, 1, 0, ...]``. ``edges="zero"`` drops those taps (row ``t`` of
window ``w`` is ``W[t, t+j-L] = w[j]`` only for ``0 <= t+j-L < T``: ``[0, 1/2, 0, ...]`` and
``[-2, 1, 0, ...]`` at frame 0), the convention of nnmnkwii's ``mlpg`` / ``build_win_mats``. The
two give the same ``W`` rows for ``L <= t < T - L``; the solutions differ mostly in the first and
last few frames (the whole trajectory is coupled, so by a little everywhere).

``A = W' P W`` is symmetric positive definite and *banded*: a window of half-width ``L`` couples
frames at most ``2L`` apart, so ``A`` has ``2L`` sub-diagonals and the solve is a banded Cholesky
in ``O(T L^2)`` time instead of a dense ``O(T^3)`` one. :func:`mlpg` builds only that band;
:func:`mlpg_dense` is the textbook dense solve, kept for teaching and as the test reference.

MLPG trajectories are too smooth (their variance over time is too small: "muffled" speech).
Global-variance (GV) compensation (Toda & Tokuda 2007) adds a Gaussian on that variance,
:func:`mlpg_gv`; :func:`variance_scaling` is the cheap postfilter version.

Layout: ``means`` and ``variances`` have shape ``(T, K*D)`` for ``K`` windows, stacked as
``[static (D) | delta (D) | delta-delta (D)]``, exactly as :func:`~ttslab.dsp.deltas.delta_features`
writes them. A variance of ``+inf`` (precision 0) means "no information", e.g. the delta of log-F0 at
a voiced/unvoiced boundary in HTS.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.linalg

from ttslab.dsp.deltas import (DELTA_WINDOWS, check_edges, check_windows, delta_features, delta_window_matrix,
                               window_taps)

__all__ = [
    "mlpg", "mlpg_dense", "mlpg_segments", "mlpg_gv", "gv_objective", "gv_gradient",
    "global_variance", "variance_scaling",
]

Windows = Sequence[Sequence[float]]


# ----------------------------------------------------------------------------- input checks


def _check_inputs(means, variances, windows: Windows):
    """Validate shapes/values; return ``(means, precisions, wins, D)`` as float64 arrays."""
    wins = check_windows(windows)
    K = len(wins)
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError(f"means must have shape (T, D*K) with T > 0, got {means.shape}")
    if means.shape[1] == 0 or means.shape[1] % K != 0:
        raise ValueError(f"means have {means.shape[1]} columns, not a multiple of the {K} windows: expected the "
                         f"delta_features layout [static (D) | delta (D) | ...] with D*K columns")
    variances = np.asarray(variances, dtype=np.float64)
    try:
        variances = np.broadcast_to(variances, means.shape)
    except ValueError:
        raise ValueError(f"variances of shape {variances.shape} do not match means of shape {means.shape}") from None
    if not np.all(np.isfinite(means)):
        raise ValueError("means contain NaN or infinite values")
    if np.any(np.isnan(variances)):
        raise ValueError("variances contain NaN")
    if np.any(variances <= 0):
        raise ValueError(f"variances must be positive (got min {variances.min():g}); "
                         "floor them, e.g. np.maximum(v, 1e-8)")
    precisions = 1.0 / variances  # +inf variance -> precision 0: that feature carries no information
    return means, precisions, wins, means.shape[1] // K


# ----------------------------------------------------------------------------- the normal equations, banded


def _apply_window_transpose(y: np.ndarray, wins: list[np.ndarray], D: int, edges: str = "replicate") -> np.ndarray:
    """``W' y`` for a stacked ``y`` of shape ``(T, K*D)``: scatter each window's taps back onto the frames they read.

    ``(W' y)[s] = sum_{t,k,j : source_j(t) = s} coef_kj(t) y[t, k]`` with the taps of
    :func:`~ttslab.dsp.deltas.window_taps` (``source = clip(t + j - L_k)``; ``coef = 0`` on cut taps).
    """
    T = y.shape[0]
    out = np.zeros((T, D))
    for k, w in enumerate(wins):
        y_k = y[:, k * D:(k + 1) * D]
        for col, coef in window_taps(T, w, edges):
            if np.any(coef != 0.0):
                np.add.at(out, col, coef[:, None] * y_k)  # add.at, not +=: clipped edge taps hit the same frame twice
    return out


def _normal_matrix_band(precisions: np.ndarray, wins: list[np.ndarray], D: int, edges: str = "replicate") -> np.ndarray:
    """Lower band of ``A = W' P W`` per dimension, shape ``(D, 2*Lmax + 1, T)``, in ``solveh_banded`` form.

    ``A = sum_{t,k} p[t,k] w_tk w_tk'`` where ``w_tk`` is row ``(t, k)`` of ``W``: taps ``coef_ka(t)`` (``w_k[a]``,
    or 0 where ``edges="zero"`` cuts it) at columns ``clip(t + a - L_k)``. Each tap pair ``(a, b)`` adds
    ``p[t,k] coef_ka(t) coef_kb(t)`` to
    ``A[col_a, col_b]``; we keep the lower triangle ``col_a >= col_b`` (the pair ``(b, a)`` is its mirror)
    and store ``A[i, j]`` at ``band[i - j, j]``. Edge frames are exact because the clipped columns are
    the ones ``delta_window_matrix`` uses.
    """
    T = precisions.shape[0]
    half_width = max(len(w) // 2 for w in wins)
    band = np.zeros((2 * half_width + 1, T, D))
    for k, w in enumerate(wins):
        p_k = precisions[:, k * D:(k + 1) * D]
        taps = window_taps(T, w, edges)
        for col_a, coef_a in taps:
            for col_b, coef_b in taps:
                if not (coef_a.any() and coef_b.any()):  # e.g. the zero centre tap of the delta window
                    continue
                lower = col_a >= col_b
                i, j = col_a[lower], col_b[lower]
                np.add.at(band, (i - j, j), (coef_a * coef_b)[lower][:, None] * p_k[lower])
    return np.ascontiguousarray(band.transpose(2, 0, 1))  # one contiguous band per dimension for LAPACK


def _normal_equations(means, precisions, wins, D, edges="replicate"):
    """``(band of W'PW, W'P mu)`` for all dimensions at once."""
    _check_level_is_observed(precisions, wins, D, edges)
    return (_normal_matrix_band(precisions, wins, D, edges),
            _apply_window_transpose(precisions * means, wins, D, edges))


def _not_positive_definite(d: int) -> np.linalg.LinAlgError:
    return np.linalg.LinAlgError(
        f"W'PW is singular for dimension {d}: the windows and precisions do not pin the trajectory down "
        "(e.g. no static window, or infinite variances everywhere); give the statics finite variances")


def _check_level_is_observed(precisions, wins, D, edges="replicate"):
    """Raise if a constant offset of ``c`` is invisible: ``1' A 1 = sum_{t,k} p[t,k] (sum_j coef_kj(t))^2 == 0``.

    With replicated edges a constant track gives ``sum(w_k)`` in every window, so windows whose taps sum to
    zero (all deltas) cannot see the level; Cholesky might not notice the singularity in floating point.
    (With cut edges the truncated edge windows do see it.)
    """
    T, K = precisions.shape[0], len(wins)
    prec = precisions.reshape(T, K, D)
    taps = [window_taps(T, w, edges) for w in wins]
    row_sum = np.stack([sum(coef for _, coef in t) for t in taps], axis=1)           # (T, K): W 1
    row_norm = np.stack([sum(coef**2 for _, coef in t) for t in taps], axis=1)       # (T, K)
    level = np.einsum("tkd,tk->d", prec, row_sum**2)
    scale = np.einsum("tkd,tk->d", prec, row_norm)
    blind = np.flatnonzero(~(level > 1e-12 * scale))
    if blind.size:
        raise _not_positive_definite(int(blind[0]))


# ----------------------------------------------------------------------------- MLPG


def mlpg(means, variances, windows: Windows = DELTA_WINDOWS, edges: str = "replicate") -> np.ndarray:
    """Most likely static trajectory ``c`` (T, D) given per-frame Gaussians over ``[c | dc | ddc]``.

    Solves, for each dimension independently (diagonal covariance),

        (W' P W) c = W' P mu,        P = diag(1 / variances)

    with ``W = delta_window_matrix(T, windows, edges)`` (``edges``: see "Edges" above), by a banded
    Cholesky (``scipy.linalg.solveh_banded``): ``W' P W`` has ``2 * max half-width`` sub-diagonals
    (4 for :data:`DELTA_WINDOWS`).

    >>> c0 = np.linspace(0.0, 1.0, 6)[:, None] ** 2                  # a smooth (T=6, D=1) trajectory
    >>> mu = delta_features(c0)                                      # its exact [c | dc | ddc]
    >>> np.allclose(mlpg(mu, np.full_like(mu, 0.3)), c0)             # recovered, whatever the variances
    True
    >>> cut = delta_features(c0, edges="zero")                       # deltas with the windows cut at the ends
    >>> np.allclose(mlpg(cut, 0.3, edges="zero"), c0)                # recovered with the same convention...
    True
    >>> np.allclose(mlpg(cut, 0.3), c0)                              # ...but not with the other one
    False
    """
    means, precisions, wins, D = _check_inputs(means, variances, windows)
    band, rhs = _normal_equations(means, precisions, wins, D, check_edges(edges))
    c = np.empty_like(rhs)
    for d in range(D):  # each dimension has its own matrix, so one LAPACK call per dimension
        try:
            c[:, d] = scipy.linalg.solveh_banded(band[d], rhs[:, d], lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            raise _not_positive_definite(d) from None
    return c


def mlpg_dense(means, variances, windows: Windows = DELTA_WINDOWS, edges: str = "replicate") -> np.ndarray:
    """The same solution with the explicit ``W`` and a dense solve, ``c = (W'PW)^-1 W'P mu``: O(T^3), for teaching.

    ``mu`` of one dimension is read in ``W``'s row order ``t*K + k`` (frame-major), i.e.
    ``means.reshape(T, K, D)[:, :, d].ravel()``.
    """
    means, precisions, wins, D = _check_inputs(means, variances, windows)
    T, K = means.shape[0], len(wins)
    W = delta_window_matrix(T, windows, edges).toarray()  # (T*K, T)
    mu = means.reshape(T, K, D)
    prec = precisions.reshape(T, K, D)
    c = np.empty((T, D))
    for d in range(D):
        p = prec[:, :, d].ravel()
        WtP = W.T * p  # W' P without forming the diagonal matrix
        try:
            c[:, d] = np.linalg.solve(WtP @ W, WtP @ mu[:, :, d].ravel())
        except np.linalg.LinAlgError:
            raise _not_positive_definite(d) from None
    return c


def mlpg_segments(means, variances, lengths: Sequence[int], windows: Windows = DELTA_WINDOWS,
                  edges: str = "replicate") -> np.ndarray:
    """MLPG on several utterances stacked along time: ``lengths`` frames each; windows never cross utterances.

    Returns the ``(sum(lengths), D)`` trajectories, stacked the same way.
    """
    means = np.asarray(means, dtype=np.float64)
    lengths = [int(n) for n in lengths]
    if means.ndim != 2 or any(n < 1 for n in lengths) or sum(lengths) != means.shape[0]:
        raise ValueError(f"lengths {lengths} must be positive and add up to the frames of means {means.shape}")
    variances = np.asarray(variances, dtype=np.float64)
    if variances.ndim == 2:  # per-frame variances are cut like the means; a (D*K,) vector is shared
        if variances.shape[0] != means.shape[0]:
            raise ValueError(f"variances of shape {variances.shape} do not match means of shape {means.shape}")
    else:
        variances = np.broadcast_to(variances, (means.shape[0],) + variances.shape)
    bounds = np.cumsum([0] + lengths)
    return np.concatenate([mlpg(means[s:e], variances[s:e], windows, edges) for s, e in zip(bounds[:-1], bounds[1:])])


# ----------------------------------------------------------------------------- global variance


def _gv(c: np.ndarray) -> np.ndarray:
    """Global variance of one trajectory: ``v_d(c) = 1/T sum_t (c_td - mean_t c_td)^2``, shape (D,)."""
    return np.var(c, axis=0)


def global_variance(trajectories: Sequence[np.ndarray], var_floor: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """GV statistics over training utterances: mean and variance (over utterances) of each one's ``v(c)``.

    ``trajectories`` is a list of ``(T_i, D)`` static features (natural speech). ``gv_var`` is floored at
    ``var_floor`` so that a single utterance still gives a usable (if very confident) Gaussian.
    """
    gvs = np.stack([_gv(np.asarray(c, dtype=np.float64).reshape(len(c), -1)) for c in trajectories])
    return gvs.mean(axis=0), np.maximum(gvs.var(axis=0), var_floor)


def variance_scaling(c, gv_mean) -> np.ndarray:
    """Postfilter: stretch each dimension around its time-mean so its GV equals ``gv_mean`` exactly.

        c'_td = mean_d + sqrt(gv_mean_d / v_d(c)) (c_td - mean_d)

    Cheap and often almost as good as :func:`mlpg_gv` (Silen et al. 2012). A constant dimension
    (``v_d = 0``) has no shape to stretch and is returned unchanged.
    """
    c = np.asarray(c, dtype=np.float64)
    gv_mean = np.asarray(gv_mean, dtype=np.float64)
    if c.ndim != 2 or gv_mean.shape != (c.shape[1],):
        raise ValueError(f"need c of shape (T, D) and gv_mean of shape (D,), got {c.shape} and {gv_mean.shape}")
    if np.any(~np.isfinite(gv_mean)) or np.any(gv_mean < 0):
        raise ValueError("gv_mean must be finite and non-negative")
    centre = c.mean(axis=0)
    v = _gv(c)
    scale = np.sqrt(np.divide(gv_mean, v, out=np.ones_like(v), where=v > 0))
    return centre + scale * (c - centre)


def _check_gv(gv_mean, gv_var, D: int):
    gv_mean = np.asarray(gv_mean, dtype=np.float64)
    gv_var = np.asarray(gv_var, dtype=np.float64)
    if gv_mean.shape != (D,) or gv_var.shape != (D,):
        raise ValueError(f"gv_mean and gv_var must have shape ({D},), got {gv_mean.shape} and {gv_var.shape}")
    if not (np.all(np.isfinite(gv_mean)) and np.all(np.isfinite(gv_var))) or np.any(gv_var <= 0):
        raise ValueError("gv_mean must be finite and gv_var finite and positive")
    return gv_mean, gv_var


def _gv_objective(c, means, precisions, gv_mean, gv_var, windows, weight, edges="replicate") -> np.ndarray:
    """Per-dimension objective (see :func:`gv_objective`), inputs already checked."""
    residual = delta_features(c, windows, edges) - means
    D = c.shape[1]
    loglik = -0.5 * (precisions * residual**2).reshape(len(c), -1, D).sum(axis=(0, 1))
    return weight * loglik - 0.5 * (_gv(c) - gv_mean) ** 2 / gv_var


def _gv_gradient(c, means, precisions, gv_mean, gv_var, wins, D, weight, edges="replicate") -> np.ndarray:
    """``dJ/dc`` (T, D) (see :func:`gv_gradient`), inputs already checked."""
    T = len(c)
    residual = means - delta_features(c, wins, edges)                                   # mu - W c
    likelihood_part = _apply_window_transpose(precisions * residual, wins, D, edges)     # W'P (mu - W c) = b - A c
    gv_part = ((_gv(c) - gv_mean) / gv_var * 2.0 / T) * (c - c.mean(axis=0))
    return weight * likelihood_part - gv_part


def _checked_gv_inputs(c, means, variances, gv_mean, gv_var, windows, weight):
    means, precisions, wins, D = _check_inputs(means, variances, windows)
    c = np.asarray(c, dtype=np.float64)
    if c.shape != (means.shape[0], D):
        raise ValueError(f"c must have shape {(means.shape[0], D)}, got {c.shape}")
    gv_mean, gv_var = _check_gv(gv_mean, gv_var, D)
    weight = 1.0 / (len(wins) * len(c)) if weight is None else float(weight)
    return c, means, precisions, wins, D, gv_mean, gv_var, weight


def gv_gradient(c, means, variances, gv_mean, gv_var, windows: Windows = DELTA_WINDOWS,
                weight: float | None = None, edges: str = "replicate") -> np.ndarray:
    """Gradient of :func:`gv_objective` with respect to ``c``, shape (T, D) (``J_d`` depends on ``c_d`` only)::

        dJ_d/dc_d = weight * W' P_d (mu_d - W c_d)  -  (v_d(c) - gv_mean_d) / gv_var_d * 2/T * (c_d - mean(c_d))

    using ``dv_d/dc_td = 2/T (c_td - mean_t c_td)`` (the mean's own derivative sums to zero).
    """
    c, means, precisions, wins, D, gv_mean, gv_var, weight = _checked_gv_inputs(
        c, means, variances, gv_mean, gv_var, windows, weight)
    return _gv_gradient(c, means, precisions, gv_mean, gv_var, wins, D, weight, check_edges(edges))


def gv_objective(c, means, variances, gv_mean, gv_var, windows: Windows = DELTA_WINDOWS,
                 weight: float | None = None, edges: str = "replicate") -> np.ndarray:
    """The GV objective of each dimension, shape (D,), up to constants (Toda & Tokuda 2007, eq. 10)::

        J_d(c) = weight * log N(W c_d; mu_d, Sigma_d) + log N(v_d(c); gv_mean_d, gv_var_d)
               = -weight/2 (W c_d - mu_d)' P_d (W c_d - mu_d) - (v_d(c) - gv_mean_d)^2 / (2 gv_var_d) + const

    ``weight`` defaults to ``1 / (K*T)``, the ratio of the dimensions of ``v`` (1 per feature) and of
    ``W c`` (K*T per feature), which keeps the GV term from being drowned by the T-frame likelihood.
    """
    c, means, precisions, wins, D, gv_mean, gv_var, weight = _checked_gv_inputs(
        c, means, variances, gv_mean, gv_var, windows, weight)
    return _gv_objective(c, means, precisions, gv_mean, gv_var, windows, weight, check_edges(edges))


def mlpg_gv(means, variances, gv_mean, gv_var, windows: Windows = DELTA_WINDOWS, n_iter: int = 50,
            step: float = 1.0, weight: float | None = None, return_objective: bool = False,
            edges: str = "replicate"):
    """MLPG with global-variance compensation: maximise :func:`gv_objective` from the MLPG solution.

    Gradient of ``J_d`` (``A = W'PW``, ``b = W'P mu``; ``dv/dc_t = 2/T (c_t - mean(c))``; :func:`gv_gradient`)::

        g_d = weight * (b_d - A_d c_d)  -  (v_d(c) - gv_mean_d) / gv_var_d * 2/T * (c_d - mean(c_d))

    Each iteration moves along the ascent direction ``delta = A^-1 g / weight`` (a Newton step for the
    likelihood part, which also smooths the GV push the way the deltas want; ``A^-1`` is positive
    definite, so ``g' delta > 0``), reusing one banded Cholesky factor of ``A``. Step-size control per
    dimension: try ``c + s delta``; if ``J`` does not increase, halve ``s`` (up to 30 times, then stay);
    after an accepted step, double ``s``. So ``J`` never decreases.

    Returns ``c`` (T, D), and with ``return_objective=True`` also ``J`` per iteration, shape ``(n_iter+1, D)``.
    """
    means, precisions, wins, D = _check_inputs(means, variances, windows)
    gv_mean, gv_var = _check_gv(gv_mean, gv_var, D)
    if n_iter < 0 or not step > 0:
        raise ValueError(f"need n_iter >= 0 and step > 0, got {n_iter} and {step}")
    T = means.shape[0]
    weight = 1.0 / (len(wins) * T) if weight is None else float(weight)
    if not weight > 0:
        raise ValueError(f"weight must be positive, got {weight}")

    band, rhs = _normal_equations(means, precisions, wins, D, check_edges(edges))
    factors = []  # one banded Cholesky factor of A per dimension, reused by every iteration
    for d in range(D):
        try:
            factors.append(scipy.linalg.cholesky_banded(band[d], lower=True, check_finite=False))
        except np.linalg.LinAlgError:
            raise _not_positive_definite(d) from None

    def solve_A(x):  # A_d^-1 x_d for every dimension
        return np.stack([scipy.linalg.cho_solve_banded((factors[d], True), x[:, d], check_finite=False)
                         for d in range(D)], axis=1)

    def objective(c):
        return _gv_objective(c, means, precisions, gv_mean, gv_var, windows, weight, edges)

    c = solve_A(rhs)  # the plain MLPG trajectory
    J = objective(c)
    history = [J.copy()]
    steps = np.full(D, float(step))
    for _ in range(n_iter):
        grad = _gv_gradient(c, means, precisions, gv_mean, gv_var, wins, D, weight, edges)
        direction = solve_A(grad) / weight
        pending = np.ones(D, dtype=bool)
        for _halving in range(31):
            trial = c + steps * direction
            J_trial = objective(trial)
            accept = pending & (J_trial > J)
            c[:, accept], J[accept] = trial[:, accept], J_trial[accept]
            steps[accept] *= 2.0  # grow again next time; backtracking will bring it down if needed
            pending &= ~accept
            if not pending.any():
                break
            steps[pending] /= 2.0
        history.append(J.copy())
    return (c, np.array(history)) if return_objective else c
