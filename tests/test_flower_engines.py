"""ttslab's federated training on Flower 1.41: the same seeded run on three engines, and Flower's own
strategies against ttslab's on the same replies.

* engines: ttslab's simulator, Flower's simulation engine (Ray) and its deployment engine (a SuperLink
  and SuperNodes on 127.0.0.1) give bit-identical final weights (``torch.equal`` on every tensor);
* parity: Flower's ``aggregate_train`` (FedAvg, FedProx, FedMedian, FedTrimmedAvg, Krum, MultiKrum) on
  reply messages against ttslab's strategies on the same replies. Where Flower sums float32 in reply
  order, the test bounds the difference by the float32 rounding analysis (below) and shows that
  reordering the replies changes Flower's result but never ttslab's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

flwr = pytest.importorskip("flwr")

from flwr.app import Message, MessageType, Metadata, MetricRecord, RecordDict  # noqa: E402
from flwr.serverapp import strategy as flower  # noqa: E402

from ttslab.federated import ClientConfig, FedAvg, FedMedian, FedProx, FedTrimmedAvg, Krum, Reply  # noqa: E402
from ttslab.federated.flower import (FlowerRun, LocalDeployment, PortInUseError, from_record,  # noqa: E402
                                     run_deployment_engine, run_simulation_engine, run_ttslab_simulator, to_record)
from ttslab.federated.flower.app import replies_to_ttslab  # noqa: E402
from ttslab.federated.flower.engines import marked_pids  # noqa: E402
from ttslab.federated.tasks import toy_regression  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
U32 = 2.0 ** -24                  # float32's unit roundoff


def same(a, b) -> bool:
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


# --- optional import and records ---------------------------------------------------------------------

@pytest.mark.slow  # a fresh interpreter importing torch: ~5-20 s on a busy machine
def test_ttslab_imports_without_flower():
    code = ("import sys; sys.modules['flwr'] = None\n"          # makes `import flwr` fail
            "import ttslab, ttslab.federated, ttslab.federated.tasks, ttslab.federated.simulator\n"
            "try:\n    import ttslab.federated.flower\nexcept ImportError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "pip install" in out.stdout


def test_records_carry_weights_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    weights = OrderedDict([("a", torch.randn(3, 4, generator=g)), ("b", torch.randn(5, generator=g).double()),
                           ("c", torch.randn(4, 3, generator=g).t()),          # not contiguous
                           ("d", torch.tensor(1e-40)), ("e", torch.randn(2, generator=g).half())])
    back = from_record(to_record(weights))
    assert same(back, weights)
    assert list(from_record(to_record(weights), ["e", "a"])) == ["e", "a"]
    with pytest.raises(KeyError, match="lacks"):
        from_record(to_record(weights), ["a", "zz"])


def test_flower_run_refuses_bad_settings_early():
    good = dict(task="ttslab.federated.tasks:toy_regression", num_nodes=2, rounds=1)
    assert FlowerRun.from_json(FlowerRun(**good).to_json()) == FlowerRun(**good)
    with pytest.raises(ValueError, match="module:function"):
        FlowerRun(**{**good, "task": "no_colon"})
    with pytest.raises(ValueError, match="num_nodes"):
        FlowerRun(**{**good, "num_nodes": 0})
    with pytest.raises(ValueError, match="mu"):
        FlowerRun(**good, strategy="fedprox", strategy_args={"mu": -1.0})
    with pytest.raises(ValueError, match="unknown ClientConfig"):
        FlowerRun(**good, client={"local_stepz": 3})


# --- the three engines ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_three_engines_give_bit_identical_weights(tmp_path):
    """3 nodes, 2 rounds, the tiny non-IID regression: (a) ttslab's simulator, (b) Flower's simulation
    engine (Ray), (c) Flower's deployment engine on 127.0.0.1. Costs ~1-3 min on 2 busy cores (Ray's
    start-up and one Python process per ClientApp round on the deployment engine)."""
    config = ClientConfig(local_steps=3, batch_size=4, lr=0.05, optimizer="sgd", seed=11)
    run = FlowerRun(task="ttslab.federated.tasks:toy_regression", num_nodes=3, rounds=2, client=config.to_dict())
    a, history_a = run_ttslab_simulator(run)
    b, history_b = run_simulation_engine(run, num_cpus=2, workdir=tmp_path)
    c, history_c = run_deployment_engine(run, workdir=tmp_path)
    start = toy_regression(3).model_fn                       # the weights moved: something was trained
    from ttslab.federated import initial_weights
    w0 = initial_weights(start, seed=11)
    assert all(not torch.equal(a[k], w0[k]) for k in a)
    for other in (b, c):
        assert list(other) == list(a)
        for name in a:
            assert other[name].dtype == a[name].dtype and torch.equal(other[name], a[name]), name
    # the clients' training losses, aggregated on the server, agree too
    losses = [[h["train"]["loss"] for h in hist] for hist in (history_a, history_b, history_c)]
    assert losses[0] == losses[1] == losses[2]
    assert [h["clients"] for h in history_b] == [[0, 1, 2]] * 2


@pytest.mark.slow
def test_simulator_differs_when_the_seed_does():
    """The bit-identity above is not vacuous: another client seed gives other weights."""
    config = ClientConfig(local_steps=2, batch_size=4, lr=0.05, optimizer="sgd")
    run = FlowerRun(task="ttslab.federated.tasks:toy_regression", num_nodes=2, rounds=1,
                    client={**config.to_dict(), "seed": 1})
    a, _ = run_ttslab_simulator(run)
    b, _ = run_ttslab_simulator(run.replace(client={**config.to_dict(), "seed": 2}))
    assert not same(a, b)
    assert same(a, run_ttslab_simulator(run)[0])


# --- the deployment engine's processes --------------------------------------------------------------------

def test_taken_port_is_refused_before_anything_starts(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        deployment = LocalDeployment(2, superlink_port=port, workdir=tmp_path)
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            deployment.start()
        assert deployment.processes == {} and marked_pids(deployment.token) == []


@pytest.mark.slow  # a fresh interpreter importing torch and Flower
def test_command_line_exits_2_on_a_taken_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "ttslab.federated.flower.deployment", "--port", str(port)],
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "already in use" in out.stderr


@pytest.mark.slow
def test_every_process_is_stopped_after_an_exception(tmp_path):
    """Start a SuperLink and 2 SuperNodes, fail inside the block: all of them (and the SuperExec the
    SuperLink starts detached) are gone afterwards."""
    with pytest.raises(RuntimeError, match="boom"):
        with LocalDeployment(2, workdir=tmp_path) as deployment:
            pids, token = deployment.pids, deployment.token
            assert set(pids) == {"superlink", "supernode-0", "supernode-1"}
            assert len(marked_pids(token)) >= 3
            raise RuntimeError("boom")
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert marked_pids(token) == []


# --- Flower's strategies against ttslab's, on the same replies ----------------------------------------------

def reply_message(k: int, weights, num_examples: int) -> Message:
    """A reply as a Flower strategy receives it (metadata given directly: no Flower runtime needed)."""
    meta = Metadata(run_id=1, message_id=f"m{k}", src_node_id=100 + k, dst_node_id=1, reply_to_message_id="",
                    group_id="1", created_at=time.time(), ttl=3600.0, message_type=MessageType.TRAIN)
    content = RecordDict({"arrays": to_record(weights),
                          "metrics": MetricRecord({"num-examples": num_examples, "partition-id": k})})
    return Message(content=content, metadata=meta)


def make_replies(n: int, seed: int = 0, spread: float = 1.0, dtype=torch.float32):
    """n replies of float32 (or ``dtype``) weights with magnitudes over several decades (so float32 sums round)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a = rng.standard_normal((40, 30)) * 10.0 ** rng.integers(-2, 3, (40, 30)) * spread
        b = rng.standard_normal(25) + k
        out.append((k, OrderedDict(a=torch.tensor(a, dtype=dtype), b=torch.tensor(b, dtype=dtype)),
                    int(rng.integers(1, 40))))
    return out


def flower_result(strategy, replies, order) -> OrderedDict:
    msgs = [reply_message(*replies[i]) for i in order]
    arrays, _ = strategy.aggregate_train(1, msgs)
    return from_record(arrays, ["a", "b"])


def ttslab_result(strategy, replies, order) -> OrderedDict:
    dtype = replies[0][1]["a"].dtype
    g = OrderedDict(a=torch.zeros(40, 30, dtype=dtype), b=torch.zeros(25, dtype=dtype))
    return strategy.aggregate(g, [Reply(k, w, n) for k, w, n in (replies[i] for i in order)], 1)


ORDERS = [list(range(6)), [5, 4, 3, 2, 1, 0], [2, 0, 5, 1, 4, 3]]


@pytest.mark.parametrize("dtype, u", [(torch.float32, U32), (torch.float64, 2.0 ** -53)])
@pytest.mark.parametrize("flower_strategy, ours", [(lambda: flower.FedAvg(), FedAvg),
                                                   (lambda: flower.FedProx(proximal_mu=0.1), lambda: FedProx(0.1))])
def test_fedavg_and_fedprox_match_ttslab_within_reply_order_rounding(flower_strategy, ours, dtype, u):
    """Flower: ``sum_k (n_k / N) w_k`` accumulated in float32 in reply order. Each of the K products and
    K - 1 additions rounds once (relative error <= u = 2^-24), so the float32 sum differs from the exact
    mean m by at most about (K + 1) u sum_k (n_k / N) |w_k|; ttslab rounds the float64 mean once
    (<= u |m|). The test asserts |Flower - ttslab| <= (K + 2) u sum_k (n_k / N) |w_k| elementwise. With
    float64 weights both sum in float64 (u = 2^-53): Flower's result still depends on the reply order,
    ttslab's does not, because ttslab sorts the replies by client id before summing."""
    replies = make_replies(6, dtype=dtype)
    K, N = len(replies), sum(n for _, _, n in replies)
    ours_first = ttslab_result(ours(), replies, ORDERS[0])
    flower_by_order = [flower_result(flower_strategy(), replies, o) for o in ORDERS]
    for o in ORDERS[1:]:
        assert same(ttslab_result(ours(), replies, o), ours_first)            # ttslab: order never matters
    assert any(not same(f, flower_by_order[0]) for f in flower_by_order[1:])  # Flower: the order changes bits
    worst = 0.0
    for f in flower_by_order:
        for name in ("a", "b"):
            scale = sum((n / N) * w[name].double().abs() for _, w, n in replies)
            diff = (f[name].double() - ours_first[name].double()).abs()
            assert torch.all(diff <= (K + 2) * u * scale), name
            worst = max(worst, float((diff / scale.clamp_min(1e-300)).max()))
    assert 0.0 < worst <= (K + 2) * u            # they do differ, by a few ulps of the summands
    print(f"{dtype}: max |Flower - ttslab| / sum_k (n_k/N)|w_k| = {worst:.2e} = {worst / u:.2f} u")


def test_flower_fedprox_aggregates_as_fedavg_and_sends_mu():
    replies = make_replies(4)
    assert same(flower_result(flower.FedProx(proximal_mu=0.3), replies, range(4)),
                flower_result(flower.FedAvg(), replies, range(4)))
    assert same(ttslab_result(FedProx(0.3), replies, range(4)), ttslab_result(FedAvg(), replies, range(4)))
    assert FedProx(0.3).client_options() == {"mu": 0.3}                 # Flower sends config["proximal-mu"]


@pytest.mark.parametrize("n", [5, 6])
def test_fedmedian_matches_ttslab_bit_for_bit(n):
    """Median: the middle value (odd n) is exact in both; for even n Flower's float32 ``(a + b) / 2``
    rounds a + b and halves exactly, ttslab rounds the exact float64 (a + b) / 2 once: the same float32."""
    replies = make_replies(n, seed=3)
    ours = ttslab_result(FedMedian(), replies, range(n))
    for o in (range(n), reversed(range(n))):
        assert same(flower_result(flower.FedMedian(), replies, list(o)), ours)
    ref = np.median(np.stack([w["a"].double().numpy() for _, w, _ in replies]), axis=0).astype(np.float32)
    np.testing.assert_array_equal(ours["a"].numpy(), ref)


def test_fedtrimmedavg_matches_within_float32_rounding():
    """Trimmed mean of the n - 2b middle values: Flower in float32 (np.partition then np.mean), ttslab
    in float64 rounded once; the difference is bounded by (n - 2b + 1) u max|w| and ttslab's result does
    not depend on the reply order."""
    replies = make_replies(6, seed=5)
    beta, n = 0.2, 6
    kept = n - 2 * int(beta * n)
    ours = ttslab_result(FedTrimmedAvg(beta), replies, range(n))
    assert same(ttslab_result(FedTrimmedAvg(beta), replies, ORDERS[2]), ours)
    biggest = {name: torch.stack([w[name].double().abs() for _, w, _ in replies]).max(0).values for name in ("a", "b")}
    for o in ORDERS:
        theirs = flower_result(flower.FedTrimmedAvg(beta=beta), replies, o)
        for name in ("a", "b"):
            diff = (theirs[name].double() - ours[name].double()).abs()
            assert torch.all(diff <= (kept + 1) * U32 * biggest[name])


def test_krum_selects_the_same_reply_and_multikrum_agrees_within_rounding():
    """Well separated replies (one cluster, two outliers): Flower's Krum (distances via
    |x|^2 + |y|^2 - 2xy in float32) and ttslab's (direct float64 differences) pick the same reply, so the
    result is that reply exactly; multi-Krum's weighted mean of the m picked agrees within rounding."""
    base = make_replies(7, seed=7, spread=0.01)
    replies = [(k, OrderedDict((n, t + (50.0 * k if k >= 5 else 0.0)) for n, t in w.items()), num)
               for k, w, num in base]                               # clients 5 and 6 are far away
    orders = [list(range(7)), [6, 5, 4, 3, 2, 1, 0], [3, 6, 0, 5, 1, 4, 2]]
    ours = Krum(num_malicious=2)
    krum_ours = ttslab_result(ours, replies, range(7))
    assert ours.last_selected[0] < 5
    for o in orders:
        assert same(flower_result(flower.Krum(num_malicious_nodes=2), replies, o), krum_ours)
    multi = ttslab_result(Krum(num_malicious=2, num_selected=3, weighted=True), replies, range(7))
    theirs = flower_result(flower.MultiKrum(num_malicious_nodes=2, num_nodes_to_select=3), replies, orders[1])
    for name in ("a", "b"):
        scale = torch.stack([w[name].double().abs() for _, w, _ in replies]).max(0).values
        assert torch.all((theirs[name].double() - multi[name].double()).abs() <= 5 * U32 * scale)


def test_server_side_conversion_sorts_by_partition_id():
    """The ServerApp's own path: reply messages -> ttslab Replies -> FedAvg; any arrival order gives the
    same bits, and the partition ids and sizes come from the MetricRecord."""
    replies = make_replies(5, seed=9)
    g = OrderedDict(a=torch.zeros(40, 30), b=torch.zeros(25))
    results = []
    for o in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        converted = replies_to_ttslab([reply_message(*replies[i]) for i in o], ["a", "b"])
        assert [r.client_id for r in converted] == o
        assert [r.num_examples for r in converted] == [replies[i][2] for i in o]
        results.append(FedAvg().aggregate(g, converted, 1))
    assert same(results[0], results[1])
