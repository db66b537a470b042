"""Gaussian mixture models fitted by expectation-maximisation (EM), written from scratch.

A GMM with ``K`` components over ``D``-dimensional frames ``x`` is

    p(x) = sum_k w_k N(x; mu_k, Sigma_k),        w_k >= 0,  sum_k w_k = 1

EM alternates two steps, each a small function below, and never lowers the log-likelihood
``L = sum_n log p(x_n)`` (Dempster, Laird & Rubin 1977; Bishop, PRML section 9.2):

* **E-step** (:func:`e_step`): responsibilities ``r_nk = P(k | x_n)``, through the log domain so that
  frames far from every mean do not underflow (:func:`logsumexp`);
* **M-step** (:func:`m_step`): weights, means and covariances re-estimated from ``r_nk``;
  ``reg_covar`` is added to every variance, as scikit-learn does, so that a component that
  collapses onto one frame keeps a positive-definite covariance.

:class:`GaussianMixture` wraps them in a scikit-learn-like estimator (``fit``, ``score``, ``predict``,
``sample``...) whose parameters match ``sklearn.mixture.GaussianMixture`` step by step when both start
from the same parameters (see ``tests/test_gmm.py``). :func:`conditional` and :func:`posterior_given_x`
turn a joint GMM over ``[x; y]`` into ``p(y | x)``, the heart of GMM voice conversion (Toda et al. 2007).

>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(-5, 1, (200, 1)), rng.normal(5, 1, (200, 1))])
>>> gmm = GaussianMixture(n_components=2, random_state=0).fit(X)
>>> np.sort(gmm.means_.ravel()).round().tolist()
[-5.0, 5.0]
>>> left = np.argmin(gmm.means_[:, 0])  # P(left component | x) for frames near each mean
>>> gmm.predict_proba(np.array([[-4.0], [6.0]]))[:, left].round(3).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.linalg

COVARIANCE_TYPES = ("diag", "full")
INIT_METHODS = ("kmeans++", "random", "params")
LOG_2PI = np.log(2.0 * np.pi)


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (same bases as scikit-learn's NotFittedError)."""


# ----------------------------------------------------------------------------- input checks


def _check_X(X, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 array of shape ``(N, D)``, or a ValueError that says how to fix it."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}; "
                         f"for one feature use {name}.reshape(-1, 1), for one sample {name}.reshape(1, -1)")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n_samples, n_features) with both > 0, got {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = int(np.count_nonzero(~np.isfinite(X).all(axis=1)))
        raise ValueError(f"{name} contains NaN or infinite values ({bad} rows); drop those rows "
                         f"(X[np.isfinite(X).all(axis=1)]) or interpolate them before fitting")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features but the model was fitted with {n_features}")
    return X


def _check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    return covariance_type


def _check_params(weights, means, covariances, covariance_type: str):
    """Validate and convert parameters: weights (K,), means (K, D), covariances diag (K, D) / full (K, D, D)."""
    _check_covariance_type(covariance_type)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must have shape (n_components, n_features), got {means.shape}")
    K, D = means.shape
    if weights.shape != (K,):
        raise ValueError(f"weights must have shape ({K},) to match means {means.shape}, got {weights.shape}")
    if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise ValueError(f"weights must be non-negative and sum to 1, got sum {weights.sum():.6g}")
    expected = (K, D) if covariance_type == "diag" else (K, D, D)
    if covariances.shape != expected:
        raise ValueError(f"{covariance_type} covariances must have shape {expected}, got {covariances.shape}")
    if covariance_type == "diag" and np.any(covariances <= 0):
        raise ValueError("diagonal covariances (variances) must all be positive")
    if covariance_type == "full" and not np.allclose(covariances, covariances.transpose(0, 2, 1)):
        raise ValueError("full covariances must be symmetric")
    return weights, means, covariances


# ----------------------------------------------------------------------------- the log domain


def logsumexp(a: np.ndarray, axis: int = -1) -> np.ndarray:
    """``log(sum(exp(a), axis))`` computed without overflow or underflow.

        logsumexp(a) = m + log(sum_i exp(a_i - m)),   m = max_i a_i

    Every ``exp(a_i - m) <= 1`` and the largest is exactly 1, so the sum is never 0 or inf even when
    the ``a_i`` are around -1e6 (a frame a thousand standard deviations from every mean).

    >>> float(logsumexp(np.array([-1000.0, -1000.0])))  # naive log(exp(-1000) * 2) gives -inf
    -999.3068528194401
    """
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)  # a row of all -inf stays -inf instead of becoming NaN
    with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer for such a row
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis)


def _cholesky(covariance: np.ndarray, k: int) -> np.ndarray:
    """Lower Cholesky factor ``L`` (``Sigma = L L'``), with an error that says what to do if it fails."""
    try:
        return np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise ValueError(f"covariance of component {k} is not positive definite (a component collapsed onto "
                         f"too few frames, or features are linearly dependent); increase reg_covar, use fewer "
                         f"components, or standardise the features") from None


def estimate_log_gaussian_prob(X, means, covariances, covariance_type: str) -> np.ndarray:
    """Per-component log densities ``log N(x_n; mu_k, Sigma_k)``, shape ``(N, K)``.

    diag:  log N = -1/2 [ D log 2pi + sum_d log s2_kd + sum_d (x_nd - mu_kd)^2 / s2_kd ]

    full:  with the Cholesky factor Sigma_k = L_k L_k' and z = L_k^-1 (x_n - mu_k) (a triangular solve,
           never an explicit inverse),
           log N = -1/2 [ D log 2pi + z'z ] - sum_d log (L_k)_dd
           because (x - mu)' Sigma^-1 (x - mu) = z'z and log|Sigma| = 2 sum_d log L_dd.

    >>> float(estimate_log_gaussian_prob(np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), "diag")[0, 0])
    -0.9189385332046727
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    _check_covariance_type(covariance_type)
    N, D = X.shape
    K = means.shape[0]
    log_prob = np.empty((N, K))
    for k in range(K):  # one component at a time: memory O(N D), not O(N K D)
        if covariance_type == "diag":
            log_det = np.sum(np.log(covariances[k]))                           # log |Sigma_k|
            mahalanobis = np.sum((X - means[k]) ** 2 / covariances[k], axis=1)
            log_prob[:, k] = -0.5 * (D * LOG_2PI + log_det + mahalanobis)
            continue
        L = _cholesky(covariances[k], k)
        z = scipy.linalg.solve_triangular(L, (X - means[k]).T, lower=True)   # (D, N)
        log_prob[:, k] = -0.5 * (D * LOG_2PI + np.sum(z ** 2, axis=0)) - np.sum(np.log(np.diag(L)))
    return log_prob


# ----------------------------------------------------------------------------- EM


def e_step(X, weights, means, covariances, covariance_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame log-likelihoods ``log p(x_n)`` ``(N,)`` and log responsibilities ``log r_nk`` ``(N, K)``.

        log p(x_n)  = logsumexp_k [ log w_k + log N(x_n; mu_k, Sigma_k) ]
        log r_nk    = log w_k + log N(x_n; mu_k, Sigma_k) - log p(x_n)       (Bayes' rule)

    >>> ll, log_resp = e_step(np.zeros((1, 1)), np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]),
    ...                       np.ones((2, 1)), "diag")
    >>> np.exp(log_resp).round(6).tolist()  # a frame half-way between two equal components
    [[0.5, 0.5]]
    """
    with np.errstate(divide="ignore"):  # a weight of exactly 0 is allowed: its component is never responsible
        log_weights = np.log(np.asarray(weights, dtype=np.float64))
    weighted = log_weights + estimate_log_gaussian_prob(X, means, covariances, covariance_type)  # (N, K)
    log_likelihood = logsumexp(weighted, axis=1)
    return log_likelihood, weighted - log_likelihood[:, None]


def m_step(X, resp, covariance_type: str, reg_covar: float = 1e-6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-estimate ``(weights, means, covariances)`` from responsibilities ``resp`` ``(N, K)``.

        N_k       = sum_n r_nk  (+ 10 eps, so an empty component does not divide by zero)
        w_k       = N_k / sum_j N_j
        mu_k      = sum_n r_nk x_n / N_k
        Sigma_k   = sum_n r_nk (x_n - mu_k)(x_n - mu_k)' / N_k  +  reg_covar I     (full)
        s2_kd     = sum_n r_nk (x_nd - mu_kd)^2 / N_k           +  reg_covar       (diag)

    ``reg_covar`` and the ``10 eps`` are scikit-learn's, so both libraries give the same numbers.

    >>> X = np.array([[0.0], [2.0], [10.0]])
    >>> w, mu, s2 = m_step(X, np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), "diag", reg_covar=0.0)
    >>> w.round(3).tolist(), mu.round(6).tolist(), s2.round(6).tolist()
    ([0.667, 0.333], [[1.0], [10.0]], [[1.0], [0.0]])
    """
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    _check_covariance_type(covariance_type)
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps                    # (K,) soft counts
    weights = nk / nk.sum()
    means = (resp.T @ X) / nk[:, None]                                       # (K, D)
    K, D = means.shape
    if covariance_type == "diag":
        covariances = np.empty((K, D))
        for k in range(K):
            diff = X - means[k]
            covariances[k] = (resp[:, k] @ diff ** 2) / nk[k] + reg_covar
    else:
        covariances = np.empty((K, D, D))
        for k in range(K):
            diff = X - means[k]
            covariances[k] = (resp[:, k] * diff.T) @ diff / nk[k] + reg_covar * np.eye(D)
    return weights, means, covariances


# ----------------------------------------------------------------------------- initialisation


def kmeans_plusplus(X, n_clusters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): ``(centers (K, D), indices (K,))`` into ``X``.

    The first centre is a frame drawn uniformly; each next one is a frame drawn with probability

        P(x_n) = D(x_n)^2 / sum_m D(x_m)^2,    D(x) = distance from x to its nearest centre so far,

    so new centres land far from the old ones and the seeds spread over all the clusters.

    >>> X = np.array([[0.0], [0.1], [10.0], [10.1]])
    >>> sorted(np.round(kmeans_plusplus(X, 2, np.random.default_rng(0))[0].ravel()).tolist())
    [0.0, 10.0]
    """
    X = np.asarray(X, dtype=np.float64)
    N = len(X)
    indices = [int(rng.integers(N))]
    closest_sq = np.sum((X - X[indices[0]]) ** 2, axis=1)                 # D(x)^2 for every frame
    for _ in range(1, n_clusters):
        total = closest_sq.sum()
        # all remaining frames coincide with a centre: any choice is as good as another
        p = closest_sq / total if total > 0 else np.full(N, 1.0 / N)
        idx = int(rng.choice(N, p=p))
        indices.append(idx)
        closest_sq = np.minimum(closest_sq, np.sum((X - X[idx]) ** 2, axis=1))
    indices = np.array(indices)
    return X[indices].copy(), indices


def hard_responsibilities(X, centers) -> np.ndarray:
    """One-hot responsibilities ``(N, K)``: each frame belongs entirely to its nearest centre."""
    X = np.asarray(X, dtype=np.float64)
    sq_dist = np.sum(X ** 2, axis=1)[:, None] - 2.0 * X @ centers.T + np.sum(centers ** 2, axis=1)
    resp = np.zeros((len(X), len(centers)))
    resp[np.arange(len(X)), np.argmin(sq_dist, axis=1)] = 1.0
    return resp


# ----------------------------------------------------------------------------- the estimator


class GaussianMixture:
    """A GMM fitted by EM, with scikit-learn's interface and numbers.

    Parameters mirror ``sklearn.mixture.GaussianMixture`` where they exist:

    * ``covariance_type``: ``"diag"`` (``covariances_`` ``(K, D)``, the usual choice for cepstra) or
      ``"full"`` (``(K, D, D)``, needed for joint-density voice conversion);
    * ``tol``: stop when the log-likelihood per frame improves by less than this;
    * ``reg_covar``: added to every variance in each M-step (a floor that keeps covariances invertible);
    * ``init``: ``"kmeans++"`` (:func:`kmeans_plusplus` seeds) or ``"random"`` (``K`` frames drawn
      uniformly), each followed by nearest-seed hard assignment and one M-step; or ``"params"`` (start from
      ``weights_init``, ``means_init``, ``covariances_init``; see also :meth:`from_params`).

    After :meth:`fit`: ``weights_``, ``means_``, ``covariances_``, ``converged_``, ``n_iter_``,
    ``log_likelihood_history_`` (mean log-likelihood per frame before each EM step's update) and
    ``lower_bound_`` (its last entry, exactly scikit-learn's ``lower_bound_``: the parameters after the
    final M-step are one step better than this).
    """

    def __init__(self, n_components: int = 1, covariance_type: str = "diag", max_iter: int = 100,
                 tol: float = 1e-3, reg_covar: float = 1e-6, init: str = "kmeans++", random_state=None,
                 verbose: bool = False, weights_init=None, means_init=None, covariances_init=None):
        if int(n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS}, got {init!r}")
        if reg_covar < 0:
            raise ValueError(f"reg_covar must be >= 0, got {reg_covar}")
        if init == "params" and (means_init is None or covariances_init is None):
            raise ValueError('init="params" needs means_init and covariances_init (weights_init defaults to uniform)')
        self.n_components = int(n_components)
        self.covariance_type = _check_covariance_type(covariance_type)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.reg_covar = float(reg_covar)
        self.init = init
        self.random_state = random_state
        self.verbose = verbose
        self.weights_init = weights_init
        self.means_init = means_init
        self.covariances_init = covariances_init

    @classmethod
    def from_params(cls, weights, means, covariances, covariance_type: str = "diag", **kwargs) -> GaussianMixture:
        """A ready-to-use model with the given parameters (no fitting), e.g. to sample or to score."""
        weights, means, covariances = _check_params(weights, means, covariances, covariance_type)
        gmm = cls(n_components=len(means), covariance_type=covariance_type, init="params", weights_init=weights,
                  means_init=means, covariances_init=covariances, **kwargs)
        gmm._set_params(weights, means, covariances)
        gmm.n_iter_, gmm.converged_, gmm.log_likelihood_history_, gmm.lower_bound_ = 0, False, [], -np.inf
        return gmm

    # -- state

    def _set_params(self, weights, means, covariances) -> None:
        self.weights_, self.means_, self.covariances_ = weights, means, covariances

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit(X) (or initialize(X) "
                                 f"before em_step, or build it with GaussianMixture.from_params) first")

    @property
    def n_features_in_(self) -> int:
        self._check_fitted()
        return self.means_.shape[1]

    # -- fitting

    def initialize(self, X) -> GaussianMixture:
        """Set starting parameters from ``X`` according to ``init``, and reset the EM history."""
        X = _check_X(X)
        if len(X) < self.n_components:
            raise ValueError(f"need at least n_components={self.n_components} samples, got {len(X)}; "
                             f"use fewer components or more data")
        rng = np.random.default_rng(self.random_state)
        D = X.shape[1]
        if self.init == "params":
            K = self.n_components
            weights = np.full(K, 1.0 / K) if self.weights_init is None else self.weights_init
            params = _check_params(weights, self.means_init, self.covariances_init, self.covariance_type)
            if params[1].shape != (K, D):
                raise ValueError(f"means_init must have shape ({K}, {D}) for this X, got {params[1].shape}")
            self._set_params(*params)
        else:
            if self.init == "kmeans++":
                centers, _ = kmeans_plusplus(X, self.n_components, rng)
            else:  # Forgy: K distinct frames drawn uniformly; seeds may share a cluster, which k-means++ avoids
                centers = X[rng.choice(len(X), size=self.n_components, replace=False)]
            resp = hard_responsibilities(X, centers)
            self._set_params(*m_step(X, resp, self.covariance_type, self.reg_covar))
        self.n_iter_, self.converged_, self.log_likelihood_history_, self.lower_bound_ = 0, False, [], -np.inf
        return self

    def em_step(self, X) -> float:
        """One E-step and one M-step on ``X``; returns the mean log-likelihood per frame BEFORE the update.

        (That is the value the E-step computes for free, and scikit-learn's ``lower_bound_``.)
        Initialises first if the model has no parameters yet, so a notebook can write
        ``for _ in range(10): history.append(gmm.em_step(X))``.
        """
        if not hasattr(self, "means_"):
            self.initialize(X)
        X = _check_X(X, self.means_.shape[1])
        log_likelihood, log_resp = e_step(X, self.weights_, self.means_, self.covariances_, self.covariance_type)
        self._set_params(*m_step(X, np.exp(log_resp), self.covariance_type, self.reg_covar))
        mean_ll = float(np.mean(log_likelihood))
        self.log_likelihood_history_.append(mean_ll)
        self.lower_bound_ = mean_ll
        self.n_iter_ += 1
        return mean_ll

    def fit(self, X, y=None) -> GaussianMixture:
        """Initialise, then run EM until the log-likelihood per frame improves by less than ``tol``."""
        X = _check_X(X)
        self.initialize(X)
        previous = -np.inf
        for _ in range(self.max_iter):
            current = self.em_step(X)
            if self.verbose:
                print(f"EM iteration {self.n_iter_:3d}: log-likelihood/frame {current:.6f} "
                      f"(change {current - previous:+.3g})")
            if abs(current - previous) < self.tol:
                self.converged_ = True
                break
            previous = current
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X).predict(X)

    # -- using a fitted model

    def _e_step(self, X) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        X = _check_X(X, self.means_.shape[1])
        return e_step(X, self.weights_, self.means_, self.covariances_, self.covariance_type)

    def score_samples(self, X) -> np.ndarray:
        """``log p(x_n)`` for every frame, shape ``(N,)``."""
        return self._e_step(X)[0]

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per frame (what EM climbs)."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``P(k | x_n)``, shape ``(N, K)``; rows sum to 1."""
        return np.exp(self._e_step(X)[1])

    def predict(self, X) -> np.ndarray:
        """Most responsible component per frame, shape ``(N,)``."""
        return np.argmax(self._e_step(X)[1], axis=1)

    def sample(self, n_samples: int = 1, random_state=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(X (n, D), labels (n,))``: pick components by weight, then ``x = mu_k + L_k z``, ``z ~ N(0, I)``.

        Like scikit-learn, the draws come grouped by component. ``random_state`` defaults to the model's.
        """
        self._check_fitted()
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        rng = np.random.default_rng(self.random_state if random_state is None else random_state)
        counts = rng.multinomial(n_samples, self.weights_ / self.weights_.sum())
        D = self.means_.shape[1]
        draws = []
        for k, n in enumerate(counts):
            z = rng.standard_normal((n, D))
            if self.covariance_type == "diag":
                draws.append(self.means_[k] + z * np.sqrt(self.covariances_[k]))
            else:
                draws.append(self.means_[k] + z @ _cholesky(self.covariances_[k], k).T)
        return np.concatenate(draws), np.repeat(np.arange(self.n_components), counts)

    def n_parameters(self) -> int:
        """Free parameters: ``K-1`` weights, ``K D`` means, ``K D`` (diag) or ``K D(D+1)/2`` (full) covariances."""
        self._check_fitted()
        K, D = self.means_.shape
        cov = K * D if self.covariance_type == "diag" else K * D * (D + 1) // 2
        return (K - 1) + K * D + cov

    def bic(self, X) -> float:
        """Bayesian information criterion ``-2 log L + p log N`` (lower is better; for choosing K)."""
        X = _check_X(X)
        return -2.0 * self.score(X) * len(X) + self.n_parameters() * np.log(len(X))

    def __repr__(self) -> str:
        return (f"GaussianMixture(n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
                f"init={self.init!r}, random_state={self.random_state!r})")


# ----------------------------------------------------------------------------- conditionals (voice conversion)


def _dims(dims, D: int) -> np.ndarray:
    idx = np.arange(D)[dims if isinstance(dims, slice) else np.asarray(dims, dtype=int)]
    if idx.size == 0:
        raise ValueError("dimension list is empty")
    return idx


def _full_covariances(gmm) -> np.ndarray:
    """``(K, D, D)`` covariances of any GMM with ``covariances_`` and ``covariance_type`` (ours or sklearn's)."""
    covariances = np.asarray(gmm.covariances_, dtype=np.float64)
    if gmm.covariance_type == "full":
        return covariances
    if gmm.covariance_type == "diag":
        # valid, but x and y are then independent within a component, so every A_k is 0
        return np.stack([np.diag(c) for c in covariances])
    raise ValueError(f"conditional() needs a 'full' (or 'diag') GMM, got covariance_type={gmm.covariance_type!r}")


@dataclass(frozen=True)
class ConditionalGMM:
    """``p(y | x) = sum_k P(k | x) N(y; A_k x + b_k, S_k)``, from a joint GMM over ``[x; y]``.

    ``weights`` ``(K,)``, ``x_means`` ``(K, Dx)`` and ``x_covariances`` ``(K, Dx, Dx)`` are the marginal GMM of
    ``x`` (they give ``P(k | x)``); ``A`` ``(K, Dy, Dx)``, ``b`` ``(K, Dy)`` and ``covariances`` ``(K, Dy, Dy)``
    are the per-component conditional Gaussians of ``y``.
    """

    weights: np.ndarray
    x_means: np.ndarray
    x_covariances: np.ndarray
    A: np.ndarray
    b: np.ndarray
    covariances: np.ndarray

    def posterior(self, X) -> np.ndarray:
        """``P(k | x_n)`` from the marginal GMM of ``x``, shape ``(N, K)``."""
        X = _check_X(X, self.x_means.shape[1])
        return np.exp(e_step(X, self.weights, self.x_means, self.x_covariances, "full")[1])

    def component_means(self, X) -> np.ndarray:
        """``E[y | x_n, k] = A_k x_n + b_k``, shape ``(N, K, Dy)``."""
        X = _check_X(X, self.x_means.shape[1])
        return np.einsum("kyx,nx->nky", self.A, X) + self.b

    def mean(self, X) -> np.ndarray:
        """Minimum mean-square-error estimate ``E[y | x_n] = sum_k P(k | x_n) (A_k x_n + b_k)``, shape ``(N, Dy)``."""
        return np.einsum("nk,nky->ny", self.posterior(X), self.component_means(X))


def conditional(gmm, x_dims, y_dims) -> ConditionalGMM:
    """Condition a joint GMM over ``z = [x; y]`` on ``x``: per component ``k`` (Bishop, PRML eq. 2.81-2.82)

        mu_k    = [mu_x; mu_y],      Sigma_k = [[S_xx, S_xy], [S_yx, S_yy]]
        E[y | x, k]   = mu_y + S_yx S_xx^-1 (x - mu_x)  =  A_k x + b_k
                        A_k = S_yx S_xx^-1,   b_k = mu_y - A_k mu_x
        Cov[y | x, k] = S_yy - S_yx S_xx^-1 S_xy          (the Schur complement; does not depend on x)

    ``x_dims`` / ``y_dims`` are index lists or slices into the joint feature vector (e.g. source and target
    mel-cepstra of aligned frames, Toda et al. 2007). ``gmm`` is any fitted GMM with ``weights_``, ``means_``,
    ``covariances_`` and ``covariance_type`` (this module's or scikit-learn's).

    >>> joint = GaussianMixture.from_params([1.0], [[0.0, 1.0]], [[[1.0, 0.8], [0.8, 1.0]]], "full")
    >>> cond = conditional(joint, [0], [1])
    >>> float(cond.A[0, 0, 0]), float(cond.b[0, 0]), round(float(cond.covariances[0, 0, 0]), 6)
    (0.8, 1.0, 0.36)
    """
    means = np.asarray(gmm.means_, dtype=np.float64)
    covariances = _full_covariances(gmm)
    xi, yi = _dims(x_dims, means.shape[1]), _dims(y_dims, means.shape[1])
    if np.intersect1d(xi, yi).size:
        raise ValueError(f"x_dims and y_dims overlap: {np.intersect1d(xi, yi).tolist()}")
    S_xx = covariances[:, xi[:, None], xi]                         # (K, Dx, Dx)
    S_yx = covariances[:, yi[:, None], xi]                         # (K, Dy, Dx)
    S_yy = covariances[:, yi[:, None], yi]                         # (K, Dy, Dy)
    # A_k = S_yx S_xx^-1, i.e. the solution of S_xx A_k' = S_xy (S_xx is symmetric): solve, don't invert
    A = np.stack([scipy.linalg.solve(S_xx[k], S_yx[k].T, assume_a="pos").T for k in range(len(means))])
    b = means[:, yi] - np.einsum("kyx,kx->ky", A, means[:, xi])
    cond_cov = S_yy - A @ S_yx.transpose(0, 2, 1)                  # S_yy - S_yx S_xx^-1 S_xy
    cond_cov = 0.5 * (cond_cov + cond_cov.transpose(0, 2, 1))      # symmetric to the last bit
    return ConditionalGMM(np.asarray(gmm.weights_, dtype=np.float64), means[:, xi], S_xx, A, b, cond_cov)


def posterior_given_x(gmm, X, x_dims) -> np.ndarray:
    """``P(k | x_n)`` for a joint GMM observed only on ``x_dims``, shape ``(N, K)``.

        P(k | x) = w_k N(x; mu_x,k, S_xx,k) / sum_j w_j N(x; mu_x,j, S_xx,j)

    (the marginal of a Gaussian is the Gaussian of the kept dimensions: drop the rest of mu and Sigma).
    """
    means = np.asarray(gmm.means_, dtype=np.float64)
    xi = _dims(x_dims, means.shape[1])
    X = _check_X(X, len(xi))
    if gmm.covariance_type == "diag":
        cov, covariance_type = np.asarray(gmm.covariances_)[:, xi], "diag"
    else:
        cov, covariance_type = _full_covariances(gmm)[:, xi[:, None], xi], "full"
    return np.exp(e_step(X, np.asarray(gmm.weights_, dtype=np.float64), means[:, xi], cov, covariance_type)[1])
