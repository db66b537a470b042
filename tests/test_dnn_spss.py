"""DNN-SPSS: network shapes, pure losses, durations, generation, save/load, bad input (tiny nets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.models.dnn_spss import (KINDS, LINGUISTIC_DIM, AcousticModel, DNNConfig, DNNVoice, DurationModel,
                                    acoustic_loss, duration_loss, durations_to_frames)
from ttslab.train.loop import TrainConfig


@pytest.fixture(scope="module")
def voice_and_data(ci_corpus):
    """A tiny voice (both acoustic kinds) trained for a few steps on 6 utterances, and its training data."""
    from ttslab.train import dnn_spss as recipe

    torch.set_num_threads(1)
    tc = TrainConfig(steps=40, batch_size=4, lr=3e-3, warmup=0, valid_every=20, log_every=5)
    voice = recipe.train_dnn_voice(ci_corpus, "en_us_m", DNNConfig.tiny(), {k: tc for k in ("duration", *KINDS)},
                                   progress=False, kinds=KINDS, max_utterances=6, valid_fraction=0.2,
                                   device="cpu")
    utts = recipe.training_utterances(ci_corpus, "en_us_m", 6)
    items, _ = recipe.prepare_data(utts[:2], voice.config, progress=False)
    return voice, utts, items


def test_linguistic_dim_matches_the_front_end():
    from ttslab.text.context import feature_names

    assert LINGUISTIC_DIM == len(feature_names())
    cfg = DNNConfig.full()
    assert (cfg.in_dim, cfg.n_static, cfg.out_dim) == (501, 114, 115)
    assert DNNConfig.tiny("lstm").lstm_hidden < cfg.lstm_hidden


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="kind"):
        DNNConfig(kind="cnn")
    with pytest.raises(ValueError, match="activation"):
        DNNConfig(activation="gelu")
    with pytest.raises(ValueError, match=">= 1"):
        DNNConfig(ff_hidden=0)


@pytest.mark.parametrize("kind", KINDS)
def test_acoustic_shapes_and_phone_level_forward(kind):
    from ttslab.text.context import frame_features

    torch.manual_seed(0)
    model = AcousticModel(DNNConfig.tiny(kind)).eval()
    ling = np.random.default_rng(0).random((5, LINGUISTIC_DIM)).astype(np.float32)
    durations = np.array([3, 1, 4, 0, 2])
    x = torch.from_numpy(frame_features(ling, durations))[None]
    with torch.no_grad():
        out = model(x)
        index = torch.from_numpy(np.repeat(np.arange(5), durations))[None]
        fast = model.forward_phones(torch.from_numpy(ling)[None], index, x[..., LINGUISTIC_DIM:])
    assert out.shape == (1, 10, model.config.out_dim)
    torch.testing.assert_close(fast, out, rtol=1e-5, atol=1e-5)   # the same function, computed per phone
    with pytest.raises(ValueError, match="501"):
        model(torch.zeros(1, 4, 498))


def test_padded_lstm_frames_do_not_leak_into_real_ones():
    torch.manual_seed(0)
    model = AcousticModel(DNNConfig.tiny("lstm")).eval()
    x = torch.rand(1, 6, model.config.in_dim)
    padded = torch.cat([torch.cat([x, torch.rand(1, 3, x.shape[-1])], 1), torch.rand(1, 9, x.shape[-1])])
    with torch.no_grad():
        alone = model(x)
        batch = model(padded, torch.tensor([6, 9]))
    torch.testing.assert_close(batch[:1, :6], alone, rtol=1e-5, atol=1e-5)


def test_losses_are_pure_and_check_shapes():
    torch.manual_seed(0)
    dur = DurationModel(DNNConfig.tiny())
    batch = {"x": torch.rand(2, 7, LINGUISTIC_DIM), "y": torch.randn(2, 7), "mask": torch.ones(2, 7)}
    batch["mask"][1, 4:] = 0
    loss, logs = duration_loss(dur, batch)
    assert loss.ndim == 0 and loss.item() > 0 and logs["mse"] == pytest.approx(loss.item())
    before = {k: v.clone() for k, v in dur.state_dict().items()}
    duration_loss(dur, batch)
    assert all(torch.equal(before[k], v) for k, v in dur.state_dict().items())  # no side effects
    with pytest.raises(ValueError, match="shape"):
        duration_loss(dur, {**batch, "y": torch.randn(2, 6)})
    model = AcousticModel(DNNConfig.tiny())
    ab = {"x": torch.rand(2, 5, 501), "y": torch.randn(2, 5, 114), "vuv": torch.ones(2, 5)}
    loss, logs = acoustic_loss(model, ab)
    assert set(logs) == {"mse", "lf0_mse", "vuv_bce", "vuv_error"} and np.isfinite(loss.item())
    with pytest.raises(ValueError, match="do not match"):
        acoustic_loss(model, {**ab, "y": torch.randn(2, 5, 115)})


def test_durations_to_frames_positive_whole_and_summing():
    pred = np.array([0.2, 3.4, 7.7, -2.0, 12.6])
    frames = durations_to_frames(pred)
    assert frames.dtype == np.int64 and np.all(frames >= 1)
    assert frames.sum() == int(np.floor(np.maximum(pred, 1).sum() + 0.5))
    fast = durations_to_frames(pred * 10, rate=2.0)
    assert fast.sum() == int(np.floor(np.maximum(pred * 5, 1).sum() + 0.5))
    for bad, kw in (([], {}), ([1.0, np.nan], {}), ([1.0], {"rate": 0.0})):
        with pytest.raises(ValueError):
            durations_to_frames(bad, **kw)


def test_training_decreases_the_losses(voice_and_data):
    from ttslab.train import dnn_spss as recipe
    from ttslab.train.loop import Batches, evaluate, fit

    voice, _, items = voice_and_data
    assert voice.info["n_utterances"] + voice.info["n_valid_utterances"] == 6
    for name in ("duration", *KINDS):
        assert voice.info["history"][name]["valid"] and voice.info["seconds"][name] > 0, name
    items = recipe.normalize_items(items, voice.normalizers)
    tc = TrainConfig(steps=30, batch_size=2, lr=1e-2, schedule="constant", valid_every=100, log_every=5)
    fixed = {"duration": recipe.collate_duration(items), "ff": recipe.acoustic_collate(64)(items)}
    fixed["lstm"] = fixed["ff"]   # one batch of two 64-frame windows, used at every step
    nets = {"duration": (DurationModel(DNNConfig.tiny()), duration_loss),
            **{k: (AcousticModel(DNNConfig.tiny(k)), acoustic_loss) for k in KINDS}}
    for name, (model, loss_fn) in nets.items():
        torch.manual_seed(0)
        batches = Batches([0], 1, lambda _, b=fixed[name]: b, shuffle=False)
        before = evaluate(model, loss_fn, batches)["loss"]
        fit(model, loss_fn, batches, tc, progress=False)
        after = evaluate(model, loss_fn, batches)["loss"]
        assert after < 0.9 * before, (name, before, after)


def test_generate_features_shapes_and_durations(voice_and_data):
    voice, utts, items = voice_and_data
    utt = utts[0]
    predicted = voice.durations(utt)
    assert predicted.dtype == np.int64 and np.all(predicted >= 1) and len(predicted) == len(utt.segments)
    oracle = voice.oracle_durations(utt)
    assert np.array_equal(oracle, items[0]["durations"]) and oracle.sum() == len(items[0]["targets"])
    for kind in KINDS:
        feats = voice.generate_features(utt, oracle, kind=kind)
        T = int(oracle.sum())
        assert feats["mcep"].shape == (T, 35) and feats["f0"].shape == (T,) and feats["bap"].shape == (T, 2)
        assert np.all(feats["f0"] >= 0) and np.all(feats["bap"] <= 0) and np.isfinite(feats["mcep"]).all()
    audio, sr = voice.synthesize_utterance(utt, oracle_durations=True)
    assert sr == 22050 and audio.dtype == np.float32 and len(audio) == utt.num_samples


def test_mlpg_uses_the_training_variances_and_the_delta_layout(voice_and_data):
    from ttslab.classical.mlpg import mlpg
    from ttslab.dsp.deltas import delta_features

    voice, utts, _ = voice_and_data
    ling = voice.linguistic(utts[0].segments)
    durations = voice.oracle_durations(utts[0])
    T = int(durations.sum())
    means, vuv = voice.predict_frames(ling, durations)
    assert means.shape == (T, voice.config.n_static) and vuv.shape == (T,) and np.all((vuv >= 0) & (vuv <= 1))
    mcep = voice.generate_features(utts[0], durations, use_gv=False)["mcep"]
    sl = voice.config.stream_slices()["mcep"]
    variances = voice.normalizers["acoustic"].std[sl] ** 2          # Zen et al. 2013: global variances
    assert mcep.shape == (T, 35)
    np.testing.assert_allclose(mcep, mlpg(means[:, sl], variances), rtol=1e-10, atol=1e-10)
    assert not np.allclose(mcep, means[:, :35], atol=1e-3)          # the deltas do change the trajectory
    # a target whose deltas are those of its statics comes back unchanged: the columns are laid out
    # as delta_features writes them
    np.testing.assert_allclose(mlpg(delta_features(mcep), variances), mcep, atol=1e-8)


def test_save_load_round_trip_and_corruption(voice_and_data, tmp_path):
    from ttslab.checkpoint import CheckpointError

    voice, utts, _ = voice_and_data
    path = tmp_path / "voice.pt"
    voice.save(path, half=False)
    loaded = DNNVoice.load(path)
    assert loaded.kinds == voice.kinds and loaded.speaker == "en_us_m" and loaded.phones == voice.phones
    d = voice.oracle_durations(utts[0])
    for kind in KINDS:
        a = voice.generate_features(utts[0], d, kind=kind)
        b = loaded.generate_features(utts[0], d, kind=kind)
        np.testing.assert_allclose(a["mcep"], b["mcep"], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(a["f0"] > 0, b["f0"] > 0)
    np.testing.assert_array_equal(voice.durations(utts[1]), loaded.durations(utts[1]))
    voice.save(tmp_path / "half.pt")  # float16 weights: what ships
    half = DNNVoice.load(tmp_path / "half.pt")
    np.testing.assert_allclose(half.generate_features(utts[0], d)["mcep"], voice.generate_features(utts[0], d)["mcep"],
                               atol=0.05)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        DNNVoice.load(path)


def test_bad_input_is_refused_early(voice_and_data):
    voice, utts, _ = voice_and_data
    with pytest.raises(ValueError, match="empty"):
        voice.synthesize("   ")
    with pytest.raises(ValueError, match="qq"):
        voice.generate_features(["hh", "qq", "ow"])
    with pytest.raises(ValueError, match="durations"):
        voice.generate_features(utts[0], np.ones(3, dtype=np.int64))
    with pytest.raises(ValueError, match="whole frames"):
        voice.generate_features(utts[0], np.full(len(utts[0].segments), 2.5))
    with pytest.raises(ValueError, match="no 'cnn'"):
        voice.generate_features(utts[0], kind="cnn")
    audio, sr = voice.synthesize(["hh", "ah0", "l", "ow1"], kind="lstm")
    assert sr == 22050 and len(audio) > 0 and np.isfinite(audio).all()
