"""ttslab.classical.gmm: EM step by step against scikit-learn, EM's guarantees, and the VC conditional."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
import scipy.stats
from scipy.special import logsumexp as scipy_logsumexp

from ttslab.classical import gmm as gmm_module
from ttslab.classical.gmm import (GaussianMixture, NotFittedError, conditional, e_step, estimate_log_gaussian_prob,
                                  kmeans_plusplus, m_step, posterior_given_x)

COVARIANCE_TYPES = ["diag", "full"]


def three_blobs(n_per: int = 150, seed: int = 0):
    """A 2-D toy: three well-separated clusters, with their true labels."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]])
    X = np.concatenate([c + rng.normal(size=(n_per, 2)) @ np.array([[1.0, 0.3], [0.0, 0.7]]) for c in centers])
    return X, np.repeat(np.arange(3), n_per)


def random_params(K: int, D: int, covariance_type: str, rng: np.random.Generator):
    weights = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=2.0, size=(K, D))
    if covariance_type == "diag":
        covariances = rng.uniform(0.5, 2.0, size=(K, D))
    else:
        B = rng.normal(size=(K, D, D))
        covariances = B @ B.transpose(0, 2, 1) + D * 0.5 * np.eye(D)
    return weights, means, covariances


# ----------------------------------------------------------------------------- parity with scikit-learn


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_steps_match_sklearn(covariance_type):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(size=(120, 3)), rng.normal(3.0, 0.5, size=(80, 3))])
    weights, means, covariances = random_params(3, 3, covariance_type, rng)
    precisions = 1.0 / covariances if covariance_type == "diag" else np.linalg.inv(covariances)

    ours = GaussianMixture.from_params(weights, means, covariances, covariance_type, reg_covar=1e-6)
    # warm_start + max_iter=1: every fit() call is exactly one more E-step + M-step from the current parameters
    sk = SkGaussianMixture(n_components=3, covariance_type=covariance_type, reg_covar=1e-6, max_iter=1,
                           warm_start=True, init_params="random", weights_init=weights, means_init=means,
                           precisions_init=precisions, random_state=0)
    for step in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X)
        before = ours.em_step(X)
        # sklearn's lower_bound_ is the mean log-likelihood computed in the E-step, i.e. before the M-step
        assert before == pytest.approx(sk.lower_bound_, rel=0, abs=1e-8), step
        np.testing.assert_allclose(ours.weights_, sk.weights_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ours.means_, sk.means_, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-6, atol=1e-8)
        assert ours.score(X) == pytest.approx(sk.score(X), rel=0, abs=1e-8)
        np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=1e-6, atol=1e-8)
    assert ours.n_iter_ == 5 and len(ours.log_likelihood_history_) == 5


def test_init_params_equals_from_params():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 2))
    w, mu, cov = random_params(2, 2, "full", rng)
    a = GaussianMixture(2, "full", init="params", weights_init=w, means_init=mu, covariances_init=cov, max_iter=3,
                        tol=0).fit(X)
    b = GaussianMixture.from_params(w, mu, cov, "full")
    history = [b.em_step(X) for _ in range(3)]
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.log_likelihood_history_ == history and a.lower_bound_ == history[-1]


# ----------------------------------------------------------------------------- EM's guarantees


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("data", ["random", "blobs"])
def test_log_likelihood_never_decreases(covariance_type, data):
    X = np.random.default_rng(3).normal(size=(300, 4)) if data == "random" else three_blobs()[0]
    gmm = GaussianMixture(n_components=3 if data == "blobs" else 4, covariance_type=covariance_type, max_iter=60,
                          tol=0.0, random_state=0).fit(X)
    history = np.array(gmm.log_likelihood_history_)
    assert len(history) == 60 and np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-10), np.diff(history).min()
    assert gmm.score(X) >= history[-1] - 1e-10  # the final M-step improved on the last recorded value too


def test_fit_converges_and_records_state():
    X, _ = three_blobs()
    gmm = GaussianMixture(3, "full", random_state=0, tol=1e-6).fit(X)
    assert gmm.converged_ and 1 <= gmm.n_iter_ < gmm.max_iter
    assert gmm.lower_bound_ == gmm.log_likelihood_history_[-1]
    assert gmm.weights_.shape == (3,) and gmm.means_.shape == (3, 2) and gmm.covariances_.shape == (3, 2, 2)
    assert gmm.weights_.sum() == pytest.approx(1.0)
    assert GaussianMixture(3, "diag", random_state=0).fit(X).covariances_.shape == (3, 2)


def test_score_samples_matches_scipy():
    X, _ = three_blobs(n_per=40)
    for covariance_type in COVARIANCE_TYPES:
        gmm = GaussianMixture(3, covariance_type, random_state=0).fit(X)
        covs = gmm.covariances_ if covariance_type == "full" else [np.diag(c) for c in gmm.covariances_]
        by_hand = scipy_logsumexp([np.log(w) + scipy.stats.multivariate_normal(m, c).logpdf(X)
                                   for w, m, c in zip(gmm.weights_, gmm.means_, covs)], axis=0)
        np.testing.assert_allclose(gmm.score_samples(X), by_hand, rtol=1e-10, atol=1e-10)
        assert gmm.score(X) == pytest.approx(by_hand.mean(), abs=1e-10)


# ----------------------------------------------------------------------------- initialisation, prediction, sampling


def test_kmeans_plusplus_is_deterministic_and_spread_out():
    X, labels = three_blobs()
    c1, i1 = kmeans_plusplus(X, 3, np.random.default_rng(7))
    c2, i2 = kmeans_plusplus(X, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(c1, X[i1])
    assert len(set(labels[i1])) == 3  # D^2 sampling put one seed in each blob
    a = GaussianMixture(3, "full", random_state=5).fit(X)
    b = GaussianMixture(3, "full", random_state=5).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predict_recovers_clusters(init, covariance_type):
    from sklearn.metrics import adjusted_rand_score

    X, labels = three_blobs()
    gmm = GaussianMixture(3, covariance_type, init=init, random_state=0, max_iter=200).fit(X)
    assert adjusted_rand_score(labels, gmm.predict(X)) > 0.95
    np.testing.assert_array_equal(gmm.fit_predict(X), gmm.predict(X))
    proba = gmm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), gmm.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_has_the_right_moments(covariance_type):
    weights = np.array([0.3, 0.7])
    means = np.array([[-2.0, 1.0], [3.0, 0.0]])
    full = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    covariances = full if covariance_type == "full" else np.stack([np.diag(c) for c in full])
    gmm = GaussianMixture.from_params(weights, means, covariances, covariance_type, random_state=0)
    X, labels = gmm.sample(20000)
    assert X.shape == (20000, 2) and labels.shape == (20000,)
    np.testing.assert_allclose(np.bincount(labels) / len(labels), weights, atol=0.02)
    full_cov = full if covariance_type == "full" else np.stack([np.diag(np.diag(c)) for c in full])
    for k in range(2):
        np.testing.assert_allclose(X[labels == k].mean(axis=0), means[k], atol=0.06)
        np.testing.assert_allclose(np.cov(X[labels == k].T), full_cov[k], atol=0.08)
    # mixture moments: E[x] = sum w mu;  Cov[x] = sum w (Sigma + mu mu') - E[x] E[x]'
    mean = weights @ means
    cov = np.einsum("k,kij->ij", weights, full_cov + np.einsum("ki,kj->kij", means, means)) - np.outer(mean, mean)
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.06)
    np.testing.assert_allclose(np.cov(X.T), cov, rtol=0.05, atol=0.08)
    np.testing.assert_array_equal(gmm.sample(10)[0], gmm.sample(10)[0])  # seeded


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_far_away_frames_stay_finite(covariance_type):
    X, _ = three_blobs(n_per=30)
    gmm = GaussianMixture(3, covariance_type, random_state=0).fit(X)
    sigma = np.sqrt(gmm.covariances_.max())
    far = gmm.means_[0] + 1e3 * sigma * np.array([[1.0, 1.0], [-1.0, 0.5], [0.0, -1.0]])
    log_prob = estimate_log_gaussian_prob(far, gmm.means_, gmm.covariances_, covariance_type)
    assert np.all(np.exp(log_prob) == 0.0)  # the naive sum of densities would be log(0) = -inf
    ll = gmm.score_samples(far)
    assert np.all(np.isfinite(ll)) and np.all(ll < -1e5)
    proba = gmm.predict_proba(far)
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # and EM can still take a step on such data
    ll_far, log_resp = e_step(far, gmm.weights_, gmm.means_, gmm.covariances_, covariance_type)
    w, _, _ = m_step(far, np.exp(log_resp), covariance_type)
    assert np.all(np.isfinite(ll_far)) and np.all(np.isfinite(w))


# ----------------------------------------------------------------------------- errors


def test_errors_are_clear():
    X, _ = three_blobs(n_per=10)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*isfinite"):
        GaussianMixture(2).fit(bad)
    with pytest.raises(ValueError, match="at least n_components=5"):
        GaussianMixture(5).fit(X[:4])
    with pytest.raises(ValueError, match="reshape"):
        GaussianMixture(2).fit(X[:, 0])
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture(2).predict(X)
    with pytest.raises(AttributeError):  # NotFittedError is also an AttributeError, like scikit-learn's
        GaussianMixture(2).score(X)
    fitted = GaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="3 features but the model was fitted with 2"):
        fitted.predict(np.ones((4, 3)))
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(2, covariance_type="tied")
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(2, init="params")
    with pytest.raises(ValueError, match="not positive definite.*reg_covar"):
        estimate_log_gaussian_prob(X, np.zeros((1, 2)), np.zeros((1, 2, 2)), "full")


# ----------------------------------------------------------------------------- conditional p(y | x)


def test_conditional_matches_brute_force():
    rng = np.random.default_rng(4)
    weights, means, covariances = random_params(2, 4, "full", rng)
    joint = GaussianMixture.from_params(weights, means, covariances, "full")
    x_dims, y_dims = [0, 2], [3, 1]  # interleaved on purpose
    cond = conditional(joint, x_dims, y_dims)
    x = rng.normal(size=(5, 2))

    for k in range(2):
        # brute force through the precision matrix Lambda = Sigma^-1:
        #   Cov[y|x] = Lambda_yy^-1,  E[y|x] = mu_y - Lambda_yy^-1 Lambda_yx (x - mu_x)   (PRML 2.73, 2.75)
        Lam = np.linalg.inv(covariances[k])
        Lyy, Lyx = Lam[np.ix_(y_dims, y_dims)], Lam[np.ix_(y_dims, x_dims)]
        np.testing.assert_allclose(cond.covariances[k], np.linalg.inv(Lyy), rtol=1e-10, atol=1e-12)
        brute_mean = means[k, y_dims] - (np.linalg.inv(Lyy) @ Lyx @ (x - means[k, x_dims]).T).T
        np.testing.assert_allclose(cond.component_means(x)[:, k], brute_mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cond.A[k] @ x.T + cond.b[k][:, None], brute_mean.T, rtol=1e-10, atol=1e-12)

    # P(k | x) from the x-marginal, by hand with scipy
    dens = np.stack([w * scipy.stats.multivariate_normal(m[x_dims], c[np.ix_(x_dims, x_dims)]).pdf(x)
                     for w, m, c in zip(weights, means, covariances)], axis=1)
    posterior = dens / dens.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(posterior_given_x(joint, x, x_dims), posterior, rtol=1e-10)
    np.testing.assert_allclose(cond.posterior(x), posterior, rtol=1e-10)
    np.testing.assert_allclose(cond.mean(x), np.einsum("nk,nky->ny", posterior, cond.component_means(x)))

    # a joint density that is one Gaussian per component, conditioned by hand on a grid, agrees in 1-D:
    # p(y | x) proportional to p(x, y) for fixed x, so its grid mean is E[y | x]
    joint1 = GaussianMixture.from_params(weights, means[:, :2], covariances[:, :2, :2], "full")
    c1 = conditional(joint1, [0], [1])
    x0, grid = 0.3, np.linspace(-30, 30, 60001)
    p = np.exp(joint1.score_samples(np.column_stack([np.full_like(grid, x0), grid])))
    assert c1.mean(np.array([[x0]]))[0, 0] == pytest.approx(np.sum(grid * p) / np.sum(p), abs=1e-6)


def test_conditional_accepts_sklearn_models_and_rejects_overlap():
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    X, _ = three_blobs(n_per=30)
    sk = SkGaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    cond = conditional(sk, [0], [1])
    assert cond.A.shape == (2, 1, 1) and cond.covariances.shape == (2, 1, 1)
    np.testing.assert_allclose(posterior_given_x(sk, X[:, :1], [0]).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="overlap"):
        conditional(sk, [0, 1], [1])


def test_docstring_examples():
    result = doctest.testmod(gmm_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
