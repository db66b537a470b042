"""Robust aggregation: rounds that survive broken and malicious clients.

Two kinds of bad reply, two defences:

* **Malformed** (NaN/inf, wrong names, shape or dtype, ``num_examples <= 0``, a client id twice):
  :func:`screen_replies` sorts the replies into accepted and :class:`Rejection` s (client id and
  reason), logged on the ``"ttslab.federated"`` logger. :class:`SkipMalformed` wraps any strategy so
  that a round aggregates the accepted replies (FedAvg's weights ``n_k / sum n_k`` renormalised over
  them) and fails only when none is left. Without the wrapper, :meth:`Strategy.aggregate` stays strict:
  one bad reply fails the whole round.
* **Malicious** (well-formed but chosen to pull the model away, :func:`scale_attack`,
  :func:`sign_flip_attack`, :func:`random_attack`): a mean follows any single reply as far as it is
  pushed, so these aggregators bound what ``f`` attackers can do:

=============  ===================================================================================
FedMedian      ``w[i] = median_k w_k[i]`` per coordinate, unweighted              (as Flower's FedMedian)
FedTrimmedAvg  per coordinate, sort the ``n`` values, drop ``b = int(beta n)`` at each end, average
               the ``n - 2b`` left, unweighted                              (as Flower's FedTrimmedAvg)
Krum           ``score_k = sum of the n - f - 2 smallest ||w_k - w_j||^2, j != k``; keep the ``m``
               lowest scores and average them (``m = 1``: Krum, the single best reply; ``m > 1``:
               multi-Krum); needs ``n > 2f + 2``                          (Blanchard et al. 2017)
ClippedFedAvg  ``w = w_g + sum_k n_k clip(w_k - w_g, C) / sum_k n_k``,
               ``clip(D, C) = D min(1, C / ||D||)``; no client moves ``w`` further than ``C``
=============  ===================================================================================

As everywhere in :mod:`ttslab.federated`, replies are validated and sorted by client id before
:meth:`combine`, and all arithmetic is float64, cast back to each tensor's dtype at the end, so the
result depends on the set of replies only, bit for bit. Median and trimmed mean work on values sorted
per coordinate, which no reply order can change.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from ttslab.federated.strategies import FedAvg, Reply, Strategy, client_sort_key, weighted_mean64  # noqa: F401
from ttslab.federated.weights import UpdateError, Weights, check_weights, validate_update

log = logging.getLogger("ttslab.federated")


# --- malformed replies: screened out, logged, the round goes on ----------------------------------

@dataclass(frozen=True)
class Rejection:
    """A reply left out of a round: who sent it (``client_id``), why (``reason``), which tensor (or None)."""

    client_id: object
    reason: str
    name: str | None = None


class AllRepliesRejected(UpdateError):
    """No reply of the round could be aggregated; ``rejected`` lists each one and why."""

    def __init__(self, message: str, rejected: list[Rejection]):
        super().__init__(message)
        self.rejected = rejected


def screen_replies(global_weights: Mapping[str, torch.Tensor], replies: Sequence[Reply],
                   server_round: int | None = None) -> tuple[list[Reply], list[Rejection]]:
    """``(accepted, rejected)``: the replies that pass :func:`validate_update` and carry an int
    ``num_examples >= 1``, sorted by client id, and a :class:`Rejection` for every other one (also in
    client-id order), each logged as a warning on the ``"ttslab.federated"`` logger.

    A client id that appears more than once is rejected in all its copies: keeping "the first" would
    make the round depend on the order of arrival. The global weights must themselves be valid
    (:func:`check_weights`), else ``ValueError``: that is the server's fault, not a client's.

    >>> g = {"w": torch.zeros(2)}
    >>> ok, bad = screen_replies(g, [Reply(2, {"w": torch.tensor([1., float("nan")])}, 1),
    ...                              Reply(1, {"w": torch.ones(2)}, 3)])
    >>> [r.client_id for r in ok], [(b.client_id, b.name) for b in bad]
    ([1], [(2, 'w')])
    """
    check_weights(global_weights)
    replies = list(replies)
    counts: dict = {}
    for r in replies:
        cid = getattr(r, "client_id", None)
        counts[cid] = counts.get(cid, 0) + 1
    accepted, rejected = [], []
    for r in replies:
        cid = getattr(r, "client_id", None)
        if not isinstance(r, Reply):
            rejected.append(Rejection(cid, f"not a ttslab.federated.Reply but a {type(r).__name__}"))
        elif counts[cid] > 1:
            rejected.append(Rejection(cid, f"client {cid!r} replied {counts[cid]} times; all its replies are "
                                           f"left out (which one counts would depend on arrival order)"))
        elif isinstance(r.num_examples, bool) or not isinstance(r.num_examples, int) or r.num_examples < 1:
            rejected.append(Rejection(cid, f"client {cid!r} reported num_examples={r.num_examples!r}, "
                                           f"expected an int >= 1"))
        else:
            try:
                validate_update(global_weights, r.weights, client_id=cid)
            except UpdateError as err:
                rejected.append(Rejection(cid, str(err), err.name))
            else:
                accepted.append(r)
    rejected.sort(key=lambda b: client_sort_key(b.client_id))
    where = "" if server_round is None else f"round {server_round}: "
    for b in rejected:
        log.warning("%srejected the reply of client %r: %s", where, b.client_id, b.reason)
    return sorted(accepted, key=lambda r: client_sort_key(r.client_id)), rejected


class SkipMalformed(Strategy):
    """``strategy`` with tolerant checking: malformed replies are dropped (:func:`screen_replies`,
    then ``strategy``'s own per-reply checks such as FedAsync's ``model_version``), logged, and kept in
    :attr:`rejected` for the round; the accepted ones are aggregated by ``strategy`` as if they were
    the only replies (FedAvg divides by the accepted ``sum n_k``). Only when none is accepted does the
    round fail, with :class:`AllRepliesRejected` listing every reason; the weights and ``strategy``'s
    state are then untouched.

    >>> g = {"w": torch.zeros(1)}
    >>> SkipMalformed(FedAvg()).aggregate(g, [Reply(1, {"w": torch.tensor([2.])}, 1),
    ...                                       Reply(2, {"w": torch.tensor([float("inf")])}, 9)], 1)["w"]
    tensor([2.])
    """

    def __init__(self, strategy: Strategy):
        if not isinstance(strategy, Strategy):
            raise TypeError(f"SkipMalformed wraps a ttslab.federated Strategy, got {type(strategy).__name__}")
        self.strategy = strategy
        self.name = f"skipmalformed({strategy.name})"
        self.rejected: list[Rejection] = []

    def check(self, global_weights, replies, server_round):
        accepted, rejected = screen_replies(global_weights, replies, server_round)
        kept = []
        for r in accepted:  # the wrapped strategy's own conditions, one reply at a time
            try:
                self.strategy.check(global_weights, [r], server_round)
            except UpdateError as err:
                rejected.append(Rejection(r.client_id, str(err), err.name))
                log.warning("round %s: rejected the reply of client %r: %s", server_round, r.client_id, err)
            else:
                kept.append(r)
        rejected.sort(key=lambda b: client_sort_key(b.client_id))
        self.rejected = rejected
        if not kept:
            reasons = "; ".join(f"client {b.client_id!r}: {b.reason}" for b in rejected) or "no replies at all"
            raise AllRepliesRejected(f"round {server_round}: none of the {len(rejected)} replies can be aggregated "
                                     f"({reasons}); the global weights stay as they are", rejected)
        return self.strategy.check(global_weights, kept, server_round)

    def combine(self, global_weights, replies, server_round):
        return self.strategy.combine(global_weights, replies, server_round)

    def client_options(self) -> dict:
        return self.strategy.client_options()

    def hyperparameters(self) -> dict:
        return self.strategy.hyperparameters()

    def state_dict(self) -> dict:
        return self.strategy.state_dict()

    def load_state_dict(self, state: Mapping) -> None:
        self.strategy.load_state_dict(state)

    def __repr__(self) -> str:
        return f"SkipMalformed({self.strategy!r})"


# --- coordinate-wise statistics ------------------------------------------------------------------

def _stack64(replies: Sequence[Reply], name: str) -> torch.Tensor:
    return torch.stack([r.weights[name].to(torch.float64) for r in replies])


def _cast(values: Mapping[str, torch.Tensor], like: Mapping[str, torch.Tensor]) -> Weights:
    return OrderedDict((n, values[n].to(like[n].dtype)) for n in like)


def coordinate_median(values: torch.Tensor) -> torch.Tensor:
    """Median over dim 0 of ``values`` (``n`` stacked tensors): the middle sorted value for odd ``n``,
    the mean of the two middle ones for even ``n`` (as ``np.median``; ``torch.median`` would return the
    lower one).

    >>> coordinate_median(torch.tensor([[1., 9.], [4., 0.], [2., 5.], [3., 7.]], dtype=torch.float64))
    tensor([2.5000, 6.0000], dtype=torch.float64)
    """
    n = values.shape[0]
    if n == 0:
        raise ValueError("the median of zero values is undefined")
    s = torch.sort(values, dim=0).values
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def trim_count(n: int, beta: float) -> int:
    """How many values a trimmed mean drops at *each* end: ``b = int(beta * n)`` (rounded down, as
    Flower's FedTrimmedAvg and ``scipy.stats.trim_mean``); ``beta < 0.5`` keeps ``n - 2b >= 1``.
    The product is a float: ``0.29 * 100`` is ``28.999999999999996``, so 28 values are trimmed, as in Flower.

    >>> [trim_count(n, 0.2) for n in (4, 5, 9, 10)], trim_count(100, 0.29)
    ([0, 1, 1, 2], 28)
    """
    return int(check_beta(beta) * n)


def check_beta(beta: float) -> float:
    """The trimmed fraction ``beta`` as a float; ``ValueError`` unless ``0 <= beta < 0.5``."""
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 0.5:
        raise ValueError(f"beta (the fraction trimmed at each end) must be in [0, 0.5), got {beta!r}")
    return float(beta)


def coordinate_trimmed_mean(values: torch.Tensor, beta: float) -> torch.Tensor:
    """Trimmed mean over dim 0: per coordinate, sort the ``n`` values, drop ``b = trim_count(n, beta)``
    at each end and average the ``n - 2b`` left (summed in ascending order).

    >>> coordinate_trimmed_mean(torch.tensor([[1.], [100.], [2.], [3.], [-50.]], dtype=torch.float64), 0.2)
    tensor([2.], dtype=torch.float64)
    """
    n = values.shape[0]
    if n == 0:
        raise ValueError("the trimmed mean of zero values is undefined")
    b = trim_count(n, beta)
    return torch.sort(values, dim=0).values[b:n - b].sum(0) / (n - 2 * b)


class FedMedian(Strategy):
    """Coordinate-wise median (Yin et al. 2018), **unweighted** as Flower's FedMedian: every accepted
    reply counts once whatever its ``num_examples``. For even ``n`` the mean of the two middle values
    (:func:`coordinate_median`). With ``f < n / 2`` attackers every coordinate stays within the range
    of the honest values."""

    name = "fedmedian"

    def combine(self, global_weights, replies, server_round):
        return _cast(OrderedDict((n, coordinate_median(_stack64(replies, n))) for n in global_weights),
                     global_weights)


class FedTrimmedAvg(Strategy):
    """Coordinate-wise trimmed mean (Yin et al. 2018), **unweighted** as Flower's FedTrimmedAvg: per
    coordinate drop the ``b = int(beta n)`` smallest and ``b`` largest of the ``n`` values and average
    the rest (:func:`coordinate_trimmed_mean`). It tolerates ``f <= b`` attackers: each coordinate
    then stays within the range of the honest values. ``beta = 0`` is the plain unweighted mean."""

    name = "fedtrimmedavg"

    def __init__(self, beta: float = 0.2):
        self.beta = check_beta(beta)

    def combine(self, global_weights, replies, server_round):
        return _cast(OrderedDict((n, coordinate_trimmed_mean(_stack64(replies, n), self.beta))
                                 for n in global_weights), global_weights)

    def hyperparameters(self) -> dict:
        return {"beta": self.beta}


# --- Krum ---------------------------------------------------------------------------------------

def squared_distances(replies: Sequence[Reply]) -> torch.Tensor:
    """``D[i, j] = ||w_i - w_j||^2`` over all tensors together, float64, for the replies in the given
    order (an ``n x n`` symmetric matrix, zero diagonal), each entry computed directly from the
    differences (no ``|a|^2 + |b|^2 - 2ab`` cancellation)."""
    n = len(replies)
    d = torch.zeros(n, n, dtype=torch.float64)
    names = list(replies[0].weights) if n else []
    for i in range(n):
        for j in range(i + 1, n):
            total = 0.0
            for name in names:
                total += float(((replies[i].weights[name].to(torch.float64)
                                 - replies[j].weights[name].to(torch.float64)) ** 2).sum())
            d[i, j] = d[j, i] = total
    return d


def krum_scores(replies: Sequence[Reply], num_malicious: int) -> list[float]:
    """Krum's score of each reply (Blanchard et al. 2017): the sum of its squared distances to its
    ``n - f - 2`` nearest *other* replies (``f = num_malicious``); needs ``n > 2f + 2``. The distances
    of a reply are summed from the smallest up.

    >>> pts = [Reply(k, {"w": torch.tensor([x])}, 1) for k, x in enumerate([0., 1., 3., 100.])]
    >>> krum_scores(pts, 0)        # n - f - 2 = 2 neighbours: 0 -> 1 + 9, 1 -> 1 + 4, 3 -> 4 + 9, ...
    [10.0, 5.0, 13.0, 19210.0]
    """
    f = check_num_malicious(num_malicious)
    n = len(replies)
    if n <= 2 * f + 2:
        raise ValueError(f"Krum with f={f} malicious clients needs n > 2f + 2 = {2 * f + 2} replies, got {n}: "
                         f"sample more clients or assume fewer attackers")
    d = squared_distances(replies)
    k = n - f - 2
    scores = []
    for i in range(n):
        others = torch.sort(torch.cat([d[i, :i], d[i, i + 1:]])).values
        scores.append(float(others[:k].sum()))
    return scores


def check_num_malicious(f: int) -> int:
    if isinstance(f, bool) or not isinstance(f, int) or f < 0:
        raise ValueError(f"num_malicious (f, the attackers Krum must tolerate) must be an int >= 0, got {f!r}")
    return f


class Krum(Strategy):
    """Krum and multi-Krum (Blanchard et al. 2017), for ``f = num_malicious`` attackers among ``n``
    replies, ``n > 2f + 2``::

        score_k = sum of the n - f - 2 smallest ||w_k - w_j||^2  (j != k)      (krum_scores)
        S = the m replies with the lowest scores (ties: the lower client id first)
        w = mean of w_k over S

    ``m = num_selected = 1`` is Krum (the best reply itself); ``m > 1`` is multi-Krum, its mean
    unweighted as in the paper, or weighted by ``n_k`` with ``weighted=True`` (what Flower's Krum does
    with ``num_clients_to_keep > 0``). Distances of weights equal distances of updates ``w_k - w_g``.
    After each round :attr:`last_scores` (client id -> score) and :attr:`last_selected` (client ids)
    say what Krum saw and kept.
    """

    name = "krum"

    def __init__(self, num_malicious: int = 0, num_selected: int = 1, weighted: bool = False):
        self.num_malicious = check_num_malicious(num_malicious)
        if isinstance(num_selected, bool) or not isinstance(num_selected, int) or num_selected < 1:
            raise ValueError(f"num_selected (m; 1 is Krum) must be an int >= 1, got {num_selected!r}")
        self.num_selected, self.weighted = num_selected, bool(weighted)
        self.last_scores: dict = {}
        self.last_selected: list = []

    def combine(self, global_weights, replies, server_round):
        if self.num_selected > len(replies):
            raise ValueError(f"multi-Krum keeps m={self.num_selected} replies but round {server_round} has only "
                             f"{len(replies)}")
        scores = krum_scores(replies, self.num_malicious)
        best = sorted(range(len(replies)), key=lambda i: (scores[i], i))[:self.num_selected]
        chosen = [replies[i] for i in sorted(best)]            # client-id order for the sum
        if self.weighted:
            mean = weighted_mean64(global_weights, chosen)
        else:
            mean = OrderedDict((n, _stack64(chosen, n).sum(0) / len(chosen)) for n in global_weights)
        self.last_scores = {r.client_id: s for r, s in zip(replies, scores)}
        self.last_selected = [r.client_id for r in chosen]
        return _cast(mean, global_weights)

    def hyperparameters(self) -> dict:
        return {"num_malicious": self.num_malicious, "num_selected": self.num_selected, "weighted": self.weighted}


# --- norm clipping --------------------------------------------------------------------------------

def check_max_norm(max_norm: float) -> float:
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not (
            math.isfinite(max_norm) and max_norm > 0):
        raise ValueError(f"max_norm (the clipping bound C) must be a finite number > 0, got {max_norm!r}")
    return float(max_norm)


def update_delta(global_weights: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]) -> Weights:
    """``w_k - w_g`` per tensor, in float64."""
    return OrderedDict((n, weights[n].to(torch.float64) - g.to(torch.float64)) for n, g in global_weights.items())


def global_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """``sqrt(sum over all tensors and entries of x^2)``, in float64 (the L2 norm of everything
    flattened into one vector)."""
    return math.sqrt(sum(float((t.to(torch.float64) ** 2).sum()) for t in tensors.values()))


def clip_delta(delta: Mapping[str, torch.Tensor], max_norm: float) -> tuple[Weights, float]:
    """``(D min(1, C / ||D||), ||D||)``: ``delta`` scaled down as a whole to L2 norm at most
    ``C = max_norm`` (unchanged when already inside; the direction is kept), in float64, and its norm
    before clipping. The clipping step of client-level DP-FedAvg (McMahan et al. 2018) and of
    :class:`ClippedFedAvg`.

    >>> clipped, norm = clip_delta({"a": torch.tensor([3.]), "b": torch.tensor([4.])}, 1.0)
    >>> norm, round(clipped["a"].item(), 12), round(clipped["b"].item(), 12)
    (5.0, 0.6, 0.8)
    """
    c = check_max_norm(max_norm)
    norm = global_norm(delta)
    factor = min(1.0, c / norm) if norm > 0 else 1.0
    return OrderedDict((n, t.to(torch.float64) * factor) for n, t in delta.items()), norm


def clip_update(global_weights: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor],
                max_norm: float) -> Weights:
    """``w_g + clip(w_k - w_g, C)`` (:func:`clip_delta`), cast to each tensor's dtype."""
    clipped, _ = clip_delta(update_delta(global_weights, weights), max_norm)
    return OrderedDict((n, (g.to(torch.float64) + clipped[n]).to(g.dtype)) for n, g in global_weights.items())


class ClippedFedAvg(Strategy):
    """FedAvg of norm-clipped updates::

        w = w_g + sum_k n_k clip(w_k - w_g, C) / sum_k n_k,     clip(D, C) = D min(1, C / ||D||)

    ``||w - w_g|| <= C``: a weighted mean of vectors of norm ``<= C`` has norm ``<= C``, so a scaled
    update moves the model no further than an honest one could (its *direction* still counts; a
    sign flip of norm ``<= C`` is not stopped). :attr:`last_norms` holds each client's norm before
    clipping. Clipping without noise; add Gaussian noise to the sum for DP-FedAvg.
    """

    name = "clippedfedavg"

    def __init__(self, max_norm: float = 1.0):
        self.max_norm = check_max_norm(max_norm)
        self.last_norms: dict = {}

    def combine(self, global_weights, replies, server_round):
        total = sum(int(r.num_examples) for r in replies)
        acc = OrderedDict((n, torch.zeros(g.shape, dtype=torch.float64)) for n, g in global_weights.items())
        norms = {}
        for r in replies:
            clipped, norms[r.client_id] = clip_delta(update_delta(global_weights, r.weights), self.max_norm)
            for n in acc:
                acc[n] += clipped[n] * int(r.num_examples)
        self.last_norms = norms
        return OrderedDict((n, (g.to(torch.float64) + acc[n] / total).to(g.dtype)) for n, g in global_weights.items())

    def hyperparameters(self) -> dict:
        return {"max_norm": self.max_norm}


# --- attacks, for tests and experiments -------------------------------------------------------------

def _attacked(global_weights, reply: Reply, delta_fn, num_examples) -> Reply:
    if not isinstance(reply, Reply):
        raise TypeError(f"attacks turn a ttslab.federated.Reply into another, got {type(reply).__name__}")
    validate_update(global_weights, reply.weights, client_id=reply.client_id)
    delta = update_delta(global_weights, reply.weights)
    new = OrderedDict((n, (g.to(torch.float64) + delta_fn(n, delta[n])).to(g.dtype))
                      for n, g in global_weights.items())
    return Reply(reply.client_id, new, reply.num_examples if num_examples is None else num_examples,
                 dict(reply.metrics), reply.model_version)


def scale_attack(global_weights: Mapping[str, torch.Tensor], reply: Reply, factor: float = 100.0,
                 num_examples: int | None = None) -> Reply:
    """The reply with its update scaled: ``w_g + factor (w_k - w_g)`` (model replacement / boosting);
    ``num_examples`` lets the attacker also lie about its data size. A new :class:`Reply`.

    >>> g = {"w": torch.tensor([1.])}
    >>> scale_attack(g, Reply(3, {"w": torch.tensor([2.])}, 5), 10.0).weights["w"]
    tensor([11.])
    """
    return _attacked(global_weights, reply, lambda n, d: factor * d, num_examples)


def sign_flip_attack(global_weights: Mapping[str, torch.Tensor], reply: Reply, factor: float = 1.0,
                     num_examples: int | None = None) -> Reply:
    """The reply with its update reversed: ``w_g - factor (w_k - w_g)`` (gradient ascent).

    >>> g = {"w": torch.tensor([1.])}
    >>> sign_flip_attack(g, Reply(3, {"w": torch.tensor([2.])}, 5), 2.0).weights["w"]
    tensor([-1.])
    """
    return _attacked(global_weights, reply, lambda n, d: -factor * d, num_examples)


def random_attack(global_weights: Mapping[str, torch.Tensor], reply: Reply, std: float = 1.0, seed: int = 0,
                  num_examples: int | None = None) -> Reply:
    """The reply replaced by noise around the global weights: ``w_g + std * N(0, I)``, drawn in float64
    from ``torch.Generator().manual_seed(seed)`` tensor by tensor in the global order (deterministic)."""
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not (math.isfinite(std) and std >= 0):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    gen = torch.Generator().manual_seed(int(seed))
    return _attacked(global_weights, reply,
                     lambda n, d: std * torch.randn(d.shape, generator=gen, dtype=torch.float64), num_examples)
