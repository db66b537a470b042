"""Tests of ttslab.classical.hmm: parity with hmmlearn, brute force on tiny models, left-to-right
topologies, Baum-Welch monotonicity, pooled (embedded-training) statistics, stability and errors."""

from __future__ import annotations

import doctest
import itertools
import warnings

import numpy as np
import pytest

from ttslab.classical import hmm as hmm_module
from ttslab.classical.hmm import (HMM, GaussianEmission, GMMEmission, Statistics, accumulate, backward, forward,
                                  left_to_right_transmat, logsumexp, posteriors, viterbi)

hl = pytest.importorskip("hmmlearn.hmm")

LENGTHS = (40, 75, 120)  # several sequences of different lengths, passed to hmmlearn with lengths=


def log(p):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


def random_params(rng, N=4, D=3, M=None):
    """Random but well-conditioned HMM parameters: Dirichlet rows, spread-out means, variances in [0.5, 2]."""
    startprob = rng.dirichlet(np.ones(N))
    transmat = rng.dirichlet(np.ones(N) * 2, size=N)
    shape = (N, D) if M is None else (N, M, D)
    return startprob, transmat, 2.0 * rng.standard_normal(shape), rng.uniform(0.5, 2.0, shape)


def sample_sequences(model: HMM, rng, lengths=LENGTHS) -> list[np.ndarray]:
    return [model.sample(T, rng)[0] for T in lengths]


def quiet_fit(ref, X, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ref.fit(X, lengths)


# ----------------------------------------------------------------------------- parity: GaussianHMM


@pytest.fixture(params=["diag", "full"])
def gaussian_pair(request):
    """Our HMM and hmmlearn's GaussianHMM with identical parameters, plus data from a different model."""
    covariance_type = request.param
    rng = np.random.default_rng(0)
    N, D = 4, 3
    startprob, transmat, means, variances = random_params(rng, N, D)
    if covariance_type == "diag":
        covars = variances
    else:
        mixing = 0.3 * rng.standard_normal((N, D, D))
        covars = np.einsum("nde,nfe->ndf", mixing, mixing) + np.stack([np.diag(v) for v in variances])
    ours = HMM(N, GaussianEmission(means, covars, covariance_type, variance_floor=1e-12), startprob, transmat)
    # The data come from other parameters, so one EM step moves everything noticeably.
    source = HMM(N, GaussianEmission(means + 0.5, covars, covariance_type), startprob, np.roll(transmat, 1, axis=1))
    sequences = sample_sequences(source, rng)
    # hmmlearn's MAP priors reduce to maximum likelihood with covars_prior=0 (means_prior/weight default to 0,
    # start/transmat priors to 1); min_covar is only used to initialise, which init_params="" turns off.
    ref = hl.GaussianHMM(N, covariance_type=covariance_type, init_params="", params="stmc", n_iter=1,
                         covars_prior=0.0, min_covar=1e-12)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = startprob, transmat, means, covars
    return ours, ref, sequences


def test_gaussian_score_decode_posteriors_match_hmmlearn(gaussian_pair):
    ours, ref, sequences = gaussian_pair
    X, lengths = np.concatenate(sequences), [len(x) for x in sequences]
    np.testing.assert_allclose(ours.score(sequences), ref.score(X, lengths), rtol=1e-10)
    for x in sequences:
        np.testing.assert_allclose(ours.score(x), ref.score(x), rtol=1e-10)
        ref_log_prob, ref_path = ref.decode(x, algorithm="viterbi")
        path, log_prob = ours.decode(x)
        np.testing.assert_array_equal(path, ref_path)
        np.testing.assert_allclose(log_prob, ref_log_prob, rtol=1e-10)
        np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-10)


def test_gaussian_one_em_step_matches_hmmlearn(gaussian_pair):
    ours, ref, sequences = gaussian_pair
    quiet_fit(ref, np.concatenate(sequences), [len(x) for x in sequences])
    ours.fit(sequences, n_iter=1)
    np.testing.assert_allclose(ours.startprob, ref.startprob_, atol=1e-10)
    np.testing.assert_allclose(ours.transmat, ref.transmat_, atol=1e-10)
    np.testing.assert_allclose(ours.emission.means, ref.means_, rtol=1e-8, atol=1e-10)
    ref_covars = ref.covars_  # hmmlearn returns diagonal covariances as full (N, D, D) matrices
    if ours.emission.covariance_type == "diag":
        ref_covars = np.diagonal(ref_covars, axis1=1, axis2=2)
    np.testing.assert_allclose(ours.emission.covars, ref_covars, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- parity: GMMHMM


@pytest.fixture
def gmm_pair():
    rng = np.random.default_rng(1)
    N, M, D = 3, 2, 2
    startprob, transmat, means, covars = random_params(rng, N, D, M)
    weights = rng.dirichlet(np.ones(M) * 2, size=N)
    ours = HMM(N, GMMEmission(weights, means, covars, variance_floor=1e-12), startprob, transmat)
    source = HMM(N, GMMEmission(weights[:, ::-1], means + 0.3, covars), startprob, transmat)
    sequences = sample_sequences(source, rng)
    # These priors make hmmlearn's MAP M-step maximum likelihood (they are also its defaults for "diag").
    ref = hl.GMMHMM(N, n_mix=M, covariance_type="diag", init_params="", params="stmcw", n_iter=1,
                    weights_prior=1.0, means_prior=0.0, means_weight=0.0, covars_prior=-1.5, covars_weight=0.0)
    ref.startprob_, ref.transmat_, ref.weights_, ref.means_, ref.covars_ = startprob, transmat, weights, means, covars
    return ours, ref, sequences


def test_gmm_score_and_viterbi_match_hmmlearn(gmm_pair):
    ours, ref, sequences = gmm_pair
    X, lengths = np.concatenate(sequences), [len(x) for x in sequences]
    np.testing.assert_allclose(ours.score(sequences), ref.score(X, lengths), rtol=1e-10)
    for x in sequences:
        ref_log_prob, ref_path = ref.decode(x, algorithm="viterbi")
        path, log_prob = ours.decode(x)
        np.testing.assert_array_equal(path, ref_path)
        np.testing.assert_allclose(log_prob, ref_log_prob, rtol=1e-10)
        np.testing.assert_allclose(ours.predict_proba(x), ref.predict_proba(x), atol=1e-10)


def test_gmm_one_em_step_matches_hmmlearn(gmm_pair):
    """Weights, means, start and transitions agree exactly. Variances differ by a known term: hmmlearn
    accumulates sum_t gamma (x_t - mu_old)^2 in the E-step (centred on the means *before* the update),
    while maximum likelihood centres on the new means, and

        sum gamma (x - mu_old)^2 / sum gamma = sum gamma (x - mu_new)^2 / sum gamma + (mu_new - mu_old)^2

    so hmmlearn's variances = ours + (mu_new - mu_old)^2, which we check instead of equality."""
    ours, ref, sequences = gmm_pair
    old_means = ours.emission.means.copy()
    quiet_fit(ref, np.concatenate(sequences), [len(x) for x in sequences])
    ours.fit(sequences, n_iter=1)
    np.testing.assert_allclose(ours.startprob, ref.startprob_, atol=1e-10)
    np.testing.assert_allclose(ours.transmat, ref.transmat_, atol=1e-10)
    np.testing.assert_allclose(ours.emission.weights, ref.weights_, atol=1e-10)
    np.testing.assert_allclose(ours.emission.means, ref.means_, rtol=1e-8, atol=1e-10)
    shift = (ours.emission.means - old_means) ** 2
    assert shift.max() > 1e-3  # the correction is really exercised
    np.testing.assert_allclose(ours.emission.covars + shift, ref.covars_, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- brute force on a tiny model


def all_paths_log_prob(log_pi, log_A, log_B, log_end):
    """log p(X, s) for every one of the N^T state paths s, by direct multiplication."""
    T, N = log_B.shape
    paths = np.array(list(itertools.product(range(N), repeat=T)))
    with np.errstate(invalid="ignore"):
        scores = (log_pi[paths[:, 0]] + log_B[np.arange(T), paths].sum(axis=1)
                  + log_A[paths[:, :-1], paths[:, 1:]].sum(axis=1) + log_end[paths[:, -1]])
    return paths, scores


@pytest.mark.parametrize("topology", ["ergodic", "left-to-right-skip", "left-to-right-forced-end"])
def test_forward_backward_viterbi_equal_brute_force(topology):
    rng = np.random.default_rng(2)
    N, T = 3, 5
    log_B = rng.normal(-2.0, 1.0, (T, N))
    log_end = np.zeros(N)
    if topology == "ergodic":
        log_pi, log_A = log(rng.dirichlet(np.ones(N))), log(rng.dirichlet(np.ones(N), size=N))
    else:
        log_pi, log_A = log([1.0, 0.0, 0.0]), log(left_to_right_transmat(N, self_loop=0.5, skip=True))
        if topology.endswith("forced-end"):
            log_end = log([0.0, 0.0, 1.0])
    paths, scores = all_paths_log_prob(log_pi, log_A, log_B, log_end)
    log_lik = logsumexp(scores)

    log_alpha, fwd = forward(log_pi, log_A, log_B, log_end)
    log_beta = backward(log_pi, log_A, log_B, log_end)
    np.testing.assert_allclose(fwd, log_lik, rtol=1e-12)
    np.testing.assert_allclose(logsumexp(log_pi + log_B[0] + log_beta[0]), log_lik, rtol=1e-12)

    weights = np.exp(scores - log_lik)                   # P(s | X) for each path
    gamma, xi_sum, _ = posteriors(log_pi, log_A, log_B, log_end)
    brute_gamma = np.stack([np.bincount(paths[:, t], weights, minlength=N) for t in range(T)])
    brute_xi = np.zeros((N, N))
    for t in range(T - 1):
        np.add.at(brute_xi, (paths[:, t], paths[:, t + 1]), weights)
    np.testing.assert_allclose(gamma, brute_gamma, atol=1e-12)
    np.testing.assert_allclose(xi_sum, brute_xi, atol=1e-12)

    path, best = viterbi(log_pi, log_A, log_B, log_end)
    np.testing.assert_array_equal(path, paths[np.argmax(scores)])
    np.testing.assert_allclose(best, scores.max(), rtol=1e-12)


# ----------------------------------------------------------------------------- left-to-right models


def left_to_right_model(rng, N=4, D=2, skip=True) -> HMM:
    means = np.arange(N)[:, None] * 3.0 + rng.normal(0, 0.1, (N, D))
    return HMM(N, GaussianEmission(means, np.ones((N, D))), transmat=left_to_right_transmat(N, 0.7, skip=skip),
               topology="left-to-right", endprob=np.eye(N)[-1])


def test_left_to_right_keeps_its_zeros_and_decodes_monotone_paths():
    rng = np.random.default_rng(3)
    truth = left_to_right_model(rng)
    sequences = [truth.sample(T, rng)[0] for T in (20, 30, 25, 40)]
    model = left_to_right_model(np.random.default_rng(4))
    zeros = model.transmat == 0
    model.fit(sequences, n_iter=5)
    assert np.all(model.transmat[zeros] == 0) and np.all(np.tril(model.transmat, -1) == 0)
    np.testing.assert_array_equal(model.startprob, [1, 0, 0, 0])
    np.testing.assert_allclose(model.transmat.sum(axis=1), 1.0)
    for x in sequences:
        path = model.predict(x)
        assert path[0] == 0 and path[-1] == model.n_states - 1   # endprob forces the last state
        assert np.all(np.diff(path) >= 0)


def test_left_to_right_transmat():
    np.testing.assert_allclose(left_to_right_transmat(4, 0.5, skip=True),
                               [[0.5, 0.25, 0.25, 0], [0, 0.5, 0.25, 0.25], [0, 0, 0.5, 0.5], [0, 0, 0, 1]])
    np.testing.assert_allclose(left_to_right_transmat(1), [[1.0]])


# ----------------------------------------------------------------------------- Baum-Welch


def test_baum_welch_never_decreases_and_recovers_means():
    rng = np.random.default_rng(5)
    means = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, -1.0]])
    truth = HMM(3, GaussianEmission(means, np.full((3, 2), 0.5)), startprob=[0.6, 0.3, 0.1],
                transmat=[[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    sequences = sample_sequences(truth, rng, lengths=(200, 150, 250, 300))
    start = HMM(3, GaussianEmission(means[::-1] * 0.3 + rng.normal(0, 0.5, (3, 2)), np.full((3, 2), 4.0)))
    start.fit(sequences, n_iter=10, tol=-np.inf)            # tol=-inf: run all 10 iterations
    history = np.array(start.history_)
    assert len(history) == 10
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1])), history
    assert history[-1] > history[0] + 100
    learned = start.emission.means[np.argsort(start.emission.means[:, 0])]
    np.testing.assert_allclose(learned, means, atol=0.2)
    # The fitted model explains the data about as well as the one that generated it.
    assert start.score(sequences) > truth.score(sequences) - 5.0


def test_gmm_baum_welch_never_decreases():
    rng = np.random.default_rng(6)
    startprob, transmat, means, covars = random_params(rng, N=3, D=2, M=2)
    truth = HMM(3, GMMEmission(np.full((3, 2), 0.5), means, covars), startprob, transmat)
    sequences = sample_sequences(truth, rng)
    model = HMM(3, GMMEmission(np.full((3, 2), 0.5), means + rng.normal(0, 1, means.shape), covars * 2))
    model.fit(sequences, n_iter=8, tol=-np.inf)
    history = np.array(model.history_)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[:-1])), history
    np.testing.assert_allclose(model.emission.weights.sum(axis=1), 1.0)


def test_fit_stops_at_tol():
    rng = np.random.default_rng(7)
    startprob, transmat, means, covars = random_params(rng, N=2, D=1)
    model = HMM(2, GaussianEmission(means, covars), startprob, transmat)
    sequences = sample_sequences(model, rng)
    model.fit(sequences, n_iter=500, tol=1e-3)
    assert 1 < len(model.history_) < 500
    assert model.history_[-1] - model.history_[-2] < 1e-3


# ----------------------------------------------------------------------------- pooled statistics (embedded training)


def test_statistics_pool_composite_states_and_add_up():
    """A composite model over emission rows [0, 1, 2, 0] (state 0 used twice, as a phone can be in one
    utterance) sends both occurrences' counts to row 0, and per-shard statistics add up to the whole."""
    rng = np.random.default_rng(8)
    emission = GaussianEmission(rng.normal(0, 2, (3, 2)), np.ones((3, 2)))
    states = np.array([0, 1, 2, 0])
    log_pi, log_A, log_end = log(np.eye(4)[0]), log(left_to_right_transmat(4, 0.6)), log(np.eye(4)[-1])
    X = rng.normal(0, 2, (12, 2))
    log_b = emission.log_prob(X, states)
    np.testing.assert_allclose(log_b[:, 3], log_b[:, 0])
    gamma, xi_sum, log_lik = posteriors(log_pi, log_A, log_b, log_end)

    stats = Statistics.zeros(emission)
    accumulate(stats, X, gamma, xi_sum, emission, states, log_lik)
    np.testing.assert_allclose(stats.occupancy, [gamma[:, 0].sum() + gamma[:, 3].sum(), gamma[:, 1].sum(),
                                                 gamma[:, 2].sum()])
    np.testing.assert_allclose(stats.first[0], (gamma[:, 0] + gamma[:, 3]) @ X)
    np.testing.assert_allclose(stats.second[2], gamma[:, 2] @ X**2)
    np.testing.assert_allclose(stats.trans[2, 0], xi_sum[2, 3])      # the exit of row 2 into the next "phone"
    np.testing.assert_allclose(stats.trans[0, 0], xi_sum[0, 0] + xi_sum[3, 3])
    np.testing.assert_allclose(stats.occupancy.sum(), len(X))
    assert stats.log_likelihood == log_lik and stats.n_frames == 12 and stats.n_sequences == 1

    model = HMM(3, emission)
    sequences = sample_sequences(model, rng, lengths=(10, 20, 30))
    whole = model.expected_statistics(sequences)
    shards = model.expected_statistics(sequences[:1]) + model.expected_statistics(sequences[1:])
    for name in ("start", "trans", "occupancy", "first", "second", "log_likelihood"):
        np.testing.assert_allclose(getattr(shards, name), getattr(whole, name))
    assert shards.n_frames == 60 and shards.n_sequences == 3


def test_transitions_of_states_never_left_keep_their_row():
    """Baum-Welch re-estimates ``a_ij = sum_t xi_t(i, j) / sum_j' sum_t xi_t(i, j')``: a row with no expected
    departures is 0/0. On 2-frame sequences of a 3-state left-to-right chain (no skips) state 2 is never
    reached and state 1 only on the last frame, so neither is ever left: their rows keep their old values
    (still stochastic, no NaN). Row 0 is by hand: xi_0(0, 0) + xi_0(0, 1) = 1 per sequence, so
    a_00 = sum_n gamma_1^n(0) / n_sequences. hmmlearn (0.3) agrees on row 0 and leaves the others at 0."""
    transmat = np.array([[0.5, 0.5, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0]])
    emission = GaussianEmission([[0.0], [3.0], [6.0]], [[1.0], [1.0], [1.0]], variance_floor=1e-12)
    model = HMM(3, emission, [1.0, 0.0, 0.0], transmat, topology="left-to-right", params="t")
    sequences = [np.array([[0.1], [2.5]]), np.array([[-0.4], [0.8]]), np.array([[0.3], [1.6]])]
    stay = np.array([model.predict_proba(x)[1, 0] for x in sequences])   # gamma_1(0) of each sequence
    model.fit(sequences, n_iter=1)
    assert np.all(np.isfinite(model.transmat))
    np.testing.assert_allclose(model.transmat.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.transmat[0], [stay.mean(), 1 - stay.mean(), 0.0], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(model.transmat[1:], transmat[1:])

    ref = hl.GaussianHMM(3, covariance_type="diag", init_params="", params="t", n_iter=1)
    ref.startprob_, ref.transmat_ = np.array([1.0, 0.0, 0.0]), transmat.copy()
    ref.means_, ref.covars_ = emission.means.copy(), emission.covars.copy()
    quiet_fit(ref, np.concatenate(sequences), [len(x) for x in sequences])
    np.testing.assert_allclose(model.transmat[0], ref.transmat_[0], rtol=1e-10)
    assert np.all(ref.transmat_[1:] == 0.0)                  # hmmlearn's rows of states never left


def test_m_step_leaves_unvisited_states_alone_and_floors_variances():
    emission = GaussianEmission([[0.0], [5.0]], [[1.0], [1.0]], variance_floor=0.1)
    stats = Statistics.zeros(emission)
    X = np.array([[1.0], [1.0], [1.0]])                       # one state sees a constant: variance 0
    emission.accumulate(stats, X, np.array([[1.0, 0.0]] * 3))
    emission.m_step(stats)
    np.testing.assert_allclose(emission.means, [[1.0], [5.0]])
    np.testing.assert_allclose(emission.covars, [[0.1], [1.0]])

    full = GaussianEmission(np.zeros((2, 2)), np.stack([np.eye(2)] * 2), "full", variance_floor=0.1)
    stats = Statistics.zeros(full)
    full.accumulate(stats, np.array([[1.0, 2.0]] * 3), np.array([[1.0, 0.0]] * 3))
    full.m_step(stats)
    np.testing.assert_allclose(full.covars, [0.1 * np.eye(2), np.eye(2)])
    assert np.isfinite(full.log_prob(np.zeros((1, 2)))).all()

    gmm = GMMEmission([[0.5, 0.5]], [[[-30.0], [30.0]]], [[[1.0], [1.0]]])
    stats = Statistics.zeros(gmm)
    gmm.accumulate(stats, np.array([[-29.0], [-31.0]]), np.ones((2, 1)))   # component 1's share underflows to 0
    gmm.m_step(stats)
    np.testing.assert_allclose(gmm.weights, [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(gmm.means[0, :, 0], [-30.0, 30.0], atol=1e-12)
    np.testing.assert_allclose(gmm.covars[0, :, 0], [1.0, 1.0], atol=1e-12)


# ----------------------------------------------------------------------------- stability


def test_long_sequence_has_finite_log_likelihood():
    rng = np.random.default_rng(9)
    startprob, transmat, means, covars = random_params(rng, N=4, D=3)
    model = HMM(4, GaussianEmission(means, covars), startprob, transmat)
    X, _ = model.sample(20_000, rng)
    gamma = model.predict_proba(X)
    log_lik = model.score(X)
    assert np.isfinite(log_lik) and log_lik < -20_000          # far below what float64 probabilities could hold
    assert np.all(np.isfinite(gamma))
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0, atol=1e-9)


def test_minus_inf_transitions_and_emissions_do_not_make_nan():
    rng = np.random.default_rng(10)
    N, T = 5, 30
    log_A = log(left_to_right_transmat(N, 0.8))
    log_A[:, 3] = -np.inf                         # state 3 is unreachable: a whole column of -inf
    log_A[2, 4] = 0.0                             # ... so state 2 goes straight to 4
    log_A[2, 2] = -np.inf
    log_B = rng.normal(-3, 1, (T, N))
    log_B[5, 1] = -np.inf                         # state 1 cannot emit frame 5
    log_pi = log(np.eye(N)[0])
    gamma, xi_sum, log_lik = posteriors(log_pi, log_A, log_B)
    for a in (gamma, xi_sum, forward(log_pi, log_A, log_B)[0], backward(log_pi, log_A, log_B)):
        assert not np.any(np.isnan(a))
    assert np.isfinite(log_lik) and np.all(gamma[:, 3] == 0) and gamma[5, 1] == 0
    np.testing.assert_allclose(gamma.sum(axis=1), 1.0)
    path, _ = viterbi(log_pi, log_A, log_B)
    assert 3 not in path and path[5] != 1
    assert logsumexp(np.full((2, 3), -np.inf), axis=1).tolist() == [-np.inf, -np.inf]


# ----------------------------------------------------------------------------- clear errors


def test_clear_errors():
    emission = GaussianEmission(np.zeros((2, 3)), np.ones((2, 3)))
    model = HMM(2, emission)
    with pytest.raises(ValueError, match="has 4 features per frame but the model has 3"):
        model.score(np.zeros((10, 4)))
    with pytest.raises(ValueError, match="NaN"):
        model.score(np.array([[0.0, 0.0, 0.0], [np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"shape \(T, D\)"):
        model.score(np.zeros(10))
    with pytest.raises(ValueError, match="sum to 1"):
        HMM(2, emission, transmat=[[0.5, 0.4], [0.5, 0.5]])
    with pytest.raises(ValueError, match="sum to 1"):
        HMM(2, emission, startprob=[0.5, 0.6])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        HMM(2, emission, transmat=np.eye(3))
    with pytest.raises(ValueError, match="emission has 2 states"):
        HMM(3, emission)
    with pytest.raises(ValueError, match="upper triangular"):
        HMM(2, emission, transmat=[[0.5, 0.5], [0.5, 0.5]], topology="left-to-right")
    with pytest.raises(ValueError, match="topology"):
        HMM(2, emission, topology="circular")
    with pytest.raises(ValueError, match="shapes do not agree"):
        forward(np.zeros(3), np.zeros((3, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        forward(np.zeros(2), np.full((2, 2), np.nan), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"covars must have shape \(2, 3\)"):
        GaussianEmission(np.zeros((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="positive"):
        GaussianEmission(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="weights"):
        GMMEmission(np.full((2, 2), 0.7), np.zeros((2, 2, 3)), np.ones((2, 2, 3)))
    # A 3-state left-to-right model forced to end in its last state cannot produce 2 frames.
    short = HMM(3, GaussianEmission(np.zeros((3, 1)), np.ones((3, 1))), topology="left-to-right",
                endprob=[0, 0, 1])
    assert short.score(np.zeros((2, 1))) == -np.inf
    with pytest.raises(ValueError, match="probability 0"):
        short.predict_proba(np.zeros((2, 1)))
    with pytest.raises(ValueError, match="probability 0"):
        short.decode(np.zeros((2, 1)))


def test_sample_shapes_and_reproducibility():
    rng = np.random.default_rng(11)
    startprob, transmat, means, covars = random_params(rng, N=3, D=2, M=2)
    model = HMM(3, GMMEmission(np.full((3, 2), 0.5), means, covars), startprob, transmat)
    X, states = model.sample(50, rng=0)
    X2, states2 = model.sample(50, rng=0)
    assert X.shape == (50, 2) and states.shape == (50,) and states.max() < 3
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(states, states2)


def test_docstring_examples():
    result = doctest.testmod(hmm_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
