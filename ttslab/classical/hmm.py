"""Hidden Markov models from scratch, in log space: forward-backward, Viterbi and Baum-Welch.

An HMM with ``N`` states emits one frame ``x_t`` per time step ``t = 0..T-1`` from a hidden state ``s_t``:

    pi_i    = P(s_0 = i)                      start probabilities       (N,)
    a_ij    = P(s_t = j | s_{t-1} = i)        transition probabilities  (N, N), rows sum to 1
    b_j(x)  = p(x_t = x | s_t = j)            emission densities; on a sequence the matrix
    log B[t, j] = log b_j(x_t)                                          (T, N)

The algorithms (:func:`forward`, :func:`backward`, :func:`posteriors`, :func:`viterbi`) see only
``log pi``, ``log A`` and ``log B``. So the same code serves any emission model (one Gaussian per
state, a mixture, a neural network's scaled likelihoods) and any topology: a forbidden transition is
just ``log a_ij = -inf`` (left-to-right models, phone HMMs strung together for forced alignment).
Everything stays in log space, so a 20 000-frame utterance does not underflow (Rabiner 1989;
HTK Book ch. 7-8), and each recursion sums only over the transitions that are allowed
(:func:`allowed_transitions`), so a left-to-right chain costs O(N) per frame, not O(N^2).

Emissions are separate objects with ``log_prob(X, states=None) -> (T, K)``, ``accumulate`` and
``m_step``: :class:`GaussianEmission` (diagonal or full covariance) and :class:`GMMEmission`
(diagonal Gaussian mixtures). :class:`HMM` puts one emission together with ``pi`` and ``A`` and gives
the hmmlearn-like ``score`` / ``decode`` / ``predict_proba`` / ``fit`` / ``sample``; with the same
parameters it matches ``hmmlearn.hmm.GaussianHMM`` and ``GMMHMM`` (see ``tests/test_hmm.py``).

Baum-Welch (EM) is split into an E-step that adds one sequence's expected counts to a
:class:`Statistics` (:func:`accumulate`) and an M-step that turns the summed counts into parameters.
Keeping the two apart is what embedded training needs: see :class:`Statistics` for the recipe.

>>> rng = np.random.default_rng(0)
>>> true = HMM(2, GaussianEmission(means=[[-3.0], [3.0]], covars=[[1.0], [1.0]]),
...            startprob=[0.5, 0.5], transmat=[[0.95, 0.05], [0.05, 0.95]])
>>> X, states = true.sample(500, rng)
>>> model = HMM(2, GaussianEmission(means=[[-1.0], [1.0]], covars=[[4.0], [4.0]])).fit([X], n_iter=20)
>>> model.emission.means.round().ravel().tolist()
[-3.0, 3.0]
>>> bool((model.predict(X) == states).mean() > 0.99)
True
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import numpy as np
import scipy.linalg

LOG_2PI = np.log(2.0 * np.pi)
TOPOLOGIES = ("ergodic", "left-to-right")
COVARIANCE_TYPES = ("diag", "full")


# ----------------------------------------------------------------------------- checks and small helpers


def safe_log(p) -> np.ndarray:
    """``log p`` with ``log 0 = -inf`` and no warning: zeros are forbidden transitions, not errors."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


_log = safe_log  # the short name this module uses throughout


def logsumexp(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    """``log sum_i exp(a_i)`` along ``axis``, shifted by the max so it neither overflows nor underflows.

    A slice that is all ``-inf`` (a state no path can reach) gives ``-inf``, not NaN: the shift is
    taken as 0 there, so we compute ``log(0) = -inf`` instead of ``-inf - (-inf)``.

    >>> logsumexp(np.array([[0.0, 0.0], [-np.inf, -np.inf]]), axis=1).tolist()
    [0.6931471805599453, -inf]
    """
    a = np.asarray(a, dtype=np.float64)
    a_max = a.max(axis=axis, keepdims=True)
    a_max[~np.isfinite(a_max)] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - a_max).sum(axis=axis)) + a_max.squeeze(axis)


def _check_sequence(X, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 ``(T, D)`` array, or a ValueError that says what is wrong."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, D) with T > 0 frames, got {X.shape}; "
                         f"for one feature use {name}.reshape(-1, 1)")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per frame but the model has {n_features}")
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(f"{name} contains NaN or infinite values in {len(bad)} frame(s), first at t={bad[0]}")
    return X


def _as_sequences(X) -> list:
    # A single (T, D) array is one sequence, not a list of T frames.
    if isinstance(X, np.ndarray) and X.ndim == 2:
        return [X]
    return list(X)


def _check_log_inputs(log_startprob, log_transmat, log_emission, log_endprob=None):
    """Shapes ``(N,)``, ``(N, N)``, ``(T, N)``, ``(N,)`` and no NaN; returns float64 arrays."""
    log_startprob = np.asarray(log_startprob, dtype=np.float64)
    log_transmat = np.asarray(log_transmat, dtype=np.float64)
    log_emission = np.asarray(log_emission, dtype=np.float64)
    if log_emission.ndim != 2 or log_emission.shape[0] == 0:
        raise ValueError(f"log_emission must have shape (T, N) with T > 0, got {log_emission.shape}")
    N = log_emission.shape[1]
    if log_startprob.shape != (N,) or log_transmat.shape != (N, N):
        raise ValueError(f"shapes do not agree: log_emission {log_emission.shape} has N={N} states but "
                         f"log_startprob is {log_startprob.shape} and log_transmat is {log_transmat.shape}")
    log_endprob = np.zeros(N) if log_endprob is None else np.asarray(log_endprob, dtype=np.float64)
    if log_endprob.shape != (N,):
        raise ValueError(f"log_endprob must have shape ({N},), got {log_endprob.shape}")
    for name, a in [("log_startprob", log_startprob), ("log_transmat", log_transmat),
                    ("log_emission", log_emission), ("log_endprob", log_endprob)]:
        if np.isnan(a).any():
            raise ValueError(f"{name} contains NaN (a probability of 0 is log 0 = -inf, not NaN)")
    return log_startprob, log_transmat, log_emission, log_endprob


# ----------------------------------------------------------------------------- the algorithms


def allowed_transitions(log_transmat) -> tuple[np.ndarray, np.ndarray]:
    """For every state ``j``, the states ``i`` that can move into it (``a_ij > 0``), padded to one width K.

    Returns ``sources (N, K)`` and ``log_a (N, K)`` with ``log_a[j, k] = log a_{sources[j, k], j}``;
    padding entries carry ``log_a = -inf`` and so add nothing. The recursions below sum over these
    K sources instead of all N states: the same numbers, but a left-to-right chain (K = 2 or 3)
    costs O(N) per frame instead of O(N^2), which is what makes long composite HMMs (one per
    utterance in forced alignment) cheap. An ergodic model has K = N.
    Successors for the backward pass are ``allowed_transitions(log_transmat.T)``.

    >>> with np.errstate(divide="ignore"):  # log 0 = -inf is what we want here
    ...     log_A = np.log(left_to_right_transmat(3, self_loop=0.5))
    >>> sources, log_a = allowed_transitions(log_A)
    >>> sources.tolist(), np.exp(log_a).tolist()
    ([[0, 1], [0, 1], [1, 2]], [[0.5, 0.0], [0.5, 0.5], [0.5, 1.0]])
    """
    allowed = np.isfinite(log_transmat)
    width = max(1, int(allowed.sum(axis=0).max()))
    # A stable sort of "not allowed" puts each column's allowed rows first, in state order.
    sources = np.argsort(~allowed, axis=0, kind="stable")[:width].T          # (N, K)
    log_a = log_transmat[sources, np.arange(len(log_transmat))[:, None]]       # log a_{sources[j, k], j}
    return sources, log_a


def forward(log_startprob, log_transmat, log_emission, log_endprob=None) -> tuple[np.ndarray, float]:
    """Forward pass: ``log_alpha[t, j] = log p(x_0..x_t, s_t = j)`` and the sequence log-likelihood.

        alpha_0(j)  = pi_j b_j(x_0)
        alpha_t(j)  = b_j(x_t) sum_i alpha_{t-1}(i) a_ij
        p(X)        = sum_j alpha_{T-1}(j) e_j              (e_j = 1 unless ``log_endprob`` is given)

    ``log_endprob`` (optional, ``(N,)``) is ``log e_j``, the probability of stopping in state ``j``;
    forced alignment sets it to ``[-inf, ..., -inf, 0]`` so every path ends in the last state.

    >>> log_pi, log_A = np.log([0.5, 0.5]), np.log([[0.9, 0.1], [0.1, 0.9]])
    >>> log_B = np.log([[0.8, 0.1], [0.8, 0.1]])  # b_j(x_t) for two frames
    >>> log_alpha, log_lik = forward(log_pi, log_A, log_B)
    >>> round(float(np.exp(log_lik)), 4)  # .5*.8*.9*.8 + .5*.8*.1*.1 + .5*.1*.1*.8 + .5*.1*.9*.1
    0.3005
    """
    log_startprob, log_transmat, log_emission, log_endprob = _check_log_inputs(
        log_startprob, log_transmat, log_emission, log_endprob)
    sources, log_a = allowed_transitions(log_transmat)
    T, N = log_emission.shape
    log_alpha = np.empty((T, N))
    log_alpha[0] = log_startprob + log_emission[0]
    for t in range(1, T):
        # (N, K): row j holds log alpha_{t-1}(i) + log a_ij for each state i that can reach j.
        log_alpha[t] = log_emission[t] + logsumexp(log_alpha[t - 1][sources] + log_a, axis=1)
    return log_alpha, float(logsumexp(log_alpha[-1] + log_endprob))


def backward(log_startprob, log_transmat, log_emission, log_endprob=None) -> np.ndarray:
    """Backward pass: ``log_beta[t, i] = log p(x_{t+1}..x_{T-1} | s_t = i)``.

        beta_{T-1}(i) = e_i   (= 1)
        beta_t(i)     = sum_j a_ij b_j(x_{t+1}) beta_{t+1}(j)

    and ``p(X) = sum_i pi_i b_i(x_0) beta_0(i)``, the same number as the forward pass gives.
    """
    log_startprob, log_transmat, log_emission, log_endprob = _check_log_inputs(
        log_startprob, log_transmat, log_emission, log_endprob)
    targets, log_a = allowed_transitions(log_transmat.T)     # row i: the states j that i can move to
    T, N = log_emission.shape
    log_beta = np.empty((T, N))
    log_beta[-1] = log_endprob
    for t in range(T - 2, -1, -1):
        # (N, K): row i holds log a_ij + log b_j(x_{t+1}) + log beta_{t+1}(j) for each successor j.
        log_beta[t] = logsumexp(log_a + (log_emission[t + 1] + log_beta[t + 1])[targets], axis=1)
    return log_beta


def posteriors(log_startprob, log_transmat, log_emission, log_endprob=None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """State posteriors, expected transition counts and log-likelihood (the E-step of Baum-Welch).

        gamma_t(j)  = P(s_t = j | X)              = alpha_t(j) beta_t(j) / p(X)                 (T, N)
        xi_t(i, j)  = P(s_t = i, s_{t+1} = j | X) = alpha_t(i) a_ij b_j(x_{t+1}) beta_{t+1}(j) / p(X)
        xi_sum      = sum_{t=0}^{T-2} xi_t                                                       (N, N)

    Raises ValueError when ``p(X) = 0`` (no path can produce the sequence, e.g. a left-to-right model
    with more states than frames), because the posteriors are then undefined.
    """
    log_startprob, log_transmat, log_emission, log_endprob = _check_log_inputs(
        log_startprob, log_transmat, log_emission, log_endprob)
    log_alpha, log_likelihood = forward(log_startprob, log_transmat, log_emission, log_endprob)
    if not np.isfinite(log_likelihood):
        raise ValueError("the sequence has probability 0 under the model (no allowed path: e.g. fewer frames "
                         "than states in a left-to-right model, or an impossible end state)")
    log_beta = backward(log_startprob, log_transmat, log_emission, log_endprob)
    gamma = np.exp(log_alpha + log_beta - log_likelihood)

    # xi_t only where a_ij > 0: (T-1, N, K) with [t, j, k] for i = sources[j, k]. Built a chunk of frames
    # at a time, so it is vectorised but needs ~8 MB however long the sequence; xi <= 1, so exp cannot overflow.
    sources, log_a = allowed_transitions(log_transmat)
    T, N = log_emission.shape
    log_next = log_emission[1:] + log_beta[1:]          # log b_j(x_{t+1}) + log beta_{t+1}(j), (T-1, N)
    xi_by_source = np.zeros_like(log_a)
    chunk = max(1, 2**20 // log_a.size)
    for start in range(0, T - 1, chunk):
        stop = min(start + chunk, T - 1)
        log_xi = log_alpha[start:stop][:, sources] + log_a + log_next[start:stop, :, None] - log_likelihood
        xi_by_source += np.exp(log_xi).sum(axis=0)
    xi_sum = np.zeros((N, N))
    np.add.at(xi_sum, (sources, np.arange(N)[:, None]), xi_by_source)   # padding adds 0
    return gamma, xi_sum, log_likelihood


def viterbi(log_startprob, log_transmat, log_emission, log_endprob=None) -> tuple[np.ndarray, float]:
    """Most likely state path ``argmax_s p(X, s)`` and its log-probability (max-product forward pass).

        delta_0(j)  = log pi_j + log b_j(x_0)
        delta_t(j)  = log b_j(x_t) + max_i [delta_{t-1}(i) + log a_ij],   psi_t(j) = the argmax i
        s_{T-1}     = argmax_j [delta_{T-1}(j) + log e_j],                s_{t-1} = psi_t(s_t)

    >>> log_A = np.array([[np.log(0.5), np.log(0.5)], [-np.inf, 0.0]])   # left-to-right: 0 -> 1, never back
    >>> log_B = np.log([[0.9, 0.1], [0.9, 0.1], [0.01, 0.99], [0.9, 0.1]])
    >>> path, log_prob = viterbi(np.array([0.0, -np.inf]), log_A, log_B)
    >>> path.tolist()                                     # x_3 fits state 0, but there is no way back
    [0, 0, 1, 1]
    """
    log_startprob, log_transmat, log_emission, log_endprob = _check_log_inputs(
        log_startprob, log_transmat, log_emission, log_endprob)
    sources, log_a = allowed_transitions(log_transmat)
    T, N = log_emission.shape
    states = np.arange(N)
    backpointer = np.zeros((T, N), dtype=np.intp)
    delta = log_startprob + log_emission[0]
    for t in range(1, T):
        scores = delta[sources] + log_a                   # scores[j, k]: arrive in j from sources[j, k]
        best = np.argmax(scores, axis=1)
        backpointer[t] = sources[states, best]
        delta = log_emission[t] + scores[states, best]
    delta = delta + log_endprob
    path = np.empty(T, dtype=np.intp)
    path[-1] = np.argmax(delta)
    best_log_prob = float(delta[path[-1]])
    if not np.isfinite(best_log_prob):
        raise ValueError("the sequence has probability 0 under the model: no state path is allowed")
    for t in range(T - 1, 0, -1):
        path[t - 1] = backpointer[t, path[t]]
    return path, best_log_prob


# ----------------------------------------------------------------------------- emissions


def _diag_log_density(X: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """``log N(x_t; mu_k, diag(s2_k))`` for every frame and Gaussian: ``(T, D), (K, D), (K, D) -> (T, K)``.

        log N = -1/2 [ D log 2pi + sum_d log s2_kd + sum_d (x_td - mu_kd)^2 / s2_kd ]

    The square is expanded, ``x^2/s2 - 2 x mu/s2 + mu^2/s2``, so the work is two ``(T, D) @ (D, K)``
    products instead of a ``(T, K, D)`` array (hmmlearn computes it the same way).
    """
    precisions = 1.0 / covars
    return -0.5 * (X.shape[1] * LOG_2PI + np.sum(np.log(covars), axis=1) + np.sum(means**2 * precisions, axis=1)
                   - 2.0 * X @ (means * precisions).T + (X**2) @ precisions.T)


def _full_log_density(X: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """``log N(x_t; mu_k, Sigma_k)`` with full covariances: ``(T, D), (K, D), (K, D, D) -> (T, K)``.

    With ``Sigma = L L'`` (Cholesky) and ``z = L^-1 (x - mu)``:
    ``log N = -1/2 [ D log 2pi + 2 sum log diag(L) + |z|^2 ]``.
    """
    out = np.empty((X.shape[0], means.shape[0]))
    for k in range(means.shape[0]):
        try:
            chol = np.linalg.cholesky(covars[k])
        except np.linalg.LinAlgError:
            raise ValueError(f"covariance {k} is not positive definite; raise variance_floor") from None
        z = scipy.linalg.solve_triangular(chol, (X - means[k]).T, lower=True)
        out[:, k] = -0.5 * (X.shape[1] * LOG_2PI + 2.0 * np.sum(np.log(np.diag(chol))) + np.sum(z**2, axis=0))
    return out


def _state_index(states, n_states: int) -> np.ndarray:
    """``states`` (which emission rows the columns of a log-emission or gamma matrix stand for) checked."""
    if states is None:
        return np.arange(n_states)
    states = np.asarray(states)
    if states.ndim != 1 or not np.issubdtype(states.dtype, np.integer) or np.any((states < 0) | (states >= n_states)):
        raise ValueError(f"states must be a 1-D array of integers in [0, {n_states}), got {states!r}")
    return states


class GaussianEmission:
    """One Gaussian per state: ``b_j(x) = N(x; mu_j, Sigma_j)``, diagonal (default) or full covariance.

    Parameters: ``means`` ``(N, D)``, ``covars`` ``(N, D)`` variances for "diag" or ``(N, D, D)`` for "full".
    ``variance_floor`` (scalar or ``(D,)``) bounds every variance from below after each M-step, so a
    state that sees few frames cannot collapse onto them (HTS uses a fraction of the global variance,
    e.g. ``0.01 * X_all.var(axis=0)``).

    M-step, from the :class:`Statistics` ``n_j = sum_t gamma_t(j)``, ``f_j = sum_t gamma_t(j) x_t``,
    ``S_j = sum_t gamma_t(j) x_t x_t'`` (diag: ``x_t**2``):

        mu_j    = f_j / n_j
        Sigma_j = S_j / n_j - mu_j mu_j'              then  max(variances, variance_floor)

    States with ``n_j = 0`` (never visited) keep their parameters.
    """

    def __init__(self, means, covars, covariance_type: str = "diag", variance_floor=1e-3):
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
        self.covariance_type = covariance_type
        self.means = np.array(means, dtype=np.float64)
        self.covars = np.array(covars, dtype=np.float64)
        self.variance_floor = variance_floor
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (n_states, n_features), got {self.means.shape}")
        N, D = self.means.shape
        expected = (N, D) if covariance_type == "diag" else (N, D, D)
        if self.covars.shape != expected:
            raise ValueError(f"{covariance_type} covars must have shape {expected}, got {self.covars.shape}")
        variances = self.covars if covariance_type == "diag" else np.diagonal(self.covars, axis1=1, axis2=2)
        if not np.all(np.isfinite(self.covars)) or np.any(variances <= 0):
            raise ValueError("covars must be finite with positive variances")

    @property
    def n_states(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    occupancy_shape = property(lambda self: (self.n_states,))

    def log_prob(self, X, states=None) -> np.ndarray:
        """``log B[t, k] = log b_{states[k]}(x_t)``, shape ``(T, K)``; all states when ``states`` is None.

        ``states`` may repeat (a phone used twice in a composite HMM): each is evaluated once.
        """
        X = _check_sequence(X, self.n_features)
        unique, columns = np.unique(_state_index(states, self.n_states), return_inverse=True)
        density = _diag_log_density if self.covariance_type == "diag" else _full_log_density
        return density(X, self.means[unique], self.covars[unique])[:, columns]

    def accumulate(self, stats: Statistics, X, gamma, states=None) -> None:
        """Add ``n_j += sum_t gamma[t, k]``, ``f_j += sum_t gamma[t, k] x_t``, ``S_j += ...`` for ``j = states[k]``."""
        X = _check_sequence(X, self.n_features)
        states = _state_index(states, self.n_states)
        # np.add.at, not +=: a state can appear in several columns (tied states) and must get every share.
        np.add.at(stats.occupancy, states, gamma.sum(axis=0))
        np.add.at(stats.first, states, gamma.T @ X)
        if self.covariance_type == "diag":
            np.add.at(stats.second, states, gamma.T @ X**2)
        else:
            np.add.at(stats.second, states, np.einsum("tk,td,te->kde", gamma, X, X, optimize=True))

    def m_step(self, stats: Statistics, params: str = "mc") -> None:
        """Re-estimate means (``"m"`` in params) and covariances (``"c"``) of visited states, in place."""
        seen = stats.occupancy > 0
        n = stats.occupancy[seen][:, None]
        mean_x = stats.first[seen] / n                            # E[x | state]
        if "m" in params:
            self.means[seen] = mean_x
        if "c" not in params:
            return
        mu = self.means[seen]
        if self.covariance_type == "diag":
            # E[(x - mu)^2] = E[x^2] - 2 mu E[x] + mu^2; with mu = E[x] it is E[x^2] - mu^2.
            variances = stats.second[seen] / n - 2.0 * mu * mean_x + mu**2
            self.covars[seen] = np.maximum(variances, self.variance_floor)
        else:
            # E[(x - mu)(x - mu)'] = E[xx'] - E[x] mu' - mu E[x]' + mu mu'
            cross = mean_x[:, :, None] * mu[:, None, :]
            outer = mu[:, :, None] * mu[:, None, :]
            covars = stats.second[seen] / n[:, :, None] - cross - cross.transpose(0, 2, 1) + outer
            diagonal = np.einsum("kdd->kd", covars)                # a writable view of the variances
            np.maximum(diagonal, self.variance_floor, out=diagonal)
            self.covars[seen] = covars

    def sample(self, states, rng: np.random.Generator) -> np.ndarray:
        """One frame per entry of ``states``: ``x_t = mu_{s_t} + L_{s_t} z_t`` with ``z_t ~ N(0, I)``."""
        states = np.asarray(states)
        z = rng.standard_normal((len(states), self.n_features))
        if self.covariance_type == "diag":
            return self.means[states] + np.sqrt(self.covars[states]) * z
        return self.means[states] + np.einsum("tde,te->td", np.linalg.cholesky(self.covars[states]), z)


class GMMEmission:
    """A diagonal-covariance Gaussian mixture per state: ``b_j(x) = sum_m w_jm N(x; mu_jm, diag(s2_jm))``.

    Parameters: ``weights`` ``(N, M)`` (rows sum to 1), ``means`` and ``covars`` ``(N, M, D)``.

    Baum-Welch splits each state's posterior between its components with the within-state
    component posterior ``r_t(j, m) = w_jm N(x_t; mu_jm, s2_jm) / b_j(x_t)``: the occupancy of
    component ``m`` of state ``j`` is ``gamma_t(j, m) = gamma_t(j) r_t(j, m)``, and then

        w_jm  = sum_t gamma_t(j, m) / sum_t gamma_t(j)
        mu_jm = sum_t gamma_t(j, m) x_t / sum_t gamma_t(j, m)
        s2_jm = sum_t gamma_t(j, m) x_t^2 / sum_t gamma_t(j, m) - mu_jm^2        floored

    Components (and states) that get no occupancy keep their parameters.
    """

    covariance_type = "diag"

    def __init__(self, weights, means, covars, variance_floor=1e-3):
        self.weights = np.array(weights, dtype=np.float64)
        self.means = np.array(means, dtype=np.float64)
        self.covars = np.array(covars, dtype=np.float64)
        self.variance_floor = variance_floor
        if self.means.ndim != 3:
            raise ValueError(f"means must have shape (n_states, n_mix, n_features), got {self.means.shape}")
        if self.weights.shape != self.means.shape[:2] or self.covars.shape != self.means.shape:
            raise ValueError(f"weights {self.weights.shape} must be (N, M) and covars {self.covars.shape} "
                             f"(N, M, D) to match means {self.means.shape}")
        if np.any(self.weights < 0) or not np.allclose(self.weights.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("mixture weights must be non-negative with each state's row summing to 1")
        if not np.all(np.isfinite(self.covars)) or np.any(self.covars <= 0):
            raise ValueError("covars must be finite and positive")

    @property
    def n_states(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[2]

    occupancy_shape = property(lambda self: self.weights.shape)

    def component_log_prob(self, X, states=None) -> np.ndarray:
        """``log w_jm + log N(x_t; mu_jm, s2_jm)`` for ``j = states[k]``, shape ``(T, K, M)``."""
        X = _check_sequence(X, self.n_features)
        states = _state_index(states, self.n_states)
        K, M, D = len(states), self.means.shape[1], self.n_features
        # All K*M Gaussians in one batch: a (T, K*M) matrix, then back to (T, K, M).
        log_density = _diag_log_density(X, self.means[states].reshape(K * M, D), self.covars[states].reshape(K * M, D))
        return log_density.reshape(-1, K, M) + _log(self.weights[states])[None]

    def log_prob(self, X, states=None) -> np.ndarray:
        """``log b_j(x_t) = logsumexp_m [log w_jm + log N(x_t; mu_jm, s2_jm)]``, shape ``(T, K)``."""
        return logsumexp(self.component_log_prob(X, states), axis=2)

    def component_posteriors(self, X, states=None) -> np.ndarray:
        """``r_t(j, m) = P(component m | x_t, state j)``, shape ``(T, K, M)``; sums to 1 over ``m``."""
        component = self.component_log_prob(X, states)
        return np.exp(component - logsumexp(component, axis=2)[:, :, None])

    def accumulate(self, stats: Statistics, X, gamma, states=None) -> None:
        """Add per-component occupancy and first/second moments, weighted by ``gamma_t(j) r_t(j, m)``."""
        X = _check_sequence(X, self.n_features)
        states = _state_index(states, self.n_states)
        occupancy = gamma[:, :, None] * self.component_posteriors(X, states)         # (T, K, M)
        flat = occupancy.reshape(len(X), -1).T                                        # (K*M, T)
        K, M, D = len(states), self.means.shape[1], self.n_features
        np.add.at(stats.occupancy, states, occupancy.sum(axis=0))
        np.add.at(stats.first, states, (flat @ X).reshape(K, M, D))
        np.add.at(stats.second, states, (flat @ X**2).reshape(K, M, D))

    def m_step(self, stats: Statistics, params: str = "mcw") -> None:
        """Re-estimate weights (``"w"``), means (``"m"``) and variances (``"c"``) in place."""
        state_occupancy = stats.occupancy.sum(axis=1)
        if "w" in params:
            visited = state_occupancy > 0
            self.weights[visited] = stats.occupancy[visited] / state_occupancy[visited, None]
        seen = stats.occupancy > 0                                                    # (N, M)
        n = stats.occupancy[seen][:, None]
        mean_x = stats.first[seen] / n
        if "m" in params:
            self.means[seen] = mean_x
        if "c" in params:
            mu = self.means[seen]
            variances = stats.second[seen] / n - 2.0 * mu * mean_x + mu**2
            self.covars[seen] = np.maximum(variances, self.variance_floor)

    def sample(self, states, rng: np.random.Generator) -> np.ndarray:
        """One frame per state: pick component ``m ~ w_{s_t}``, then ``x_t ~ N(mu_{s_t m}, s2_{s_t m})``."""
        states = np.asarray(states)
        cumulative = np.cumsum(self.weights[states], axis=1)
        u = rng.random(len(states))[:, None] * cumulative[:, -1:]
        mix = np.minimum(np.sum(u >= cumulative, axis=1), self.weights.shape[1] - 1)
        z = rng.standard_normal((len(states), self.n_features))
        return self.means[states, mix] + np.sqrt(self.covars[states, mix]) * z


# ----------------------------------------------------------------------------- sufficient statistics


@dataclass
class Statistics:
    """Expected counts that Baum-Welch sums over all training sequences before one M-step.

    ==================  ======================  ==============================================
    ``start``           ``(N,)``                sum over sequences of ``gamma_0(i)``
    ``trans``           ``(N, N)``              sum over sequences of ``xi_sum`` (expected i -> j)
    ``occupancy``       ``(N,)`` or ``(N, M)``  ``sum_t gamma_t(j)`` (per component for GMMs)
    ``first``           ``(..., D)``            ``sum_t gamma_t(j) x_t``
    ``second``          ``(..., D)`` or         ``sum_t gamma_t(j) x_t**2`` (diag) or
                        ``(..., D, D)``         ``sum_t gamma_t(j) x_t x_t'`` (full)
    ``log_likelihood``  float                   ``sum log p(X)`` over the accumulated sequences
    ==================  ======================  ==============================================

    Statistics add up (``stats_a + stats_b``), so shards of a corpus can be accumulated apart
    (processes, federated clients) and merged before the M-step.

    **Embedded training** (flat-start forced alignment, HTK's HERest): keep ONE pooled emission
    holding every phone's states (phone ``p`` owns rows ``offset[p] .. offset[p] + n_p - 1``) and one
    ``Statistics.zeros(emission)``. For each utterance, string its phones' states into a composite
    left-to-right HMM whose state ``k`` is pooled row ``states[k]``, then::

        log_b = emission.log_prob(X, states)                         # (T, K) composite log-emissions
        gamma, xi_sum, ll = posteriors(log_pi, log_A_utt, log_b, log_end)
        accumulate(stats, X, gamma, xi_sum, emission, states, ll)    # scatter into pooled rows

    and after the whole corpus one ``emission.m_step(stats)``. Counts go to the pooled rows, so a
    phone that occurs many times (or twice in one utterance) sums all its occurrences. In
    ``stats.trans`` a count inside phone ``p``'s diagonal block is one of its own transitions, and a
    count from its last state to another phone's first state is its exit transition; the aligner
    reads each phone's self-loop/next/exit probabilities from there.
    """

    start: np.ndarray
    trans: np.ndarray
    occupancy: np.ndarray
    first: np.ndarray
    second: np.ndarray
    log_likelihood: float = 0.0
    n_sequences: int = 0
    n_frames: int = 0

    @classmethod
    def zeros(cls, emission) -> Statistics:
        """Empty statistics shaped for ``emission`` (its ``n_states``, ``occupancy_shape``, ``n_features``)."""
        N, D, shape = emission.n_states, emission.n_features, tuple(emission.occupancy_shape)
        second_shape = shape + ((D,) if emission.covariance_type == "diag" else (D, D))
        return cls(start=np.zeros(N), trans=np.zeros((N, N)), occupancy=np.zeros(shape),
                   first=np.zeros(shape + (D,)), second=np.zeros(second_shape))

    def __add__(self, other: Statistics) -> Statistics:
        return Statistics(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


def accumulate(stats: Statistics, X, gamma, xi_sum, emission, states=None, log_likelihood: float = 0.0) -> None:
    """Add one sequence's E-step results (from :func:`posteriors`) to ``stats``, in place.

    ``gamma`` ``(T, K)`` and ``xi_sum`` ``(K, K)`` may belong to a composite model whose state ``k``
    is emission row ``states[k]`` (default: ``K = N`` and the identity); see :class:`Statistics`.
    """
    states = _state_index(states, emission.n_states)
    gamma, xi_sum = np.asarray(gamma, dtype=np.float64), np.asarray(xi_sum, dtype=np.float64)
    if gamma.shape != (len(X), len(states)) or xi_sum.shape != (len(states), len(states)):
        raise ValueError(f"gamma {gamma.shape} must be (T, K) = ({len(X)}, {len(states)}) "
                         f"and xi_sum {xi_sum.shape} must be (K, K)")
    np.add.at(stats.start, states, gamma[0])
    np.add.at(stats.trans, (states[:, None], states[None, :]), xi_sum)
    emission.accumulate(stats, X, gamma, states)
    stats.log_likelihood += log_likelihood
    stats.n_sequences += 1
    stats.n_frames += len(X)


def _normalize_rows(counts: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``counts / row sums``; a row with no counts (a state never left or never visited) keeps ``previous``."""
    counts = np.atleast_2d(counts)
    totals = counts.sum(axis=1, keepdims=True)
    out = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), np.atleast_2d(previous))
    return out.reshape(previous.shape)


# ----------------------------------------------------------------------------- the model


def left_to_right_transmat(n_states: int, self_loop: float = 0.6, skip: bool = False) -> np.ndarray:
    """A left-to-right (Bakis) transition matrix: stay with ``self_loop``, else move on (or skip one).

    Without ``skip`` the rest ``1 - self_loop`` goes to the next state; with it, half goes to the
    next and half to the one after. The last state keeps all its mass (it is where the model ends).

    >>> left_to_right_transmat(3, self_loop=0.6)
    array([[0.6, 0.4, 0. ],
           [0. , 0.6, 0.4],
           [0. , 0. , 1. ]])
    """
    if n_states < 1 or not 0.0 <= self_loop <= 1.0:
        raise ValueError(f"need n_states >= 1 and 0 <= self_loop <= 1, got {n_states}, {self_loop}")
    transmat = np.zeros((n_states, n_states))
    for i in range(n_states):
        ahead = [j for j in (i + 1, i + 2)[: 2 if skip else 1] if j < n_states]
        transmat[i, i] = self_loop if ahead else 1.0
        for j in ahead:
            transmat[i, j] = (1.0 - self_loop) / len(ahead)
    return transmat


def _check_distribution(p, shape: tuple, name: str) -> np.ndarray:
    """A probability vector/matrix of ``shape`` whose last axis sums to 1, or a ValueError."""
    p = np.array(p, dtype=np.float64)
    if p.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must contain finite, non-negative probabilities")
    sums = p.sum(axis=-1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        bad = np.flatnonzero(~np.isclose(np.atleast_1d(sums), 1.0, atol=1e-6))
        raise ValueError(f"{name} must sum to 1 along its last axis; row(s) {bad.tolist()} sum to "
                         f"{np.atleast_1d(sums)[bad].tolist()}")
    return p


class HMM:
    """An HMM: start/transition probabilities plus one emission model, with hmmlearn-like methods.

    ``topology="left-to-right"`` defaults to starting in state 0 and :func:`left_to_right_transmat`,
    and refuses a transition matrix with backward transitions; zeros in ``transmat`` stay zero
    through :meth:`fit` (``xi`` is exactly 0 where ``a_ij = 0``). ``params`` says what :meth:`fit`
    updates: ``s`` startprob, ``t`` transmat, ``m`` means, ``c`` covariances, ``w`` mixture weights.
    ``endprob`` (optional, ``(N,)``, not trained) is the probability of ending in each state; use
    ``[0, ..., 0, 1]`` to force left-to-right paths to finish in the last state.
    """

    def __init__(self, n_states: int, emission, startprob=None, transmat=None, topology: str = "ergodic",
                 params: str = "stmcw", endprob=None):
        if topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {topology!r}")
        if emission.n_states != n_states:
            raise ValueError(f"the emission has {emission.n_states} states but n_states={n_states}")
        N = n_states
        if startprob is None:
            startprob = np.eye(N)[0] if topology == "left-to-right" else np.full(N, 1.0 / N)
        if transmat is None:
            transmat = left_to_right_transmat(N) if topology == "left-to-right" else np.full((N, N), 1.0 / N)
        self.startprob = _check_distribution(startprob, (N,), "startprob")
        self.transmat = _check_distribution(transmat, (N, N), "transmat")
        if topology == "left-to-right" and np.any(np.tril(self.transmat, k=-1) > 0):
            raise ValueError("a left-to-right transmat must be upper triangular (no transitions back to "
                             "earlier states)")
        self.endprob = None if endprob is None else np.array(endprob, dtype=np.float64)
        if self.endprob is not None and self.endprob.shape != (N,):
            raise ValueError(f"endprob must have shape ({N},), got {self.endprob.shape}")
        self.n_states, self.emission, self.topology, self.params = N, emission, topology, params
        self.history_: list[float] = []

    def _log_params(self):
        log_end = None if self.endprob is None else _log(self.endprob)
        return _log(self.startprob), _log(self.transmat), log_end

    def score(self, X) -> float:
        """Total log-likelihood ``sum log p(X)`` of one ``(T, D)`` sequence or a list of them."""
        log_pi, log_A, log_end = self._log_params()
        return sum(forward(log_pi, log_A, self.emission.log_prob(x), log_end)[1] for x in _as_sequences(X))

    def decode(self, X) -> tuple[np.ndarray, float]:
        """Viterbi path and its log-probability for one sequence (note: hmmlearn returns them swapped)."""
        log_pi, log_A, log_end = self._log_params()
        return viterbi(log_pi, log_A, self.emission.log_prob(X), log_end)

    def predict(self, X) -> np.ndarray:
        """The Viterbi state path of one sequence."""
        return self.decode(X)[0]

    def predict_proba(self, X) -> np.ndarray:
        """State posteriors ``gamma_t(j) = P(s_t = j | X)`` of one sequence, shape ``(T, N)``."""
        log_pi, log_A, log_end = self._log_params()
        return posteriors(log_pi, log_A, self.emission.log_prob(X), log_end)[0]

    def expected_statistics(self, sequences) -> Statistics:
        """E-step over all sequences: the summed :class:`Statistics` under the current parameters."""
        log_pi, log_A, log_end = self._log_params()
        stats = Statistics.zeros(self.emission)
        for X in _as_sequences(sequences):
            X = _check_sequence(X, self.emission.n_features)
            gamma, xi_sum, log_likelihood = posteriors(log_pi, log_A, self.emission.log_prob(X), log_end)
            accumulate(stats, X, gamma, xi_sum, self.emission, log_likelihood=log_likelihood)
        return stats

    def m_step(self, stats: Statistics) -> None:
        """M-step: ``pi_i = start_i / sum start``, ``a_ij = trans_ij / sum_j trans_ij``, then the emission's."""
        if "s" in self.params:
            self.startprob = _normalize_rows(stats.start, self.startprob)
        if "t" in self.params:
            self.transmat = _normalize_rows(stats.trans, self.transmat)
        self.emission.m_step(stats, self.params)

    def fit(self, sequences, n_iter: int = 10, tol: float = 1e-4) -> HMM:
        """Baum-Welch: repeat E-step over all sequences + one M-step, ``n_iter`` times or until the
        log-likelihood gains less than ``tol``. ``history_`` records ``sum log p(X)`` before each
        M-step; EM guarantees it never decreases."""
        sequences = _as_sequences(sequences)
        self.history_ = []
        for _ in range(n_iter):
            stats = self.expected_statistics(sequences)
            self.m_step(stats)
            self.history_.append(stats.log_likelihood)
            if len(self.history_) > 1 and self.history_[-1] - self.history_[-2] < tol:
                break
        return self

    def sample(self, n_frames: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(X (n_frames, D), states (n_frames,))``: a Markov chain of states, then one frame each."""
        rng = np.random.default_rng(rng)
        u = rng.random(n_frames)
        start_cdf, trans_cdf = np.cumsum(self.startprob), np.cumsum(self.transmat, axis=1)
        last = self.n_states - 1  # min(.., last) guards against rounding at the top of a cdf
        states = np.empty(n_frames, dtype=np.intp)
        states[0] = min(np.searchsorted(start_cdf, u[0] * start_cdf[-1], side="right"), last)
        for t in range(1, n_frames):
            row = trans_cdf[states[t - 1]]
            states[t] = min(np.searchsorted(row, u[t] * row[-1], side="right"), last)
        return self.emission.sample(states, rng), states

    def __repr__(self) -> str:
        return (f"HMM(n_states={self.n_states}, emission={type(self.emission).__name__}"
                f"(n_features={self.emission.n_features}), topology={self.topology!r})")
