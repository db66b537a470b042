"""Tests of ttslab.dsp: spectrograms, F0, WORLD, deltas, normalisers and the feature cache."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from ttslab.dsp import (DELTA_WINDOWS, HOP, N_FFT, SAMPLE_RATE, FeatureCache, LogMel, MinMaxNormalizer, Normalizer,
                        all_pass_alpha, delta_features, delta_window_matrix, f0_pyin, f0_pyworld, log_f0_and_vuv,
                        log_mel, mel_filterbank, num_frames, stft, world_analysis, world_synthesis)
from ttslab.metrics import f0_rmse, mel_cepstral_distortion

SR = SAMPLE_RATE


def harmonic_tone(f0=120.0, seconds=1.0, sr=SR, vibrato_hz=5.0, vibrato_depth=0.03, n_harmonics=40, seed=0):
    """A voiced-speech stand-in: harmonics with 1/k amplitudes, sinusoidal vibrato, 20 ms fades, faint noise."""
    t = np.arange(int(seconds * sr)) / sr
    f0_t = f0 * (1 + vibrato_depth * np.sin(2 * np.pi * vibrato_hz * t))
    phase = 2 * np.pi * np.cumsum(f0_t) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1) if k * f0 * (1 + vibrato_depth) < sr / 2)
    x *= np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    x = 0.3 * x / np.abs(x).max() + 1e-3 * np.random.default_rng(seed).standard_normal(len(t))
    return x.astype(np.float32), f0_t


# ----------------------------------------------------------------------------- spectral


def test_constants_are_the_hifigan_lj_convention():
    assert (SAMPLE_RATE, N_FFT, HOP) == (22050, 1024, 256)
    assert tuple(mel_filterbank().shape) == (80, 513)


def test_log_mel_matches_librosa():
    import librosa

    x, _ = harmonic_tone()
    ours = log_mel(x)
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=256, win_length=1024, window="hann",
                                         center=True, pad_mode="reflect", power=1.0, n_mels=80, fmin=0.0,
                                         fmax=8000.0, htk=False, norm="slaney")
    ref = np.log(np.maximum(mel, 1e-5))
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    assert ours.shape == ref.shape == (80, num_frames(len(x)))
    assert np.abs(ours - ref).max() < 1e-3


def test_log_mel_batched_equals_per_item_numpy_and_torch():
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((3, 5000)).astype(np.float32) * 0.1
    out = log_mel(batch)
    assert isinstance(out, np.ndarray) and out.shape == (3, 80, num_frames(5000))
    for b in range(3):
        np.testing.assert_allclose(out[b], log_mel(batch[b]), atol=1e-5)
    out_t = log_mel(torch.from_numpy(batch))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-5)
    module = LogMel()
    np.testing.assert_allclose(module(torch.from_numpy(batch)).numpy(), out, atol=1e-5)
    assert "fbank" in module.state_dict() and "window" in module.state_dict()


@pytest.mark.parametrize("n", [513, 1000, 2560, 2561, 22050])
def test_frame_count_is_num_frames(n):
    assert log_mel(np.zeros(n, dtype=np.float32)).shape[-1] == num_frames(n) == 1 + n // HOP


def test_stft_matches_a_from_scratch_dft():
    n_fft, hop, win = 16, 4, 12
    x = np.random.default_rng(2).standard_normal(50)
    # centre=True: reflect-pad n_fft//2 each side; the Hann window of length win sits centred in n_fft.
    xpad = np.pad(x, n_fft // 2, mode="reflect")
    w = np.zeros(n_fft)
    w[(n_fft - win) // 2:(n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = np.stack([xpad[m * hop:m * hop + n_fft] * w for m in range(1 + len(x) // hop)], axis=1)
    f, n = np.arange(n_fft // 2 + 1)[:, None], np.arange(n_fft)[None, :]
    expected = np.exp(-2j * np.pi * f * n / n_fft) @ frames
    ours = stft(x, n_fft=n_fft, hop=hop, win=win).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    batched = stft(np.stack([x, 2 * x]), n_fft=n_fft, hop=hop, win=win).numpy()
    np.testing.assert_allclose(batched[1], 2 * ours, atol=1e-4)


@pytest.mark.parametrize("bad, message", [
    (np.array([0.0, np.nan] * 1000), "NaN"),
    (np.zeros(0), "empty"),
    (np.zeros((2, 2, 2000)), "1-D"),
    (np.zeros(100), "reflect padding"),
])
def test_log_mel_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        log_mel(bad)


def test_integer_pcm_is_refused_with_the_conversion_hint():
    with pytest.raises(TypeError, match="32768"):
        log_mel(np.zeros(2000, dtype=np.int16))
    with pytest.raises(TypeError, match="32768"):
        f0_pyworld(np.zeros(2000, dtype=np.int16))


def test_mel_filterbank_rejects_fmax_above_nyquist():
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(sample_rate=16000, fmax=9000)


# ----------------------------------------------------------------------------- F0


@pytest.fixture(scope="module")
def tone():
    return harmonic_tone()


@pytest.mark.parametrize("method", ["harvest", "dio"])
def test_f0_pyworld_tracks_a_vibrato_tone(tone, method):
    x, f0_true = tone
    f0 = f0_pyworld(x, SR, HOP, method=method)
    assert f0.shape == (num_frames(len(x)),)
    truth = f0_true[np.minimum(np.arange(len(f0)) * HOP, len(x) - 1)]
    inner = slice(5, -5)  # the 20 ms fades are not judged
    assert (f0[inner] > 0).mean() > 0.95
    assert f0_rmse(truth[inner], f0[inner]) < 1.0  # measured 0.03 Hz (harvest), 0.04 Hz (dio)


def test_f0_pyworld_silence_is_unvoiced_and_bad_method_raises():
    assert np.all(f0_pyworld(np.zeros(4000), SR) == 0)
    with pytest.raises(ValueError, match="harvest"):
        f0_pyworld(np.zeros(4000), SR, method="yin")


def test_f0_pyin_frames_and_accuracy():
    x, _ = harmonic_tone(f0=200.0, seconds=0.5, vibrato_depth=0.0)
    f0 = f0_pyin(x, SR, HOP, fmin=80, fmax=400)
    assert f0.shape == (num_frames(len(x)),) and not np.isnan(f0).any()
    assert abs(np.median(f0[f0 > 0]) - 200.0) < 2.0


def test_log_f0_and_vuv_interpolates_and_holds_edges():
    lf0, vuv = log_f0_and_vuv(np.array([0, 0, 100.0, 0, 0, 0, 400.0, 0]))
    assert vuv.tolist() == [False, False, True, False, False, False, True, False]
    np.testing.assert_allclose(lf0[:3], np.log(100))                       # held before the first voiced frame
    np.testing.assert_allclose(np.diff(lf0[2:7]), (lf0[6] - lf0[2]) / 4)   # linear across the gap
    assert lf0[7] == lf0[6]                                                # held after the last
    zeros, none_voiced = log_f0_and_vuv(np.zeros(5))
    assert not none_voiced.any() and np.all(zeros == 0)
    with pytest.raises(ValueError, match="NaN"):
        log_f0_and_vuv(np.array([100.0, np.nan]))


# ----------------------------------------------------------------------------- WORLD


def test_all_pass_alpha_at_22050():
    assert all_pass_alpha(22050) == 0.455


@pytest.fixture(scope="module")
def world_round_trip(tone):
    x, _ = tone
    a = world_analysis(x, SR)
    y = world_synthesis(a.f0, a.mcep, a.bap, SR, a.frame_period, a.alpha, a.fft_size, n_samples=len(x))
    return x, a, y, world_analysis(y, SR)


def test_world_features_share_the_log_mel_frame_grid(world_round_trip):
    x, a, _, _ = world_round_trip
    T = log_mel(x).shape[-1]
    assert a.num_frames == T == num_frames(len(x))
    assert a.mcep.shape == (T, 40) and a.bap.shape == (T, 2) and a.sp.shape == (T, a.fft_size // 2 + 1)
    assert a.alpha == 0.455 and abs(a.frame_period - 11.609977) < 1e-6


def test_world_round_trip_is_close(world_round_trip):
    x, a, y, b = world_round_trip
    assert y.dtype == np.float32 and len(y) == len(x)
    # Measured 1.01 dB MCD and 0.81 Hz F0 RMSE (x86-64, pyworld 0.3.5); thresholds leave some slack.
    assert mel_cepstral_distortion(a.mcep, b.mcep) < 1.5
    assert f0_rmse(a.f0, b.f0) < 2.0


def test_world_synthesis_rejects_bad_features(world_round_trip):
    _, a, _, _ = world_round_trip
    bad = a.mcep.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        world_synthesis(a.f0, bad, a.bap, SR)
    with pytest.raises(ValueError, match="same number of frames"):
        world_synthesis(a.f0[:-1], a.mcep, a.bap, SR)
    with pytest.raises(ValueError, match="sample rate"):
        world_synthesis(a.f0, a.mcep, a.bap, 48000)


# ----------------------------------------------------------------------------- deltas


def test_delta_windows_are_the_hts_ones():
    assert [list(w) for w in DELTA_WINDOWS] == [[1.0], [-0.5, 0.0, 0.5], [1.0, -2.0, 1.0]]


@pytest.mark.parametrize("edges", ["replicate", "zero"])
@pytest.mark.parametrize("T", [1, 2, 3, 17])
@pytest.mark.parametrize("windows", [DELTA_WINDOWS, [[1.0], [0.1, -0.2, 0.0, 0.3, 0.4]]])
def test_delta_window_matrix_equals_delta_features(T, windows, edges):
    rng = np.random.default_rng(T)
    W = delta_window_matrix(T, windows, edges)
    K = len(windows)
    assert W.shape == (T * K, T)
    # Integer-valued features with dyadic windows make every sum exact, so equality is exact.
    c = rng.integers(-50, 50, size=(T, 4)).astype(np.float64)
    if windows is DELTA_WINDOWS:
        assert np.array_equal((W @ c).reshape(T, K * 4), delta_features(c, windows, edges))
    c = rng.standard_normal((T, 4))
    np.testing.assert_allclose((W @ c).reshape(T, K * 4), delta_features(c, windows, edges), rtol=0, atol=1e-12)


@pytest.mark.parametrize("edges, pad_mode", [("replicate", "edge"), ("zero", "constant")])
@pytest.mark.parametrize("T", [1, 2, 5, 17])
def test_delta_features_equal_padded_correlation(T, edges, pad_mode):
    """Reference: pad the track by L frames (edge value / zeros), then numpy's correlation over the valid part."""
    windows = [[1.0], [-0.5, 0.0, 0.5], [1.0, -2.0, 1.0], [0.1, -0.2, 0.0, 0.3, 0.4]]
    x = np.random.default_rng(T).standard_normal(T)
    expected = np.stack([np.correlate(np.pad(x, len(w) // 2, mode=pad_mode), w, mode="valid") for w in windows], 1)
    np.testing.assert_allclose(delta_features(x[:, None], windows, edges), expected, rtol=0, atol=1e-12)


def test_deltas_of_a_constant_are_zero_including_edges():
    d = delta_features(np.full((6, 2), 3.0))
    assert np.all(d[:, :2] == 3.0) and np.all(d[:, 2:] == 0.0)
    cut = delta_features(np.full((6, 1), 3.0), edges="zero")  # cut taps read 0: a step at each end
    np.testing.assert_array_equal(cut[:, 1], [1.5, 0, 0, 0, 0, -1.5])
    np.testing.assert_array_equal(cut[:, 2], [-3.0, 0, 0, 0, 0, -3.0])


def test_delta_features_rejects_even_windows_and_nan():
    with pytest.raises(ValueError, match="odd"):
        delta_features(np.zeros((4, 1)), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="NaN"):
        delta_features(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="edges"):
        delta_features(np.zeros((4, 1)), edges="reflect")


# ----------------------------------------------------------------------------- normalisers


def test_normalizer_round_trip_and_saving():
    rng = np.random.default_rng(3)
    arrays = [rng.normal(5, 2, size=(n, 3)) for n in (10, 40, 7)]
    for a in arrays:
        a[:, 2] = 1.0  # a constant dimension: std floored, not divided by zero
    norm = Normalizer().fit(arrays)
    stacked = np.concatenate(arrays)
    np.testing.assert_allclose(norm.mean, stacked.mean(0), atol=1e-12)
    np.testing.assert_allclose(norm.std[:2], stacked.std(0)[:2], atol=1e-12)
    assert norm.std[2] == norm.std_floor
    z = norm.transform(arrays[0])
    assert z.dtype == np.float32 and np.all(np.isfinite(z))
    np.testing.assert_allclose(norm.inverse_transform(z), arrays[0], atol=1e-4)
    again = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    np.testing.assert_array_equal(again.transform(arrays[0]), z)


def test_normalizer_errors():
    with pytest.raises(ValueError, match="NaN"):
        Normalizer().fit([np.array([[1.0], [np.nan]])])
    with pytest.raises(RuntimeError, match="not fitted"):
        Normalizer().transform(np.zeros((2, 1)))
    norm = Normalizer().fit([np.zeros((3, 2))])
    with pytest.raises(ValueError, match="dimensions"):
        norm.transform(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        norm.transform(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="no data"):
        Normalizer().fit([])


def test_minmax_normalizer_round_trip():
    a = np.array([[0.0, -1.0], [4.0, 1.0], [2.0, 0.0]])
    norm = MinMaxNormalizer((0.01, 0.99)).fit([a])
    z = norm.transform(a)
    assert z.min() == pytest.approx(0.01) and z.max() == pytest.approx(0.99)
    np.testing.assert_allclose(MinMaxNormalizer.from_dict(norm.to_dict()).inverse_transform(z), a, atol=1e-6)


# ----------------------------------------------------------------------------- cache


def test_feature_cache_reuses_and_separates_configs(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    cache = FeatureCache(tmp_path, "logmel", {"hop": 256, "n_mels": 80})
    first = cache.get_or_compute("utt_001", compute)
    second = cache.get_or_compute("utt_001", compute)
    assert len(calls) == 1 and np.array_equal(first, second) and second.dtype == np.float32
    assert "utt_001" in cache
    saved = json.loads((cache.dir / "config.json").read_text())
    assert saved["config"] == {"hop": 256, "n_mels": 80}

    same = FeatureCache(tmp_path, "logmel", {"n_mels": 80, "hop": 256})  # key order does not matter
    assert same.dir == cache.dir
    other = FeatureCache(tmp_path, "logmel", {"hop": 200, "n_mels": 80})
    assert other.dir != cache.dir and "utt_001" not in other
    other.get_or_compute("utt_001", compute)
    assert len(calls) == 2
    newer_code = FeatureCache(tmp_path, "logmel", {"hop": 256, "n_mels": 80}, version="2")
    assert newer_code.dir != cache.dir


def test_feature_cache_recovers_from_a_corrupt_file(tmp_path):
    cache = FeatureCache(tmp_path, "f0", {"method": "harvest"})
    cache.get_or_compute("a", lambda: np.ones(4))
    cache.path("a").write_bytes(b"not a numpy file")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        value = cache.get_or_compute("a", lambda: np.full(4, 7.0))
    assert np.all(value == 7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(cache.get_or_compute("a", lambda: np.zeros(4)) == 7.0)  # rewritten, now clean


def test_feature_cache_default_root_is_under_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSLAB_DATA", str(tmp_path))
    cache = FeatureCache(None, "mel", {"hop": 256})
    assert cache.dir.parent == tmp_path / "features" / "mel"


def test_feature_cache_rejects_bad_ids_configs_and_objects(tmp_path):
    cache = FeatureCache(tmp_path, "x", {"a": 1})
    with pytest.raises(ValueError, match="file name"):
        cache.get_or_compute("../escape", lambda: np.zeros(1))
    with pytest.raises(TypeError, match="JSON"):
        FeatureCache(tmp_path, "x", {"a": np.float32(1.0)})
    with pytest.raises(TypeError, match="pickle"):
        cache.get_or_compute("obj", lambda: np.array([{"a": 1}], dtype=object))


# ----------------------------------------------------------------------------- docstring examples


@pytest.mark.parametrize("module", ["ttslab.dsp.spectral", "ttslab.dsp.f0", "ttslab.dsp.world", "ttslab.dsp.deltas",
                                    "ttslab.dsp.normalize", "ttslab.dsp.cache", "ttslab.metrics"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
