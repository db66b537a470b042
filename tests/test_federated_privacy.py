"""ttslab.federated.privacy: DP-FedAvg's clipping and noise, the accountant against independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ttslab.federated import FedAdam, FedAvg, Reply
from ttslab.federated.privacy import (ORDERS, DPFedAvg, PrivacyAccountant, dp_sgd_train, epsilon_for, epsilon_from_rdp,
                                      noise_for_epsilon, opacus_replacements, rdp_sampled_gaussian)


def weights(seed, scale=0.01, n=50):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": scale * torch.randn(n, generator=g), "b.bias": scale * torch.randn(3, 4, generator=g)}


def norm_of(w, g):
    return math.sqrt(sum(float(((w[k].double() - g[k].double()) ** 2).sum()) for k in g))


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_clipping_bounds_an_adversarial_clients_contribution(sigma):
    g = weights(0)
    honest = [Reply(k, {n: g[n] + v for n, v in weights(k + 1).items()}, 5) for k in range(9)]
    huge = Reply(99, {n: g[n] + 1e6 * torch.ones_like(t) for n, t in g.items()}, 10_000)
    benign = Reply(99, {n: t.clone() for n, t in g.items()}, 10_000)       # the same client sending nothing
    c, n = 0.05, 10
    with_attacker = DPFedAvg(max_norm=c, noise_multiplier=sigma, seed=3).aggregate(g, honest + [huge], 1)
    without = DPFedAvg(max_norm=c, noise_multiplier=sigma, seed=3).aggregate(g, honest + [benign], 1)
    moved = norm_of(with_attacker, without)
    assert moved <= c / n * (1 + 1e-5) + 1e-6           # same round and seed: the noise cancels exactly
    assert moved > 0.9 * c / n                          # and the attacker does use its whole budget
    plain = norm_of(FedAvg().aggregate(g, honest + [huge], 1), FedAvg().aggregate(g, honest + [benign], 1))
    assert plain > 1e5                                  # FedAvg follows the attacker


def test_each_clipped_norm_is_recorded_and_bounded():
    g = weights(0)
    replies = [Reply(k, {n: g[n] + (k + 1) * v for n, v in weights(k + 1).items()}, 1) for k in range(4)]
    s = DPFedAvg(max_norm=0.1, noise_multiplier=0.0)
    out = s.aggregate(g, replies, 1)
    for r in replies:
        assert s.last_norms[r.client_id] == pytest.approx(norm_of(r.weights, g), rel=1e-9)
    assert norm_of(out, g) <= 0.1 + 1e-6


def test_noise_has_the_promised_scale_and_is_gaussian():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = {"w": torch.zeros(40_000, dtype=torch.float64)}
    n, c, sigma = 4, 2.0, 1.5
    replies = [Reply(k, {"w": torch.zeros(40_000, dtype=torch.float64)}, 1) for k in range(n)]
    out = DPFedAvg(max_norm=c, noise_multiplier=sigma, seed=7).aggregate(g, replies, 5)["w"].numpy()
    expected = sigma * c / n
    assert abs(out.std() / expected - 1) < 0.02          # 40k samples: the std's relative error is ~0.35 %
    assert abs(out.mean()) < 4 * expected / math.sqrt(out.size)
    assert scipy_stats.kstest(out / expected, "norm").pvalue > 1e-3
    again = DPFedAvg(max_norm=c, noise_multiplier=sigma, seed=7).aggregate(g, replies, 5)["w"].numpy()
    other_round = DPFedAvg(max_norm=c, noise_multiplier=sigma, seed=7).aggregate(g, replies, 6)["w"].numpy()
    assert np.array_equal(out, again) and abs(np.corrcoef(out, other_round)[0, 1]) < 0.03


@pytest.mark.parametrize("q", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5])
def test_rdp_of_the_sampled_gaussian_matches_opacus(q, sigma):
    from opacus.accountants.analysis.rdp import compute_rdp

    orders = [2, 3, 5, 8, 16, 32]
    ours = [rdp_sampled_gaussian(q, sigma, a) for a in orders]
    theirs = compute_rdp(q=q, noise_multiplier=sigma, steps=1, orders=orders)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    if q == 1.0:
        np.testing.assert_allclose(ours, [a / (2 * sigma ** 2) for a in orders], rtol=1e-12)


@pytest.mark.parametrize("q, sigma, rounds", [(1.0, 1.0, 1), (1.0, 4.0, 50), (1.0, 0.8, 10), (0.1, 1.0, 100),
                                              (0.05, 2.0, 1000), (0.5, 1.5, 20), (0.01, 0.7, 300)])
def test_epsilon_matches_an_independent_computation(q, sigma, rounds):
    from opacus.accountants import RDPAccountant

    delta = 1e-5
    eps = epsilon_for(sigma, q, rounds, delta)
    if q == 1.0:       # the closed form holds at every real order: compare on Opacus' own orders
        independent = epsilon_from_rdp(ORDERS, [rounds * a / (2 * sigma ** 2) for a in ORDERS], delta)
        assert eps == pytest.approx(independent, rel=1e-9)
    integer_orders = list(range(2, 64))   # the binomial expansion: integer orders only, so compare on those
    independent = epsilon_from_rdp(integer_orders, [rounds * rdp_sampled_gaussian(q, sigma, a)
                                                    for a in integer_orders], delta)
    opacus = RDPAccountant()
    opacus.history = [(sigma, q, rounds)]
    assert opacus.get_epsilon(delta=delta, alphas=integer_orders) == pytest.approx(independent, rel=1e-8)
    assert eps <= independent * (1 + 1e-9)               # more orders can only tighten the bound
    assert eps > 0.8 * independent


def test_noise_for_epsilon_is_tight_and_agrees_with_opacus():
    from opacus.accountants.utils import get_noise_multiplier

    for target, q, rounds in [(8.0, 0.1, 50), (1.0, 0.2, 30), (4.0, 1.0, 10)]:
        sigma = noise_for_epsilon(target, 1e-5, q, rounds)
        assert epsilon_for(sigma, q, rounds, 1e-5) <= target < epsilon_for(sigma * 0.995, q, rounds, 1e-5)
        theirs = get_noise_multiplier(target_epsilon=target, target_delta=1e-5, sample_rate=q, steps=rounds,
                                      epsilon_tolerance=0.001)
        assert sigma == pytest.approx(theirs, rel=0.02)
    assert noise_for_epsilon(math.inf, 1e-5, 0.1, 10) == 0.0


def test_accountant_counts_each_round_once_across_a_resume():
    straight = PrivacyAccountant(1e-5)
    for t in range(1, 7):
        straight.step(t, 1.2, 0.3)
    first = PrivacyAccountant(1e-5)
    for t in range(1, 4):
        first.step(t, 1.2, 0.3)
    resumed = PrivacyAccountant(1e-5)
    resumed.load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="already counted"):
        resumed.step(3, 1.2, 0.3)                      # a replayed round is refused
    for t in range(4, 7):
        resumed.step(t, 1.2, 0.3)
    assert resumed.rounds == 6 and resumed.epsilon() == straight.epsilon()
    assert resumed.epsilon() > first.epsilon() > 0


def test_dpfedavg_state_round_trips_and_composes_with_fedadam():
    g = weights(0, n=8)
    replies = [Reply(k, {n: g[n] + v for n, v in weights(k + 1, n=8).items()}, 3 + k) for k in range(3)]
    dp = DPFedAvg(max_norm=1e3, noise_multiplier=0.0, inner=FedAdam(server_lr=0.1))
    ref = FedAdam(server_lr=0.1)
    equal_weight = [Reply(r.client_id, r.weights, 1) for r in replies]   # DP's mean is unweighted
    a, b = g, g
    for t in (1, 2):
        a, b = dp.aggregate(a, replies, t), ref.aggregate(b, equal_weight, t)
    for n in g:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=1e-6)
    noisy = DPFedAvg(max_norm=0.1, noise_multiplier=1.0, sample_rate=0.5, inner=FedAdam(), seed=1)
    w1 = noisy.aggregate(g, replies, 1)
    state = noisy.state_dict()
    twin = DPFedAvg(max_norm=0.1, noise_multiplier=1.0, sample_rate=0.5, inner=FedAdam(), seed=1)
    twin.load_state_dict(state)
    x, y = noisy.aggregate(w1, replies, 2), twin.aggregate(w1, replies, 2)
    assert all(torch.equal(x[n], y[n]) for n in g)
    assert twin.accountant.rounds == 2 and twin.epsilon() == epsilon_for(1.0, 0.5, 2, 1e-5)


def test_bad_settings_are_refused():
    for kwargs, match in [({"noise_multiplier": -1.0}, "noise_multiplier"), ({"sample_rate": 1.5}, "sample_rate"),
                          ({"max_norm": 0.0}, "max_norm"), ({"delta": 0.0}, "delta")]:
        with pytest.raises(ValueError, match=match):
            DPFedAvg(**kwargs)
    with pytest.raises(ValueError, match="integer"):
        rdp_sampled_gaussian(0.1, 1.0, 2.5)


def synthetic_items(count):
    items = []
    for i in range(count):
        rng = np.random.default_rng(i)
        t, n = 30 + i % 7, 6
        items.append({"utt_id": f"u{i}", "speaker": 0, "phone_ids": rng.integers(1, 40, n),
                      "durations": np.ones(n, np.float32), "pitch": np.zeros(n, np.float32),
                      "energy_phone": np.zeros(n, np.float32), "mel": rng.standard_normal((t, 80)).astype(np.float32),
                      "f0": np.zeros(t, np.float32), "energy": np.zeros(t, np.float32)})
    return items


def test_dp_sgd_replaces_the_gru_and_accounts_every_step():
    from ttslab.data.datasets import collate_acoustic
    from ttslab.models.judge import JudgeConfig, PhoneRecognizer, ctc_loss

    torch.manual_seed(0)
    model = PhoneRecognizer(JudgeConfig.tiny())
    fixed, replaced = opacus_replacements(model)
    assert replaced == ["rnn: GRU -> DPGRU"] and type(model.rnn).__name__ == "GRU"   # the original is untouched
    items = synthetic_items(16)
    out = dp_sgd_train(model, ctc_loss, items, collate_acoustic, noise_multiplier=1.0, max_grad_norm=1.0,
                       batch_size=4, steps=3, seed=0)
    assert out["replaced"] == replaced and len(out["losses"]) <= 3
    assert out["epsilon"] == pytest.approx(epsilon_for(1.0, 4 / 16, len(out["losses"]), 1e-5), rel=1e-9)
    assert all(math.isfinite(v) for v in out["losses"])
