"""Tests of ttslab.federated.simulator: the in-process federation.

References: a hand loop of client_update and a numpy float64 weighted mean, the sampling draws redone
here with numpy, byte counts from tensor sizes, FedAsync's mixing rule written out, and an
uninterrupted run for the resume tests."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import math

import numpy as np
import pytest
import torch

from test_federated_core import Toy, toy_data, toy_loss  # tests/ is on sys.path under pytest (rootdir conftest)
from ttslab.federated import (ClientConfig, ClientData, FedAdam, FedAsync, FedAvg, FedProx, SkipMalformed,
                              UpdateError, client_update, initial_weights, max_abs_diff)
from ttslab.federated.simulator import (ClientPool, SimulationConfig, SimulationError, latest_checkpoint,
                                        sample_round, simulate, straggler_steps)

CC = ClientConfig(local_steps=3, batch_size=2, lr=0.05, optimizer="sgd")


def clients(n=5):
    return [toy_data(k, n=3 + k, seed=k) for k in range(n)]


def same(a, b) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def run(strategy, sim, data=None, config=CC, **kw):
    return simulate(Toy, toy_loss, data if data is not None else clients(), strategy, config, sim, progress=False,
                    **kw)


def numpy_fedavg(replies):
    """sum_k n_k w_k / sum_k n_k in numpy float64, cast to float32: an independent FedAvg."""
    total = sum(r.num_examples for r in replies)
    return {n: torch.from_numpy((sum(r.num_examples * r.weights[n].double().numpy() for r in replies) / total)
                                .astype(np.float32)) for n in replies[0].weights}


def test_docstring_examples():
    mod = importlib.import_module("ttslab.federated.simulator")
    assert doctest.testmod(mod).failed == 0


def test_one_round_with_all_clients_is_a_hand_loop_of_client_update_and_a_weighted_mean():
    data = clients(4)
    result = run(FedAvg(), SimulationConfig(rounds=1, clients_per_round=4), data)
    w0 = initial_weights(Toy, seed=CC.seed)
    replies = [client_update(w0, c, CC, model_fn=Toy, loss_fn=toy_loss, server_round=1).reply for c in data]
    expected = numpy_fedavg(replies)
    assert all(torch.equal(result.weights[n], expected[n]) for n in expected)
    row = result.history[0]
    assert row["sampled"] == [0, 1, 2, 3] and row["replied"] == [0, 1, 2, 3] and row["dropped"] == []
    assert row["steps"] == {"0": 3, "1": 3, "2": 3, "3": 3} and row["virtual_time"] == 3.0


def test_two_rounds_of_sampling_follow_the_documented_draws():
    data = clients(6)
    sim = SimulationConfig(rounds=2, clients_per_round=2, seed=11)
    result = run(FedAvg(), sim, data)
    w = initial_weights(Toy, seed=CC.seed)
    for t in (1, 2):
        rng = np.random.default_rng([11, t])     # the module docstring's rule, redone here
        picked = sorted(rng.choice(6, size=2, replace=False).tolist())
        assert result.history[t - 1]["sampled"] == picked
        w = numpy_fedavg([client_update(w, data[k], CC, model_fn=Toy, loss_fn=toy_loss, server_round=t).reply
                          for k in picked])
    assert same(result.weights, w)


def test_deterministic_and_independent_of_the_order_of_the_clients():
    sim = SimulationConfig(rounds=3, clients_per_round=3, dropout=0.2, straggler=0.3, seed=5)
    a = run(FedAvg(), sim, clients())
    b = run(FedAvg(), sim, clients()[::-1])
    assert same(a.weights, b.weights) and a.history == b.history
    c = run(FedAvg(), dataclasses.replace(sim, seed=6), clients())
    assert not same(a.weights, c.weights)


def test_dropouts_and_stragglers_bookkeeping_by_hand():
    data = clients(6)
    sim = SimulationConfig(rounds=4, clients_per_round=4, dropout=0.3, straggler=0.4, slowdown=2.5, seed=2)
    result = run(FedAvg(), sim, data)
    w = initial_weights(Toy, seed=CC.seed)
    seen_drop = seen_slow = 0
    for t in range(1, 5):
        rng = np.random.default_rng([2, t])
        picked = sorted(rng.choice(6, size=4, replace=False).tolist())
        draws = [(rng.random(), rng.random()) for _ in picked]
        dropped = [k for k, (u, _) in zip(picked, draws) if u < 0.3]
        slow = [k for k, (u, s) in zip(picked, draws) if u >= 0.3 and s < 0.4]
        row = result.history[t - 1]
        assert (row["sampled"], row["dropped"], row["stragglers"]) == (picked, dropped, slow)
        steps = {k: (1 if k in slow else 3) for k in picked if k not in dropped}   # floor(3 / 2.5) = 1
        assert row["steps"] == {str(k): v for k, v in steps.items()} and row["virtual_time"] == 3.0 * t
        replies = [client_update(w, data[k], dataclasses.replace(CC, local_steps=n), model_fn=Toy,
                                 loss_fn=toy_loss, server_round=t).reply for k, n in steps.items()]
        w = numpy_fedavg(replies) if replies else w
        seen_drop, seen_slow = seen_drop + len(dropped), seen_slow + len(slow)
    assert same(result.weights, w)
    assert seen_drop > 0 and seen_slow > 0        # the seed exercises both


def test_straggler_policies_wait_and_drop():
    sim = SimulationConfig(rounds=3, clients_per_round=4, straggler=0.5, slowdown=3.0, seed=4)
    partial, wait, drop = (run(FedAvg(), dataclasses.replace(sim, straggler_policy=p)) for p in
                           ("partial", "wait", "drop"))
    for rp, rw, rd in zip(partial.history, wait.history, drop.history):
        assert rp["stragglers"] == rw["stragglers"] == rd["stragglers"]
        assert all(rw["steps"][str(k)] == 3 for k in rw["stragglers"])
        assert not set(map(str, rd["stragglers"])) & set(rd["steps"])
    slow_rounds = sum(bool(r["stragglers"]) for r in wait.history)
    assert slow_rounds > 0
    assert wait.history[-1]["virtual_time"] == 3 * (3 - slow_rounds) + 9 * slow_rounds
    assert partial.history[-1]["virtual_time"] == 9.0


def test_bytes_up_and_down_match_the_tensor_sizes():
    w0 = initial_weights(Toy)
    numels = [t.numel() for t in w0.values()]
    n = sum(numels)
    per_reply = {"float32": 4 * n, "float16": 2 * n, "int8": sum(k + 8 for k in numels)}
    for codec, up in per_reply.items():
        sim = SimulationConfig(rounds=2, clients_per_round=3, dropout=0.25, seed=1, codec=codec)
        result = run(FedAvg(), sim)
        for row in result.history:
            assert row["bytes_down"] == 4 * n * len(row["sampled"])
            assert row["bytes_up"] == up * len(row["replied"])
        assert result.total_bytes_up == sum(r["bytes_up"] for r in result.history)
        assert result.total_bytes_down == sum(r["bytes_down"] for r in result.history)


def test_compressed_uploads_change_the_weights_by_at_most_the_codec_error():
    sim = SimulationConfig(rounds=1, clients_per_round=5)
    exact = run(FedAvg(), sim)
    for codec, tol in (("float16", 1e-3), ("int8", 5e-3)):
        approx = run(FedAvg(), dataclasses.replace(sim, codec=codec))
        diff = max(float((exact.weights[n] - approx.weights[n]).abs().max()) for n in exact.weights)
        assert 0 < diff < tol


def test_fedprox_gets_mu_from_the_strategy_and_mu_zero_is_fedavg():
    sim = SimulationConfig(rounds=2, clients_per_round=3, seed=3)
    assert same(run(FedProx(mu=0.0), sim).weights, run(FedAvg(), sim).weights)
    assert not same(run(FedProx(mu=1.0), sim).weights, run(FedAvg(), sim).weights)


def test_fedasync_one_in_flight_is_the_sequential_mixing_rule():
    # two clients, one in flight: every update is fresh (staleness 0), w <- (1 - a) w + a w_k
    data = clients(2)
    sim = SimulationConfig(rounds=3, clients_per_round=1, seed=9)
    result = run(FedAsync(alpha=0.4), sim, data)
    w = initial_weights(Toy, seed=CC.seed)
    for j in range(3):
        rng = np.random.default_rng([9, 1_000_003, j])
        k = int(rng.integers(2))
        wk = client_update(w, data[k], CC, model_fn=Toy, loss_fn=toy_loss, server_round=j + 1).reply.weights
        w = {n: (0.6 * w[n].double() + 0.4 * wk[n].double()).float() for n in w}
        assert result.history[j]["sampled"] == [k] and result.history[j]["staleness"] == [0]
    assert same(result.weights, w)


def test_fedasync_stragglers_arrive_stale_in_virtual_time_order():
    sim = SimulationConfig(rounds=4, clients_per_round=3, straggler=0.3, slowdown=4.0, seed=1)
    result = run(FedAsync(alpha=0.5, staleness="polynomial"), sim, clients(6))
    arrivals = [a for row in result.history for a in row["arrivals"]]
    assert [a["arrival"] for a in arrivals] == sorted(a["arrival"] for a in arrivals)
    applied = 0
    for row in result.history:
        for a, s in zip([a for a in row["arrivals"] if not a["dropped"]], row["staleness"]):
            assert s == applied - a["version"]            # updates that overtook it
            assert a["arrival"] - a["start"] == 3 * (4.0 if a["straggler"] else 1.0)
            applied += 1
    assert any(a["straggler"] for a in arrivals) and max(s for r in result.history for s in r["staleness"]) >= 2


def test_a_round_with_every_client_dropped_keeps_the_weights():
    sim = SimulationConfig(rounds=1, clients_per_round=2, dropout=0.99, seed=0)
    w0 = initial_weights(Toy)
    result = run(FedAvg(), sim, initial=w0)
    assert result.history[0]["skipped"] and result.history[0]["bytes_up"] == 0 and same(result.weights, w0)


def test_bad_input_is_refused_and_the_global_weights_stay():
    w0 = initial_weights(Toy)
    keep = {n: t.clone() for n, t in w0.items()}
    empty = ClientData(9, [], toy_data(0).collate)
    with pytest.raises(SimulationError, match="no examples"):
        run(FedAvg(), SimulationConfig(rounds=1), clients(2) + [empty])
    with pytest.raises(ValueError, match="zero clients"):
        SimulationConfig(clients_per_round=0)
    with pytest.raises(ValueError, match="zero clients"):
        SimulationConfig(fraction=0.0)
    with pytest.raises(ValueError, match="mu"):
        FedProx(mu=-0.1)
    with pytest.raises(ValueError, match="mu"):
        dataclasses.replace(CC, mu=-1.0)
    for alpha in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="alpha"):
            FedAsync(alpha=alpha)

    def wrong_shape(reply, weights, t):
        bad = dict(reply.weights, **{"head.bias": torch.zeros(2)})
        return dataclasses.replace(reply, weights=bad) if reply.client_id == 1 else reply

    def wrong_dtype(reply, weights, t):
        bad = dict(reply.weights, **{"head.bias": reply.weights["head.bias"].double()})
        return dataclasses.replace(reply, weights=bad) if reply.client_id == 1 else reply

    for hook, match in ((wrong_shape, "shape"), (wrong_dtype, "float64")):
        with pytest.raises(UpdateError, match=match):
            run(FedAvg(), SimulationConfig(rounds=1, clients_per_round=3), initial=w0, reply_fn=hook)
        assert same(w0, keep)
        # the robust wrapper drops the bad reply and averages the others
        ok = run(SkipMalformed(FedAvg()), SimulationConfig(rounds=1, clients_per_round=3), initial=w0,
                 reply_fn=hook)
        assert not same(ok.weights, w0)


def test_personal_layers_never_leave_the_client_and_are_kept_per_client():
    config = dataclasses.replace(CC, local_prefixes=("head",))
    sent = []

    def spy(reply, weights, t):
        sent.append(set(reply.weights))
        return reply

    sim = SimulationConfig(rounds=3, clients_per_round=2, seed=0)
    result = run(FedAvg(), sim, config=config, reply_fn=spy)
    assert sent and all(not any(n.startswith("head.") for n in names) for names in sent)
    assert not any(n.startswith("head.") for n in result.weights)
    trained = {k for row in result.history for k in row["replied"]}
    assert set(result.personal) == trained
    heads = [result.personal[k]["head.weight"] for k in sorted(trained)]
    assert not torch.equal(heads[0], heads[1])
    # the client's next round starts from its own head: a hand loop over the same draws
    data, w, personal = clients(), initial_weights(Toy, seed=0, local_prefixes=["head"]), {}
    for t in (1, 2, 3):
        picked = sample_round([0, 1, 2, 3, 4], sim, t)["sampled"]
        outs = {k: client_update(w, data[k], config, model_fn=Toy, loss_fn=toy_loss, server_round=t,
                                 local_weights=personal.get(k)) for k in picked}
        personal.update({k: o.local_weights for k, o in outs.items()})
        w = numpy_fedavg([o.reply for o in outs.values()])
    assert same(result.weights, w) and all(same(result.personal[k], personal[k]) for k in personal)


def test_a_client_pool_loads_only_the_sampled_clients():
    data = {k: toy_data(k, n=3, seed=k) for k in range(50)}
    loads = []

    def load(k):
        loads.append(k)
        return data[k]

    result = simulate(Toy, toy_loss, ClientPool(range(50), load), FedAvg(), CC,
                      SimulationConfig(rounds=2, clients_per_round=3), progress=False)
    assert sorted(loads) == sorted(k for row in result.history for k in row["sampled"]) and len(loads) == 6


@pytest.mark.parametrize("strategy, config, sim", [
    (FedAdam(server_lr=0.05), CC, SimulationConfig(rounds=5, clients_per_round=3, dropout=0.2, straggler=0.3,
                                                  seed=3, codec="int8", stochastic=True)),
    (FedAsync(alpha=0.5, staleness="hinge", b=1), CC, SimulationConfig(rounds=5, clients_per_round=2,
                                                                      straggler=0.4, dropout=0.1, seed=3)),
    (FedAvg(), dataclasses.replace(CC, local_prefixes=("head",)), SimulationConfig(rounds=5, clients_per_round=2)),
], ids=["fedadam-int8", "fedasync", "fedper"])
def test_a_crashed_server_resumes_bit_for_bit(tmp_path, strategy, config, sim):
    evals = []

    def evaluate_fn(weights, t):
        evals.append(t)
        return {"norm": float(sum(float(v.double().pow(2).sum()) for v in weights.values()))}

    full = run(type(strategy)(**strategy.hyperparameters()), sim, config=config, evaluate_fn=evaluate_fn)

    def crash_at_3(weights, t):
        if t == 3:
            raise KeyboardInterrupt("the server was killed")
        return evaluate_fn(weights, t)

    folder = tmp_path / "ckpt"
    crashing = dataclasses.replace(sim, checkpoint_dir=str(folder))
    with pytest.raises(KeyboardInterrupt):
        run(type(strategy)(**strategy.hyperparameters()), crashing, config=config, evaluate_fn=crash_at_3)
    assert latest_checkpoint(folder).name == "round_000002.pt"
    resumed = run(type(strategy)(**strategy.hyperparameters()), crashing, config=config, evaluate_fn=evaluate_fn)
    assert resumed.resumed_from == 2
    assert same(resumed.weights, full.weights) and resumed.history == full.history
    assert resumed.comm.to_dict() == full.comm.to_dict()
    assert set(resumed.personal) == set(full.personal)
    assert all(same(resumed.personal[k], full.personal[k]) for k in full.personal)


def test_checkpoints_of_another_run_or_damaged_ones(tmp_path):
    sim = SimulationConfig(rounds=2, clients_per_round=2, checkpoint_dir=str(tmp_path))
    run(FedAvg(), sim)
    with pytest.raises(SimulationError, match="another run"):
        run(FedAvg(), dataclasses.replace(sim, seed=1))
    # a damaged newest file falls back to the round before; a longer run extends the finished one
    newest = latest_checkpoint(tmp_path)
    newest.write_bytes(newest.read_bytes()[:-10])
    assert latest_checkpoint(tmp_path).name == "round_000001.pt"
    longer = run(FedAvg(), dataclasses.replace(sim, rounds=3))
    assert longer.resumed_from == 1
    assert same(longer.weights, run(FedAvg(), dataclasses.replace(sim, rounds=3, checkpoint_dir=None)).weights)


def test_a_failed_round_leaves_the_last_checkpoint_as_it_was(tmp_path):
    sim = SimulationConfig(rounds=2, clients_per_round=2, checkpoint_dir=str(tmp_path))
    two = run(FedAvg(), sim)

    def break_round_3(reply, weights, t):
        if t != 3:
            return reply
        poisoned = {**reply.weights, "body.weight": reply.weights["body.weight"] * math.nan}
        return dataclasses.replace(reply, weights=poisoned)

    with pytest.raises(UpdateError, match="NaN"):
        run(FedAvg(), dataclasses.replace(sim, rounds=3), reply_fn=break_round_3)
    newest = latest_checkpoint(tmp_path)
    assert newest.name == "round_000002.pt"
    assert same(torch.load(newest, weights_only=True)["weights"], two.weights)


def test_straggler_steps_and_config_checks():
    assert [straggler_steps(10, s) for s in (1.0, 2.0, 3.0, 20.0)] == [10, 5, 3, 1]
    for bad in (dict(dropout=1.0), dict(straggler=-0.1), dict(slowdown=0.5), dict(straggler_policy="x"),
                dict(codec="int4"), dict(stochastic=True), dict(rounds=0)):
        with pytest.raises(ValueError):
            SimulationConfig(**bad)
    assert SimulationConfig(fraction=0.3).num_sampled(10) == 3 and SimulationConfig(fraction=0.01).num_sampled(10) == 1
    assert math.isclose(SimulationConfig().num_sampled(7), 7)


# --- the recipe's experiments on the CI corpus --------------------------------------------------------

def tiny_settings(**overrides):
    from ttslab.train.federated_fastspeech import SETTINGS

    return dataclasses.replace(SETTINGS["ci"], **{"speakers": ("en_us_m", "en_gb_f", "en_us_f"),
                                                  "train_per_speaker": 6, "rounds": 1, **overrides})


def test_federation_holds_one_speaker_per_client_and_the_centralized_run_takes_the_same_steps(ci_corpus):
    from ttslab.train.federated_fastspeech import Federation, run_centralized, run_strategy

    fed = Federation(ci_corpus, tiny_settings())
    clients, summary = fed.clients("speaker")
    assert [len(c) for c in clients] == [6, 6, 6] and summary["non_iid_index"] == pytest.approx(1.0)
    speakers = {int(k): s for k, s in summary["labels"].items()}
    for c in clients:   # every item of a client is its speaker's
        assert {fed.speakers[int(it["speaker"])] for it in c.items} == {speakers[c.client_id]}
    c = fed.config
    central = run_centralized(fed)
    federated = run_strategy(fed, FedAvg(), clients)
    central_steps = sum(central.history[1]["steps"].values())
    fed_steps = sum(federated.history[1]["steps"].values())
    assert central_steps == fed_steps == c.clients_per_round * c.local_steps
    assert central.history[1]["eval"]["mel"] < central.history[0]["eval"]["mel"]


def test_a_snapshot_of_a_longer_run_is_the_shorter_run_bit_for_bit(ci_corpus):
    from ttslab.train.federated_fastspeech import Federation, Snapshot, run_centralized, run_strategy

    fed = Federation(ci_corpus, tiny_settings(clients_per_round=2, local_steps=1))
    clients, _ = fed.clients("speaker")
    short = run_strategy(fed, FedAvg(), clients, sim_config=fed.config.sim_config(rounds=1))
    snapshot = Snapshot(fed, 1)
    long = run_strategy(fed, FedAvg(), clients, sim_config=fed.config.sim_config(rounds=2), evaluate_fn=snapshot)
    kept = snapshot.result(long)
    assert max_abs_diff(kept.weights, short.weights) == 0.0 and max_abs_diff(long.weights, short.weights) > 0
    assert kept.history == short.history and kept.comm.total == short.comm.total > 0
    assert kept.comm.total < long.comm.total
    central_snapshot = Snapshot(fed, 1)
    run_centralized(fed, 2, evaluate_fn=central_snapshot)
    assert max_abs_diff(central_snapshot.weights, run_centralized(fed, 1).weights) == 0.0
    with pytest.raises(ValueError, match="never reached round 3"):
        Snapshot(fed, 3).result(long)
    both = Snapshot(fed, 1, 2)   # several rounds from one run
    longer = run_strategy(fed, FedAvg(), clients, sim_config=fed.config.sim_config(rounds=3), evaluate_fn=both)
    assert max_abs_diff(both.result(longer, 1).weights, short.weights) == 0.0
    assert max_abs_diff(both.result(longer, 2).weights, long.weights) == 0.0
    assert both.result(longer, 2).history == long.history


@pytest.mark.slow
def test_every_experiment_runs_at_toy_size(ci_corpus):
    from ttslab.train.federated_fastspeech import run_all, summary_metrics

    out = run_all(ci_corpus, tiny_settings(alphas=(0.1,), sweep_rounds=1, tuned_lr=3e-3, all_clients=True),
                  voices=False)
    rows = out["strategies"]["rows"]
    # 1 round x 2 clients x 2 local steps; long: 2 rounds; longest: 4 rounds
    short = {"centralized", "fedavg", "fedprox", "fedasync", "fedavg, IID clients", "fedavgm (server momentum 0.9)",
             "centralized, lr 0.003", "fedavg, lr 0.003"}
    everyone = {"fedavg, all 3 x 2 local steps", "fedavg, all 3 x 2 local steps, IID clients"}   # 3 x 2 steps
    longs = {"centralized, 2 rounds", "fedavg, 2 rounds", "fedprox, 2 rounds", "fedavg, IID clients, 2 rounds",
             "fedavg, 1 x 4 local steps, 2 rounds", "fedavg, all 3 x 2 local steps, 2 rounds",
             "fedavg, all 3 x 2 local steps, IID clients, 2 rounds"}
    longest = {"centralized, 4 rounds", "fedavg, 4 rounds", "fedavg, IID clients, 4 rounds",
               "fedavg, all 3 x 2 local steps, 4 rounds"}
    assert set(rows) == short | everyone | longs | longest
    assert set(list(rows)[: len(short | everyone)]) == short | everyone  # ordered by budget
    steps = {n: (r["rounds"], r["steps"], r["sequential_steps"]) for n, r in rows.items()}
    assert {steps[n] for n in short if not n.startswith("centralized")} == {(1, 4, 2)}   # 2 clients x 2 steps
    assert steps["centralized"] == steps["centralized, lr 0.003"] == (1, 4, 4)
    assert steps["fedavg, 2 rounds"] == (2, 8, 4) and steps["centralized, 2 rounds"] == (2, 8, 8)
    assert steps["fedavg, 1 x 4 local steps, 2 rounds"] == (2, 8, 8)
    assert steps["fedavg, all 3 x 2 local steps, 2 rounds"] == (2, 12, 4)
    assert steps["fedavg, all 3 x 2 local steps, 4 rounds"] == (4, 24, 8)
    assert steps["fedavg, IID clients, 4 rounds"] == (4, 16, 8) and steps["centralized, 4 rounds"] == (4, 16, 16)
    assert rows["fedavg, lr 0.003"]["lr"] == rows["centralized, lr 0.003"]["lr"] == 3e-3
    summary = summary_metrics(out)
    assert summary["fedavg, 2 rounds"]["versus"] == "centralized, 2 rounds"
    assert summary["fedavg, 2 rounds"]["mel_gap"] == rows["fedavg, 2 rounds"]["final_mel"] - \
        rows["centralized, 2 rounds"]["final_mel"]
    assert summary["fedavg"]["versus"] == summary["fedavg, IID clients"]["versus"] == "centralized"
    assert summary["fedavg, lr 0.003"]["versus"] == "centralized, lr 0.003"   # the same learning rate
    # equal sequential steps: 4 rounds x 2 local steps = the centralized run of 2 rounds x 4 steps
    assert summary["fedavg, IID clients, 4 rounds"]["versus_sequential"] == "centralized, 2 rounds"
    assert summary["fedavg, IID clients, 4 rounds"]["mel_gap_sequential"] == \
        rows["fedavg, IID clients, 4 rounds"]["final_mel"] - rows["centralized, 2 rounds"]["final_mel"]
    assert summary["fedavg, all 3 x 2 local steps, 2 rounds"]["versus"] is None       # no centralized run of 12
    assert summary["fedavg, all 3 x 2 local steps, 2 rounds"]["versus_sequential"] == "centralized"
    assert summary["fedavg, lr 0.003"]["versus_sequential"] is None
    one = out["strategies"]["rows"]["fedavg, 1 x 4 local steps, 2 rounds"]   # 1 client x 4 steps per round
    assert one["bytes_total"] * 2 == rows["fedavg, 2 rounds"]["bytes_total"]
    assert [r["alpha"] for r in out["alpha_sweep"]["rows"]] == [0.1, "iid"]
    dropout = next(r for r in out["failures"]["rows"] if "dropout" in r["case"])
    assert dropout["updates"] + dropout["dropped"] == 2    # 1 round x 2 sampled clients
    assert len(out["personalization"]["rows"]) == 3
    assert out["personalization"]["bytes_fedper"] < out["personalization"]["bytes_global"]
    assert summary_metrics(out)["centralized"]["mel_gap"] == 0.0
