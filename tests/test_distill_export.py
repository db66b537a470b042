"""ONNX export of a FastSpeech (ttslab.distill.export): onnxruntime matches PyTorch's inference within 1e-4
on inputs of other lengths than the export example, int8 quantization shrinks the file and stays close,
and unsupported options are refused before exporting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from ttslab.distill.export import (check_exportable, export_onnx, onnx_session, quantize_int8,  # noqa: E402
                                   run_onnx)
from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig  # noqa: E402

SPEAKERS = ("a", "b")


def inputs(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {"phone_ids": torch.randint(1, 50, (n,), generator=g), "stress": torch.randint(0, 3, (n,), generator=g),
            "word_position": torch.randint(0, 4, (n,), generator=g)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS, d_model=48, encoder_layers=2, decoder_layers=2))
    with torch.no_grad():  # an untrained duration predictor says ~0 frames; ~3.5 frames a phone is speech-like
        model.duration_predictor.proj.bias.fill_(1.5)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "fs.onnx")
    return model, path


@pytest.mark.parametrize("n, speaker", [(3, 0), (11, 1), (40, 0)])
def test_onnxruntime_matches_pytorch_within_1e_4(exported, n, speaker):
    model, path = exported
    x = inputs(n, seed=n)
    ref = model.infer(x, speaker)
    out = run_onnx(onnx_session(path), x, speaker)
    assert np.array_equal(out["durations"], ref["durations"].numpy())  # same timing, so the same frame count
    assert out["mel"].shape == tuple(ref["mel"].shape) and out["mel"].shape[0] > n
    assert np.abs(out["mel"] - ref["mel"].numpy()).max() < 1e-4


def test_int8_quantization_shrinks_the_file_and_stays_close(exported, tmp_path):
    model, path = exported
    q = quantize_int8(path, tmp_path / "fs_int8.onnx", convolutions=True)
    assert q.stat().st_size < 0.6 * path.stat().st_size
    assert quantize_int8(path, tmp_path / "mm.onnx").stat().st_size < path.stat().st_size
    x = inputs(12, seed=1)
    ref = run_onnx(onnx_session(path), x, 0)
    out = run_onnx(onnx_session(q), x, 0)
    # int8 durations could round a frame differently; for this input they agree, so the mels align
    assert np.array_equal(out["durations"], ref["durations"])
    err = np.abs(out["mel"] - ref["mel"]).mean()
    assert 0 < err < 0.05 * np.abs(ref["mel"] - ref["mel"].mean()).mean()


def test_unsupported_options_are_refused_before_export(tmp_path):
    bins = FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS, variance_embedding="bins"))
    with pytest.raises(ValueError, match="variance_embedding='bins'"):
        export_onnx(bins, tmp_path / "bins.onnx")
    assert not (tmp_path / "bins.onnx").exists()
    with pytest.raises(ValueError, match="phone_context=True"):
        check_exportable(FastSpeech(FastSpeechConfig.tiny(speakers=SPEAKERS, phone_context=False)))
    with pytest.raises(ValueError, match="only ttslab FastSpeech"):
        check_exportable(torch.nn.Linear(2, 2))
