"""Tests of ttslab.vocoders (Griffin-Lim, WORLD resynthesis, evaluation) and benchmarks/vocoder_floor.py."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from ttslab.dsp import HOP, SAMPLE_RATE, log_mel, mel_filterbank, num_frames, stft
from ttslab.metrics import mcd_from_audio, spectral_convergence
from ttslab.vocoders import (griffin_lim, griffin_lim_from_magnitude, mel_resynthesize, mel_to_linear,
                             world_vocoder_resynthesize)

SR = SAMPLE_RATE
ROOT = Path(__file__).resolve().parents[1]


def harmonic_tone(f0=120.0, seconds=0.5, sr=SR, vibrato_depth=0.03, seed=0):
    """Harmonics with 1/k amplitudes and 5 Hz vibrato, 20 ms fades, faint noise (a voiced-speech stand-in)."""
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + vibrato_depth * np.sin(2 * np.pi * 5 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 40) if k * f0 * (1 + vibrato_depth) < sr / 2)
    x *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (0.3 * x / np.abs(x).max() + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def tone():
    return harmonic_tone()


def test_griffin_lim_converges_with_iterations(tone):
    S = stft(tone).abs().double().numpy()
    sc = {n: spectral_convergence(S, stft(griffin_lim_from_magnitude(S, n_iter=n, length=len(tone))).abs().numpy())
          for n in (0, 4, 32)}
    assert sc[0] > sc[4] > sc[32]
    assert sc[32] < 0.5 * sc[0]


def test_griffin_lim_is_deterministic_and_keeps_length(tone):
    lm = log_mel(tone)
    a = griffin_lim(lm, n_iter=4, seed=0)
    b = griffin_lim(lm, n_iter=4, seed=0)
    c = griffin_lim(lm, n_iter=4, seed=1)
    assert a.dtype == np.float32 and np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == (lm.shape[-1] - 1) * HOP and num_frames(len(a)) == lm.shape[-1]
    assert len(griffin_lim(lm, n_iter=2, length=len(tone))) == len(tone)
    y = mel_resynthesize(tone, SR, n_iter=2)
    assert y.dtype == np.float32 and y.shape == tone.shape and np.all(np.isfinite(y))


def test_griffin_lim_batched_equals_per_item(tone):
    lm = log_mel(np.stack([tone, tone[::-1].copy()]))
    batched = griffin_lim(lm, n_iter=3)
    np.testing.assert_allclose(batched[1], griffin_lim(lm[1], n_iter=3), atol=1e-6)


def test_mel_to_linear_is_nonnegative_and_fits_the_mel_bands(tone):
    lm = log_mel(tone).astype(np.float64)
    S = mel_to_linear(np.exp(lm))
    M = mel_filterbank().double().numpy()
    assert S.shape == (513, lm.shape[1]) and S.min() >= 0
    # The clamp at 0 costs a little; loud bands are still reproduced closely.
    mel, fit = np.exp(lm), M @ S
    loud = mel > 0.1 * mel.max()
    assert np.median(np.abs(fit[loud] - mel[loud]) / mel[loud]) < 0.1
    with pytest.raises(ValueError, match="lstsq"):
        mel_to_linear(np.exp(lm), method="magic")


def test_griffin_lim_rejects_bad_input(tone):
    lm = log_mel(tone)
    lm[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        griffin_lim(lm)
    with pytest.raises(ValueError, match="n_mels, frames"):
        griffin_lim(np.zeros(80))
    with pytest.raises(ValueError, match="negative"):
        griffin_lim_from_magnitude(-np.ones((513, 4)))


def test_world_resynthesis_keeps_length_and_timbre(tone):
    y = world_vocoder_resynthesize(tone, SR)
    assert y.dtype == np.float32 and y.shape == tone.shape
    assert mcd_from_audio(tone, y, SR, dtw=False) < 1.5


# ----------------------------------------------------------------------------- benchmark script


def load_benchmark():
    spec = importlib.util.spec_from_file_location("vocoder_floor", ROOT / "benchmarks" / "vocoder_floor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeUtterance:
    id: str
    speaker: str
    audio: np.ndarray
    sample_rate: int = SR

    def load_audio(self):
        return self.audio


def test_evaluate_vocoders_on_synthetic_utterances(tmp_path):
    from ttslab.vocoders import evaluate as bench

    utts = [FakeUtterance("a_001", "a", harmonic_tone(120.0, 0.4, seed=1)),
            FakeUtterance("b_001", "b", harmonic_tone(210.0, 0.4, seed=2))]
    vocoders = {"world": world_vocoder_resynthesize, "griffin_lim_8": partial(mel_resynthesize, n_iter=8)}
    results = bench.evaluate_vocoders(utts, vocoders, progress=False)
    assert len(results["rows"]) == 4
    world, gl = results["summary"]["world"]["mean"], results["summary"]["griffin_lim_8"]["mean"]
    assert set(results["summary"]["world"]["per_speaker"]) == {"a", "b"}
    assert 0 < world["mcd_dtw_db"] < 2.0 and world["f0_rmse_hz"] < 5.0 and world["vuv_error"] < 0.1
    assert world["rtf"] > 0 and gl["mcd_dtw_db"] > 0 and world["n_utterances"] == 2
    json.dumps(results, allow_nan=False)  # no NaN sneaks into the JSON
    table = bench.to_markdown(results)
    assert "| world |" in table and "| griffin_lim_8 / b |" in table
    assert world["mcd_db"] >= world["mcd_dtw_db"] - 1e-9 and 0 < world["mcd8k_dtw_db"] < 3.0
    with pytest.raises(ValueError, match="no utterances"):
        bench.evaluate_vocoders([], vocoders)
    kept = bench.evaluate_utterance(utts[0].audio, SR, vocoders, keep_audio=True)
    assert kept["world"]["audio"].shape == utts[0].audio.shape


def test_benchmark_script_writes_json_and_markdown(tmp_path, ci_corpus):
    """The CLI runs end to end on the CI corpus (two utterances) and writes both result files."""
    bench = load_benchmark()
    bench.main(["--mode", "ci", "--limit", "1", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "vocoder_floor_ci.json").read_text())
    assert data["meta"]["n_utterances"] == 1 and set(data["summary"]) == {"world", "griffin_lim_32", "griffin_lim_100"}
    assert "| world |" in (tmp_path / "vocoder_floor_ci.md").read_text()


def test_compare_analyses_scores_extra_f0_tracks_like_its_own():
    """``f0_tracks`` go through the same frame pairing (frame by frame, or the DTW path) as the analyses' F0."""
    from types import SimpleNamespace

    from ttslab.vocoders.evaluate import compare_analyses, dtw_path

    rng = np.random.default_rng(0)
    mc_ref, mc_syn = rng.normal(size=(30, 8)), rng.normal(size=(34, 8))
    f_ref, f_syn = np.full(30, 100.0), np.full(34, 110.0)
    ref, syn = SimpleNamespace(mcep=mc_ref, f0=f_ref), SimpleNamespace(mcep=mc_syn, f0=f_syn)
    p_ref = np.where(np.arange(30) % 5 == 0, 0.0, 200.0)          # unvoiced every 5th frame
    p_syn = np.linspace(190.0, 230.0, 34)
    out = compare_analyses(ref, syn, same_timing=False, f0_tracks={"pyin": (p_ref, p_syn)})
    path = dtw_path(mc_ref, mc_syn)
    a, b = p_ref[path[:, 0]], p_syn[path[:, 1]]
    voiced = (a > 0) & (b > 0)
    assert out["f0_rmse_hz_pyin"] == pytest.approx(np.sqrt(np.mean((b[voiced] - a[voiced]) ** 2)))
    assert out["vuv_error_pyin"] == pytest.approx(np.mean((a > 0) != (b > 0)))
    assert out["f0_rmse_hz"] == pytest.approx(10.0)                # the analyses' own tracks, unchanged
    same = compare_analyses(ref, SimpleNamespace(mcep=mc_ref + 0.1, f0=np.full(30, 103.0)), same_timing=True,
                            f0_tracks={"pyin": (p_ref, p_ref * 1.5)})
    assert same["f0_rmse_hz_pyin"] == pytest.approx(100.0)         # frame by frame: 300 vs 200 on voiced frames
    with pytest.raises(ValueError, match="same hop"):
        compare_analyses(ref, syn, same_timing=False, f0_tracks={"pyin": (p_ref[:-1], p_syn)})
