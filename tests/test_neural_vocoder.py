"""Neural vocoder (ttslab.vocoders.neural) and its training recipe (ttslab.train.vocoder): tiny configs only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.checkpoint import CheckpointError
from ttslab.dsp.spectral import HOP, log_mel
from ttslab.train import Batches, TrainConfig, seed_everything, train_step
from ttslab.train.vocoder import (DataConfig, collate_segments, default_train_config, segment_items, stft_loss,
                                  train_vocoder, vocoder_loss)
from ttslab.vocoders.neural import NeuralVocoder, VocoderConfig


def _model(seed: int = 0) -> NeuralVocoder:
    torch.manual_seed(seed)
    return NeuralVocoder(VocoderConfig.tiny())


def _pairs(n: int = 3, seconds: float = 0.5, seed: int = 0):
    """Harmonic test tones with their log-mels, audio zero-padded to whole frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(22050 * seconds)) / 22050
    pairs = []
    for _ in range(n):
        f0 = rng.uniform(100, 250)
        x = sum(0.1 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)).astype(np.float32)
        mel = log_mel(x)
        audio = np.zeros(mel.shape[1] * HOP, np.float32)
        audio[:len(x)] = x
        pairs.append((mel, audio))
    return pairs


def test_shapes_and_range():
    model = _model()
    mel = torch.randn(2, 80, 13) - 5
    assert model(mel).shape == (2, 13 * HOP)
    y = model.vocode(mel[0].numpy())
    assert y.dtype == np.float32 and y.shape == (13 * HOP,)
    assert np.abs(y).max() <= 1.0
    assert model.vocode(mel[0], length=1000).shape == (1000,)
    assert model.vocode(mel).shape == (2, 13 * HOP)
    assert model.training  # vocode() leaves the mode as it found it
    x = np.random.default_rng(0).normal(0, 0.1, 3000).astype(np.float32)
    assert model.resynthesize(x).shape == x.shape


def test_sizes():
    full = NeuralVocoder(VocoderConfig.full()).num_parameters()
    assert 1_000_000 < full <= 2_000_000  # fp16 checkpoint <= ~4 MB
    assert _model().num_parameters() < 100_000


def test_deterministic_with_seed():
    mel = torch.randn(1, 80, 7) - 5
    a, b, c = _model(0), _model(0), _model(1)
    with torch.no_grad():
        assert torch.equal(a(mel), b(mel))
        assert not torch.equal(a(mel), c(mel))


def test_segments_line_up_with_the_analysis():
    pairs = _pairs(1, seconds=1.0)
    items = segment_items(pairs, 16, 8)
    mel, audio = pairs[0]
    assert len(items) == (mel.shape[1] - 16) // 8 + 1
    it = items[2]
    np.testing.assert_array_equal(it["mel"], mel[:, 16:32])
    np.testing.assert_array_equal(it["audio"], audio[16 * HOP:32 * HOP])
    batch = collate_segments(items[:3])
    assert batch["mel"].shape == (3, 80, 16) and batch["audio"].shape == (3, 16 * HOP)
    with pytest.raises(ValueError, match="stride"):
        segment_items(pairs, 16, 0)


def test_stft_loss_is_zero_for_identical_audio():
    x = torch.from_numpy(_pairs(1)[0][1])[None]
    sc, mag = stft_loss(x, x)
    assert float(sc) == 0.0 and float(mag) == 0.0
    sc, mag = stft_loss(0.5 * x, x)
    assert float(sc) > 0.1 and float(mag) > 0.1


def test_loss_decreases_on_a_tiny_config():
    seed_everything(0)
    model = _model()
    batch = collate_segments(segment_items(_pairs(4), 16, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(vocoder_loss(model, batch)[0].detach())
    for _ in range(15):
        logs = train_step(model, opt, vocoder_loss, batch, grad_clip=5.0)
    assert logs["loss"] < 0.9 * first
    assert {"mel_l1", "sc", "log_mag"} <= logs.keys()


def test_train_vocoder_ci_mode(ci_corpus, tmp_path):
    train_config, data_config = default_train_config("ci")
    english = ci_corpus.filter(split="train", language="en")
    utts = english.filter(speakers=english.speakers[:2])
    model, history = train_vocoder(utts, VocoderConfig.tiny(), train_config, data_config, progress=False)
    assert history.steps_done == train_config.steps and history.valid
    assert all(np.isfinite(r["loss"]) for r in history.train)
    assert not model.training


def test_checkpoint_round_trip_and_corruption(tmp_path):
    model = _model()
    path = tmp_path / "vocoder.pt"
    digest = model.save(path)
    loaded = NeuralVocoder.from_checkpoint(path, sha256=digest)
    assert loaded.config == model.config and not loaded.training
    mel = torch.randn(1, 80, 9) - 5
    with torch.no_grad():  # fp16 weights: close, not equal
        torch.testing.assert_close(loaded(mel), model(mel), atol=2e-3, rtol=2e-2)
    payload = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert payload["model_config"]["dim"] == model.config.dim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        NeuralVocoder.from_checkpoint(path)


def test_bad_input_raises_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match="transpose"):
        model.vocode(np.zeros((20, 80), np.float32))
    with pytest.raises(ValueError, match=r"\(B, 80, frames\)"):
        model(torch.zeros(1, 40, 10))
    bad = np.full((80, 10), -5.0, np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.vocode(bad)
    with pytest.raises(ValueError, match="Hz"):
        model.resynthesize(np.zeros(4000, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="hop"):
        VocoderConfig(hop=128)
    with pytest.raises(ValueError, match="mode"):
        default_train_config("huge")


def test_doctests():
    import doctest
    import importlib

    for name in ("ttslab.vocoders.neural", "ttslab.train.vocoder"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, name
