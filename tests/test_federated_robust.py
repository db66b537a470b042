"""Tests of ttslab.federated.robust: malformed replies screened out, robust aggregators, clipping, attacks.

References are independent of the code under test: numpy's median and sort over the stacked replies,
Krum's scores by an explicit double loop over flattened vectors, and hand computations."""

from __future__ import annotations

import doctest
import itertools
import logging
import math
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ttslab.federated import (AllRepliesRejected, ClippedFedAvg, FedAsync, FedAvg, FedAvgM, FedMedian, FedProx,
                              FedTrimmedAvg, Krum, Reply, SkipMalformed, UpdateError, clip_delta, clip_update,
                              global_norm, krum_scores, random_attack, robust, scale_attack, screen_replies,
                              sign_flip_attack, trim_count, update_delta)

NAMES = ("a", "b", "c")


def make_global(dtype=torch.float64):
    return OrderedDict(a=torch.zeros(3, 2, dtype=dtype), b=torch.zeros(4, dtype=dtype), c=torch.zeros((), dtype=dtype))


def random_replies(n, seed=0, dtype=torch.float64, ties=False):
    """n replies with random weights (integers when ``ties``, so coordinates repeat) and sizes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        def draw(*shape):
            t = torch.randint(-3, 4, shape, generator=gen).double() if ties else torch.randn(shape, generator=gen,
                                                                                             dtype=torch.float64)
            return t.to(dtype)
        out.append(Reply(k, OrderedDict(a=draw(3, 2), b=draw(4), c=draw()), 1 + k % 4))
    return out


def stacked(replies, name):
    return np.stack([r.weights[name].double().numpy() for r in replies])


def flat(replies):
    return np.stack([np.concatenate([r.weights[n].double().numpy().ravel() for n in NAMES]) for r in replies])


def same(a, b) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_docstring_examples():
    result = doctest.testmod(robust, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# --- coordinate-wise median and trimmed mean against numpy ----------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 6])
@pytest.mark.parametrize("ties", [False, True])
def test_median_matches_numpy_and_ignores_num_examples(n, ties):
    g, replies = make_global(), random_replies(n, seed=n, ties=ties)
    out = FedMedian().aggregate(g, replies, 1)
    for name in NAMES:
        np.testing.assert_array_equal(out[name].numpy(), np.median(stacked(replies, name), axis=0))
    heavy = [Reply(r.client_id, r.weights, 1000 if r.client_id == 0 else 1) for r in replies]
    assert same(FedMedian().aggregate(g, heavy, 1), out)               # unweighted, as Flower's FedMedian


@pytest.mark.parametrize("n, beta", [(1, 0.2), (4, 0.2), (5, 0.2), (7, 0.3), (10, 0.2), (10, 0.45), (6, 0.0)])
def test_trimmed_mean_matches_numpy_sort_slicing(n, beta):
    g, replies = make_global(), random_replies(n, seed=10 + n)
    out = FedTrimmedAvg(beta).aggregate(g, replies, 1)
    b = int(beta * n)
    for name in NAMES:
        reference = np.sort(stacked(replies, name), axis=0)[b:n - b].mean(axis=0)
        np.testing.assert_allclose(out[name].numpy(), reference, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("factory", [lambda: FedTrimmedAvg(0.2), lambda: Krum(2, num_selected=5)])
def test_float32_replies_are_averaged_in_float64_and_rounded_once(factory):
    gen = torch.Generator().manual_seed(1)
    g = OrderedDict(w=torch.zeros(3000))
    replies = [Reply(k, OrderedDict(w=torch.randn(3000, generator=gen) * (1 + k)), 1) for k in range(10)]
    strategy = factory()
    out = strategy.aggregate(g, replies, 1)["w"]
    x = stacked(replies, "w")
    if isinstance(strategy, Krum):
        reference = x[strategy.last_selected].mean(0)
    else:
        reference = np.sort(x, axis=0)[2:8].mean(0)
    assert out.dtype == torch.float32 and torch.equal(out, torch.from_numpy(reference.astype(np.float32)))


def test_trim_count_by_hand_and_bad_beta():
    # int(beta n) rounds down: 0.2*4 = 0.8 -> 0; 0.2*5 = 1; 0.25*7 = 1.75 -> 1; 0.3*10 = 3; 0.29*100 = 28.99... -> 28
    assert [trim_count(4, 0.2), trim_count(5, 0.2), trim_count(7, 0.25), trim_count(10, 0.3)] == [0, 1, 1, 3]
    assert trim_count(100, 0.29) == 28
    for bad in (0.5, -0.1, True, "0.2", float("nan")):
        with pytest.raises(ValueError, match="beta"):
            FedTrimmedAvg(bad)


# --- Krum ---------------------------------------------------------------------------------------

def krum_reference(replies, f):
    """Scores by an explicit double loop over the flattened weights."""
    x, n = flat(replies), len(replies)
    scores = []
    for i in range(n):
        dists = sorted(float(((x[i] - x[j]) ** 2).sum()) for j in range(n) if j != i)
        scores.append(sum(dists[:n - f - 2]))
    return scores


@pytest.mark.parametrize("n, f", [(3, 0), (5, 1), (8, 2), (9, 3)])
def test_krum_scores_match_a_double_loop(n, f):
    replies = random_replies(n, seed=20 + n)
    np.testing.assert_allclose(krum_scores(replies, f), krum_reference(replies, f), rtol=1e-12)


@pytest.mark.parametrize("m, weighted", [(1, False), (3, False), (3, True), (7, False)])
def test_krum_and_multi_krum_select_the_lowest_scores(m, weighted):
    n, f = 7, 2
    g, replies = make_global(), random_replies(n, seed=31)
    strategy = Krum(num_malicious=f, num_selected=m, weighted=weighted)
    out = strategy.aggregate(g, replies, 1)
    scores = krum_reference(replies, f)
    best = sorted(np.argsort(scores, kind="stable")[:m])
    assert strategy.last_selected == best                          # client ids == indices here
    counts = np.array([replies[i].num_examples for i in best], dtype=np.float64) if weighted else np.ones(m)
    for name in NAMES:
        reference = (counts.reshape(-1, *[1] * replies[0].weights[name].dim()) * stacked(replies, name)[best]).sum(0)
        np.testing.assert_allclose(out[name].numpy(), reference / counts.sum(), rtol=1e-13, atol=1e-15)
    if m == 1:                                                     # Krum returns the chosen reply itself
        assert same(out, replies[best[0]].weights)


def test_krum_needs_n_above_2f_plus_2():
    g, replies = make_global(), random_replies(6, seed=3)
    with pytest.raises(ValueError, match=r"f=2 .*n > 2f \+ 2 = 6 replies, got 6"):
        Krum(num_malicious=2).aggregate(g, replies, 1)
    Krum(num_malicious=2).aggregate(g, random_replies(7, seed=3), 1)   # 7 > 6 works
    with pytest.raises(ValueError, match="m=8"):
        Krum(num_malicious=1, num_selected=8).aggregate(g, random_replies(7), 1)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="num_malicious"):
            Krum(num_malicious=bad)


# --- order independence ---------------------------------------------------------------------------

STRATEGY_FACTORIES = [FedMedian, lambda: FedTrimmedAvg(0.2), lambda: Krum(1), lambda: Krum(1, 3),
                      lambda: Krum(1, 3, weighted=True), lambda: ClippedFedAvg(2.0), lambda: SkipMalformed(FedAvg())]


@pytest.mark.parametrize("factory", STRATEGY_FACTORIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_results_do_not_depend_on_reply_order(factory, dtype):
    g, replies = make_global(dtype), random_replies(6, seed=5, dtype=dtype)
    first = factory().aggregate(g, replies, 1)
    assert all(first[n].dtype == dtype for n in first)
    for perm in list(itertools.permutations(range(6)))[::61]:
        assert same(factory().aggregate(g, [replies[i] for i in perm], 1), first)


# --- attackers: FedAvg is dragged, the robust aggregators are not -----------------------------------------

def honest_and_attacked(attack, n=10, f=2, seed=0):
    """n replies around a known centre (noise 0.01) from global zeros; the last f are attacked."""
    g = make_global()
    gen = torch.Generator().manual_seed(seed)
    centre = OrderedDict((k, 1.0 + torch.rand(t.shape, generator=gen, dtype=torch.float64)) for k, t in g.items())
    honest = [Reply(k, OrderedDict((name, c + 0.01 * torch.randn(c.shape, generator=gen, dtype=torch.float64))
                                   for name, c in centre.items()), 1) for k in range(n)]
    sent = honest[:n - f] + [attack(g, r) for r in honest[n - f:]]
    return g, honest, sent


ATTACKS = {"scaled x100": lambda g, r: scale_attack(g, r, 100.0),
           "sign flipped": lambda g, r: sign_flip_attack(g, r),
           "random": lambda g, r: random_attack(g, r, std=10.0, seed=int(r.client_id))}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_robust_aggregators_stay_within_the_honest_values(attack):
    n, f = 10, 2
    g, honest, sent = honest_and_attacked(ATTACKS[attack], n, f)
    good = honest[:n - f]
    x = flat(good)
    lo, hi, mean = x.min(0), x.max(0), x.mean(0)
    radius = max(np.linalg.norm(row - mean) for row in x)           # how far an honest reply lies from their mean
    dragged = np.linalg.norm(flat([Reply(0, FedAvg().aggregate(g, sent, 1), 1)])[0] - mean)
    assert dragged > 20 * radius, (dragged, radius)
    for strategy in (FedMedian(), FedTrimmedAvg(0.2), Krum(f), Krum(f, num_selected=4)):
        # with f <= trimmed count < n/2, every coordinate is an order statistic between honest values
        out = flat([Reply(0, strategy.aggregate(g, sent, 1), 1)])[0]
        assert np.all(out >= lo) and np.all(out <= hi), strategy
        assert np.linalg.norm(out - mean) <= radius, strategy
    krum = Krum(f, num_selected=n - f)
    krum.aggregate(g, sent, 1)
    assert krum.last_selected == list(range(n - f))                 # multi-Krum keeps exactly the honest ones


def test_clipping_bounds_a_scaled_attack():
    n, f = 10, 2
    g, honest, sent = honest_and_attacked(ATTACKS["scaled x100"], n, f)
    c = max(global_norm(update_delta(g, r.weights)) for r in honest)     # honest updates pass unclipped
    out = ClippedFedAvg(c).aggregate(g, sent, 1)
    x = flat(honest)
    unattacked = x.mean(0)
    spread = max(np.linalg.norm(a - b) for a in x for b in x)
    # only the f attacked deltas change, each by (C - ||w_a||) <= spread along its own direction
    assert np.linalg.norm(flat([Reply(0, out, 1)])[0] - unattacked) <= f / n * spread
    assert np.linalg.norm(flat([Reply(0, FedAvg().aggregate(g, sent, 1), 1)])[0] - unattacked) > 100 * spread


# --- clipping ------------------------------------------------------------------------------------------

def test_clip_delta_bounds_each_update_exactly():
    gen = torch.Generator().manual_seed(4)
    for scale in (0.01, 0.3, 1.0, 7.0, 1e6):
        delta = OrderedDict(a=scale * torch.randn(3, 2, generator=gen, dtype=torch.float64),
                            b=scale * torch.randn(4, generator=gen, dtype=torch.float64))
        norm = math.sqrt(sum(float(np.sum(t.numpy() ** 2)) for t in delta.values()))
        clipped, reported = clip_delta(delta, 1.0)
        assert math.isclose(reported, norm, rel_tol=1e-13)
        new_norm = math.sqrt(sum(float(np.sum(t.numpy() ** 2)) for t in clipped.values()))
        if norm > 1.0:
            assert math.isclose(new_norm, 1.0, rel_tol=1e-13)       # equality: scaled down onto the sphere
            for name in delta:                                       # same direction
                np.testing.assert_allclose(clipped[name].numpy(), delta[name].numpy() / norm, rtol=1e-13)
        else:
            assert same(clipped, delta)                              # inside: unchanged
    zero = OrderedDict(a=torch.zeros(2, dtype=torch.float64))
    assert same(clip_delta(zero, 1.0)[0], zero)
    for bad in (0.0, -1.0, float("inf"), True):
        with pytest.raises(ValueError, match="max_norm"):
            clip_delta(zero, bad)


def test_clipped_fedavg_moves_the_model_at_most_c_and_matches_the_formula():
    g = OrderedDict((k, t + 0.5) for k, t in make_global().items())
    replies = [scale_attack(g, r, 1.0 + 30 * (r.client_id % 2)) for r in random_replies(5, seed=8)]
    c = 0.75
    strategy = ClippedFedAvg(c)
    out = strategy.aggregate(g, replies, 1)
    assert global_norm(update_delta(g, out)) <= c * (1 + 1e-12)
    x, g0 = flat(replies), flat([Reply(0, g, 1)])[0]
    counts = np.array([r.num_examples for r in replies], dtype=np.float64)
    d = x - g0
    norms = np.linalg.norm(d, axis=1)
    clipped = d * np.minimum(1.0, c / norms)[:, None]
    reference = g0 + (counts[:, None] * clipped).sum(0) / counts.sum()
    np.testing.assert_allclose(flat([Reply(0, out, 1)])[0], reference, rtol=1e-13)
    np.testing.assert_allclose([strategy.last_norms[k] for k in range(5)], norms, rtol=1e-13)
    one = clip_update(g, replies[1].weights, c)
    assert math.isclose(global_norm(update_delta(g, one)), c, rel_tol=1e-13)


# --- attacks --------------------------------------------------------------------------------------------

def test_attacks_by_hand_and_deterministic():
    g = OrderedDict(w=torch.tensor([1.0, 2.0]))
    r = Reply("x", OrderedDict(w=torch.tensor([2.0, 0.0])), 4, {"loss": 1.0}, model_version=3)
    assert torch.equal(scale_attack(g, r, 10.0).weights["w"], torch.tensor([11.0, -18.0]))   # 1 + 10*1, 2 + 10*(-2)
    assert torch.equal(sign_flip_attack(g, r).weights["w"], torch.tensor([0.0, 4.0]))        # 1 - 1, 2 + 2
    flipped = sign_flip_attack(g, r, num_examples=1000)
    assert (flipped.client_id, flipped.num_examples, flipped.model_version) == ("x", 1000, 3)
    a, b, c = (random_attack(g, r, std=2.0, seed=s) for s in (5, 5, 6))
    assert torch.equal(a.weights["w"], b.weights["w"]) and not torch.equal(a.weights["w"], c.weights["w"])
    noise = torch.randn(2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert torch.equal(a.weights["w"], (1.0 * torch.tensor([1.0, 2.0], dtype=torch.float64) + 2.0 * noise).float())
    assert torch.equal(r.weights["w"], torch.tensor([2.0, 0.0]))       # the honest reply is untouched


# --- malformed replies: rejected, logged, the round goes on --------------------------------------------

def malformed_round():
    g = make_global(torch.float32)
    good = random_replies(3, seed=9, dtype=torch.float32)
    base = random_replies(1, seed=10, dtype=torch.float32)[0].weights

    def with_(**changes):
        w = OrderedDict(base)
        for k, v in changes.items():
            if v is None:
                del w[k]
            else:
                w[k] = v
        return w

    nan_b, inf_a = base["b"].clone(), base["a"].clone()
    nan_b[2], inf_a[0, 1] = float("nan"), float("-inf")
    bad = [Reply(10, with_(b=nan_b), 2), Reply(11, with_(a=inf_a), 2), Reply(12, with_(b=torch.zeros(5)), 2),
           Reply(13, with_(b=base["b"].double()), 2), Reply(14, with_(c=None), 2),
           Reply(15, with_(extra=torch.zeros(1)), 2), Reply(16, base, 0), Reply(17, base, -3),
           Reply(18, base, 1), Reply(18, base, 1)]
    return g, good, bad


def test_screen_replies_rejects_and_logs_each_malformed_reply(caplog):
    g, good, bad = malformed_round()
    with caplog.at_level(logging.WARNING, logger="ttslab.federated"):
        accepted, rejected = screen_replies(g, bad[::-1] + good[::-1], server_round=4)
    assert [r.client_id for r in accepted] == [0, 1, 2]
    assert [b.client_id for b in rejected] == [10, 11, 12, 13, 14, 15, 16, 17, 18, 18]
    reasons = {b.client_id: b.reason for b in rejected}
    for cid, pattern in [(10, "NaN or inf"), (11, "NaN or inf"), (12, r"shape \(5,\)"), (13, "float64"),
                         (14, "lacks"), (15, "extra"), (16, "num_examples=0"), (17, "num_examples=-3"),
                         (18, "replied 2 times")]:
        assert re.search(pattern, reasons[cid]), (cid, reasons[cid])
    assert [b.name for b in rejected][:4] == ["b", "a", "b", "b"]
    logged = [rec for rec in caplog.records if rec.name == "ttslab.federated"]
    assert len(logged) == 10 and all(rec.levelno == logging.WARNING for rec in logged)
    assert "round 4" in logged[0].getMessage() and "client 10" in logged[0].getMessage()


def test_skip_malformed_aggregates_the_rest_with_renormalised_weights(caplog):
    g, good, bad = malformed_round()
    with pytest.raises(UpdateError):                                # the default stays strict
        FedAvg().aggregate(g, good + bad[:1], 1)
    strategy = SkipMalformed(FedAvg())
    with caplog.at_level(logging.WARNING, logger="ttslab.federated"):
        out = strategy.aggregate(g, bad + good, 2)
    assert same(out, FedAvg().aggregate(g, good, 2))
    # by hand: client k sends n_k = 1 + k; the weights renormalise over the accepted 1 + 2 + 3 = 6 examples
    reference = sum((1 + k) * stacked(good, "b")[k] for k in range(3)) / 6
    np.testing.assert_allclose(out["b"].numpy(), reference, rtol=1e-6)
    assert {b.client_id for b in strategy.rejected} == set(range(10, 19))
    assert any("client 13" in rec.getMessage() for rec in caplog.records)
    robust_too = SkipMalformed(FedMedian()).aggregate(g, bad + good, 2)
    assert same(robust_too, FedMedian().aggregate(g, good, 2))


def test_skip_malformed_applies_the_wrapped_strategys_checks_and_fails_when_none_is_left():
    g, good, bad = malformed_round()
    stale = [Reply(r.client_id, r.weights, r.num_examples, model_version=v) for r, v in zip(good, (1, 9, 2))]
    strategy = SkipMalformed(FedAsync(alpha=0.5))
    strategy.aggregate(g, stale, 3)                                  # model_version 9 > t = 3: left out
    assert [b.client_id for b in strategy.rejected] == [1] and "model_version" in strategy.rejected[0].reason
    momentum = SkipMalformed(FedAvgM())
    with pytest.raises(AllRepliesRejected, match=r"round 5: none of the 10 replies.*client 10.*NaN") as info:
        momentum.aggregate(g, bad, 5)
    assert len(info.value.rejected) == 10 and momentum.state_dict()["rounds"] == 0
    with pytest.raises(AllRepliesRejected, match="no replies at all"):
        momentum.aggregate(g, [], 5)
    with pytest.raises(TypeError, match="Strategy"):
        SkipMalformed(FedAvg)


def test_skip_malformed_passes_settings_and_state_through():
    g, good, bad = malformed_round()
    wrapped = SkipMalformed(FedAvgM(server_lr=1.0, momentum=0.5))
    wrapped.aggregate(g, good + bad, 1)
    plain = FedAvgM(server_lr=1.0, momentum=0.5)
    plain.aggregate(g, good, 1)
    assert wrapped.state_dict()["rounds"] == 1 and same(wrapped.state_dict()["momentum"], plain.state_dict()["momentum"])
    fresh = SkipMalformed(FedAvgM(server_lr=1.0, momentum=0.5))
    fresh.load_state_dict(wrapped.state_dict())
    assert same(fresh.aggregate(g, good, 2), plain.aggregate(g, good, 2))
    assert SkipMalformed(FedProx(0.1)).client_options() == {"mu": 0.1}
    assert wrapped.hyperparameters() == {"server_lr": 1.0, "momentum": 0.5} and "FedAvgM" in repr(wrapped)
