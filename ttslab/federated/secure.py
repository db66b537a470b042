"""Secure aggregation, simplified from Bonawitz et al. 2017: the server learns the sum of the clients'
updates and nothing else about any one of them, and clients that drop out after committing do not
break the round.

Three pieces, each written out here (numpy and Python integers only):

1. **Fixed point in the ring** ``Z_{2^k}`` (:class:`FixedPoint`, ``k`` = 32 or 64). A float ``x``
   becomes ``encode(x) = round(x * 2^f) mod 2^k`` (two's complement; numpy's ``uint32``/``uint64``
   wrap around by themselves), and a ring element ``u`` decodes to ``(u - 2^k [u >= 2^(k-1)]) / 2^f``.
   The sum of encodings decodes to the sum of the floats as long as ``|sum| < 2^(k-f-1)``; each term
   is rounded by at most half the quantization step ``2^-f``, so ``n`` clients are off by at most
   ``n * 2^-f / 2``. A client whose value could make the worst-case sum of ``n`` clients wrap around,
   ``|round(x 2^f)| > (2^(k-1) - 1) // n``, is refused with an ``OverflowError`` before it sends.
2. **Pairwise additive masks.** Clients are numbered ``0..n-1`` in client-id order. Every pair
   ``i < j`` shares a seed ``s_ij``; client ``i`` sends::

       y_i = x_i + sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ji)      (mod 2^k)

   so that in ``sum_i y_i`` every mask appears once with ``+`` and once with ``-``: the sum is
   ``sum_i x_i`` exactly. One ``y_i`` alone is ``x_i`` plus a uniform ring vector, itself uniform
   over the ring whatever ``x_i`` is (a one-time pad): the server sees only masked vectors.
3. **Dropout recovery with Shamir secret sharing** (threshold ``t`` of ``n``, over the prime field
   ``GF(p)``, ``p = 2^61 - 1``). At setup each client ``i`` shares each of its seeds ``s_ij`` with a
   random polynomial ``q(x) = s_ij + a_1 x + ... + a_{t-1} x^{t-1}`` and hands ``q(m + 1)`` to client
   ``m``. If client ``j`` commits but its ``y_j`` never arrives, the survivors' ``y_i`` still carry
   the masks paired with ``j``. The server asks the survivors for their shares of ``j``'s seeds,
   rebuilds each seed by Lagrange interpolation at 0 (:func:`lagrange_at_zero`)::

       q(0) = sum_m y_m prod_{l != m} x_l / (x_l - x_m)     (mod p)

   and removes the dangling masks: ``- PRG(s_ij)`` for survivor ``i < j``, ``+ PRG(s_ji)`` for
   ``i > j``. Any ``t`` shares determine ``q``; through ``t - 1`` shares and any candidate secret
   passes exactly one polynomial of degree ``< t``, so ``t - 1`` shares fit every secret equally
   well and reveal nothing. Fewer than ``t`` survivors: :class:`SecureAggregationError`, and nothing is summed.

For FedAvg each client sends the masked vector ``(n_k w_k, n_k)``: the server learns
``sum_k n_k w_k`` and ``sum_k n_k`` and divides (:func:`secure_fedavg`, :class:`SecureFedAvg`),
within ``n 2^-f / 2 / sum_k n_k`` of :class:`~ttslab.federated.FedAvg`.

What this teaching version leaves out, and a real deployment adds:

* **key agreement**: here ``s_ij`` is derived from a round seed and the pair (:func:`pair_seed`), a
  stand-in: whoever knows the round seed knows every mask. Bonawitz et al. have each client publish
  a Diffie-Hellman public key; ``s_ij = KA(sk_i, pk_j)`` (authenticated, so the server cannot
  impersonate a client), and a client secret-shares its DH secret key rather than each seed;
* **a cryptographic PRG**: numpy's PCG64 is a statistical generator, predictable from its output;
  real masks come from AES-CTR or ChaCha20 keyed with ``s_ij``;
* **double masking**: here a client whose ``y_j`` is merely late, after the server has rebuilt its
  seeds, is fully unmasked. Bonawitz et al. add a self-mask ``PRG(b_j)`` to every ``y_j`` and
  share ``b_j`` too; survivors reveal ``b`` shares of survivors and seed shares of dropouts, never
  both for one client, so a late client stays hidden;
* **signatures and consistency checks** against a malicious server that tells clients different
  survivor sets, and encrypted, authenticated channels for the shares (here they travel in clear).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from ttslab.federated.strategies import FedAvg, Reply, client_sort_key
from ttslab.federated.weights import UpdateError, Weights, check_weights, num_bytes, validate_update

PRIME = 2 ** 61 - 1  #: the Shamir field GF(p); seeds and shares are integers in [0, p)
SHARE_BYTES = 8  #: one field element on the wire (61 bits in 8 bytes)


class SecureAggregationError(RuntimeError):
    """The round cannot be completed (fewer than ``threshold`` survivors); nothing was aggregated."""


# ----------------------------------------------------------------------------- fixed point in Z_{2^k}


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point numbers in the ring ``Z_{2^bits}`` with ``frac_bits`` fractional bits.

    >>> fp = FixedPoint(bits=32, frac_bits=8)
    >>> fp.encode(np.array([1.5, -0.25]))             # 1.5 * 256 = 384; -0.25 * 256 = -64 -> 2^32 - 64
    array([       384, 4294967232], dtype=uint32)
    >>> fp.decode(fp.encode(np.array([1.5, -0.25])) + fp.encode(np.array([2.0, -1.0])))
    array([ 3.5 , -1.25])
    """

    bits: int = 64
    frac_bits: int = 24

    def __post_init__(self):
        if self.bits not in (32, 64):
            raise ValueError(f"bits must be 32 or 64 (numpy uint32/uint64 wrap around mod 2^bits), got {self.bits!r}")
        if isinstance(self.frac_bits, bool) or not isinstance(self.frac_bits, int) \
                or not 0 <= self.frac_bits <= self.bits - 2:
            raise ValueError(f"frac_bits must be an int in [0, {self.bits - 2}], got {self.frac_bits!r}")

    @property
    def dtype(self):
        return np.dtype(np.uint32 if self.bits == 32 else np.uint64)

    @property
    def step(self) -> float:
        """The quantization step ``2^-f`` (each encoding is within ``step / 2`` of the float)."""
        return 2.0 ** -self.frac_bits

    @property
    def limit(self) -> float:
        """Sums must stay inside ``|sum| < 2^(k-f-1)`` to decode correctly."""
        return 2.0 ** (self.bits - self.frac_bits - 1)

    def max_int(self, n_terms: int = 1) -> int:
        """The largest ``|round(x 2^f)|`` one of ``n_terms`` summands may have: ``(2^(k-1) - 1) // n``."""
        return (2 ** (self.bits - 1) - 1) // n_terms

    def encode(self, x, n_terms: int = 1, what: str = "the value") -> np.ndarray:
        """``round(x 2^f) mod 2^k`` for a float array ``x``; ``OverflowError`` if any element could make a
        sum of ``n_terms`` such values leave the range (``|round(x 2^f)| > max_int(n_terms)``), and
        ``ValueError`` on NaN or inf."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError(f"{what} holds NaN or inf: it cannot be encoded in fixed point")
        q = np.rint(np.ldexp(x, self.frac_bits))  # x 2^f is exact (a power of two); rint rounds half to even
        cap = self.max_int(n_terms)
        big = np.abs(q) >= 2.0 ** 63  # beyond int64: certainly too large (checked before converting)
        qi = np.where(big, 0, q).astype(np.int64)
        if big.any() or (np.abs(qi) > cap).any():
            worst = float(np.abs(x).max())
            raise OverflowError(
                f"{what} reaches |x| = {worst:.4g}; with {n_terms} clients each value must stay within "
                f"{cap * self.step:.4g} (sums within 2^(k-f-1) = {self.limit:.4g}, k={self.bits}, "
                f"f={self.frac_bits}): clip or scale the update, or use fewer fractional bits")
        return qi.astype(np.uint64).astype(self.dtype)  # two's complement = mod 2^k

    def decode(self, u) -> np.ndarray:
        """The float64 of ring elements: read as signed ``k``-bit integers, times ``2^-f``."""
        u = np.asarray(u, dtype=self.dtype)
        signed = u.view(np.int32 if self.bits == 32 else np.int64)
        return np.ldexp(signed.astype(np.float64), -self.frac_bits)


def prg(seed: int, length: int, codec: FixedPoint) -> np.ndarray:
    """``length`` ring elements uniform over ``Z_{2^k}`` expanded from ``seed`` (numpy PCG64: a stand-in
    for AES-CTR / ChaCha20, see the module docstring). The same seed gives the same mask on every client."""
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    return rng.integers(0, 2 ** codec.bits, size=int(length), dtype=codec.dtype)


# ----------------------------------------------------------------------------- Shamir secret sharing


def _check_field(value: int, prime: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < prime:
        raise ValueError(f"{what} must be an integer in [0, {prime}), got {value!r}")
    return int(value)


def shamir_share(secret: int, threshold: int, xs: Sequence[int], rng: np.random.Generator, *,
                 prime: int = PRIME) -> dict[int, int]:
    """Shares ``{x: q(x)}`` of ``secret`` at the points ``xs`` (distinct, non-zero), where
    ``q(x) = secret + a_1 x + ... + a_{t-1} x^{t-1} (mod p)`` with coefficients uniform in ``[0, p)``
    drawn from ``rng``: any ``threshold`` shares rebuild it, fewer say nothing about it."""
    secret = _check_field(secret, prime, "the secret")
    xs = [_check_field(x, prime, "a share point") for x in xs]
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold must be an int in [1, {len(xs)}] (the number of shares), got {threshold!r}")
    if 0 in xs or len(set(xs)) != len(xs):
        raise ValueError(f"share points must be distinct and non-zero (q(0) is the secret), got {xs}")
    coeffs = [secret] + [int(rng.integers(0, prime)) for _ in range(threshold - 1)]
    shares = {}
    for x in xs:
        acc = 0
        for a in reversed(coeffs):  # Horner: ((a_{t-1} x + a_{t-2}) x + ...) x + a_0
            acc = (acc * x + a) % prime
        shares[x] = acc
    return shares


def lagrange_at_zero(points: Mapping[int, int] | Iterable[tuple[int, int]], *, prime: int = PRIME) -> int:
    """``q(0)`` of the polynomial of degree ``< len(points)`` through ``points`` (``{x: y}``), mod ``prime``::

        q(0) = sum_m y_m L_m(0),   L_m(0) = prod_{l != m} x_l / (x_l - x_m)   (mod p)

    Division is multiplication by the inverse ``a^(p-2) mod p`` (Fermat). By hand, for
    ``q(x) = 5 + 2x + 3x^2`` mod 11 with shares ``q(1) = 10, q(2) = 10, q(3) = 5``:
    ``L_1(0) = (2*3)/((2-1)(3-1)) = 3``, ``L_2(0) = (1*3)/((1-2)(3-2)) = -3``,
    ``L_3(0) = (1*2)/((1-3)(2-3)) = 1``, so ``q(0) = 3*10 - 3*10 + 1*5 = 5``:

    >>> lagrange_at_zero({1: 10, 2: 10, 3: 5}, prime=11)
    5
    """
    pts = list(points.items() if isinstance(points, Mapping) else points)
    xs = [int(x) % prime for x, _ in pts]
    if not pts or 0 in xs or len(set(xs)) != len(xs):
        raise ValueError(f"need at least one point with distinct non-zero x (mod {prime}), got x = {xs}")
    total = 0
    for m, (xm, ym) in enumerate(zip(xs, (int(y) for _, y in pts))):
        num, den = 1, 1
        for l, xl in enumerate(xs):
            if l != m:
                num = num * xl % prime
                den = den * (xl - xm) % prime
        total = (total + ym * num * pow(den, prime - 2, prime)) % prime
    return total


def shamir_reconstruct(shares: Mapping[int, int], threshold: int, *, prime: int = PRIME) -> int:
    """The secret from at least ``threshold`` shares ``{x: y}`` (the first ``threshold`` in x order are used);
    fewer raise :class:`SecureAggregationError`: ``t - 1`` shares fit every secret equally well."""
    if len(shares) < threshold:
        raise SecureAggregationError(f"{len(shares)} shares cannot rebuild a secret shared with threshold "
                                     f"{threshold}: every secret fits {threshold - 1} shares equally well")
    return lagrange_at_zero({x: shares[x] for x in sorted(shares)[:threshold]}, prime=prime)


# ----------------------------------------------------------------------------- one round of the protocol


def pair_seed(round_seed: int, server_round: int, i: int, j: int) -> int:
    """The shared seed ``s_ij`` (``i < j``, client indices) in ``[0, p)``: a deterministic function of the
    round seed, the round and the pair, standing in for a Diffie-Hellman key agreement ``KA(sk_i, pk_j)``."""
    i, j = min(i, j), max(i, j)
    words = np.random.SeedSequence([int(round_seed), int(server_round), i, j, 0x5EC]).generate_state(2, np.uint64)
    return int((int(words[0]) << 64 | int(words[1])) % PRIME)


@dataclass
class ClientKeys:
    """What client ``client_id`` (number ``index`` in client-id order) holds after setup: its pairwise
    seeds ``{peer id: s}`` (secret) and the shares other clients gave it, ``{(owner, peer): q(index+1)}``
    (a share of ``owner``'s seed with ``peer``)."""

    client_id: object
    index: int
    server_round: int
    seeds: dict = field(repr=False)
    held_shares: dict = field(repr=False)

    def reveal(self, dropped: Iterable) -> dict:
        """Its shares of the dropped clients' seeds with the survivors, ``{(dropped, peer): (x, y)}``.
        A client reveals nothing about itself (``ValueError`` if asked to)."""
        dropped = set(dropped)
        if self.client_id in dropped:
            raise ValueError(f"client {self.client_id!r} is alive and asked to reveal shares of its own seeds")
        x = self.index + 1
        return {(o, p): (x, y) for (o, p), y in self.held_shares.items() if o in dropped and p not in dropped}


@dataclass
class MaskedUpdate:
    """What a client sends: ``values`` (ring elements, all tensors flattened in the round's order, then
    ``n_k`` for a weighted round) for ``server_round``."""

    client_id: object
    server_round: int
    values: np.ndarray = field(repr=False)


@dataclass
class RoundCost:
    """Bytes and seconds of one round, totals over all clients, against plain FedAvg (``num_bytes`` of
    every update that arrived, plus 8 bytes for its ``n_k``; filled in by :func:`secure_fedavg`).
    Per round: ``masked_bytes = |S| L k/8`` (``L`` = elements + 1), ``share_bytes = n (n-1)^2 8``
    (each client shares its ``n - 1`` seeds with the ``n - 1`` others), ``reveal_bytes`` = 8 per share
    a survivor reveals (``|S| |D| |S|`` when ``|D|`` clients dropped)."""

    clients: int = 0
    survivors: int = 0
    masked_bytes: int = 0  # the masked vectors that reached the server
    share_bytes: int = 0  # setup: every client sends its shares (through the server) to every client
    reveal_bytes: int = 0  # recovery: survivors' shares of the dropouts' seeds
    plain_bytes: int = 0  # plain FedAvg: the same updates in their own dtype
    setup_s: float = 0.0
    mask_s: float = 0.0
    unmask_s: float = 0.0

    @property
    def secure_bytes(self) -> int:
        return self.masked_bytes + self.share_bytes + self.reveal_bytes

    @property
    def bytes_ratio(self) -> float:
        """``secure_bytes / plain_bytes`` (NaN before plain bytes are known)."""
        return self.secure_bytes / self.plain_bytes if self.plain_bytes else math.nan

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__}, "secure_bytes": self.secure_bytes,
                "bytes_ratio": self.bytes_ratio}


class SecureRound:
    """One round of secure aggregation for the clients ``client_ids`` who committed, over tensors shaped
    like ``template`` (a :data:`~ttslab.federated.weights.Weights` dict).

    Drive it as a simulator would::

        rnd = SecureRound(template, ids, threshold=t, seed=s, server_round=r)   # setup: seeds, shares
        for k in arrived:  rnd.receive(rnd.mask(k, update_k, num_examples=n_k))  # clients mask, send
        total = rnd.aggregate()       # survivors reveal shares of the dropouts' seeds; the server unmasks

    ``weighted=True`` appends ``n_k`` and masks ``n_k w_k`` (for FedAvg); ``weighted=False`` sums the
    updates as they are. Setup here plays every client at once (a trusted dealer); in a real deployment
    each client computes its own seeds by key agreement and sends its shares encrypted to the others.
    """

    def __init__(self, template: Mapping[str, torch.Tensor], client_ids: Sequence, *, threshold: int, seed: int = 0,
                 server_round: int = 0, codec: FixedPoint | None = None, weighted: bool = True):
        check_weights(template, "the round's template")
        ids = list(client_ids)
        if len(ids) < 2:
            raise ValueError(f"secure aggregation needs at least 2 clients (one client's sum is its update), got {ids}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"client ids must be distinct, got {ids}")
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= len(ids):
            raise ValueError(f"threshold must be an int in [1, {len(ids)}] (t of n clients; t > n/2 is usual), "
                             f"got {threshold!r}")
        for what, v in (("seed", seed), ("server_round", server_round)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{what} must be an int >= 0, got {v!r}")
        self.template = OrderedDict((n, torch.empty_like(t)) for n, t in template.items())
        self.codec = codec or FixedPoint()
        self.threshold, self.seed, self.server_round, self.weighted = threshold, seed, server_round, weighted
        self.ids = sorted(ids, key=client_sort_key)
        self.index = {c: i for i, c in enumerate(self.ids)}
        self.length = sum(t.numel() for t in template.values()) + int(weighted)
        self.received: dict = {}
        self.cost = RoundCost(clients=len(ids))
        self.done = False
        start = time.perf_counter()
        n = len(self.ids)
        seeds = {c: {} for c in self.ids}
        for i in range(n):
            for j in range(i + 1, n):
                s = pair_seed(seed, server_round, i, j)
                seeds[self.ids[i]][self.ids[j]] = seeds[self.ids[j]][self.ids[i]] = s
        held = {c: {} for c in self.ids}
        xs = [m + 1 for m in range(n)]
        for i, owner in enumerate(self.ids):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, server_round, i, 0x5A4])))
            for peer, s in seeds[owner].items():
                for x, y in shamir_share(s, threshold, xs, rng).items():
                    held[self.ids[x - 1]][(owner, peer)] = y
        self.clients = {c: ClientKeys(c, self.index[c], server_round, seeds[c], held[c]) for c in self.ids}
        self.cost.share_bytes = n * (n - 1) * (n - 1) * SHARE_BYTES  # n-1 seeds, to n-1 other clients each
        self.cost.setup_s = time.perf_counter() - start

    # --- client side ---------------------------------------------------------------------------

    def encode(self, client_id, update: Mapping[str, torch.Tensor], num_examples: int | None = None) -> np.ndarray:
        """The client's plain ring vector (``n_k w_k`` and ``n_k`` when weighted), checked for shapes,
        dtypes, NaN and overflow. Unmasked: what the masks hide."""
        self._known(client_id)
        validate_update(self.template, update, client_id=client_id)
        scale = 1
        if self.weighted:
            if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 1:
                raise UpdateError(f"client {client_id!r}: a weighted round needs num_examples >= 1, got "
                                  f"{num_examples!r}", client_id=client_id)
            scale = num_examples
        elif num_examples is not None:
            raise ValueError("num_examples is only sent in a weighted round (weighted=True)")
        n = len(self.ids)
        parts = [self.codec.encode(update[name].detach().to(torch.float64).reshape(-1).numpy() * scale, n,
                                   what=f"client {client_id!r}'s update[{name!r}]" + (" x n_k" if self.weighted else ""))
                 for name in self.template]
        if self.weighted:
            parts.append(self.codec.encode(np.array([float(scale)]), n, what=f"client {client_id!r}'s num_examples"))
        return np.concatenate(parts)

    def mask_vector(self, client_id) -> np.ndarray:
        """``sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ji)`` (mod 2^k) for client ``i = client_id``."""
        keys = self.clients[self._known(client_id)]
        out = np.zeros(self.length, dtype=self.codec.dtype)
        for peer, s in keys.seeds.items():
            if self.index[peer] > keys.index:
                out += prg(s, self.length, self.codec)
            else:
                out -= prg(s, self.length, self.codec)
        return out

    def mask(self, client_id, update: Mapping[str, torch.Tensor], num_examples: int | None = None) -> MaskedUpdate:
        """Client ``client_id``'s message: ``y_i = encode(x_i) + mask_i`` (mod 2^k)."""
        start = time.perf_counter()
        y = self.encode(client_id, update, num_examples) + self.mask_vector(client_id)
        self.cost.mask_s += time.perf_counter() - start
        return MaskedUpdate(client_id, self.server_round, y)

    # --- server side ---------------------------------------------------------------------------

    def _known(self, client_id):
        if client_id not in self.index:
            raise UpdateError(f"client {client_id!r} did not commit to round {self.server_round} (committed: "
                              f"{self.ids[:8]}{'...' if len(self.ids) > 8 else ''})", client_id=client_id)
        return client_id

    def receive(self, message: MaskedUpdate) -> None:
        """Accept one client's masked vector (checked: a committed client, once, this round, the right length)."""
        if not isinstance(message, MaskedUpdate):
            raise TypeError(f"expected a MaskedUpdate (SecureRound.mask), got {type(message).__name__}")
        c = self._known(message.client_id)
        if self.done:
            raise SecureAggregationError(f"round {self.server_round} is closed; client {c!r} arrived too late")
        if c in self.received:
            raise UpdateError(f"client {c!r} sent twice in round {self.server_round}", client_id=c)
        if message.server_round != self.server_round:
            raise UpdateError(f"client {c!r} masked for round {message.server_round}, this is round "
                              f"{self.server_round}", client_id=c)
        v = message.values
        if not isinstance(v, np.ndarray) or v.dtype != self.codec.dtype or v.shape != (self.length,):
            raise UpdateError(f"client {c!r} sent {getattr(v, 'dtype', type(v).__name__)} "
                              f"{getattr(v, 'shape', '')}, the round expects {self.codec.dtype} ({self.length},)",
                              client_id=c)
        self.received[c] = v
        self.cost.masked_bytes += v.nbytes

    @property
    def dropped(self) -> list:
        """Committed clients whose masked vector has not arrived."""
        return [c for c in self.ids if c not in self.received]

    def aggregate(self, revealed: Mapping | None = None) -> np.ndarray:
        """The ring sum ``sum_{i in S} encode(x_i)`` over the survivors ``S`` (who sent).

        ``revealed``: ``{survivor: ClientKeys.reveal(dropped)}``; by default every survivor reveals
        (:meth:`ClientKeys.reveal`). Fewer than ``threshold`` survivors, or fewer than ``threshold``
        shares of a needed seed: :class:`SecureAggregationError`, and the round stays open."""
        start = time.perf_counter()
        survivors, dropped = list(self.received), self.dropped
        if len(survivors) < self.threshold:
            raise SecureAggregationError(
                f"round {self.server_round}: only {len(survivors)} of {len(self.ids)} clients sent "
                f"(dropped: {dropped[:8]}); at least threshold={self.threshold} survivors must reveal shares to "
                f"remove the dropouts' masks. Nothing was aggregated; rerun the round")
        if revealed is None:
            revealed = {c: self.clients[c].reveal(dropped) for c in survivors} if dropped else {}
        unknown = [c for c in revealed if c not in self.received]
        if unknown:
            raise ValueError(f"shares revealed by clients that did not send: {unknown}")
        total = np.zeros(self.length, dtype=self.codec.dtype)
        for c in survivors:
            total += self.received[c]
        pooled: dict = {}
        for shares in revealed.values():
            for key, (x, y) in shares.items():
                pooled.setdefault(key, {})[x] = y
        for j in dropped:
            for i in survivors:
                s = shamir_reconstruct(pooled.get((j, i), {}), self.threshold)
                m = prg(s, self.length, self.codec)
                if self.index[i] < self.index[j]:
                    total -= m  # survivor i added +PRG(s_ij)
                else:
                    total += m  # survivor i subtracted PRG(s_ji)
        self.done = True
        self.cost.survivors = len(survivors)
        self.cost.reveal_bytes = SHARE_BYTES * sum(len(shares) for shares in revealed.values())
        self.cost.unmask_s += time.perf_counter() - start
        return total

    def decode(self, total: np.ndarray) -> tuple[Weights, float | None]:
        """The float64 sum as weights shaped like the template, and ``sum n_k`` (None if not weighted)."""
        flat = self.codec.decode(total)
        out, at = OrderedDict(), 0
        for name, t in self.template.items():
            out[name] = torch.from_numpy(flat[at:at + t.numel()].copy()).reshape(t.shape)
            at += t.numel()
        return out, (float(flat[-1]) if self.weighted else None)


# ----------------------------------------------------------------------------- FedAvg through it


def secure_fedavg(global_weights: Mapping[str, torch.Tensor], replies: Sequence[Reply], *, dropped: Iterable = (),
                  threshold: int | None = None, seed: int = 0, server_round: int = 0,
                  codec: FixedPoint | None = None) -> tuple[Weights, Weights, RoundCost]:
    """FedAvg of ``replies`` computed through one :class:`SecureRound`: every reply's client commits,
    those in ``dropped`` never send their masked vector, the others do, and the server divides the
    unmasked ``sum n_k w_k`` by ``sum n_k`` (both over the survivors).

    Returns ``(weights in the global dtypes, the float64 mean, cost)``; the float64 mean is within
    ``|S| 2^-f / 2 / sum_S n_k`` of :func:`~ttslab.federated.weighted_mean64` on the survivors'
    replies. ``threshold`` defaults to ``floor(n/2) + 1``. The replies are checked as FedAvg checks them.
    """
    ordered = FedAvg().check(global_weights, replies, server_round)
    ids = [r.client_id for r in ordered]
    dropped = set(dropped)
    stray = [c for c in dropped if c not in ids]
    if stray:
        raise ValueError(f"dropped clients {stray} sent no reply to this round (clients: {ids})")
    t = len(ids) // 2 + 1 if threshold is None else threshold
    rnd = SecureRound(global_weights, ids, threshold=t, seed=seed, server_round=server_round, codec=codec)
    for r in ordered:
        message = rnd.mask(r.client_id, r.weights, r.num_examples)
        if r.client_id not in dropped:
            rnd.receive(message)
            rnd.cost.plain_bytes += num_bytes(r.weights) + 8  # plain FedAvg: the update and n_k
    sums, total_n = rnd.decode(rnd.aggregate())
    mean64 = OrderedDict((n, s / total_n) for n, s in sums.items())
    return OrderedDict((n, mean64[n].to(global_weights[n].dtype)) for n in global_weights), mean64, rnd.cost


class SecureFedAvg(FedAvg):
    """:class:`~ttslab.federated.FedAvg` whose sum goes through secure aggregation (:func:`secure_fedavg`,
    no dropouts: the strategy sees only the replies that arrived). Same checks and result within the
    quantization step; the last round's :class:`RoundCost` is in ``last_cost``. The round's mask
    seeds come from ``seed`` and the round number."""

    name = "secure_fedavg"

    def __init__(self, threshold: int | None = None, seed: int = 0, bits: int = 64, frac_bits: int = 24):
        self.codec = FixedPoint(bits, frac_bits)
        self.threshold, self.seed, self.last_cost = threshold, seed, None

    def hyperparameters(self) -> dict:
        return {"threshold": self.threshold, "seed": self.seed, "bits": self.codec.bits,
                "frac_bits": self.codec.frac_bits}

    def combine(self, global_weights, replies, server_round):
        t = self.threshold if self.threshold is None else min(self.threshold, len(replies))
        out, _, self.last_cost = secure_fedavg(global_weights, replies, threshold=t, seed=self.seed,
                                               server_round=server_round, codec=self.codec)
        return out
