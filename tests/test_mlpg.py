"""MLPG: banded solve against the dense textbook solve, exactness, limits, GV compensation, errors, speed."""

from __future__ import annotations

import doctest
import time

import numpy as np
import pytest

import ttslab.classical.mlpg as mlpg_module
from ttslab.classical.mlpg import (global_variance, gv_gradient, gv_objective, mlpg, mlpg_dense, mlpg_gv,
                                   mlpg_segments, variance_scaling)
from ttslab.dsp.deltas import DELTA_WINDOWS, delta_features

WIDE_WINDOWS = ((1.0,), (-0.2, -0.1, 0.0, 0.1, 0.2), (1.0, -2.0, 1.0))  # half-width 2: a 9-diagonal band


def random_gaussians(rng, T, D, K=3):
    """Means ~ N(0, 1) and log-uniform variances over six decades, in the (T, K*D) layout."""
    means = rng.normal(size=(T, K * D))
    variances = 10.0 ** rng.uniform(-3, 3, size=(T, K * D))
    return means, variances


def smooth_trajectory(T, D):
    t = np.linspace(0.0, 1.0, T)[:, None]
    return np.sin(2 * np.pi * (t * np.arange(1, D + 1) + 0.1)) + t**2


@pytest.mark.parametrize("windows", [DELTA_WINDOWS, WIDE_WINDOWS], ids=["hts", "wide"])
@pytest.mark.parametrize("D", [1, 3])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 10, 500])
def test_banded_matches_dense_solve(T, D, windows):
    rng = np.random.default_rng(1000 * T + D)
    means, variances = random_gaussians(rng, T, D)
    banded, dense = mlpg(means, variances, windows), mlpg_dense(means, variances, windows)
    assert banded.shape == (T, D)
    np.testing.assert_allclose(banded, dense, rtol=0, atol=1e-8)  # every frame, the replicated edges included


@pytest.mark.parametrize("T", [1, 2, 5, 100])
def test_exact_observations_give_back_the_trajectory(T):
    rng = np.random.default_rng(T)
    c0 = smooth_trajectory(T, 3)
    _, variances = random_gaussians(rng, T, 3)
    np.testing.assert_allclose(mlpg(delta_features(c0), variances), c0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mlpg(delta_features(c0, WIDE_WINDOWS), variances, WIDE_WINDOWS), c0, atol=1e-8)


def test_static_window_only_returns_static_means():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(50, 4))
    np.testing.assert_allclose(mlpg(means, rng.uniform(0.1, 5, size=means.shape), windows=((1.0,),)), means,
                               rtol=0, atol=1e-12)


def test_limits_approach_static_means():
    rng = np.random.default_rng(1)
    T, D = 80, 2
    means, variances = random_gaussians(rng, T, D)
    static = means[:, :D]

    uninformative_deltas = variances.copy()
    uninformative_deltas[:, D:] = 1e12
    np.testing.assert_allclose(mlpg(means, uninformative_deltas), static, atol=1e-6)

    confident_statics = variances.copy()
    confident_statics[:, :D] = 1e-12
    np.testing.assert_allclose(mlpg(means, confident_statics), static, atol=1e-6)

    no_deltas = variances.copy()
    no_deltas[:, D:] = np.inf  # precision 0: "no information", as at HTS voicing boundaries
    np.testing.assert_allclose(mlpg(means, no_deltas), static, rtol=0, atol=1e-12)


def test_dynamic_features_smooth_the_trajectory():
    rng = np.random.default_rng(2)
    T = 200
    means = np.concatenate([rng.normal(size=(T, 1)), np.zeros((T, 2))], axis=1)  # noisy statics, "stay still"
    c = mlpg(means, np.concatenate([np.ones((T, 1)), np.full((T, 2), 0.01)], axis=1))
    assert np.abs(np.diff(c[:, 0])).mean() < 0.2 * np.abs(np.diff(means[:, 0])).mean()


def test_broadcast_variances():
    rng = np.random.default_rng(3)
    means, _ = random_gaussians(rng, 30, 2)
    per_feature = np.array([1.0, 2.0, 0.1, 0.2, 0.05, 0.5])
    np.testing.assert_allclose(mlpg(means, per_feature), mlpg(means, np.tile(per_feature, (30, 1))), atol=1e-12)


def test_segments_do_not_cross_utterance_boundaries():
    rng = np.random.default_rng(4)
    lengths = [7, 1, 30]
    means, variances = random_gaussians(rng, sum(lengths), 2)
    bounds = np.cumsum([0] + lengths)
    expected = np.concatenate([mlpg(means[s:e], variances[s:e]) for s, e in zip(bounds[:-1], bounds[1:])])
    np.testing.assert_allclose(mlpg_segments(means, variances, lengths), expected, atol=1e-12)
    with pytest.raises(ValueError, match="add up"):
        mlpg_segments(means, variances, [7, 1, 29])


# ----------------------------------------------------------------------------- edges: brute force


def brute_force_window_matrix(T, windows, edges):
    """``W`` (T*K, T) written out tap by tap, independently of ttslab.dsp.deltas: row ``t*K + k`` reads
    ``c[t + j - L]`` with weight ``w[j]``; off the utterance that frame is the edge frame ("replicate")
    or the tap does not exist ("zero", nnmnkwii's ``build_win_mats``)."""
    K = len(windows)
    W = np.zeros((T * K, T))
    for t in range(T):
        for k, w in enumerate(windows):
            L = len(w) // 2
            for j, coef in enumerate(w):
                s = t + j - L
                if 0 <= s < T:
                    W[t * K + k, s] += coef
                elif edges == "replicate":
                    W[t * K + k, min(max(s, 0), T - 1)] += coef
    return W


def brute_force_mlpg(means, variances, windows, edges):
    """Weighted least squares ``min_c ||P^1/2 (W c - mu)||^2`` per dimension by numpy's lstsq."""
    T, K = means.shape[0], len(windows)
    D = means.shape[1] // K
    W = brute_force_window_matrix(T, windows, edges)
    sqrt_p = 1.0 / np.sqrt(variances.reshape(T, K, D))
    mu = means.reshape(T, K, D)
    return np.stack([np.linalg.lstsq(sqrt_p[:, :, d].ravel()[:, None] * W, (sqrt_p * mu)[:, :, d].ravel(),
                                     rcond=None)[0] for d in range(D)], axis=1)


@pytest.mark.parametrize("edges", ["replicate", "zero"])
@pytest.mark.parametrize("windows", [DELTA_WINDOWS, WIDE_WINDOWS], ids=["hts", "wide"])
@pytest.mark.parametrize("T", [1, 2, 3, 4, 7, 30])
def test_mlpg_equals_brute_force_least_squares_at_every_frame(T, windows, edges):
    rng = np.random.default_rng(10 * T + len(windows[1]))
    means, variances = random_gaussians(rng, T, 2)
    expected = brute_force_mlpg(means, variances, windows, edges)
    np.testing.assert_allclose(mlpg(means, variances, windows, edges=edges), expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(mlpg_dense(means, variances, windows, edges=edges), expected, rtol=0, atol=1e-7)


def test_cut_edges_let_deltas_alone_see_the_level():
    """With replicated edges a delta window never sees a constant offset (W 1 = 0: singular); cut edges
    see it at the ends (frame 0 reads +c/2), so for an even T deltas alone pin the trajectory down."""
    rng = np.random.default_rng(14)
    T, deltas_only = 6, ((-0.5, 0.0, 0.5),)
    means, variances = rng.normal(size=(T, 1)), rng.uniform(0.5, 2.0, size=(T, 1))
    np.testing.assert_allclose(mlpg(means, variances, deltas_only, edges="zero"),
                               brute_force_mlpg(means, variances, deltas_only, "zero"), rtol=0, atol=1e-9)
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        mlpg(means, variances, deltas_only, edges="replicate")


def test_edge_conventions_differ_only_near_the_edges():
    """Same ``W`` rows for ``L <= t < T-L``; the solutions differ most in the first and last frames."""
    T, L = 40, 1
    replicate = brute_force_window_matrix(T, DELTA_WINDOWS, "replicate")
    zero = brute_force_window_matrix(T, DELTA_WINDOWS, "zero")
    K = len(DELTA_WINDOWS)
    np.testing.assert_array_equal(replicate[L * K:(T - L) * K], zero[L * K:(T - L) * K])
    means = np.random.default_rng(11).normal(size=(T, K))
    variances = np.array([1.0, 0.1, 0.1])               # deltas as confident as in a trained voice
    gap = np.abs(mlpg(means, variances) - mlpg(means, variances, edges="zero"))[:, 0]
    # Largest at the ends; it dies out geometrically inward (coupled through W'PW, so never exactly 0).
    assert gap.max() > 0.1 and (gap.argmax() < 3 or gap.argmax() >= T - 3)
    assert gap[T // 2 - 5:T // 2 + 5].max() < 0.05 * gap.max()


def test_zero_edges_give_back_their_own_deltas():
    c0 = smooth_trajectory(25, 2)
    _, variances = random_gaussians(np.random.default_rng(12), 25, 2)
    mu = delta_features(c0, edges="zero")
    np.testing.assert_allclose(mlpg(mu, variances, edges="zero"), c0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(mlpg_segments(mu, variances, [25], edges="zero"), c0, rtol=0, atol=1e-8)
    # GV starts from the same plain solution and scores it with the same W
    gv_mean, gv_var = c0.var(axis=0), np.full(2, 1e-4)
    c, objective = mlpg_gv(mu, variances, gv_mean, gv_var, n_iter=0, edges="zero", return_objective=True)
    np.testing.assert_allclose(c, c0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(objective[0], gv_objective(c0, mu, variances, gv_mean, gv_var, edges="zero"),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="edges"):
        mlpg(mu, variances, edges="mirror")


# ----------------------------------------------------------------------------- global variance


@pytest.mark.parametrize("edges", ["replicate", "zero"])
def test_gv_gradient_equals_finite_differences(edges):
    """Central differences of gv_objective, on statics with loose variances so that the GV term dominates."""
    rng = np.random.default_rng(13)
    T, D = 12, 2
    means, variances = random_gaussians(rng, T, D)
    variances *= 30.0                                   # a loose prior: the likelihood pulls only weakly
    c = rng.normal(size=(T, D))
    gv_mean = np.array([3.0, 0.2]) * c.var(axis=0)       # one dimension too flat, one too lively
    gv_var = (0.2 * gv_mean) ** 2
    weight = 0.05

    def numeric_gradient(gv_var):
        grad, h = np.zeros((T, D)), 1e-6
        for t in range(T):
            for d in range(D):
                e = np.zeros((T, D))
                e[t, d] = h
                plus = gv_objective(c + e, means, variances, gv_mean, gv_var, weight=weight, edges=edges)
                minus = gv_objective(c - e, means, variances, gv_mean, gv_var, weight=weight, edges=edges)
                grad[t, d] = (plus[d] - minus[d]) / (2 * h)  # J_d depends on column d only
        return grad

    numeric = numeric_gradient(gv_var)
    likelihood_only = numeric_gradient(np.full(D, 1e30))  # the GV term switched off
    assert np.linalg.norm(numeric - likelihood_only) > 0.5 * np.linalg.norm(numeric)  # GV matters here
    analytic = gv_gradient(c, means, variances, gv_mean, gv_var, weight=weight, edges=edges)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7 * np.abs(numeric).max())




@pytest.fixture
def oversmoothed():
    """Means predicted from a smoothed version of a rough natural trajectory: MLPG under-shoots its GV."""
    rng = np.random.default_rng(5)
    T, D = 300, 4
    natural = np.cumsum(rng.normal(size=(T, D)), axis=0) * 0.3 + rng.normal(size=(T, D))
    kernel = np.ones(9) / 9
    smoothed = np.stack([np.convolve(np.pad(natural[:, d], 4, mode="edge"), kernel, "valid") for d in range(D)], 1)
    means = delta_features(smoothed)
    variances = np.concatenate([np.full((T, D), 1.0), np.full((T, 2 * D), 0.1)], axis=1)
    gv_mean = natural.var(axis=0)
    return means, variances, gv_mean, (0.1 * gv_mean) ** 2


def test_gv_moves_toward_target_and_objective_never_decreases(oversmoothed):
    means, variances, gv_mean, gv_var = oversmoothed
    plain = mlpg(means, variances)
    c, objective = mlpg_gv(means, variances, gv_mean, gv_var, n_iter=30, return_objective=True)
    assert objective.shape == (31, 4)
    np.testing.assert_allclose(c.var(axis=0) / gv_mean, 1.0, atol=0.01)  # plain MLPG is 10-30 % short
    assert np.all(np.abs(c.var(axis=0) - gv_mean) < 0.1 * np.abs(plain.var(axis=0) - gv_mean))
    assert np.all(np.diff(objective, axis=0) >= 0)
    assert np.all(objective[-1] > objective[0])
    np.testing.assert_allclose(objective[0], gv_objective(plain, means, variances, gv_mean, gv_var), rtol=1e-10)
    np.testing.assert_allclose(objective[-1], gv_objective(c, means, variances, gv_mean, gv_var), rtol=1e-10)
    np.testing.assert_allclose(mlpg_gv(means, variances, gv_mean, gv_var, n_iter=0), plain, atol=1e-10)


def test_gv_also_shrinks_an_overshooting_trajectory():
    rng = np.random.default_rng(6)
    means, variances = random_gaussians(rng, 100, 3)
    plain = mlpg(means, variances)
    target = 0.5 * plain.var(axis=0)
    c, objective = mlpg_gv(means, variances, target, (0.05 * target) ** 2, n_iter=20, return_objective=True)
    assert np.all(np.abs(c.var(axis=0) - target) < np.abs(plain.var(axis=0) - target))
    assert np.all(np.diff(objective, axis=0) >= 0)


def test_variance_scaling_hits_the_target_exactly(oversmoothed):
    means, variances, gv_mean, _ = oversmoothed
    plain = mlpg(means, variances)
    scaled = variance_scaling(plain, gv_mean)
    np.testing.assert_allclose(scaled.var(axis=0), gv_mean, rtol=1e-12)
    np.testing.assert_allclose(scaled.mean(axis=0), plain.mean(axis=0), atol=1e-12)
    constant = np.ones((10, 1))
    np.testing.assert_array_equal(variance_scaling(constant, np.array([2.0])), constant)  # nothing to stretch


def test_global_variance_statistics():
    utterances = [np.array([[0.0, 1.0], [2.0, 1.0]]), np.array([[0.0, 0.0], [4.0, 2.0], [8.0, 4.0]])]
    gv_mean, gv_var = global_variance(utterances)
    per_utterance = np.array([[1.0, 0.0], [32 / 3, 8 / 3]])
    np.testing.assert_allclose(gv_mean, per_utterance.mean(axis=0))
    np.testing.assert_allclose(gv_var, per_utterance.var(axis=0))
    _, single_var = global_variance(utterances[:1], var_floor=1e-6)
    np.testing.assert_allclose(single_var, 1e-6)  # one utterance: no spread, floored


# ----------------------------------------------------------------------------- errors, doctest, speed


def test_clear_errors():
    means, variances = random_gaussians(np.random.default_rng(7), 10, 2)
    with pytest.raises(ValueError, match="positive"):
        mlpg(means, np.where(np.arange(6) == 3, 0.0, variances))
    with pytest.raises(ValueError, match="positive"):
        mlpg(means, -variances)
    with pytest.raises(ValueError, match="NaN"):
        mlpg(np.where(np.arange(6) == 1, np.nan, means), variances)
    with pytest.raises(ValueError, match="NaN"):
        mlpg(means, np.where(np.arange(6) == 1, np.nan, variances))
    with pytest.raises(ValueError, match="multiple of the 3 windows"):
        mlpg(means[:, :5], variances[:, :5])
    with pytest.raises(ValueError, match="do not match"):
        mlpg(means, variances[:, :3])
    with pytest.raises(ValueError, match=r"shape \(T, D\*K\)"):
        mlpg(means[:0], variances[:0])
    with pytest.raises(ValueError, match="odd length"):
        mlpg(means[:, :2], variances[:, :2], windows=((1.0,), (-1.0, 1.0)))
    with pytest.raises(np.linalg.LinAlgError, match="singular"):
        mlpg(means[:, :2], variances[:, :2], windows=((-0.5, 0.0, 0.5),))  # deltas alone leave the level free
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        mlpg_gv(means, variances, np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="gv_var"):
        mlpg_gv(means, variances, np.ones(2), np.zeros(2))
    with pytest.raises(ValueError, match="gv_mean"):
        variance_scaling(np.ones((5, 2)), np.ones(3))


def test_doctests():
    result = doctest.testmod(mlpg_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_speed_long_utterance():
    means, variances = random_gaussians(np.random.default_rng(8), 2000, 40)
    mlpg(means[:10], variances[:10])  # warm up imports / LAPACK
    start = time.perf_counter()
    c = mlpg(means, variances)
    elapsed = time.perf_counter() - start
    print(f"banded MLPG, T=2000, D=40: {elapsed * 1000:.1f} ms")
    assert c.shape == (2000, 40)
    assert elapsed < 2.0  # typically tens of milliseconds
