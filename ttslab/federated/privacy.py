"""Differential privacy for federated TTS: client-level DP-FedAvg, its accountant, and DP-SGD on one client.

**Client-level DP-FedAvg** (McMahan et al. 2018, "Learning differentially private recurrent language
models", with the server adding the noise): in round ``t`` the server clips each reply's update to
L2 norm ``C`` and adds Gaussian noise to the *sum*::

    D_k  = w_k - w^t                                   (client k's update, all shared tensors together)
    D~_k = D_k * min(1, C / ||D_k||)                   (clip: ||D~_k|| <= C)
    D~   = (sum_k D~_k + sigma * C * z) / n,  z ~ N(0, I)     (n replies, unweighted)
    w^{t+1} = inner.aggregate(w^t, [w^t + D~])         (FedAvg: w^t + D~)

Adding or removing one client changes ``sum_k D~_k`` by at most ``C`` (its sensitivity), so the sum
is a Gaussian mechanism with noise multiplier ``sigma``; the division by ``n`` and whatever the inner
strategy does with the noisy mean (FedAvgM's momentum, FedAdam's moments) are post-processing and
cost no privacy. The mean is unweighted: weighting by ``n_k`` would let a client with many examples
move the sum by more than ``C``. With ``n`` replies the noise on the mean has standard deviation
``sigma C / n`` per coordinate, so DP needs many clients per round to be cheap. (Dividing by the
observed ``n`` rather than its expectation ``qN`` follows Flower's server-side fixed clipping; the
guarantee is for the add/remove-one-client neighbourhood with ``n`` treated as public.)

**Accounting.** Each round samples every client independently with probability ``q`` (the sampling
rate), so ``R`` rounds compose ``R`` sampled Gaussian mechanisms. Their Renyi DP of order ``alpha``
(Mironov, Talwar and Zhang 2019, integer ``alpha``)::

    RDP(alpha) = R/(alpha-1) * log sum_{k=0..alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2 sigma^2))

which for ``q = 1`` is ``R alpha / (2 sigma^2)``; and ``(epsilon, delta)``-DP follows from
(Balle et al. 2020, Theorem 21)::

    epsilon = min_alpha  RDP(alpha) + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha - 1)

:class:`PrivacyAccountant` keeps the rounds spent and asks Opacus' ``RDPAccountant`` for epsilon;
:func:`rdp_sampled_gaussian` and :func:`epsilon_from_rdp` are the formulas above, written out so the
tests can check Opacus against them. :func:`noise_for_epsilon` picks ``sigma`` for a target epsilon.
The accountant's state is part of the strategy's :meth:`DPFedAvg.state_dict`, and it refuses to count
a round twice, so a resumed server spends each round's budget exactly once.

**Sample-level DP-SGD on one client** (:func:`dp_sgd_train`): Opacus' ``PrivacyEngine`` clips every
*example's* gradient and adds noise to each batch's sum. It needs per-example gradients, which it
computes with hooks on the layers it knows; ``opacus.validators.ModuleValidator`` replaces the rest
(``nn.GRU`` by ``opacus.layers.DPGRU``, built from ``nn.Linear`` cells; BatchNorm, which mixes
examples, by GroupNorm). :func:`opacus_replacements` says what it replaced.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ttslab.federated.robust import check_max_norm, clip_delta, update_delta
from ttslab.federated.strategies import FedAvg, Reply, Strategy

#: RDP orders: Opacus' defaults (fractional 1.1..10.9, then 12..63) plus a few large ones for tiny epsilon.
ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [80, 128, 256])


# --- the formulas, written out ---------------------------------------------------------------------

def rdp_sampled_gaussian(sample_rate: float, noise_multiplier: float, alpha: int) -> float:
    """RDP of order ``alpha`` (an integer >= 2) of one sampled Gaussian mechanism (Mironov et al. 2019)::

        log( sum_{k=0..alpha} C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)) ) / (alpha - 1)

    summed in log space. For ``q = 1`` only ``k = alpha`` survives: ``alpha / (2 sigma^2)``.

    >>> rdp_sampled_gaussian(1.0, 2.0, 8)          # 8 / (2 * 4)
    1.0
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, np.integer)) or alpha < 2:
        raise ValueError(f"alpha must be an integer >= 2 for the binomial expansion, got {alpha!r}")
    q, sigma = check_sample_rate(sample_rate), check_noise_multiplier(noise_multiplier)
    if sigma == 0:
        return math.inf
    if q == 0:
        return 0.0
    terms = []
    for k in range(alpha + 1):
        if q == 1.0 and k < alpha:
            continue
        log_binom = math.lgamma(alpha + 1) - math.lgamma(k + 1) - math.lgamma(alpha - k + 1)
        log_q = k * math.log(q) + ((alpha - k) * math.log1p(-q) if alpha > k else 0.0)
        terms.append(log_binom + log_q + (k * k - k) / (2 * sigma ** 2))
    top = max(terms)
    return (top + math.log(sum(math.exp(t - top) for t in terms))) / (alpha - 1)


def epsilon_from_rdp(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """``min_alpha rdp(alpha) + log((alpha-1)/alpha) - (log delta + log alpha) / (alpha - 1)``
    (Balle et al. 2020, Theorem 21), clipped at 0.

    >>> round(epsilon_from_rdp([2, 4, 8], [0.5, 1.0, 2.0], 1e-5), 4)
    3.2141
    """
    delta = check_delta(delta)
    best = math.inf
    for a, r in zip(orders, rdp):
        if a <= 1:
            raise ValueError(f"RDP orders must be > 1, got {a}")
        best = min(best, r + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1))
    return max(best, 0.0)


def check_sample_rate(q: float) -> float:
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
        raise ValueError(f"sample_rate q (the chance each client is sampled in a round) must be in [0, 1], got {q!r}")
    return float(q)


def check_noise_multiplier(sigma: float) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"noise_multiplier sigma must be a finite number >= 0 (0: no noise, no privacy), "
                         f"got {sigma!r}")
    return float(sigma)


def check_delta(delta: float) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1) (typically below 1 / number of clients), got {delta!r}")
    return float(delta)


# --- the accountant -------------------------------------------------------------------------------

class PrivacyAccountant:
    """Rounds of the sampled Gaussian mechanism spent so far, and the epsilon they add up to.

    ``step(server_round, noise_multiplier, sample_rate)`` counts one round; a round number not above
    the last one counted is refused (a resumed server that replays a round would otherwise spend its
    budget twice). ``epsilon()`` asks Opacus' ``RDPAccountant`` (orders :data:`ORDERS`).
    ``state_dict()`` / ``load_state_dict()`` hold plain lists and numbers for a checkpoint.

    >>> acc = PrivacyAccountant(delta=1e-5)
    >>> for t in (1, 2, 3): acc.step(t, noise_multiplier=1.0, sample_rate=1.0)
    >>> round(acc.epsilon(), 2), acc.rounds
    (9.01, 3)
    """

    def __init__(self, delta: float = 1e-5):
        self.delta = check_delta(delta)
        self.history: list[tuple[int, float, float]] = []   # (server_round, sigma, q) per counted round

    @property
    def rounds(self) -> int:
        return len(self.history)

    @property
    def last_round(self) -> int | None:
        return self.history[-1][0] if self.history else None

    def step(self, server_round: int, noise_multiplier: float, sample_rate: float) -> None:
        if isinstance(server_round, bool) or not isinstance(server_round, int) or server_round < 0:
            raise ValueError(f"server_round must be an int >= 0, got {server_round!r}")
        sigma, q = check_noise_multiplier(noise_multiplier), check_sample_rate(sample_rate)
        if self.history and server_round <= self.history[-1][0]:
            raise ValueError(f"round {server_round} is already counted (last counted: {self.history[-1][0]}); a "
                             f"resumed server must continue after its checkpoint's round, not replay it")
        self.history.append((server_round, sigma, q))

    def rdp(self, orders: Sequence[float] = ORDERS) -> np.ndarray:
        """The total RDP at each order, from Opacus' ``compute_rdp``."""
        from opacus.accountants.analysis.rdp import compute_rdp

        total = np.zeros(len(orders))
        for _, sigma, q in self.history:
            total += compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=list(orders)) if sigma > 0 else np.inf
        return total

    def epsilon(self, delta: float | None = None) -> float:
        """epsilon(delta) of all rounds counted (0 before the first, ``inf`` if one had no noise)."""
        from opacus.accountants import RDPAccountant

        delta = self.delta if delta is None else check_delta(delta)
        if not self.history:
            return 0.0
        if any(sigma == 0 and q > 0 for _, sigma, q in self.history):
            return math.inf
        acc = RDPAccountant()
        for _, sigma, q in self.history:
            acc.step(noise_multiplier=sigma, sample_rate=q)
        with warnings.catch_warnings():        # "optimal order is the largest alpha" for tiny epsilon
            warnings.simplefilter("ignore")
            return float(acc.get_epsilon(delta=delta, alphas=list(ORDERS)))

    def state_dict(self) -> dict:
        return {"delta": self.delta, "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: Mapping) -> None:
        if set(state) != {"delta", "history"}:
            raise ValueError(f"accountant state must have keys ['delta', 'history'], got {sorted(state)}")
        self.delta = check_delta(float(state["delta"]))
        self.history = [(int(t), float(s), float(q)) for t, s, q in state["history"]]


def epsilon_for(noise_multiplier: float, sample_rate: float, rounds: int, delta: float) -> float:
    """epsilon(delta) after ``rounds`` rounds at noise ``sigma`` and sampling rate ``q`` (Opacus' RDP)."""
    from opacus.accountants import RDPAccountant

    sigma, q, delta = check_noise_multiplier(noise_multiplier), check_sample_rate(sample_rate), check_delta(delta)
    if rounds == 0 or q == 0:
        return 0.0
    if sigma == 0:
        return math.inf
    acc = RDPAccountant()
    acc.history = [(sigma, q, int(rounds))]       # what R calls of acc.step() would leave
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=delta, alphas=list(ORDERS)))


def noise_for_epsilon(target_epsilon: float, delta: float, sample_rate: float, rounds: int,
                      tolerance: float = 1e-3) -> float:
    """The smallest ``sigma`` (to ``tolerance`` relative) whose epsilon after ``rounds`` rounds at rate
    ``q`` is at most ``target_epsilon``: bisection on :func:`epsilon_for`, which falls as sigma grows.
    ``inf`` asks for no privacy: sigma 0.

    >>> s = noise_for_epsilon(4.0, 1e-5, 1.0, 10)
    >>> epsilon_for(s, 1.0, 10, 1e-5) <= 4.0 < epsilon_for(s * 0.99, 1.0, 10, 1e-5)
    True
    """
    if target_epsilon == math.inf:
        return 0.0
    if not (isinstance(target_epsilon, (int, float)) and target_epsilon > 0):
        raise ValueError(f"target_epsilon must be > 0 (or inf for no noise), got {target_epsilon!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    low, high = 0.0, 1.0
    while epsilon_for(high, sample_rate, rounds, delta) > target_epsilon:
        low, high = high, 2 * high
        if high > 1e6:
            raise ValueError(f"epsilon {target_epsilon} is out of reach for {rounds} rounds at q={sample_rate}")
    while high - low > tolerance * high:
        mid = (low + high) / 2
        if epsilon_for(mid, sample_rate, rounds, delta) > target_epsilon:
            low = mid
        else:
            high = mid
    return high


# --- the strategy ------------------------------------------------------------------------------------

def noise_seed(seed: int, server_round: int) -> int:
    """The seed of round ``server_round``'s noise: a function of ``(seed, round)`` only, so a resumed
    server draws the same noise as an uninterrupted one without saving any RNG state."""
    return int(np.random.SeedSequence([int(seed), int(server_round), 0x0D9]).generate_state(1)[0])


def gaussian_like(like: Mapping[str, torch.Tensor], std: float, seed: int) -> OrderedDict:
    """``std * N(0, I)`` in float64 shaped like each tensor of ``like``, drawn tensor by tensor in order."""
    gen = torch.Generator().manual_seed(int(seed))
    return OrderedDict((n, std * torch.randn(t.shape, generator=gen, dtype=torch.float64)) for n, t in like.items())


class DPFedAvg(Strategy):
    """Client-level DP-FedAvg around any strategy (formula in the module docstring)::

        D~ = (sum_k clip(w_k - w^t, C) + sigma C z) / n,      w^{t+1} = inner.aggregate(w^t, [w^t + D~])

    ``max_norm`` is ``C``, ``noise_multiplier`` is ``sigma`` (0: clipping only, no privacy),
    ``sample_rate`` is ``q`` for the accountant (clients sampled per round / all clients; the caller's
    sampling must match it), ``delta`` the accountant's delta, ``seed`` the noise's seed (round ``t``
    draws from :func:`noise_seed` ``(seed, t)``). ``inner`` (default FedAvg) sees one reply, the
    privatised mean, as ``client_id="dp-mean"``: FedAvgM / FedAdam then step on the noisy mean.
    After a round, :attr:`last_norms` holds each client's norm before clipping, :attr:`last_noise`
    the noise added to the sum, and :attr:`accountant` has counted it (only after everything succeeded).

    >>> g = {"w": torch.zeros(2)}
    >>> big = Reply(1, {"w": torch.tensor([300., 400.])}, 1); small = Reply(2, {"w": torch.tensor([0.3, 0.4])}, 1)
    >>> DPFedAvg(max_norm=1.0, noise_multiplier=0.0).aggregate(g, [big, small], server_round=1)["w"]
    tensor([0.4500, 0.6000])

    (the huge update is clipped to ``[0.6, 0.8]``, the mean of the two is ``[0.45, 0.6]``).
    """

    name = "dpfedavg"

    def __init__(self, max_norm: float = 1.0, noise_multiplier: float = 1.0, sample_rate: float = 1.0,
                 delta: float = 1e-5, inner: Strategy | None = None, seed: int = 0):
        self.max_norm = check_max_norm(max_norm)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier)
        self.sample_rate = check_sample_rate(sample_rate)
        if inner is not None and not isinstance(inner, Strategy):
            raise TypeError(f"inner must be a ttslab.federated Strategy, got {type(inner).__name__}")
        self.inner = inner if inner is not None else FedAvg()
        self.seed = int(seed)
        self.accountant = PrivacyAccountant(delta)
        self.last_norms: dict = {}
        self.last_noise: OrderedDict | None = None

    def noisy_mean_update(self, global_weights, replies, server_round) -> tuple[OrderedDict, dict, OrderedDict]:
        """``(D~, norms before clipping, noise added to the sum)`` for validated, sorted replies."""
        total = OrderedDict((n, torch.zeros(g.shape, dtype=torch.float64)) for n, g in global_weights.items())
        norms = {}
        for r in replies:
            clipped, norms[r.client_id] = clip_delta(update_delta(global_weights, r.weights), self.max_norm)
            for n in total:
                total[n] += clipped[n]
        noise = gaussian_like(global_weights, self.noise_multiplier * self.max_norm,
                              noise_seed(self.seed, server_round))
        mean = OrderedDict((n, (total[n] + noise[n]) / len(replies)) for n in total)
        return mean, norms, noise

    def combine(self, global_weights, replies, server_round):
        mean, norms, noise = self.noisy_mean_update(global_weights, replies, server_round)
        private = OrderedDict((n, (g.to(torch.float64) + mean[n]).to(g.dtype)) for n, g in global_weights.items())
        new = self.inner.aggregate(global_weights, [Reply("dp-mean", private, 1)], server_round)
        if self.noise_multiplier > 0 or self.accountant.history:
            self.accountant.step(server_round, self.noise_multiplier, self.sample_rate)
        self.last_norms, self.last_noise = norms, noise
        return new

    def epsilon(self, delta: float | None = None) -> float:
        """epsilon spent so far (``inf`` once a round ran without noise)."""
        if self.noise_multiplier == 0:
            return math.inf
        return self.accountant.epsilon(delta)

    def client_options(self) -> dict:
        return self.inner.client_options()

    def hyperparameters(self) -> dict:
        return {"max_norm": self.max_norm, "noise_multiplier": self.noise_multiplier,
                "sample_rate": self.sample_rate, "delta": self.accountant.delta, "seed": self.seed,
                "inner": repr(self.inner)}

    def state_dict(self) -> dict:
        return {"accountant": self.accountant.state_dict(), "inner": self.inner.state_dict()}

    def load_state_dict(self, state: Mapping) -> None:
        if set(state) != {"accountant", "inner"}:
            raise ValueError(f"dpfedavg state must have keys ['accountant', 'inner'], got {sorted(state)}")
        self.inner.load_state_dict(state["inner"])
        self.accountant.load_state_dict(state["accountant"])


# --- sample-level DP-SGD on one client (Opacus) ----------------------------------------------------

def opacus_replacements(model: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """``(fixed model, ["name: Old -> New", ...])``: ``ModuleValidator.fix`` on a copy of ``model``,
    and the layers it replaced (Opacus cannot compute per-example gradients of those). The weights of
    the replaced layers are copied where Opacus' replacement keeps the same parameters (DPGRU does)."""
    import copy

    from opacus.validators import ModuleValidator

    before = {n: type(m).__name__ for n, m in model.named_modules()}
    fixed = ModuleValidator.fix(copy.deepcopy(model))
    after = {n: type(m).__name__ for n, m in fixed.named_modules()}
    changed = [f"{n}: {before[n]} -> {after[n]}" for n in before if n in after and before[n] != after[n]
               and not any(n.startswith(p + ".") for p in before if p and before.get(p) != after.get(p))]
    errors = ModuleValidator.validate(fixed, strict=False)
    if errors:
        raise ValueError(f"Opacus still cannot train this model after ModuleValidator.fix: {errors[:2]}")
    return fixed, changed


def dp_sgd_train(model: torch.nn.Module, loss_fn: Callable, items: Sequence, collate: Callable, *,
                 noise_multiplier: float, max_grad_norm: float, batch_size: int, steps: int, lr: float = 1e-3,
                 delta: float = 1e-5, seed: int = 0) -> dict:
    """Sample-level DP-SGD with Opacus' ``PrivacyEngine`` on one client's ``items``.

    Poisson sampling at rate ``q = batch_size / len(items)``, per-example gradients clipped to
    ``max_grad_norm``, Gaussian noise ``sigma * max_grad_norm`` on each batch's sum, Adam at ``lr``,
    ``steps`` steps; ``loss_fn(model, batch)`` must average over the batch (Opacus' ``loss_reduction="mean"``).
    Returns ``{"model": the trained (fixed) model, unwrapped, "replaced": layers swapped by
    :func:`opacus_replacements`, "epsilon": epsilon(delta) from Opacus' RDP accountant, "losses": [...]}``.
    An empty Poisson batch (possible at small q) is skipped: no step is taken and Opacus counts none.
    """
    from opacus import PrivacyEngine

    if not items:
        raise ValueError("dp_sgd_train needs at least one item")
    fixed, replaced = opacus_replacements(model)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(list(items), batch_size=batch_size, collate_fn=collate,
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(fixed.parameters(), lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # Opacus warns about secure_mode's RNG; reproducibility wins here
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        private, optimizer, loader = engine.make_private(module=fixed.train(), optimizer=optimizer,
                                                         data_loader=loader, noise_multiplier=noise_multiplier,
                                                         max_grad_norm=max_grad_norm, poisson_sampling=True)
    losses = []
    done = 0
    while done < steps:
        for batch in loader:
            if done >= steps:
                break
            done += 1
            optimizer.zero_grad(set_to_none=True)
            if not isinstance(batch, dict):      # Opacus' stand-in for an empty Poisson batch
                continue
            loss, _ = loss_fn(private, batch)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epsilon = float(engine.get_epsilon(delta))
    return {"model": private._module, "replaced": replaced, "epsilon": epsilon, "losses": losses,
            "sample_rate": batch_size / len(items)}
