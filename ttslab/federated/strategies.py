"""Server strategies: how client updates become the next global weights.

Every strategy has one entry point, ``aggregate(global_weights, replies, server_round) -> new weights``,
which

1. checks everything before touching anything (:meth:`Strategy.check`): at least one reply, distinct
   client ids, ``num_examples >= 1``, and every update with the global keys, shapes, dtypes and finite
   values (:func:`~ttslab.federated.weights.validate_update`); an error leaves the global weights and the
   strategy's state as they were;
2. sorts the replies by client id, so the result does not depend on the order in which clients answered;
3. computes in float64 and casts back to each tensor's dtype (:meth:`Strategy.combine`).

It returns a new dict and never modifies its arguments. Server state (momentum, Adam moments) is a
plain dict of tensors and numbers (``state_dict()`` / ``load_state_dict()``) that a checkpoint can
hold, so a crashed server resumes exactly. A robust aggregator (median, trimmed mean, Krum) is one more
subclass that overrides :meth:`Strategy.combine`.

=========  ==================================================================================
FedAvg     ``w = sum_k n_k w_k / sum_k n_k``                               (McMahan et al. 2017)
FedProx    FedAvg on the server; the clients add ``(mu/2) ||w - w^t||^2``   (Li et al. 2020)
FedAsync   ``w <- (1 - a_t) w + a_t w_k``, ``a_t = alpha * s(t - tau)``          (Xie et al. 2019)
FedAvgM    ``v <- beta v + D;  w <- w + eta v``,  ``D = w_avg - w``               (Hsu et al. 2019)
FedAdam    ``m <- b1 m + (1-b1) D;  v <- b2 v + (1-b2) D^2;  w <- w + eta m / (sqrt(v) + tau)``
                                                                              (Reddi et al. 2021)
=========  ==================================================================================
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch

from ttslab.federated.weights import UpdateError, Weights, check_weights, validate_update

STALENESS = ("constant", "polynomial", "hinge")


@dataclass
class Reply:
    """What a client sends back after local training.

    ``weights``: the shared tensors only (personal layers never leave the client); ``num_examples``:
    the size of its training data (FedAvg's ``n_k``); ``metrics``: floats to log (e.g. the mean local
    loss); ``model_version``: the server time ``tau`` of the global weights it started from (FedAsync's
    staleness is ``t - tau``; synchronous strategies ignore it).
    """

    client_id: int | str
    weights: Weights
    num_examples: int
    metrics: dict = field(default_factory=dict)
    model_version: int | None = None


def client_sort_key(client_id) -> tuple:
    """Sort key for client ids: integers (numerically) before strings, so mixed ids still sort."""
    if isinstance(client_id, int) and not isinstance(client_id, bool):
        return (0, client_id, "")
    return (1, 0, str(client_id))


def aggregate_metrics(results: Sequence) -> dict[str, float]:
    """Example-weighted mean of each metric over the results that report it (anything with
    ``client_id``, ``num_examples`` and ``metrics``: :class:`Reply`, :class:`~ttslab.federated.client.EvalResult`),
    summed in client-id order in float64, so it too is independent of the reply order.

    >>> aggregate_metrics([Reply("b", {}, 3, {"loss": 2.0}), Reply("a", {}, 1, {"loss": 6.0, "pitch": 1.0})])
    {'loss': 3.0, 'pitch': 1.0}
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in sorted(results, key=lambda r: client_sort_key(r.client_id)):
        for name, value in r.metrics.items():
            sums[name] = sums.get(name, 0.0) + r.num_examples * float(value)
            counts[name] = counts.get(name, 0) + r.num_examples
    return {name: sums[name] / counts[name] for name in sorted(sums) if counts[name] > 0}


def weighted_mean64(global_weights: Mapping[str, torch.Tensor], replies: Sequence[Reply]) -> Weights:
    """``sum_k n_k w_k / sum_k n_k`` per tensor, in float64, summed in the given order (callers sort
    first). The sum of the integer ``n_k`` is exact, so only the tensor sums round, always the same way."""
    total = sum(int(r.num_examples) for r in replies)
    out = OrderedDict()
    for name, ref in global_weights.items():
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for r in replies:
            acc += r.weights[name].to(torch.float64) * int(r.num_examples)
        out[name] = acc / total
    return out


def _cast_like(values: Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor]) -> Weights:
    return OrderedDict((n, values[n].to(like[n].dtype)) for n in like)


class Strategy:
    """Base class: :meth:`aggregate` = :meth:`check` then :meth:`combine`. Subclasses implement
    :meth:`combine` (and the state methods when they keep state)."""

    name = "strategy"

    def aggregate(self, global_weights: Mapping[str, torch.Tensor], replies: Sequence[Reply],
                  server_round: int) -> Weights:
        """The next global weights from ``replies`` to ``global_weights`` in round ``server_round``
        (a new dict; the arguments are never modified, also not when an error is raised)."""
        ordered = self.check(global_weights, replies, server_round)
        return self.combine(global_weights, ordered, server_round)

    def check(self, global_weights: Mapping[str, torch.Tensor], replies: Sequence[Reply],
              server_round: int) -> list[Reply]:
        """Validate everything; return the replies sorted by client id (see the module docstring)."""
        check_weights(global_weights)
        if isinstance(server_round, bool) or not isinstance(server_round, int) or server_round < 0:
            raise ValueError(f"server_round must be an int >= 0, got {server_round!r}")
        replies = list(replies)
        if not replies:
            raise ValueError(f"no client replies to aggregate in round {server_round} (zero clients sampled or "
                             f"all dropped out): sample at least one client; the global weights stay as they are")
        seen = set()
        for r in replies:
            if not isinstance(r, Reply):
                raise TypeError(f"replies must be ttslab.federated.Reply objects, got {type(r).__name__}")
            if r.client_id in seen:
                raise UpdateError(f"client {r.client_id!r} replied twice in round {server_round}; keep one reply "
                                  f"per client", client_id=r.client_id)
            seen.add(r.client_id)
            n = r.num_examples
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise UpdateError(f"client {r.client_id!r} reported num_examples={n!r}: an empty client cannot be "
                                  f"averaged; leave it out of the round", client_id=r.client_id)
            validate_update(global_weights, r.weights, client_id=r.client_id)
        return sorted(replies, key=lambda r: client_sort_key(r.client_id))

    def combine(self, global_weights: Mapping[str, torch.Tensor], replies: list[Reply],
                server_round: int) -> Weights:
        """The aggregation proper, on validated replies in client-id order."""
        raise NotImplementedError

    def client_options(self) -> dict:
        """Settings the clients need from this strategy (FedProx: ``{"mu": mu}``), for the client config."""
        return {}

    def hyperparameters(self) -> dict:
        """The strategy's settings, for logs and results tables."""
        return {}

    def state_dict(self) -> dict:
        """Server state between rounds (empty for stateless strategies)."""
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        if state:
            raise ValueError(f"{self.name} keeps no state, got keys {sorted(state)}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class FedAvg(Strategy):
    """Federated averaging weighted by examples (McMahan et al. 2017)::

        w = sum_k n_k w_k / sum_k n_k

    accumulated in float64 over the replies sorted by client id, then cast to the global dtype.
    Floating-point addition is not associative, so a float32 sum in arrival order (Flower's FedAvg)
    can change in the last bits when two clients swap places; a fixed order makes the result a
    function of the set of replies only, and float64 keeps the rounding far below float32's.

    >>> g = {"w": torch.zeros(2)}
    >>> FedAvg().aggregate(g, [Reply(1, {"w": torch.tensor([1., 2.])}, 1),
    ...                        Reply(2, {"w": torch.tensor([4., 8.])}, 3)], server_round=1)["w"]
    tensor([3.2500, 6.5000])
    """

    name = "fedavg"

    def combine(self, global_weights, replies, server_round):
        return _cast_like(weighted_mean64(global_weights, replies), global_weights)


class FedProx(FedAvg):
    """FedProx (Li et al. 2020): FedAvg on the server, a proximal term on the clients, whose local
    objective becomes ``F_k(w) + (mu/2) ||w - w^t||^2`` (the *squared* norm; ``w^t`` the global
    weights of the round). ``mu = 0`` is FedAvg. The server only passes ``mu`` on
    (:meth:`client_options`); the term itself is :func:`ttslab.federated.client.proximal_loss`."""

    name = "fedprox"

    def __init__(self, mu: float = 0.01):
        self.mu = check_mu(mu)

    def client_options(self) -> dict:
        return {"mu": self.mu}

    def hyperparameters(self) -> dict:
        return {"mu": self.mu}


def check_mu(mu: float) -> float:
    """FedProx's ``mu`` as a float; ``ValueError`` unless finite and >= 0."""
    if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not math.isfinite(mu) or mu < 0:
        raise ValueError(f"mu (FedProx's proximal weight) must be a finite number >= 0 (0 is FedAvg), got {mu!r}")
    return float(mu)


def staleness_factor(staleness: int, kind: str = "constant", a: float = 0.5, b: int = 4) -> float:
    """FedAsync's ``s(t - tau)`` (Xie et al. 2019, section 5.2):

    * constant:   ``s = 1``
    * polynomial: ``s = (t - tau + 1) ** (-a)``
    * hinge:      ``s = 1`` if ``t - tau <= b`` else ``1 / (a (t - tau - b) + 1)``

    >>> [round(staleness_factor(3, k, a=0.5, b=1), 4) for k in STALENESS]
    [1.0, 0.5, 0.5]
    """
    if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness < 0:
        raise ValueError(f"staleness t - tau must be an int >= 0, got {staleness!r}")
    if kind == "constant":
        return 1.0
    if kind == "polynomial":
        return float((staleness + 1) ** (-a))
    if kind == "hinge":
        return 1.0 if staleness <= b else 1.0 / (a * (staleness - b) + 1.0)
    raise ValueError(f"unknown staleness function {kind!r}; use one of {STALENESS}")


class FedAsync(Strategy):
    """Asynchronous federated optimisation (Xie et al. 2019): each update is mixed in as it arrives::

        w <- (1 - a_t) w + a_t w_k,      a_t = alpha * s(t - tau)

    with ``t = server_round`` the server's current time (the caller advances it by one per applied
    update), ``tau = reply.model_version`` the time of the weights the client started from, and ``s``
    from :func:`staleness_factor`. ``a_t`` is computed afresh from ``alpha`` for every update; it
    never compounds (``alpha`` is never overwritten by ``a_t``). Replies passed together are treated as
    arriving at the same time ``t`` and applied one after another in client-id order, each rounded to
    the global dtype as if applied by its own call. ``num_examples`` is not used.

    >>> g = {"w": torch.tensor([0.0])}
    >>> FedAsync(alpha=0.5, staleness="polynomial", a=1.0).aggregate(
    ...     g, [Reply(7, {"w": torch.tensor([8.0])}, 1, model_version=2)], server_round=3)["w"]
    tensor([2.])
    """

    name = "fedasync"

    def __init__(self, alpha: float = 0.6, staleness: str = "constant", a: float = 0.5, b: int = 4):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f"alpha (FedAsync's mixing weight) must be in (0, 1], got {alpha!r}")
        if staleness not in STALENESS:
            raise ValueError(f"unknown staleness function {staleness!r}; use one of {STALENESS}")
        if not (isinstance(a, (int, float)) and a > 0 and math.isfinite(a)):
            raise ValueError(f"a must be a finite number > 0, got {a!r}")
        if isinstance(b, bool) or not isinstance(b, int) or b < 0:
            raise ValueError(f"b (hinge's free staleness) must be an int >= 0, got {b!r}")
        self.alpha, self.staleness, self.a, self.b = float(alpha), staleness, float(a), b

    def mixing_weight(self, staleness: int) -> float:
        """``a_t = alpha * s(t - tau)`` for one update."""
        return self.alpha * staleness_factor(staleness, self.staleness, self.a, self.b)

    def check(self, global_weights, replies, server_round):
        ordered = super().check(global_weights, replies, server_round)
        for r in ordered:
            tau = r.model_version
            if isinstance(tau, bool) or not isinstance(tau, int) or not 0 <= tau <= server_round:
                raise UpdateError(f"client {r.client_id!r}: FedAsync needs model_version (the server time tau the "
                                  f"client started from) as an int in [0, t={server_round}], got {tau!r}",
                                  client_id=r.client_id)
        return ordered

    def combine(self, global_weights, replies, server_round):
        current = OrderedDict(global_weights)
        for r in replies:
            a_t = self.mixing_weight(server_round - r.model_version)
            current = OrderedDict(
                (n, ((1.0 - a_t) * w.to(torch.float64) + a_t * r.weights[n].to(torch.float64)).to(w.dtype))
                for n, w in current.items())
        return current

    def hyperparameters(self) -> dict:
        return {"alpha": self.alpha, "staleness": self.staleness, "a": self.a, "b": self.b}


class _ServerOptimizer(Strategy):
    """Shared parts of FedAvgM and FedAdam: the pseudo-gradient and per-tensor float64 state."""

    STATE_TENSORS: tuple[str, ...] = ()

    def __init__(self):
        self.rounds = 0
        self.buffers: dict[str, Weights | None] = {k: None for k in self.STATE_TENSORS}

    @staticmethod
    def pseudo_gradient(global_weights, replies) -> Weights:
        """``D = w_avg - w`` in float64 (the direction a server optimizer steps along)."""
        mean = weighted_mean64(global_weights, replies)
        return OrderedDict((n, mean[n] - w.to(torch.float64)) for n, w in global_weights.items())

    def previous(self, key: str, global_weights) -> Weights:
        """State tensor ``key`` (zeros before the first round); an error if it belongs to other weights."""
        buf = self.buffers[key]
        if buf is None:
            return OrderedDict((n, torch.zeros(w.shape, dtype=torch.float64)) for n, w in global_weights.items())
        if list(buf) != list(global_weights) or any(buf[n].shape != w.shape for n, w in global_weights.items()):
            raise ValueError(f"{self.name}'s {key} state belongs to other weights (names or shapes differ); "
                             f"start a new strategy or load the matching state")
        return buf

    def state_dict(self) -> dict:
        return {"rounds": self.rounds, **{k: None if v is None else OrderedDict((n, t.clone()) for n, t in v.items())
                                          for k, v in self.buffers.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        expected = {"rounds", *self.STATE_TENSORS}
        if set(state) != expected:
            raise ValueError(f"{self.name} state must have keys {sorted(expected)}, got {sorted(state)}")
        buffers = {}
        for k in self.STATE_TENSORS:
            v = state[k]
            buffers[k] = None if v is None else OrderedDict((n, torch.as_tensor(t, dtype=torch.float64).clone())
                                                            for n, t in v.items())
        self.rounds, self.buffers = int(state["rounds"]), buffers


class FedAvgM(_ServerOptimizer):
    """FedAvg with server momentum (Hsu et al. 2019), on the pseudo-gradient ``D = w_avg - w``::

        v <- beta v + D;     w <- w + eta v          (v = 0 before round 1)

    ``beta = 0, eta = 1`` is FedAvg. State: the momentum ``v`` (float64) and the number of rounds.
    """

    name = "fedavgm"
    STATE_TENSORS = ("momentum",)

    def __init__(self, server_lr: float = 1.0, momentum: float = 0.9):
        if not (isinstance(server_lr, (int, float)) and server_lr > 0 and math.isfinite(server_lr)):
            raise ValueError(f"server_lr must be a finite number > 0, got {server_lr!r}")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.server_lr, self.momentum = float(server_lr), float(momentum)
        super().__init__()

    def combine(self, global_weights, replies, server_round):
        delta = self.pseudo_gradient(global_weights, replies)
        prev = self.previous("momentum", global_weights)
        v = OrderedDict((n, self.momentum * prev[n] + delta[n]) for n in global_weights)
        new = OrderedDict((n, (w.to(torch.float64) + self.server_lr * v[n]).to(w.dtype))
                          for n, w in global_weights.items())
        self.buffers["momentum"], self.rounds = v, self.rounds + 1  # only after everything succeeded
        return new

    def hyperparameters(self) -> dict:
        return {"server_lr": self.server_lr, "momentum": self.momentum}


class FedAdam(_ServerOptimizer):
    """Adam on the server (Reddi et al. 2021, "Adaptive Federated Optimization", Algorithm 2), on the
    pseudo-gradient ``D = w_avg - w``, element-wise, without bias correction as in the paper::

        m <- b1 m + (1 - b1) D
        v <- b2 v + (1 - b2) D^2
        w <- w + eta m / (sqrt(v) + tau)                 (m = v = 0 before round 1)

    ``tau`` bounds the step where ``v`` is tiny (the paper's "degree of adaptivity"; 1e-3 worked across
    its tasks). ``eta`` is :meth:`step_size`, constant here. Flower 1.41's message-API FedAdam defaults
    to ``eta = 0.1`` and scales it by Adam's bias correction ``sqrt(1 - b2^(r+1)) / (1 - b1^(r+1))``
    (``r = server_round``); a parity check overrides :meth:`step_size` with that. State: ``m``, ``v``
    (float64) and the number of rounds.
    """

    name = "fedadam"
    STATE_TENSORS = ("m", "v")

    def __init__(self, server_lr: float = 1e-2, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        if not (isinstance(server_lr, (int, float)) and server_lr > 0 and math.isfinite(server_lr)):
            raise ValueError(f"server_lr must be a finite number > 0, got {server_lr!r}")
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(beta, (int, float)) and 0 <= beta < 1):
                raise ValueError(f"{label} must be in [0, 1), got {beta!r}")
        if not (isinstance(tau, (int, float)) and tau > 0 and math.isfinite(tau)):
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        self.server_lr, self.beta1, self.beta2, self.tau = float(server_lr), float(beta1), float(beta2), float(tau)
        super().__init__()

    def step_size(self, server_round: int) -> float:
        """The server learning rate ``eta`` used in round ``server_round`` (``server_lr``; override to schedule it)."""
        return self.server_lr

    def combine(self, global_weights, replies, server_round):
        delta = self.pseudo_gradient(global_weights, replies)
        eta = self.step_size(server_round)
        m0, v0 = self.previous("m", global_weights), self.previous("v", global_weights)
        m = OrderedDict((n, self.beta1 * m0[n] + (1 - self.beta1) * delta[n]) for n in global_weights)
        v = OrderedDict((n, self.beta2 * v0[n] + (1 - self.beta2) * delta[n] ** 2) for n in global_weights)
        new = OrderedDict((n, (w.to(torch.float64) + eta * m[n] / (v[n].sqrt() + self.tau)).to(w.dtype))
                          for n, w in global_weights.items())
        self.buffers, self.rounds = {"m": m, "v": v}, self.rounds + 1  # only after everything succeeded
        return new

    def hyperparameters(self) -> dict:
        return {"server_lr": self.server_lr, "beta1": self.beta1, "beta2": self.beta2, "tau": self.tau}


STRATEGIES = {cls.name: cls for cls in (FedAvg, FedProx, FedAsync, FedAvgM, FedAdam)}


def make_strategy(name: str, **hyperparameters) -> Strategy:
    """A strategy by name (``fedavg``, ``fedprox``, ``fedasync``, ``fedavgm``, ``fedadam``), e.g. from a
    config file: ``make_strategy("fedprox", mu=0.01)``."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; use one of {sorted(STRATEGIES)}")
    return STRATEGIES[name](**hyperparameters)
