"""Tests of ttslab.federated.secure: fixed point mod 2^k, pairwise masks, Shamir recovery, FedAvg parity.

References are independent: float64 sums, Python-integer sums mod 2^k, polynomials evaluated by hand
(worked out in comments), brute force over a small field, scipy's chi-square test, and
ttslab.federated.FedAvg / weighted_mean64."""

from __future__ import annotations

import doctest
import itertools
from collections import OrderedDict

import numpy as np
import pytest
import torch
from scipy import stats

import ttslab.federated.secure as secure
from ttslab.federated import (PRIME, FedAvg, FixedPoint, MaskedUpdate, Reply, SecureAggregationError, SecureFedAvg,
                              SecureRound, UpdateError, lagrange_at_zero, max_abs_diff, num_bytes, secure_fedavg,
                              shamir_reconstruct, shamir_share)
from ttslab.federated.strategies import weighted_mean64

SHAPES = OrderedDict([("encoder.weight", (8, 5)), ("encoder.bias", (8,)), ("decoder.weight", (3, 8)),
                      ("decoder.bias", (3,))])  # a small model's named tensors


def weights(seed: int, scale: float = 1.0, dtype=torch.float32) -> OrderedDict:
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((n, (scale * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype)) for n, s in SHAPES.items())


def template():
    return weights(999)


def ring_sum_reference(vectors, bits):
    """Sum mod 2^k in Python integers (no numpy wrap-around)."""
    return [sum(int(v[i]) for v in vectors) % 2 ** bits for i in range(len(vectors[0]))]


def test_doctests():
    assert doctest.testmod(secure).failed == 0


# --- fixed point ---------------------------------------------------------------------------------------


def test_encoding_by_hand_and_round_trip_within_half_a_step():
    fp = FixedPoint(bits=32, frac_bits=8)
    # 1.5 * 2^8 = 384; -0.25 * 2^8 = -64 -> 2^32 - 64 (two's complement); 0.3 * 256 = 76.8 -> 77
    assert fp.encode(np.array([1.5, -0.25, 0.3])).tolist() == [384, 2 ** 32 - 64, 77]
    assert fp.decode(np.array([2 ** 32 - 1], dtype=np.uint32)).tolist() == [-1 / 256]
    for bits, f in ((32, 12), (64, 24), (64, 40)):
        fp = FixedPoint(bits, f)
        x = np.random.default_rng(bits + f).uniform(-100, 100, 5000)
        err = np.abs(fp.decode(fp.encode(x)) - x)
        assert err.max() <= fp.step / 2 and err.max() > fp.step / 4  # the bound is reached, not loose


def test_fixed_point_settings_are_checked():
    for bits, f in ((16, 4), (64, 63), (32, -1), (64, 2.5)):
        with pytest.raises(ValueError):
            FixedPoint(bits, f)


def test_overflow_is_detected_before_the_sum_wraps():
    fp = FixedPoint(bits=32, frac_bits=16)
    # 4 clients: each |round(x 2^16)| <= (2^31 - 1) // 4 = 536870911, i.e. |x| <= 8191.99998...
    fp.encode(np.array([8191.9, -8191.9]), n_terms=4)
    with pytest.raises(OverflowError, match="with 4 clients"):
        fp.encode(np.array([0.0, 8192.5]), n_terms=4)
    with pytest.raises(OverflowError):
        fp.encode(np.array([1e30]), n_terms=1)  # beyond int64 too
    # what the check prevents: four 8192.5 encoded one by one (each fits alone) sum past 2^15 and wrap
    one = fp.encode(np.array([8192.5]))
    assert fp.decode(one * 4)[0] < 0  # 32770 read back as a negative number
    with pytest.raises(ValueError, match="NaN"):
        fp.encode(np.array([1.0, np.nan]))
    rnd = SecureRound(template(), [1, 2, 3], threshold=2, weighted=False, codec=FixedPoint(32, 16))
    big = template()
    big["decoder.bias"][1] = 20000.0
    with pytest.raises(OverflowError, match="decoder.bias"):
        rnd.mask(1, big)


# --- masks cancel, the sum is exact ---------------------------------------------------------------------


@pytest.mark.parametrize("bits,f", [(64, 24), (32, 12)])
def test_unmasked_sum_equals_the_plain_sum(bits, f):
    ids = ["ana", "bo", 7, 3, "zed"]
    updates = {c: weights(i) for i, c in enumerate(ids)}
    rnd = SecureRound(template(), ids, threshold=3, seed=11, server_round=2, codec=FixedPoint(bits, f), weighted=False)
    for c in reversed(ids):  # arrival order does not matter
        rnd.receive(rnd.mask(c, updates[c]))
    total = rnd.aggregate()
    plain = [rnd.encode(c, updates[c]) for c in ids]
    assert total.tolist() == ring_sum_reference(plain, bits)  # exact in the ring
    sums, n = rnd.decode(total)
    assert n is None
    for name in SHAPES:
        ref = sum(updates[c][name].double() for c in ids)  # float64 reference
        assert (sums[name] - ref).abs().max() <= len(ids) * 2.0 ** -f * 0.5
    # the masks alone cancel: sum_i mask_i = 0 (mod 2^k)
    assert not np.any(sum(rnd.mask_vector(c) for c in ids))


def test_masks_are_deterministic_in_the_seed_and_hide_each_update():
    a = SecureRound(template(), [0, 1, 2], threshold=2, seed=5, server_round=1)
    b = SecureRound(template(), [0, 1, 2], threshold=2, seed=5, server_round=1)
    c = SecureRound(template(), [0, 1, 2], threshold=2, seed=5, server_round=2)
    x = weights(0)
    assert np.array_equal(a.mask(1, x, 4).values, b.mask(1, x, 4).values)
    assert not np.array_equal(a.mask(1, x, 4).values, c.mask(1, x, 4).values)
    assert np.mean(a.mask(1, x, 4).values == a.encode(1, x, 4)) < 0.01


def test_a_masked_update_is_uniform_whatever_the_data():
    """Client 0's masked vector for all-zeros and for large ramped values: the top byte is uniform (chi-square)
    and uncorrelated with the input; the unmasked encodings fail both tests (the checks are not vacuous)."""
    length = 20000
    tmpl = OrderedDict(w=torch.zeros(length, dtype=torch.float64))
    inputs = {"zeros": torch.zeros(length, dtype=torch.float64),
              "large": torch.linspace(-5e4, 5e4, length, dtype=torch.float64)}
    rnd = SecureRound(tmpl, [0, 1, 2], threshold=2, seed=2026, weighted=False)
    limit = 5 / np.sqrt(length)  # |r| of independent samples is ~ 1/sqrt(L)
    for name, x in inputs.items():
        masked = rnd.mask(0, {"w": x}).values
        plain = rnd.encode(0, {"w": x})
        counts = np.bincount((masked >> np.uint64(56)).astype(np.int64), minlength=256)
        assert stats.chisquare(counts).pvalue > 1e-3, name
        plain_counts = np.bincount((plain >> np.uint64(56)).astype(np.int64), minlength=256)
        assert stats.chisquare(plain_counts).pvalue < 1e-12, name
        if name == "large":
            assert abs(np.corrcoef(x.numpy(), masked.astype(np.float64))[0, 1]) < limit
            assert abs(np.corrcoef(x.numpy(), rnd.codec.decode(masked))[0, 1]) < limit
            assert np.corrcoef(x.numpy(), rnd.codec.decode(plain))[0, 1] > 0.999


# --- dropouts and Shamir recovery ---------------------------------------------------------------------


def test_dropouts_up_to_the_threshold_recover_exactly():
    ids, t = [0, 1, 2, 3, 4, 5], 4
    updates = {c: weights(10 + c) for c in ids}
    for k in (0, 1, 2):
        for dropped in itertools.combinations(ids, k):
            rnd = SecureRound(template(), ids, threshold=t, seed=3, weighted=False)
            messages = {c: rnd.mask(c, updates[c]) for c in ids}  # everyone commits and masks
            survivors = [c for c in ids if c not in dropped]
            for c in survivors:
                rnd.receive(messages[c])
            assert rnd.dropped == list(dropped)
            total = rnd.aggregate()
            # as if the dropped clients had never taken part: a round of the survivors alone
            alone = SecureRound(template(), survivors, threshold=min(t, len(survivors)), seed=99, weighted=False)
            for c in survivors:
                alone.receive(alone.mask(c, updates[c]))
            assert np.array_equal(total, alone.aggregate()), dropped
            assert total.tolist() == ring_sum_reference([rnd.encode(c, updates[c]) for c in survivors], 64)
            if dropped:  # without the recovered masks the sum would be noise
                raw = sum(messages[c].values for c in survivors)
                assert not np.array_equal(raw, total)


def test_too_many_dropouts_fail_cleanly():
    ids = [0, 1, 2, 3, 4, 5]
    rnd = SecureRound(template(), ids, threshold=4, seed=3, weighted=False)
    for c in (0, 2, 5):
        rnd.receive(rnd.mask(c, weights(c)))
    with pytest.raises(SecureAggregationError, match="only 3 of 6 clients sent.*threshold=4"):
        rnd.aggregate()
    assert not rnd.done and rnd.cost.survivors == 0 and rnd.cost.reveal_bytes == 0  # nothing aggregated
    # enough survivors, but only threshold - 1 of them reveal their shares: the seeds cannot be rebuilt
    rnd.receive(rnd.mask(1, weights(1)))
    revealed = {c: rnd.clients[c].reveal(rnd.dropped) for c in (0, 1, 2)}
    with pytest.raises(SecureAggregationError, match="3 shares cannot rebuild"):
        rnd.aggregate(revealed)
    assert not rnd.done
    total = rnd.aggregate()  # all four reveal: the round completes
    assert total.tolist() == ring_sum_reference([rnd.encode(c, weights(c)) for c in (0, 1, 2, 5)], 64)


def test_lagrange_at_zero_by_hand_and_shamir_share_by_hand():
    # q(x) = 5 + 2x + 3x^2 mod 11: q(1) = 10, q(2) = 21 = 10, q(3) = 38 = 5; L_1(0) = 3, L_2(0) = -3, L_3(0) = 1
    assert lagrange_at_zero({1: 10, 2: 10, 3: 5}, prime=11) == (3 * 10 - 3 * 10 + 1 * 5) % 11 == 5
    # a line q(x) = 4 + 7x mod 11 (an odd number of factors per L_m, so a sign slip shows):
    # q(1) = 0, q(2) = 7; L_1(0) = 2/(2-1) = 2, L_2(0) = 1/(1-2) = -1; q(0) = 2*0 - 7 = -7 = 4
    assert lagrange_at_zero({1: 0, 2: 7}, prime=11) == 4

    class Coefficients:  # an rng that returns the chosen coefficients a_1 = 2, a_2 = 3
        def __init__(self):
            self.left = [2, 3]

        def integers(self, low, high):
            return self.left.pop(0)

    assert shamir_share(5, 3, [1, 2, 3], Coefficients(), prime=11) == {1: 10, 2: 10, 3: 5}


def test_any_t_shares_rebuild_and_t_minus_1_do_not():
    rng = np.random.default_rng(7)
    secret = int(rng.integers(0, PRIME))
    shares = shamir_share(secret, 3, [1, 2, 3, 4, 5], rng)
    for k in (3, 4, 5):
        for subset in itertools.combinations(shares, k):
            assert shamir_reconstruct({x: shares[x] for x in subset}, 3) == secret
    for subset in itertools.combinations(shares, 2):
        assert lagrange_at_zero({x: shares[x] for x in subset}) != secret
        with pytest.raises(SecureAggregationError):
            shamir_reconstruct({x: shares[x] for x in subset}, 3)


def test_t_minus_1_shares_are_independent_of_the_secret_brute_force():
    """GF(11), t = 3: over all 121 coefficient pairs, the shares at x = 1, 2 take each of the 121 values
    exactly once, whatever the secret: two shares say nothing about it (perfect secrecy)."""
    p = 11
    for secret in range(p):
        seen = {((secret + a1 + a2) % p, (secret + 2 * a1 + 4 * a2) % p) for a1 in range(p) for a2 in range(p)}
        assert len(seen) == p * p
    # whereas with t = 2 (a line) a single share is also uniform, but two shares pin the secret
    assert {lagrange_at_zero({1: (4 + a) % p, 2: (4 + 2 * a) % p}, prime=p) for a in range(p)} == {4}


def test_shamir_input_is_checked():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="secret"):
        shamir_share(PRIME, 2, [1, 2], rng)
    with pytest.raises(ValueError, match="threshold"):
        shamir_share(1, 3, [1, 2], rng)
    with pytest.raises(ValueError, match="distinct and non-zero"):
        shamir_share(1, 2, [0, 2], rng)
    with pytest.raises(ValueError, match="distinct"):
        lagrange_at_zero([(1, 2), (1, 3)])


# --- bad input ----------------------------------------------------------------------------------------


def test_bad_input_is_refused_early():
    rnd = SecureRound(template(), [0, 1, 2], threshold=2, seed=1, server_round=4)
    wrong = template()
    wrong["encoder.bias"] = torch.zeros(9)
    with pytest.raises(UpdateError, match="shape"):
        rnd.mask(0, wrong, 3)
    nan = template()
    nan["decoder.weight"][0, 0] = float("nan")
    with pytest.raises(UpdateError, match="NaN"):
        rnd.mask(0, nan, 3)
    with pytest.raises(UpdateError, match="did not commit"):
        rnd.mask(9, template(), 3)
    with pytest.raises(UpdateError, match="num_examples"):
        rnd.mask(0, template(), 0)
    ok = rnd.mask(0, template(), 3)
    with pytest.raises(UpdateError, match="did not commit"):
        rnd.receive(MaskedUpdate(9, 4, ok.values))
    with pytest.raises(UpdateError, match="round 3"):
        rnd.receive(MaskedUpdate(0, 3, ok.values))
    with pytest.raises(UpdateError, match="expects"):
        rnd.receive(MaskedUpdate(0, 4, ok.values[:-1]))
    rnd.receive(ok)
    with pytest.raises(UpdateError, match="sent twice"):
        rnd.receive(ok)
    with pytest.raises(ValueError, match="alive"):
        rnd.clients[0].reveal([0, 1])
    for kwargs in ({"threshold": 0}, {"threshold": 4}, {"threshold": 2, "seed": -1}):
        with pytest.raises(ValueError):
            SecureRound(template(), [0, 1, 2], **kwargs)
    with pytest.raises(ValueError, match="at least 2"):
        SecureRound(template(), [0], threshold=1)
    with pytest.raises(ValueError, match="distinct"):
        SecureRound(template(), [0, 0, 1], threshold=2)
    with pytest.raises(ValueError, match="sent no reply"):
        secure_fedavg(template(), [Reply(0, weights(0), 1), Reply(1, weights(1), 1)], dropped=[5])


# --- FedAvg through secure aggregation ------------------------------------------------------------------


def test_secure_fedavg_equals_fedavg_within_the_quantization_step():
    g = template()
    replies = [Reply(c, weights(20 + i), n) for i, (c, n) in enumerate([(3, 5), (1, 40), (8, 2), (2, 17), (5, 9)])]
    codec = FixedPoint(64, 24)
    for dropped in ((), (1,), (8, 5)):
        out, mean64, cost = secure_fedavg(g, replies, dropped=dropped, threshold=3, seed=4, server_round=6, codec=codec)
        kept = [r for r in replies if r.client_id not in dropped]
        total = sum(r.num_examples for r in kept)
        bound = len(kept) * codec.step / 2 / total
        assert max_abs_diff(mean64, weighted_mean64(g, sorted(kept, key=lambda r: r.client_id))) <= bound
        fedavg = FedAvg().aggregate(g, kept, server_round=6)
        ulp = max(float(t.abs().max()) for t in fedavg.values()) * torch.finfo(torch.float32).eps
        assert max_abs_diff(out, fedavg) <= bound + ulp
        assert all(out[n].dtype == g[n].dtype for n in g)
        # bytes: |S| (L + 1) 8 masked, n (n-1)^2 8 for shares, |S|^2 |D| 8 revealed; plain: num_bytes + 8 each
        elements = sum(t.numel() for t in g.values())
        assert cost.masked_bytes == len(kept) * (elements + 1) * 8
        assert cost.share_bytes == 5 * 4 * 4 * 8
        assert cost.reveal_bytes == len(kept) ** 2 * len(dropped) * 8
        assert cost.plain_bytes == sum(num_bytes(r.weights) + 8 for r in kept)
    strategy = SecureFedAvg(threshold=3, seed=1)
    a = strategy.aggregate(g, replies, server_round=2)
    b = strategy.aggregate(g, list(reversed(replies)), server_round=2)
    assert max_abs_diff(a, b) == 0.0  # order independent, bit for bit
    fedavg = FedAvg().aggregate(g, replies, 2)
    ulp = max(float(t.abs().max()) for t in fedavg.values()) * torch.finfo(torch.float32).eps
    assert max_abs_diff(a, fedavg) <= 5 * codec.step / 2 / 73 + ulp
    assert strategy.last_cost.survivors == 5 and strategy.last_cost.bytes_ratio > 1
