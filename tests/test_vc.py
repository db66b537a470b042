"""GMM voice conversion: DTW alignment, conversion quality on held-out prompts, F0, audio, saving, errors."""

from __future__ import annotations

import dataclasses
import doctest

import numpy as np
import pytest

import ttslab.classical.vc as vc_module
from ttslab.classical.vc import (VCConfig, VoiceConverter, aligned_joint_frames, dtw_align, evaluate_vc,
                                 parallel_pairs, speech_frames, train_vc)
from ttslab.data import Corpus
from ttslab.dsp.deltas import delta_features

SOURCE, TARGET = "en_us_m", "en_us_f"  # male -> female: the spectra and F0 differ most
N_TRAIN, N_TEST = 20, 4                # 20 sentence pairs train a 4-component model in seconds


@pytest.fixture(scope="module")
def converter(ci_corpus):
    return train_vc(ci_corpus, SOURCE, TARGET, VCConfig.for_mode("ci"), progress=False, utterance_limit=N_TRAIN)


@pytest.fixture(scope="module")
def scores(converter, ci_corpus):
    return evaluate_vc(converter, ci_corpus, progress=False, utterance_limit=N_TEST)


@pytest.fixture(scope="module")
def test_pair(ci_corpus):
    """One held-out pair: the source utterance and the source/target WORLD features."""
    u, v = parallel_pairs(ci_corpus, SOURCE, TARGET, split="test")[0]
    config = VCConfig.for_mode("ci")
    return u, vc_module.analyse(u.load_audio(), u.sample_rate, config), vc_module.analyse(v.load_audio(), 22050, config)


# ----------------------------------------------------------------------------- alignment


def test_dtw_recovers_a_known_time_stretch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 5))
    y = np.repeat(x, 2, axis=0)                      # y is x spoken twice as slowly
    path = dtw_align(x, y)
    np.testing.assert_array_equal(path[:, 0], np.arange(60) // 2)
    np.testing.assert_array_equal(path[:, 1], np.arange(60))
    np.testing.assert_array_equal(x[path[:, 0]], y[path[:, 1]])


def test_dtw_path_is_monotone_and_joint_frames_are_consistent(test_pair):
    _, fx, fy = test_pair
    x, y = fx.mcep[:, 1:], fy.mcep[:, 1:]
    path = dtw_align(x, y)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [len(x) - 1, len(y) - 1]
    steps = np.diff(path, axis=0)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}  # monotone, continuous, no skipped frame
    assert len(path) >= max(len(x), len(y))

    kx, ky = speech_frames(fx.mcep), speech_frames(fy.mcep)
    assert 0.3 < kx.mean() < 1.0 and 0.3 < ky.mean() < 1.0  # leading/trailing silence found, speech kept
    Z = aligned_joint_frames(x, y, path, kx, ky)
    both = kx[path[:, 0]] & ky[path[:, 1]]
    D = x.shape[1]
    assert Z.shape == (both.sum(), 4 * D)            # one joint vector per kept pair: [x, dx, y, dy]
    np.testing.assert_array_equal(Z[:, :2 * D], delta_features(x, vc_module.VC_WINDOWS)[path[both, 0]])
    np.testing.assert_array_equal(Z[:, 2 * D:], delta_features(y, vc_module.VC_WINDOWS)[path[both, 1]])


# ----------------------------------------------------------------------------- conversion quality


@pytest.mark.slow
def test_conversion_reduces_mcd_on_held_out_prompts(scores):
    mean = scores["mean"]
    assert len(scores["rows"]) == N_TEST
    assert mean["mcd_after"] <= mean["mcd_before"] - 3.0, mean  # measured: ~12.6 -> ~4.3 dB
    for row in scores["rows"]:
        assert row["mcd_after"] <= row["mcd_before"] - 1.0, row
        assert row["source_id"].endswith(row["target_id"].split("-", 1)[1])  # the same held-out prompt


@pytest.mark.slow
def test_f0_moves_toward_the_target(scores):
    for row in scores["rows"]:
        before = abs(np.log(row["median_f0_source"] / row["median_f0_target"]))
        after = abs(np.log(row["median_f0_converted"] / row["median_f0_target"]))
        assert after < 0.5 * before, row
        assert row["f0_rmse_after"] < row["f0_rmse_before"], row


@pytest.mark.slow
def test_log_f0_transform_matches_the_target_statistics(converter):
    mu_x, sd_x = converter.source_f0_stats
    mu_y, sd_y = converter.target_f0_stats
    lf0 = np.random.default_rng(0).normal(mu_x, sd_x, size=5000)
    f0 = np.exp(lf0)
    f0[::7] = 0.0                                    # unvoiced frames stay unvoiced
    out = converter.convert_f0(f0)
    assert np.all(out[::7] == 0) and np.all(out[f0 > 0] > 0)
    np.testing.assert_allclose(np.log(out[f0 > 0]).mean(), mu_y, atol=0.02)
    np.testing.assert_allclose(np.log(out[f0 > 0]).std(), sd_y, rtol=0.05)


@pytest.mark.slow
def test_converted_features_and_audio(converter, test_pair):
    u, fx, _ = test_pair
    out = converter.convert_features(fx)
    assert out.mcep.shape == fx.mcep.shape and out.sp.shape == fx.sp.shape
    np.testing.assert_array_equal(out.mcep[:, 0], fx.mcep[:, 0])   # c0 (loudness) from the source
    np.testing.assert_array_equal(out.bap, fx.bap)                  # aperiodicity from the source
    np.testing.assert_array_equal(out.f0 > 0, fx.f0 > 0)            # voicing from the source

    audio = u.load_audio()
    y = converter.convert(audio, u.sample_rate)
    assert y.dtype == np.float32 and y.shape == audio.shape
    assert np.all(np.isfinite(y)) and 0.01 < np.sqrt(np.mean(y ** 2)) and np.abs(y).max() < 4.0


@pytest.mark.slow
@pytest.mark.parametrize("changes", [{"gv": "none"}, {"gv": "mlpg_gv"}, {"mixture": "posterior"}])
def test_conversion_variants_run_and_stay_close(converter, test_pair, changes):
    _, fx, fy = test_pair
    from ttslab.metrics import mcd_dtw

    variant = converter.replace(**changes)
    mc = variant.convert_mcep(fx.mcep)
    assert np.all(np.isfinite(mc))
    sx, sy = speech_frames(fx.mcep), speech_frames(fy.mcep)
    assert mcd_dtw(fy.mcep[sy], mc[sx]) < mcd_dtw(fy.mcep[sy], fx.mcep[sx]) - 3.0


@pytest.mark.slow
def test_global_variance_scaling_restores_the_target_gv(converter, test_pair):
    _, fx, _ = test_pair
    speech = speech_frames(fx.mcep)
    plain = converter.replace(gv="none").convert_mcep(fx.mcep)[speech, 1:]
    scaled = converter.convert_mcep(fx.mcep)[speech, 1:]
    assert np.mean(plain.var(axis=0) / converter.gv_mean) < 0.9  # MLPG over-smooths (the high orders most) ...
    np.testing.assert_allclose(scaled.var(axis=0), converter.gv_mean, rtol=1e-9)  # ... scaling puts it back


# ----------------------------------------------------------------------------- determinism and saving


def test_training_is_deterministic_and_the_feature_cache_changes_nothing(ci_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("TTSLAB_DATA", str(tmp_path))  # the cache lives under data_home()/features
    config = VCConfig(n_components=2, max_iter=3, alignment_passes=1, max_frames=400)
    models = [train_vc(ci_corpus, SOURCE, TARGET, config, progress=False, utterance_limit=2, cache=cache)
              for cache in (False, True, True)]                # computed, computed + stored, loaded
    assert len(list((tmp_path / "features" / "vc-world").glob("*/*.npy"))) == 4
    for other in models[1:]:
        np.testing.assert_array_equal(models[0].gmm.means_, other.gmm.means_)
        np.testing.assert_array_equal(models[0].gmm.covariances_, other.gmm.covariances_)
    assert models[0].info["passes"][0]["training_frames"] == 400


@pytest.mark.slow
def test_save_load_round_trip(converter, test_pair, tmp_path):
    _, fx, _ = test_pair
    path = converter.save(tmp_path / "vc.npz")
    loaded = VoiceConverter.load(path)
    assert loaded.config == converter.config and (loaded.source, loaded.target) == (SOURCE, TARGET)
    assert loaded.info == converter.info
    np.testing.assert_array_equal(loaded.convert_mcep(fx.mcep), converter.convert_mcep(fx.mcep))
    np.testing.assert_array_equal(loaded.convert_f0(fx.f0), converter.convert_f0(fx.f0))
    assert [p.name for p in tmp_path.iterdir()] == ["vc.npz"]  # no temporary file left behind

    # a changed parameter is caught by the checksum; a truncated file is reported, not crashed on
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["means"] = arrays["means"] + 1e-3
    np.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        VoiceConverter.load(tmp_path / "tampered.npz")
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable"):
        VoiceConverter.load(tmp_path / "truncated.npz")


# ----------------------------------------------------------------------------- errors


def test_speaker_errors(ci_corpus):
    with pytest.raises(ValueError, match="same speaker"):
        train_vc(ci_corpus, SOURCE, SOURCE, progress=False)
    with pytest.raises(KeyError, match="unknown target speaker 'nobody'"):
        train_vc(ci_corpus, SOURCE, "nobody", progress=False)


def test_non_parallel_data_is_refused(ci_corpus):
    src = ci_corpus.filter(speakers=SOURCE, split="train")
    tgt = ci_corpus.filter(speakers=TARGET, split="test")
    disjoint = Corpus("disjoint", list(src) + list(tgt))
    with pytest.raises(ValueError, match="share no prompt"):
        parallel_pairs(disjoint, SOURCE, TARGET, split=None)
    # same ids but another sentence: the pair is refused, not silently aligned
    swapped = [dataclasses.replace(u, text="A completely different sentence.") if u.id == f"{TARGET}-en_train_0002"
               else u for u in ci_corpus.filter(speakers=[SOURCE, TARGET], split="train")]
    with pytest.raises(ValueError, match="non-parallel pair"):
        parallel_pairs(Corpus("swapped", swapped), SOURCE, TARGET)


def test_too_little_data_for_the_components(ci_corpus):
    with pytest.raises(ValueError, match="too little data"):
        train_vc(ci_corpus, SOURCE, TARGET, VCConfig(n_components=8), progress=False, utterance_limit=1)


@pytest.mark.slow
def test_bad_settings_and_inputs(converter, test_pair):
    u, fx, _ = test_pair
    with pytest.raises(ValueError, match="gv must be"):
        VCConfig(gv="loud")
    with pytest.raises(ValueError, match="mixture must be"):
        VCConfig(mixture="best")
    with pytest.raises(ValueError, match="trained at 22050"):
        converter.convert(u.load_audio(), 16000)
    with pytest.raises(ValueError, match="mcep must have shape"):
        converter.convert_mcep(fx.mcep[:, :10])
    with pytest.raises(ValueError, match="can change after training"):
        converter.replace(n_components=8)


def test_doctests():
    assert doctest.testmod(vc_module, raise_on_error=False).failed == 0
