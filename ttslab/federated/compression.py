"""What goes on the wire: updates encoded as float32, float16 or 8-bit integers, and a byte log.

:func:`encode_update` turns weights (or, given ``reference``, the update ``w_client - w_global``) into a
:class:`Payload` and its size in bytes; :func:`decode_update` turns it back into weights of the reference's
(the global) dtypes, which :meth:`~ttslab.federated.strategies.Strategy.aggregate` accepts;
:func:`transmit` is both, what a simulated link does. Per tensor ``x`` with ``n`` elements:

=========  ==================================  ================  ==========================================
codec      sent                                bytes             error of decode_update(encode_update(x))
=========  ==================================  ================  ==========================================
float32    ``x`` as float32                    ``4 n``           0 for float32 weights
float16    ``x`` as float16                    ``2 n``           <= 1/2 ulp_fp16(x): ``2^(e-11)``, ``e =
                                                                 max(floor(log2|x|), -14)``
int8       ``q`` uint8, ``scale``, ``zero``    ``n + 8``         <= ``scale / 2`` (round to nearest)
           (float32 each)
=========  ==================================  ================  ==========================================

int8 is linear (affine) quantization per tensor with a float zero point at the minimum::

    zero = min(x) (rounded down to float32),   scale = (max(x) - zero) / 255 (rounded up to float32)
    q = round((x - zero) / scale)  in {0..255},    decode: x_hat = zero + scale * q

Rounding up ``scale`` keeps ``(x - zero) / scale`` within [0, 255]. With ``stochastic=True`` the
rounding is ``q = floor(t + u)``, ``u ~ U[0, 1)`` from a generator seeded by ``(seed, tensor index)``:
``q`` is ``floor(t) + 1`` with probability ``frac(t)``, so ``E[q] = t`` and ``E[x_hat] = x`` (unbiased;
the error is below ``scale``, not ``scale/2``). A constant tensor sends ``scale = 0`` and decodes exactly.

Byte counts are the tensor data and the per-tensor ``scale``/``zero``; names, shapes and dtypes are
fixed by the architecture, known to both ends and not counted. Deltas are formed and added back in
float64 (``reference + delta_hat``), then cast to the reference dtype (one more rounding, <= 1/2 ulp
of the result's dtype). Non-finite values, unknown codecs and mismatched tensors raise clear errors.

:class:`CommunicationLog` accumulates bytes up (client -> server) and down per round and in total.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch

from ttslab.federated.weights import Weights, validate_update

CODECS = ("float32", "float16", "int8")
SCALE_BYTES = 8  #: int8: a float32 scale and a float32 zero point per tensor
LEVELS = 255     #: int8: q in 0..255
FP16_MAX = float(torch.finfo(torch.float16).max)


@dataclass(frozen=True)
class EncodedTensor:
    """One tensor on the wire: ``data`` (float32, float16 or uint8, the tensor's shape) and, for int8,
    ``scale`` and ``zero`` (float32 values; decode ``zero + scale * q``)."""

    data: torch.Tensor
    scale: float = 0.0
    zero: float = 0.0

    @property
    def nbytes(self) -> int:
        extra = SCALE_BYTES if self.data.dtype == torch.uint8 else 0
        return int(self.data.numel() * self.data.element_size() + extra)


@dataclass(frozen=True)
class Payload:
    """An encoded message: ``codec``, ``delta`` (True: ``w - reference`` was sent, decode needs the
    reference), the encoded tensors by name, and the dtypes to decode to (known to both ends)."""

    codec: str
    delta: bool
    tensors: Mapping[str, EncodedTensor]
    dtypes: Mapping[str, torch.dtype] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def check_codec(codec: str) -> str:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; use one of {CODECS}")
    return codec


def payload_bytes(weights: Mapping[str, torch.Tensor], codec: str) -> int:
    """Bytes :func:`encode_update` sends for tensors of these shapes, without encoding: ``4 n``, ``2 n`` or
    ``n + 8`` per tensor.

    >>> w = {"a": torch.zeros(3, 2), "b": torch.zeros(5)}
    >>> [payload_bytes(w, c) for c in CODECS]                # 4*11, 2*11, (6+8)+(5+8)
    [44, 22, 27]
    """
    per = {"float32": lambda n: 4 * n, "float16": lambda n: 2 * n, "int8": lambda n: n + SCALE_BYTES}
    f = per[check_codec(codec)]
    return int(sum(f(t.numel()) for t in weights.values()))


def _round_down32(v: float) -> np.float32:
    r = np.float32(v)
    return np.nextafter(r, np.float32(-np.inf)) if float(r) > v else r


def quantize_int8(x: torch.Tensor, *, stochastic: bool = False,
                  generator: torch.Generator | None = None) -> EncodedTensor:
    """``x`` (any float dtype) as uint8 levels with a float32 ``scale`` and ``zero`` (module docstring).

    >>> e = quantize_int8(torch.tensor([0.0, 0.5, 2.55]))
    >>> e.data.tolist(), round(e.scale, 6), [round(v, 6) for v in dequantize_int8(e).tolist()]
    ([0, 50, 255], 0.01, [0.0, 0.5, 2.55])
    """
    t64 = x.detach().to("cpu", torch.float64)
    if t64.numel() == 0:
        return EncodedTensor(torch.zeros(x.shape, dtype=torch.uint8), 0.0, 0.0)
    lo, hi = float(t64.min()), float(t64.max())
    zero = _round_down32(lo)
    span = hi - float(zero)
    scale = np.float32(span / LEVELS)
    while float(scale) * LEVELS < span:
        scale = np.nextafter(scale, np.float32(np.inf))
    if span == 0:
        return EncodedTensor(torch.zeros(x.shape, dtype=torch.uint8), 0.0, float(zero))
    t = ((t64 - float(zero)) / float(scale)).clamp_(0, LEVELS)
    if stochastic:
        if generator is None:
            raise ValueError("stochastic rounding needs a seeded generator")
        q = torch.floor(t + torch.rand(t.shape, generator=generator, dtype=torch.float64))
    else:
        q = torch.round(t)
    return EncodedTensor(q.clamp_(0, LEVELS).to(torch.uint8), float(scale), float(zero))


def dequantize_int8(e: EncodedTensor) -> torch.Tensor:
    """``zero + scale * q`` in float64."""
    return float(e.zero) + float(e.scale) * e.data.to(torch.float64)


def _generator(seed: int, index: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([int(seed), int(index)]).generate_state(2, np.uint64)[0] >> 1))
    return g


def encode_update(weights: Mapping[str, torch.Tensor], codec: str = "float32", *,
           reference: Mapping[str, torch.Tensor] | None = None, stochastic: bool = False,
           seed: int | None = None) -> tuple[Payload, int]:
    """``(payload, bytes)`` for ``weights``, or for the update ``weights - reference`` when a reference
    (the round's global weights) is given; see the module docstring for the codecs and their errors.

    ``stochastic=True`` (int8 only) rounds at random, unbiased, with a generator per tensor seeded from
    ``(seed, index)``; ``seed`` is then required (a client's :func:`~ttslab.federated.client.client_seed`).
    Refuses NaN/inf, an unknown codec, tensors that do not match ``reference`` and, for float16, values
    beyond its range (65504).

    >>> g = {"w": torch.tensor([1.0, 2.0])}
    >>> p, n = encode_update({"w": torch.tensor([1.5, 2.0])}, "float16", reference=g)
    >>> n, decode_update(p, reference=g)["w"]
    (4, tensor([1.5000, 2.0000]))
    """
    check_codec(codec)
    if stochastic and codec != "int8":
        raise ValueError(f"stochastic rounding is implemented for the int8 codec only, not {codec!r}")
    if stochastic and (seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"stochastic rounding needs an integer seed (e.g. client_seed(seed, round, client)), "
                         f"got {seed!r}")
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"encode needs a non-empty {{name: tensor}} dict, got {type(weights).__name__}")
    if reference is not None:
        validate_update(reference, weights, client_id="(encode)")
    for name, t in weights.items():
        if not (isinstance(t, torch.Tensor) and t.is_floating_point()):
            raise TypeError(f"weights[{name!r}] must be a floating-point tensor, got {getattr(t, 'dtype', type(t))}")
        if not torch.isfinite(t).all():
            raise ValueError(f"weights[{name!r}] holds NaN or inf: refusing to encode it (the client diverged)")
    tensors = OrderedDict()
    for index, (name, t) in enumerate(weights.items()):
        x = t.detach().to("cpu", torch.float64)
        if reference is not None:
            x = x - reference[name].detach().to("cpu", torch.float64)
        if codec == "float32":
            tensors[name] = EncodedTensor(x.to(torch.float32))
        elif codec == "float16":
            big = float(x.abs().max()) if x.numel() else 0.0
            if big > FP16_MAX:
                raise ValueError(f"{name!r} reaches |x| = {big:.4g}, beyond float16's {FP16_MAX:.0f}: send the "
                                 f"update (reference=global weights) or use float32/int8")
            tensors[name] = EncodedTensor(x.to(torch.float16))
        else:
            gen = _generator(seed, index) if stochastic else None
            tensors[name] = quantize_int8(x, stochastic=stochastic, generator=gen)
    dtypes = {name: (reference[name] if reference is not None else t).dtype for name, t in weights.items()}
    payload = Payload(codec, reference is not None, tensors, dtypes)
    return payload, payload.nbytes


def decode_update(payload: Payload, *, reference: Mapping[str, torch.Tensor] | None = None) -> Weights:
    """Weights back from :func:`encode_update`'s payload, in the original dtypes: ``reference + delta_hat``
    (float64, then cast) for a delta payload, which therefore needs the same ``reference``."""
    if not isinstance(payload, Payload):
        raise TypeError(f"decode needs a Payload from encode_update(), got {type(payload).__name__}")
    check_codec(payload.codec)
    if payload.delta and reference is None:
        raise ValueError("this payload holds an update w - w_global: decode it with reference=<the global weights>")
    if not payload.delta and reference is not None:
        raise ValueError("this payload holds weights, not an update: decode it without a reference")
    if reference is not None:
        missing = [n for n in payload.tensors if n not in reference]
        if missing or len(reference) != len(payload.tensors):
            raise ValueError(f"the reference does not match the payload's tensors (missing {missing[:3]})")
    out = OrderedDict()
    for name, e in payload.tensors.items():
        x = dequantize_int8(e) if e.data.dtype == torch.uint8 else e.data.to(torch.float64)
        if reference is not None:
            ref = reference[name]
            if tuple(ref.shape) != tuple(x.shape):
                raise ValueError(f"{name!r}: the reference is {tuple(ref.shape)}, the payload {tuple(x.shape)}")
            x = ref.detach().to("cpu", torch.float64) + x
        out[name] = x.to(payload.dtypes.get(name, torch.float32))
    return out


def transmit(weights: Mapping[str, torch.Tensor], codec: str = "float32", *,
             reference: Mapping[str, torch.Tensor] | None = None, stochastic: bool = False,
             seed: int | None = None) -> tuple[Weights, int]:
    """What the receiver gets and what it cost: ``(decode_update(encode_update(...)), bytes)``."""
    payload, nbytes = encode_update(weights, codec, reference=reference, stochastic=stochastic, seed=seed)
    return decode_update(payload, reference=reference), nbytes


class CommunicationLog:
    """Bytes and messages up (client -> server) and down (server -> client), per round and in total.

    >>> log = CommunicationLog()
    >>> log.add(1, down=100, up=40); log.add(1, up=40); log.add(2, down=100)
    >>> log.total_up, log.total_down, log.total, [r["cumulative"] for r in log.rows()]
    (80, 200, 280, [180, 280])
    """

    def __init__(self):
        self._rounds: dict[int, dict[str, int]] = {}

    def add(self, server_round: int, *, up: int = 0, down: int = 0, messages_up: int | None = None,
            messages_down: int | None = None) -> None:
        """Count ``up`` and ``down`` bytes in ``server_round`` (by default one message per nonzero
        direction; pass the message counts when one call records many clients)."""
        if isinstance(server_round, bool) or not isinstance(server_round, (int, np.integer)) or server_round < 0:
            raise ValueError(f"server_round must be an int >= 0, got {server_round!r}")
        for what, v in (("up", up), ("down", down), ("messages_up", messages_up), ("messages_down", messages_down)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
                raise ValueError(f"{what} must be an int >= 0 (bytes or messages), got {v!r}")
        r = self._rounds.setdefault(int(server_round), {"up": 0, "down": 0, "messages_up": 0, "messages_down": 0})
        r["up"] += int(up)
        r["down"] += int(down)
        r["messages_up"] += int(messages_up if messages_up is not None else up > 0)
        r["messages_down"] += int(messages_down if messages_down is not None else down > 0)

    @property
    def total_up(self) -> int:
        return sum(r["up"] for r in self._rounds.values())

    @property
    def total_down(self) -> int:
        return sum(r["down"] for r in self._rounds.values())

    @property
    def total(self) -> int:
        return self.total_up + self.total_down

    def round(self, server_round: int) -> dict[str, int]:
        """One round's counts (zeros for a round with no traffic)."""
        return dict(self._rounds.get(server_round, {"up": 0, "down": 0, "messages_up": 0, "messages_down": 0}))

    def rows(self) -> list[dict]:
        """Per round, in round order: up, down, messages, the round's total and the cumulative total."""
        out, acc = [], 0
        for t in sorted(self._rounds):
            r = self._rounds[t]
            acc += r["up"] + r["down"]
            out.append({"round": t, **r, "total": r["up"] + r["down"], "cumulative": acc})
        return out

    def to_dict(self) -> dict:
        return {"rounds": self.rows(), "total_up": self.total_up, "total_down": self.total_down,
                "total": self.total}

    @classmethod
    def from_dict(cls, d: Mapping) -> "CommunicationLog":
        log = cls()
        for r in d["rounds"]:
            log.add(r["round"], up=r["up"], down=r["down"], messages_up=r["messages_up"],
                    messages_down=r["messages_down"])
        return log

    def __repr__(self) -> str:
        return f"CommunicationLog({len(self._rounds)} rounds, up={self.total_up} B, down={self.total_down} B)"
