"""Tests of ttslab.metrics: known values, invariances and clear errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ttslab.metrics import (f0_rmse, log_spectral_distance, mcd_dtw, mcd_from_audio, mcd_per_frame,
                            measure_rtf, mel_cepstral_distortion, real_time_factor, spectral_convergence, timer,
                            vuv_error)

K = 10 / np.log(10)  # dB per neper


def smooth_mcep(T=60, D=25, seed=0):
    """Slowly varying random mel-cepstra (a random walk per coefficient), like real speech."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 0.05, size=(T, D)), axis=0) + rng.normal(0, 0.5, size=D)


def test_mcd_of_identical_is_zero():
    mc = smooth_mcep()
    assert mel_cepstral_distortion(mc, mc) == 0.0
    assert mcd_dtw(mc, mc) == 0.0


def test_mcd_known_value():
    ref = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    syn = np.array([[9.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    # frame 0: c0 ignored, distance sqrt(3^2 + 4^2) = 5; frame 1: distance 1
    expected = np.mean([K * np.sqrt(2 * 25.0), K * np.sqrt(2 * 1.0)])
    assert mel_cepstral_distortion(ref, syn) == pytest.approx(expected)
    np.testing.assert_allclose(mcd_per_frame(ref, syn), [K * np.sqrt(50.0), K * np.sqrt(2.0)])
    # with c0: frame 0 distance sqrt(64 + 25)
    assert mel_cepstral_distortion(ref, syn, exclude_c0=False) == pytest.approx(
        np.mean([K * np.sqrt(2 * 89.0), K * np.sqrt(2.0)]))


def test_mcd_truncates_to_the_shorter_sequence():
    mc = smooth_mcep()
    assert mel_cepstral_distortion(mc, mc[:40]) == 0.0


def test_dtw_mcd_beats_frame_mcd_on_a_time_shifted_copy():
    mc = smooth_mcep(T=80)
    shifted = np.concatenate([np.repeat(mc[:1], 4, axis=0), mc[:-4]])  # 4 frames late
    frame = mel_cepstral_distortion(mc, shifted)
    warped = mcd_dtw(mc, shifted)
    assert warped <= frame and warped < 0.2 * frame


def test_mcd_from_audio_runs_on_waveforms():
    rng = np.random.default_rng(0)
    t = np.arange(11025) / 22050
    x = 0.3 * np.sin(2 * np.pi * 150 * t) + 0.01 * rng.standard_normal(len(t))
    assert mcd_from_audio(x, x, 22050) == 0.0
    assert mcd_from_audio(x, x + 0.05 * rng.standard_normal(len(t)), 22050, dtw=False) > 0.5


def test_f0_rmse_hz_and_octave_in_cents():
    ref = np.array([0.0, 100.0, 150.0, 200.0, 0.0])
    syn = np.array([120.0, 200.0, 300.0, 400.0, 0.0])  # frame 0 voiced only in syn: excluded
    assert f0_rmse(ref, syn, unit="cents") == pytest.approx(1200.0)
    assert f0_rmse(ref, syn, unit="hz") == pytest.approx(np.sqrt((100**2 + 150**2 + 200**2) / 3))
    assert f0_rmse(ref, ref) == 0.0
    with pytest.warns(RuntimeWarning, match="voiced in both"):
        assert np.isnan(f0_rmse([0.0, 100.0], [100.0, 0.0]))
    with pytest.raises(ValueError, match="unit"):
        f0_rmse(ref, syn, unit="semitones")


def test_vuv_error_known_value():
    ref = np.array([0, 0, 100, 110, 120, 0, 0, 0.0])
    syn = np.array([0, 90, 100, 0, 120, 0, 0, 130.0])  # frames 1, 3, 7 differ
    assert vuv_error(ref, syn) == pytest.approx(3 / 8)


def test_log_spectral_distance_and_spectral_convergence():
    S = np.abs(np.random.default_rng(1).standard_normal((513, 20))) + 0.1
    assert log_spectral_distance(S, S) == 0.0
    assert log_spectral_distance(S, 2 * S) == pytest.approx(20 * np.log10(2), rel=1e-6)
    assert spectral_convergence(S, S) == 0.0
    assert spectral_convergence(S, 1.5 * S) == pytest.approx(0.5)


def test_rtf_helpers():
    assert real_time_factor(1.0, 4.0) == 0.25
    result, rtf = measure_rtf(lambda a, b: a + b, 10.0, 2, b=3)
    assert result == 5 and 0 <= rtf < 0.1
    with timer() as t:
        time.sleep(0.01)
    assert t.seconds >= 0.009
    with pytest.raises(ValueError, match="audio_seconds"):
        real_time_factor(1.0, 0.0)
    with pytest.raises(ValueError, match="audio_seconds"):
        measure_rtf(lambda: 1, 0.0)


@pytest.mark.parametrize("metric", [mel_cepstral_distortion, mcd_dtw])
def test_mcd_rejects_nan_empty_and_mismatched_orders(metric):
    mc = smooth_mcep()
    bad = mc.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(mc, bad)
    with pytest.raises(ValueError, match="empty"):
        metric(np.zeros((0, 25)), mc)
    with pytest.raises(ValueError, match="orders"):
        metric(mc, mc[:, :20])
    with pytest.raises(ValueError, match="dimension"):
        metric(mc[0], mc[0])


@pytest.mark.parametrize("metric", [f0_rmse, vuv_error])
def test_f0_metrics_reject_nan_mismatch_and_negative(metric):
    with pytest.raises(ValueError, match="NaN"):
        metric(np.array([100.0, np.nan]), np.array([100.0, 100.0]))
    with pytest.raises(ValueError, match="shapes differ"):
        metric(np.ones(5), np.ones(6))
    with pytest.raises(ValueError, match="negative"):
        metric(np.array([-1.0]), np.array([100.0]))
    with pytest.raises(ValueError, match="empty"):
        metric(np.array([]), np.array([]))


def test_spectral_metrics_reject_bad_input():
    S = np.ones((10, 4))
    with pytest.raises(ValueError, match="shapes differ"):
        log_spectral_distance(S, np.ones((10, 5)))
    with pytest.raises(ValueError, match="magnitudes"):
        log_spectral_distance(S, -S)
    with pytest.raises(ValueError, match="NaN"):
        spectral_convergence(S, np.full((10, 4), np.nan))
    with pytest.raises(ValueError, match="silence"):
        spectral_convergence(np.zeros((10, 4)), S)
