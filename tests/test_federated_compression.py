"""Tests of ttslab.federated.compression: round-trip errors within their analytic bounds, unbiased
stochastic rounding, byte counts equal to hand computations, and clear errors."""

from __future__ import annotations

import doctest
import math
from collections import OrderedDict

import pytest
import torch

from ttslab.federated import compression as C
from ttslab.federated import (CommunicationLog, FedAvg, Reply, UpdateError, decode_update, encode_update, num_bytes,
                              payload_bytes, transmit)

EPS32 = torch.finfo(torch.float32).eps


def _weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    return OrderedDict([
        ("emb", torch.randn(40, 8, generator=g) * 3.0),
        ("w", torch.randn(64, generator=g) * torch.logspace(-9, 2, 64)),   # magnitudes 1e-9 .. 1e2
        ("b", torch.rand(5, generator=g) - 0.2),
    ])


def _client(global_weights, seed=1, size=0.01):
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((n, t + size * torch.randn(t.shape, generator=g)) for n, t in global_weights.items())


def test_doctests():
    assert doctest.testmod(C, optionflags=doctest.ELLIPSIS).failed == 0


def test_float32_is_the_identity_on_weights():
    w = _weights()
    out, nbytes = transmit(w, "float32")
    assert all(torch.equal(out[n], w[n]) and out[n].dtype == torch.float32 for n in w)
    assert nbytes == num_bytes(w) == 4 * (320 + 64 + 5)


def _half_ulp_fp16(x: torch.Tensor) -> torch.Tensor:
    """1/2 ulp of float16 at x: 2^(e - 11) with e = floor(log2|x|), at least -14 (subnormals)."""
    e = torch.floor(torch.log2(x.abs().clamp_min(1e-30))).clamp_min(-14)
    return torch.pow(2.0, e - 11)


def test_float16_error_is_within_half_an_ulp():
    w = _weights()
    out, nbytes = transmit(w, "float16")
    assert nbytes == 2 * (320 + 64 + 5)
    for n in w:
        x = w[n].double()
        err = (out[n].double() - x).abs()
        assert (err <= _half_ulp_fp16(x)).all(), n
        assert out[n].dtype == torch.float32
    assert (out["emb"] != w["emb"]).any()                    # it did round


def test_float16_delta_error_is_within_half_an_ulp_of_the_delta_plus_the_cast():
    g = _weights()
    w = _client(g)
    out, nbytes = transmit(w, "float16", reference=g)
    for n in w:
        delta = w[n].double() - g[n].double()
        err = (out[n].double() - w[n].double()).abs()
        assert (err <= _half_ulp_fp16(delta) + EPS32 * w[n].double().abs()).all(), n
    # the update is small, so its float16 error is far below that of the weights themselves
    plain, _ = transmit(w, "float16")
    assert (out["emb"] - w["emb"]).abs().max() < 0.1 * (plain["emb"] - w["emb"]).abs().max()


@pytest.mark.parametrize("delta", [False, True])
def test_int8_error_is_within_half_a_step(delta):
    g = _weights()
    w = _client(g, size=0.05)
    ref = g if delta else None
    out, nbytes = transmit(w, "int8", reference=ref)
    assert nbytes == (320 + 8) + (64 + 8) + (5 + 8)
    for n in w:
        x = w[n].double() - (g[n].double() if delta else 0)
        step = float(x.max() - x.min()) / 255                 # from the tensor's range
        err = (out[n].double() - w[n].double()).abs()
        assert float(err.max()) <= step / 2 * (1 + 1e-6) + EPS32 * float(w[n].abs().max()), n
        assert float(err.max()) > step / 4, n                # and it is a real quantizer, not a copy


def test_int8_edge_cases():
    const = {"c": torch.full((7,), -1.25), "e": torch.zeros(0), "one": torch.tensor([3.0])}
    out, nbytes = transmit(const, "int8")
    assert all(torch.equal(out[n], const[n]) for n in const)
    assert nbytes == (7 + 8) + (0 + 8) + (1 + 8)
    e = C.quantize_int8(torch.tensor([-1.0, 0.0, 1.0]))
    # 0 lies at t = 1 / scale, just below 127.5 because scale is rounded up to a float32 >= 2/255
    assert e.data.tolist() == [0, 127, 255] and e.scale * 255 >= 2.0 and e.zero == -1.0
    x = torch.tensor([1 / 3, 0.5, 1.0], dtype=torch.float64)     # a float64 delta: min is no float32
    e = C.quantize_int8(x)
    assert e.zero <= 1 / 3 and e.zero + 255 * e.scale >= 1.0    # [zero, zero + 255 scale] covers x


def test_stochastic_rounding_is_unbiased():
    x = torch.linspace(-1.0, 1.0, 200) + 0.3 * torch.sin(torch.arange(200.0))
    step = float(x.max() - x.min()) / 255
    m = 400
    total = torch.zeros(200, dtype=torch.float64)
    for seed in range(m):
        out, _ = transmit({"x": x}, "int8", stochastic=True, seed=seed)
        err = (out["x"].double() - x.double()).abs()
        assert float(err.max()) < step * (1 + 1e-6) + EPS32     # one step at most
        total += out["x"].double()
    mean = total / m
    # each decode has variance <= step^2 / 4, so the mean's standard deviation is <= step / (2 sqrt(m))
    bound = 5 * step / (2 * math.sqrt(m))
    assert float((mean - x.double()).abs().max()) <= bound
    # round to nearest is biased on the same values: the test can tell
    nearest, _ = transmit({"x": x}, "int8")
    assert float((nearest["x"].double() - x.double()).abs().max()) > 2 * bound


def test_stochastic_rounding_is_deterministic_per_seed():
    w = _weights()
    a, _ = transmit(w, "int8", stochastic=True, seed=5)
    b, _ = transmit(w, "int8", stochastic=True, seed=5)
    c, _ = transmit(w, "int8", stochastic=True, seed=6)
    assert all(torch.equal(a[n], b[n]) for n in w)
    assert any(not torch.equal(a[n], c[n]) for n in w)


@pytest.mark.parametrize("codec", C.CODECS)
def test_byte_counts_are_the_payload_sizes(codec):
    w = OrderedDict([("a", torch.zeros(3, 2)), ("b", torch.ones(5))])
    payload, nbytes = encode_update(w, codec)
    raw = sum(e.data.numel() * e.data.element_size() for e in payload.tensors.values())
    per_tensor = {"float32": 0, "float16": 0, "int8": 8}[codec]     # a float32 scale and zero point
    assert nbytes == payload.nbytes == raw + per_tensor * 2 == payload_bytes(w, codec)
    assert nbytes == {"float32": 44, "float16": 22, "int8": 27}[codec]       # 4*11, 2*11, 6+8 + 5+8
    assert {e.data.dtype for e in payload.tensors.values()} == {
        {"float32": torch.float32, "float16": torch.float16, "int8": torch.uint8}[codec]}


@pytest.mark.parametrize("codec", C.CODECS)
def test_decoded_updates_are_accepted_by_a_strategy(codec):
    g = _weights()
    replies = []
    for k in (2, 1):
        out, _ = transmit(_client(g, seed=k), codec, reference=g, stochastic=codec == "int8", seed=k)
        assert all(out[n].dtype == g[n].dtype and out[n].shape == g[n].shape for n in g)
        replies.append(Reply(k, out, 10 * k))
    new = FedAvg().aggregate(g, replies, server_round=1)
    exact = FedAvg().aggregate(g, [Reply(k, _client(g, seed=k), 10 * k) for k in (1, 2)], server_round=1)
    tol = {"float32": 1e-6, "float16": 1e-3, "int8": 0.01}[codec]
    assert max(float((new[n] - exact[n]).abs().max()) for n in g) < tol


def test_bad_input_is_refused_clearly():
    w = _weights()
    bad = OrderedDict(w, w=torch.tensor([1.0, math.nan] * 32))
    for codec in C.CODECS:
        with pytest.raises(ValueError, match=r"weights\['w'\] holds NaN or inf"):
            encode_update(bad, codec)
    with pytest.raises(ValueError, match="holds NaN or inf"):
        encode_update(OrderedDict(w, b=torch.full((5,), math.inf)), "int8")
    with pytest.raises(ValueError, match="unknown codec 'int4'"):
        encode_update(w, "int4")
    with pytest.raises(ValueError, match="unknown codec"):
        payload_bytes(w, "bf16")
    with pytest.raises(ValueError, match="needs an integer seed"):
        encode_update(w, "int8", stochastic=True)
    with pytest.raises(ValueError, match="int8 codec only"):
        encode_update(w, "float16", stochastic=True, seed=0)
    with pytest.raises(ValueError, match="beyond float16"):
        encode_update({"x": torch.tensor([7e4])}, "float16")
    with pytest.raises(UpdateError, match="shape"):
        encode_update({"emb": torch.zeros(3)}, "int8", reference={"emb": torch.zeros(4)})
    payload, _ = encode_update(w, "float16", reference=w)
    with pytest.raises(ValueError, match="decode it with reference"):
        decode_update(payload)
    with pytest.raises(ValueError, match="without a reference"):
        decode_update(encode_update(w, "int8")[0], reference=w)
    with pytest.raises(ValueError, match="non-empty"):
        encode_update({}, "float32")


def test_communication_log():
    log = CommunicationLog()
    down = payload_bytes(_weights(), "float32")
    up = payload_bytes(_weights(), "int8")
    for t in (1, 2):
        log.add(t, down=3 * down, messages_down=3)
        for _ in range(3 if t == 1 else 2):                   # one client dropped out in round 2
            log.add(t, up=up)
    assert log.round(1) == {"up": 3 * up, "down": 3 * down, "messages_up": 3, "messages_down": 3}
    assert log.round(2)["messages_up"] == 2 and log.round(9)["up"] == 0
    assert log.total_up == 5 * up and log.total_down == 6 * down and log.total == 5 * up + 6 * down
    rows = log.rows()
    assert [r["cumulative"] for r in rows] == [3 * up + 3 * down, 5 * up + 6 * down]
    again = CommunicationLog.from_dict(log.to_dict())
    assert again.rows() == rows
    for kwargs in ({"up": -1}, {"down": 1.5}, {"messages_up": -2}):
        with pytest.raises(ValueError, match="must be an int >= 0"):
            log.add(1, **kwargs)
    with pytest.raises(ValueError, match="server_round"):
        log.add(-1, up=1)
    assert log.rows() == rows                                  # a refused call changes nothing
