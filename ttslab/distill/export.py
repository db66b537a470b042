"""A FastSpeech as an ONNX graph for onnxruntime, and its dynamic int8 quantization.

The exported graph is the whole inference path of :meth:`FastSpeech.infer` for one utterance (batch 1,
no padding), text features in, log-mel out::

    phone_ids, speaker, stress, word_position  (1, N) / (1,) int64
      -> encoder, speaker, duration / pitch / energy predictors and embeddings
      -> d_n = round(c_n) - round(c_{n-1}),  c_n = sum_{m<=n} max(exp(logd_m) - 1, 0)    (cumulative rounding)
      -> frame t takes phone  n(t) = #{m : cum_m <= t}           (length regulation as a comparison count:
                                                                   ONNX has no searchsorted)
      -> decoder, linear head (+ postnet)  ->  mel (1, T, 80), durations (1, N)

``N`` and ``T`` are dynamic: ``T`` is computed inside the graph from the predicted durations, and the
sinusoidal positions are computed in the graph too (no table, so no length limit and a small file).

Supported: the ``"linear"`` variance embeddings (FastPitch's 1-D convolution; ``"bins"`` needs a
bucketize that ONNX cannot express the same way), speaking-rate/pitch/energy controls at their
defaults. Anything else is refused with a :class:`ValueError` before any export starts.

Dynamic int8 quantization (:func:`quantize_int8`, onnxruntime's ``quantize_dynamic``) stores the
weights of the matrix multiplications (optionally the convolutions too) in int8 and quantizes the
activations on the fly.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ttslab.models.fastspeech.model import FastSpeech

INPUTS = ("phone_ids", "speaker", "stress", "word_position")
OUTPUTS = ("mel", "durations")


def check_exportable(model: FastSpeech) -> None:
    """Raise ``ValueError`` naming the option when ``model`` uses something the ONNX graph does not support."""
    if not isinstance(model, FastSpeech):
        raise ValueError(f"only ttslab FastSpeech models can be exported here, got {type(model).__name__}")
    c = model.config
    if c.variance_embedding != "linear":
        raise ValueError(f"variance_embedding={c.variance_embedding!r} cannot be exported to ONNX (its bucketize "
                         f"has no exact ONNX equivalent); train with variance_embedding='linear'")
    if not c.phone_context:
        raise ValueError("the ONNX graph reads stress and word_position inputs; export a model with phone_context=True")


def positions(length: torch.Tensor, d: int) -> torch.Tensor:
    """:func:`~ttslab.models.fastspeech.sinusoidal_positions` from a traced length: sines on even, cosines on
    odd columns."""
    t = torch.arange(length, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    return torch.stack([torch.sin(t * inv), torch.cos(t * inv)], dim=-1).reshape(-1, d)


def stack_forward(stack, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An :class:`~ttslab.models.fastspeech.FFTStack` in eval mode, positions computed in the graph."""
    x = x + positions(x.shape[1], x.shape[2])[None]
    for block in stack.blocks:
        x = block(x, mask)
    return x


class InferenceGraph(nn.Module):
    """:meth:`FastSpeech.infer`'s path for one utterance, written with ops ONNX can trace (see module docstring)."""

    def __init__(self, model: FastSpeech):
        super().__init__()
        check_exportable(model)
        self.model = model.eval()

    def forward(self, phone_ids, speaker, stress, word_position):
        m = self.model
        mask = torch.ones_like(phone_ids, dtype=torch.bool)
        x = m.phone_embedding(phone_ids) + m.stress_embedding(stress) + m.word_position_embedding(word_position)
        enc = stack_forward(m.encoder, x * math.sqrt(m.config.d_model), mask)
        h = enc + m.speaker_embedding(speaker)[:, None, :]
        log_d = m.duration_predictor(h, mask)
        h = h + m.pitch_embedding(m.pitch_predictor(h, mask), mask)
        h = h + m.energy_embedding(m.energy_predictor(h, mask), mask)
        ends = torch.round((torch.exp(log_d) - 1.0).clamp(min=0.0).cumsum(1))
        durations = ends - torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], dim=1)
        first = durations[:, :1] + (ends[:, -1:] == 0).to(durations.dtype)  # at least one frame per utterance
        durations = torch.cat([first, durations[:, 1:]], dim=1)
        cum = durations.cumsum(1)
        t = torch.arange(cum[0, -1].long(), device=h.device).to(cum.dtype)
        idx = (t[:, None] >= cum[0][None, :]).sum(-1).clamp(max=phone_ids.shape[1] - 1)
        z = torch.index_select(h, 1, idx)
        frame_mask = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        dec = stack_forward(m.decoder, z, frame_mask)
        y = m.mel_head(dec)
        if m.postnet is not None:
            y = y + m.postnet(y, frame_mask)
        return y * m.mel_std + m.mel_mean, durations.long()


def export_onnx(model: FastSpeech, path: str | Path, *, opset: int = 17) -> Path:
    """Write ``model`` as an ONNX file (inputs :data:`INPUTS`, outputs :data:`OUTPUTS`); return the path.

    Raises ``ValueError`` for unsupported options (:func:`check_exportable`) before anything is written;
    the file is written to a temporary name and renamed (atomic).
    """
    graph = InferenceGraph(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 5
    example = (torch.randint(1, model.config.n_phones, (1, n)), torch.zeros(1, dtype=torch.long),
               torch.zeros(1, n, dtype=torch.long), torch.zeros(1, n, dtype=torch.long))
    tmp = path.with_name(path.name + ".tmp")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints: the dynamic parts are tensors here
        torch.onnx.export(graph, example, str(tmp), input_names=list(INPUTS), output_names=list(OUTPUTS),
                          opset_version=opset, dynamo=False,
                          dynamic_axes={"phone_ids": {1: "phones"}, "stress": {1: "phones"},
                                        "word_position": {1: "phones"}, "mel": {1: "frames"},
                                        "durations": {1: "phones"}})
    tmp.replace(path)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads (1: comparable with torch at one thread)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_inputs(inputs: dict, speaker: int) -> dict:
    """Numpy feeds for the graph from a :func:`ttslab.models.fastspeech.text_to_inputs`-style dict."""
    as_row = lambda v: np.asarray(v.cpu() if torch.is_tensor(v) else v, dtype=np.int64).reshape(1, -1)  # noqa: E731
    return {"phone_ids": as_row(inputs["phone_ids"]), "speaker": np.array([speaker], dtype=np.int64),
            "stress": as_row(inputs["stress"]), "word_position": as_row(inputs["word_position"])}


def run_onnx(session, inputs: dict, speaker: int) -> dict:
    """``{"mel": (T, 80), "durations": (N,)}`` from an onnxruntime session."""
    mel, durations = session.run(list(OUTPUTS), onnx_inputs(inputs, speaker))
    return {"mel": mel[0], "durations": durations[0]}


def quantize_int8(path: str | Path, out: str | Path, *, convolutions: bool = False) -> Path:
    """Dynamic int8 quantization of an exported graph; return ``out``.

    The weights of the matrix multiplications (MatMul/Gemm: attention, linear layers) are stored in
    int8; with ``convolutions`` the Conv weights too (a much smaller file, but onnxruntime's integer
    convolution is slower than its float one on CPU: measure before choosing).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    ops = ["MatMul", "Gemm"] + (["Conv"] if convolutions else [])
    quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    tmp.replace(out)
    return out


def seconds_per_call(fn, repeats: int = 3) -> float:
    """Best wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
