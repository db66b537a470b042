"""Tests of ttslab.federated's framework-free core: weights, client_update, strategies, evaluate.

References are hand computations (numbers worked out in the comments), numpy float64, or a client
loop written out here with ttslab.train directly."""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
from collections import OrderedDict

import numpy as np
import pytest
import torch

from ttslab.federated import (ClientConfig, ClientData, FedAdam, FedAsync, FedAvg, FedAvgM, FedProx, Reply,
                              UpdateError, aggregate_metrics, build_model, client_seed, client_update,
                              clone_weights, evaluate, get_weights, initial_weights, make_strategy, max_abs_diff,
                              num_bytes, proximal_loss, set_weights, split_weights, staleness_factor)
from ttslab.train import Batches, make_optimizer, train_step


# --- a toy model and its data ------------------------------------------------------------------

class Toy(torch.nn.Module):
    """body -> dropout -> head, a buffer; the head can be personal."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(3, 4)
        self.drop = torch.nn.Dropout(0.3)
        self.head = torch.nn.Linear(4, 1)
        self.register_buffer("scale", torch.full((1,), 2.0))

    def forward(self, x):
        return self.head(self.drop(torch.tanh(self.body(x)))) * self.scale


def toy_loss(model, batch):
    err = model(batch["x"]) - batch["y"]
    return (err ** 2).mean(), {"mae": float(err.detach().abs().mean())}


def collate(items):
    return {"x": torch.stack([it["x"] for it in items]), "y": torch.stack([it["y"] for it in items])}


def toy_data(client_id, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = [{"x": torch.randn(3, generator=g), "y": torch.randn(1, generator=g)} for _ in range(n)]
    return ClientData(client_id, items, collate)


def same(a, b) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def w(*values, dtype=torch.float32):
    return torch.tensor(values, dtype=dtype)


def test_docstring_examples():
    for name in ("weights", "strategies", "client"):
        result = doctest.testmod(importlib.import_module(f"ttslab.federated.{name}"), optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, name


# --- weights ------------------------------------------------------------------------------------

def test_get_set_weights_and_byte_counts():
    model = Toy()
    trainable = get_weights(model)
    assert list(trainable) == ["body.weight", "body.bias", "head.weight", "head.bias"]
    assert "scale" in get_weights(model, which="floating")
    assert list(get_weights(model, exclude=["head"])) == ["body.weight", "body.bias"]
    assert num_bytes(trainable) == (12 + 4 + 4 + 1) * 4 and num_bytes(trainable, torch.float16) == 21 * 2
    trainable["body.weight"] += 1.0                               # a copy: the model is untouched
    assert not torch.equal(model.body.weight, trainable["body.weight"])
    set_weights(model, trainable)
    assert torch.equal(model.body.weight, trainable["body.weight"])
    before = clone_weights(get_weights(model))
    bad = OrderedDict((n, t + 5.0) for n, t in trainable.items())
    bad["head.bias"] = torch.zeros(2)                             # the last entry is wrong
    with pytest.raises(ValueError, match="head.bias"):
        set_weights(model, bad)                                   # checked before anything is copied
    assert same(get_weights(model), before)
    shared, local = split_weights(trainable, ["head"])
    assert list(shared) == ["body.weight", "body.bias"] and list(local) == ["head.weight", "head.bias"]
    assert max_abs_diff(trainable, before) == 0.0
    assert max_abs_diff({"a": w(1.0)}, {"a": w(1.5)}) == 0.5


# --- FedAvg -------------------------------------------------------------------------------------

def test_fedavg_by_hand():
    g = OrderedDict(a=w(0.0, 0.0), b=w(0.0))
    replies = [Reply(1, OrderedDict(a=w(1.0, 2.0), b=w(4.0)), 1),
               Reply(2, OrderedDict(a=w(3.0, -2.0), b=w(0.0)), 2),
               Reply(3, OrderedDict(a=w(0.0, 8.0), b=w(1.0)), 5)]
    out = FedAvg().aggregate(g, replies, server_round=1)
    # a: (1*[1,2] + 2*[3,-2] + 5*[0,8]) / 8 = [7, 38] / 8;   b: (4 + 0 + 5) / 8
    assert same(out, OrderedDict(a=w(0.875, 4.75), b=w(1.125)))
    assert out["a"].dtype == torch.float32 and same(g, OrderedDict(a=w(0.0, 0.0), b=w(0.0)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fedavg_is_independent_of_reply_order_and_correctly_rounded(dtype):
    rng = np.random.default_rng(0)
    K, size = 6, 4000
    values = [rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4, size) for _ in range(K)]
    counts = [int(c) for c in rng.integers(1, 50, K)]
    g = {"w": torch.zeros(size, dtype=dtype)}
    replies = [Reply(k, {"w": torch.tensor(v, dtype=dtype)}, n) for k, (v, n) in enumerate(zip(values, counts))]
    first = FedAvg().aggregate(g, replies, 1)["w"]
    for perm in list(itertools.permutations(range(K)))[::97]:
        assert torch.equal(FedAvg().aggregate(g, [replies[i] for i in perm], 1)["w"], first)
    # the reference: numpy float64 on the values the clients sent, rounded once to the dtype
    sent = np.stack([r.weights["w"].double().numpy() for r in replies])
    reference = (np.asarray(counts, dtype=np.float64)[:, None] * sent).sum(0) / sum(counts)
    if dtype == torch.float32:
        assert torch.equal(first, torch.from_numpy(reference).float())
    else:
        np.testing.assert_allclose(first.numpy(), reference, rtol=1e-14)
    # what the fixed order protects against: a float32 sum in arrival order depends on the order
    naive = [sum((r.weights["w"].float() * (r.num_examples / sum(counts)) for r in perm), torch.zeros(size))
             for perm in (replies, replies[::-1])]
    assert not torch.equal(naive[0], naive[1])


# --- errors: clear, early, and the global weights untouched ----------------------------------------

def good_global():
    return OrderedDict(a=w(1.0, 2.0), b=w(3.0))


@pytest.mark.parametrize("case, update, num_examples, match", [
    ("wrong shape", OrderedDict(a=w(1.0, 2.0, 3.0), b=w(0.0)), 2, r"client 7.*'a'.*shape \(3,\)"),
    ("wrong dtype", OrderedDict(a=w(1.0, 2.0, dtype=torch.float64), b=w(0.0)), 2, r"client 7.*'a'.*float64"),
    ("nan", OrderedDict(a=w(1.0, float("nan")), b=w(0.0)), 2, r"client 7.*'a'.*NaN"),
    ("inf", OrderedDict(a=w(1.0, 2.0), b=w(float("inf"))), 2, r"client 7.*'b'.*inf"),
    ("missing", OrderedDict(a=w(1.0, 2.0)), 2, r"client 7.*lacks \['b'\]"),
    ("extra", OrderedDict(a=w(1.0, 2.0), b=w(0.0), head=w(1.0)), 2, r"client 7.*'head'.*personal"),
    ("empty client", OrderedDict(a=w(1.0, 2.0), b=w(0.0)), 0, r"client 7.*num_examples=0.*empty"),
    ("numpy", OrderedDict(a=np.zeros(2, np.float32), b=w(0.0)), 2, r"client 7.*'a'.*torch.from_numpy"),
])
@pytest.mark.parametrize("strategy", [FedAvg(), FedProx(0.1), FedAsync(0.5), FedAvgM(), FedAdam()], ids=repr)
def test_bad_updates_are_refused_and_the_global_weights_stay(case, update, num_examples, match, strategy):
    g = good_global()
    keep, ids = clone_weights(g), {k: id(t) for k, t in g.items()}
    state = strategy.state_dict()
    good = Reply(3, OrderedDict(a=w(0.0, 0.0), b=w(1.0)), 4, model_version=0)
    with pytest.raises(UpdateError, match=match) as info:
        strategy.aggregate(g, [good, Reply(7, update, num_examples, model_version=0)], server_round=1)
    assert info.value.client_id == 7
    assert same(g, keep) and {k: id(t) for k, t in g.items()} == ids
    assert repr(strategy.state_dict()) == repr(state)


def test_zero_clients_duplicates_and_hyperparameters_are_refused():
    g, keep = good_global(), clone_weights(good_global())
    for strategy in (FedAvg(), FedAsync(), FedAdam()):
        with pytest.raises(ValueError, match="no client replies.*round 4.*sample at least one"):
            strategy.aggregate(g, [], server_round=4)
    twice = [Reply(1, clone_weights(g), 1), Reply(1, clone_weights(g), 2)]
    with pytest.raises(UpdateError, match="client 1 replied twice"):
        FedAvg().aggregate(g, twice, 1)
    assert same(g, keep)
    for mu in (-0.1, float("nan"), float("inf")):
        for make in (FedProx, lambda mu: ClientConfig(mu=mu), lambda mu: proximal_loss(toy_loss, {}, mu)):
            with pytest.raises(ValueError, match="mu .*>= 0"):
                make(mu)
    for alpha in (0, -0.5, 1.0001, 2):
        with pytest.raises(ValueError, match=r"alpha .*\(0, 1\]"):
            FedAsync(alpha=alpha)
    FedAsync(alpha=1.0)
    with pytest.raises(ValueError, match="staleness"):
        FedAsync(staleness="exponential")
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("fedsgd")
    assert make_strategy("fedprox", mu=0.5).client_options() == {"mu": 0.5}


def test_an_empty_client_cannot_train_or_be_evaluated():
    g = initial_weights(Toy)
    keep = clone_weights(g)
    empty = ClientData("spk_x", [], collate)
    with pytest.raises(ValueError, match="client 'spk_x' has no examples"):
        client_update(g, empty, ClientConfig(local_steps=1), model_fn=Toy, loss_fn=toy_loss)
    with pytest.raises(ValueError, match="client 'spk_x' has no examples"):
        evaluate(g, empty, model_fn=Toy, loss_fn=toy_loss)
    assert same(g, keep)


# --- FedAsync -------------------------------------------------------------------------------------

def test_fedasync_by_hand_without_compounding():
    strategy = FedAsync(alpha=0.5, staleness="polynomial", a=1.0)
    w0 = {"w": w(0.0, 4.0)}
    # t=1, tau=0: s = (1 + 1)^-1 = 1/2, a_t = 1/4:  3/4 [0, 4] + 1/4 [8, 8] = [2, 5]
    w1 = strategy.aggregate(w0, [Reply("A", {"w": w(8.0, 8.0)}, 10, model_version=0)], server_round=1)
    assert torch.equal(w1["w"], w(2.0, 5.0))
    # t=2, tau=1: staleness 1 again, a_t = 1/4 afresh (compounding would give 1/8):
    #   3/4 [2, 5] + 1/4 [6, 1] = [3, 4]
    w2 = strategy.aggregate(w1, [Reply("B", {"w": w(6.0, 1.0)}, 1, model_version=1)], server_round=2)
    assert torch.equal(w2["w"], w(3.0, 4.0)) and strategy.alpha == 0.5
    # t=3, tau=0: staleness 3, s = 1/4, a_t = 1/8:  7/8 [3, 4] + 1/8 [11, 12] = [4, 5]
    w3 = strategy.aggregate(w2, [Reply("A", {"w": w(11.0, 12.0)}, 1, model_version=0)], server_round=3)
    assert torch.equal(w3["w"], w(4.0, 5.0))
    assert torch.equal(w0["w"], w(0.0, 4.0))
    # replies passed together = one call each at the same t, in client-id order
    r = [Reply("b", {"w": w(1.0, 0.0)}, 1, model_version=1), Reply("a", {"w": w(0.0, 3.0)}, 1, model_version=2)]
    together = strategy.aggregate(w0, r, server_round=2)
    one_by_one = strategy.aggregate(strategy.aggregate(w0, [r[1]], 2), [r[0]], 2)
    assert same(together, one_by_one)
    with pytest.raises(UpdateError, match="model_version"):
        strategy.aggregate(w0, [Reply("A", {"w": w(1.0, 1.0)}, 1, model_version=5)], server_round=2)
    with pytest.raises(UpdateError, match="model_version"):
        strategy.aggregate(w0, [Reply("A", {"w": w(1.0, 1.0)}, 1)], server_round=2)


def test_staleness_functions_by_hand():
    assert [staleness_factor(s) for s in (0, 5)] == [1.0, 1.0]
    assert staleness_factor(3, "polynomial", a=0.5) == 0.5                       # (3 + 1)^-0.5
    assert staleness_factor(8, "polynomial", a=1 / 3) == pytest.approx(1 / 9 ** (1 / 3))
    assert staleness_factor(4, "hinge", a=10, b=4) == 1.0                        # t - tau <= b
    assert staleness_factor(6, "hinge", a=10, b=4) == pytest.approx(1 / 21)      # 1 / (10 (6 - 4) + 1)
    assert FedAsync(alpha=0.6, staleness="hinge", a=10, b=4).mixing_weight(5) == pytest.approx(0.6 / 11)
    with pytest.raises(ValueError, match="staleness"):
        staleness_factor(-1)


# --- server optimizers ----------------------------------------------------------------------------

def test_fedavgm_two_rounds_by_hand_and_resume():
    strategy = FedAvgM(server_lr=0.5, momentum=0.5)
    w0 = {"w": w(1.0)}
    # round 1: avg (1*2 + 1*4)/2 = 3, D = 2, v = 2, w = 1 + 0.5*2 = 2
    w1 = strategy.aggregate(w0, [Reply(1, {"w": w(2.0)}, 1), Reply(2, {"w": w(4.0)}, 1)], 1)
    assert torch.equal(w1["w"], w(2.0))
    saved = strategy.state_dict()
    # round 2: avg 4, D = 2, v = 0.5*2 + 2 = 3, w = 2 + 0.5*3 = 3.5
    w2 = strategy.aggregate(w1, [Reply(1, {"w": w(4.0)}, 3)], 2)
    assert torch.equal(w2["w"], w(3.5)) and strategy.rounds == 2
    resumed = FedAvgM(server_lr=0.5, momentum=0.5)
    resumed.load_state_dict(saved)
    assert torch.equal(resumed.aggregate(w1, [Reply(1, {"w": w(4.0)}, 3)], 2)["w"], w(3.5))
    # beta = 0, eta = 1 is FedAvg
    r = [Reply(1, {"w": w(0.3)}, 2), Reply(2, {"w": w(0.7)}, 5)]
    assert torch.allclose(FedAvgM(1.0, 0.0).aggregate(w0, r, 1)["w"], FedAvg().aggregate(w0, r, 1)["w"])


def test_fedadam_two_rounds_by_hand():
    strategy = FedAdam(server_lr=1.0, beta1=0.9, beta2=0.99, tau=0.1)
    w0 = {"w": w(0.0, 1.0, dtype=torch.float64)}
    # round 1: D = [1, 0]; m = 0.1 D; v = 0.01 D^2; w = w0 + m / (sqrt(v) + 0.1) = [0 + 0.1/0.2, 1 + 0]
    w1 = strategy.aggregate(w0, [Reply(1, {"w": w(1.0, 1.0, dtype=torch.float64)}, 1)], 1)
    assert w1["w"].tolist() == pytest.approx([0.5, 1.0], abs=1e-15)
    # round 2: avg of [2, 2] (n=1) and [3, 0] (n=3) = [2.75, 0.5]; D = [2.25, -0.5]
    w2 = strategy.aggregate(w1, [Reply(1, {"w": w(2.0, 2.0, dtype=torch.float64)}, 1),
                                 Reply(2, {"w": w(3.0, 0.0, dtype=torch.float64)}, 3)], 2)
    m = [0.9 * 0.1 + 0.1 * 2.25, 0.1 * -0.5]
    v = [0.99 * 0.01 + 0.01 * 2.25 ** 2, 0.01 * 0.25]
    expected = [0.5 + m[0] / (math.sqrt(v[0]) + 0.1), 1.0 + m[1] / (math.sqrt(v[1]) + 0.1)]
    assert w2["w"].tolist() == pytest.approx(expected, abs=1e-14)
    state = strategy.state_dict()
    assert state["rounds"] == 2 and state["m"]["w"].tolist() == pytest.approx(m, abs=1e-15)
    with pytest.raises(ValueError, match="other weights"):
        strategy.aggregate({"x": w(0.0)}, [Reply(1, {"x": w(1.0)}, 1)], 3)
    assert strategy.state_dict()["rounds"] == 2
    with pytest.raises(ValueError, match="keys"):
        FedAdam().load_state_dict({"rounds": 1})

    class Scheduled(FedAdam):                      # the hook a Flower-parity check overrides
        def step_size(self, server_round):
            return self.server_lr / (2 * server_round)

    half = Scheduled(server_lr=1.0, beta1=0.9, beta2=0.99, tau=0.1)
    assert half.aggregate(w0, [Reply(1, {"w": w(1.0, 1.0, dtype=torch.float64)}, 1)], 1)["w"].tolist() == \
        pytest.approx([0.25, 1.0], abs=1e-15)


def test_aggregate_metrics_weighted_by_examples():
    results = [Reply(2, {}, 3, {"loss": 1.0}), Reply(1, {}, 1, {"loss": 5.0, "mae": 2.0})]
    assert aggregate_metrics(results) == {"loss": 2.0, "mae": 2.0}        # (3*1 + 1*5) / 4
    assert aggregate_metrics(results[::-1]) == aggregate_metrics(results)


# --- the client -------------------------------------------------------------------------------------

class Line(torch.nn.Module):
    """y = w x, for updates worked out by hand."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1, bias=False)


def line_loss(model, batch):
    return ((model.lin(batch["x"]) - batch["y"]) ** 2).mean(), {}


@pytest.mark.parametrize("mu, expected", [(0.0, 0.64), (1.0, 0.66)])
def test_client_update_by_hand_sgd_fedavg_and_fedprox(mu, expected):
    """loss = (w*1 - 0)^2, grad 2w (+ mu (w - w^t)); w^t = 1, lr 0.1, two steps:
    step 1: w = 1 - 0.1 * 2 = 0.8 (the proximal gradient is 0 at w^t);
    step 2, FedAvg: 0.8 - 0.1 * 1.6 = 0.64;  FedProx mu=1: 0.8 - 0.1 (1.6 + (0.8 - 1)) = 0.66
    (an unsquared norm, gradient mu/2 sign(w - w^t), would give 0.69)."""
    data = ClientData(0, [{"x": w(1.0), "y": w(0.0)}], collate)
    config = ClientConfig(local_steps=2, batch_size=1, lr=0.1, optimizer="sgd", grad_clip=None, mu=mu)
    g = {"lin.weight": torch.ones(1, 1)}
    reply, local = client_update(g, data, config, model_fn=Line, loss_fn=line_loss)
    assert float(reply.weights["lin.weight"]) == pytest.approx(expected, rel=1e-6)
    assert reply.num_examples == 1 and reply.metrics["steps"] == 2.0 and local == {}
    assert torch.equal(g["lin.weight"], torch.ones(1, 1))
    assert ("proximal" in reply.metrics) == (mu > 0)


def test_proximal_term_value_and_gradient():
    torch.manual_seed(0)
    model = Toy()
    anchor = {n: p.detach() + 0.1 * torch.randn_like(p) for n, p in model.named_parameters()}
    mu = 0.3
    batch = collate(toy_data(0, n=4).items)
    model.eval()
    wrapped = proximal_loss(toy_loss, anchor, mu)
    base_loss, _ = toy_loss(model, batch)
    loss, logs = wrapped(model, batch)
    sq = sum(float(((p.detach().double() - anchor[n].double()) ** 2).sum()) for n, p in model.named_parameters())
    assert logs["proximal"] == pytest.approx(mu / 2 * sq, rel=1e-5)            # squared norm, times mu/2
    assert float((loss - base_loss).detach()) == pytest.approx(mu / 2 * sq, rel=1e-5)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    base = torch.autograd.grad(toy_loss(model, batch)[0], list(model.parameters()))
    for (n, p), g1, g0 in zip(model.named_parameters(), grads, base):
        torch.testing.assert_close(g1 - g0, mu * (p.detach() - anchor[n]), rtol=1e-5, atol=1e-6)
    assert proximal_loss(toy_loss, anchor, 0.0) is toy_loss


def test_fedprox_mu_zero_is_the_fedavg_client_bit_for_bit():
    """mu = 0 against a FedAvg client written out with ttslab.train: same weights, bit for bit."""
    g = initial_weights(Toy, seed=3)
    data = toy_data("spk", n=7, seed=1)
    config = ClientConfig(local_steps=5, batch_size=3, lr=1e-2, seed=3, mu=0.0)
    reply, _ = client_update(g, data, config, model_fn=Toy, loss_fn=toy_loss, server_round=2)

    seed = client_seed(3, 2, "spk")
    torch.manual_seed(3)
    model = set_weights(Toy(), g)
    optimizer = make_optimizer(model, config.train_config())
    stream = Batches(data.items, 3, collate, seed=seed).stream()
    torch.manual_seed(seed)
    for _ in range(5):
        train_step(model, optimizer, toy_loss, next(stream)[2], 1.0)
    assert same(reply.weights, get_weights(model))
    prox, _ = client_update(g, data, ClientConfig(local_steps=5, batch_size=3, lr=1e-2, seed=3, mu=0.5),
                            model_fn=Toy, loss_fn=toy_loss, server_round=2)
    assert max_abs_diff(prox.weights, reply.weights) > 0


def test_client_update_is_deterministic_and_isolated():
    g = initial_weights(Toy)
    config = ClientConfig(local_steps=4, batch_size=2, lr=1e-2)
    run = lambda cid, rnd=1, seed=0: client_update(  # noqa: E731
        g, toy_data(cid, seed=5), ClientConfig(**{**config.to_dict(), "seed": seed}), model_fn=Toy,
        loss_fn=toy_loss, server_round=rnd).reply.weights
    first = run(1)
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    _ = run(2)                                                # another client in between
    assert torch.equal(torch.get_rng_state(), rng_before)    # the caller's RNG is left alone
    assert same(run(1), first)
    assert not same(run(1, rnd=2), first) and not same(run(1, seed=1), first) and not same(run(2), first)
    seen = []

    def counting_loss(model, batch):
        seen.append(torch.get_num_threads())
        return toy_loss(model, batch)

    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    client_update(g, toy_data(1), config, model_fn=Toy, loss_fn=counting_loss, threads=target)
    evaluate(g, toy_data(1), model_fn=Toy, loss_fn=counting_loss, threads=target)
    assert set(seen) == {target} and torch.get_num_threads() == before
    assert ClientConfig.from_dict(config.to_dict()) == config
    assert ClientConfig.from_dict(ClientConfig(grad_clip=None).to_dict()).grad_clip is None


def test_personal_layers_never_leave_the_client():
    config = ClientConfig(local_steps=3, batch_size=2, lr=5e-2, local_prefixes=("head",))
    g = initial_weights(Toy, local_prefixes=config.local_prefixes)
    assert list(g) == ["body.weight", "body.bias"]
    data = toy_data("a")
    reply, local = client_update(g, data, config, model_fn=Toy, loss_fn=toy_loss)
    assert list(reply.weights) == list(g) and list(local) == ["head.weight", "head.bias"]
    fresh = get_weights(build_model(Toy, g, local_prefixes=["head"]), exclude=["body"])
    assert max_abs_diff(local, fresh) > 0                                # the head trained
    # round 2 starts from the client's own head: the same as a model loaded with both parts
    reply2, local2 = client_update(reply.weights, data, config, model_fn=Toy, loss_fn=toy_loss, server_round=2,
                                   local_weights=local)
    without, _ = client_update(reply.weights, data, config, model_fn=Toy, loss_fn=toy_loss, server_round=2)
    assert not same(reply2.weights, without.weights)
    new_global = FedAvg().aggregate(g, [reply, Reply("b", reply2.weights, 2)], 1)
    assert list(new_global) == ["body.weight", "body.bias"]
    with pytest.raises(ValueError, match="personal layers"):
        client_update(get_weights(Toy()), data, config, model_fn=Toy, loss_fn=toy_loss)
    with pytest.raises(ValueError, match="neither in the global weights nor personal"):
        client_update(g, data, ClientConfig(local_steps=1), model_fn=Toy, loss_fn=toy_loss)
    with pytest.raises(ValueError, match="match no parameter"):
        client_update(g, data, ClientConfig(local_steps=1, local_prefixes=("haed",)), model_fn=Toy, loss_fn=toy_loss)


def test_evaluate_matches_a_direct_computation():
    torch.manual_seed(0)
    model = Toy().eval()
    g = get_weights(model)
    data = toy_data(0, n=5)
    result = evaluate(g, data, model_fn=Toy, loss_fn=toy_loss, batch_size=2)
    with torch.no_grad():
        losses = [float(toy_loss(model, collate(data.items[i:i + 2]))[0]) for i in (0, 2, 4)]
    assert result.num_examples == 5 and result.metrics["loss"] == pytest.approx(np.mean(losses), rel=1e-6)


# --- end to end: FedAvg on the tiny FastSpeech ------------------------------------------------------

def test_fedavg_trains_the_tiny_fastspeech_on_two_speakers(ci_corpus):
    from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items,
                                          fastspeech_loss, stats_from_items)

    speakers = ["en_us_m", "en_gb_f"]
    clients = []
    for k, spk in enumerate(speakers):
        utts = list(ci_corpus.filter(speakers=[spk], split="train"))[:4]
        clients.append(ClientData(spk, fastspeech_items(utts), collate_fastspeech))
    stats = stats_from_items([it for c in clients for it in c.items], FastSpeechConfig.tiny().speakers)

    def model_fn():
        model = FastSpeech(FastSpeechConfig.tiny())
        model.set_stats(stats)
        return model

    config = ClientConfig(local_steps=4, batch_size=2, lr=3e-3)
    strategy = FedAvg()
    weights = initial_weights(model_fn)

    def loss_now(w):
        return aggregate_metrics([evaluate(w, c, model_fn=model_fn, loss_fn=fastspeech_loss, batch_size=4, threads=1)
                                  for c in clients])["loss"]

    start = loss_now(weights)
    before = torch.get_num_threads()
    for rnd in (1, 2, 3):
        # tiny ops: one thread is far faster on a shared 2-core machine (measured 0.6 s instead of 46 s)
        replies = [client_update(weights, c, config, model_fn=model_fn, loss_fn=fastspeech_loss, server_round=rnd,
                                 threads=1).reply for c in clients]
        weights = strategy.aggregate(weights, replies, rnd)
    assert torch.get_num_threads() == before
    assert loss_now(weights) < 0.7 * start      # measured: 8.6 -> 3.7
