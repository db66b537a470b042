"""The training loop, checkpoints, the config-keyed model cache and the acoustic datasets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ttslab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, sidecar
from ttslab.train import Batches, TrainConfig, evaluate, fit, load_or_train, lr_factor


def _regression_items(n=64, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 1))
    items = []
    for _ in range(n):
        x = rng.normal(size=(3,)).astype(np.float32)
        items.append({"x": x, "y": (x @ w).astype(np.float32)})
    return items


def _collate(items):
    return {"x": torch.from_numpy(np.stack([i["x"] for i in items])),
            "y": torch.from_numpy(np.stack([i["y"] for i in items]))}


def mse_loss(model, batch):
    err = torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])
    return err, {"mse": err.item()}


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def _config(**kw):
    base = dict(steps=60, batch_size=8, lr=1e-2, valid_every=20, log_every=5, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_fit_lowers_the_loss_and_logs_history():
    items = _regression_items()
    train, valid = Batches(items[:48], 8, _collate, seed=1), Batches(items[48:], 8, _collate, shuffle=False)
    model = _model()
    before = evaluate(model, mse_loss, valid)["loss"]
    history = fit(model, mse_loss, train, _config(), valid_batches=valid, progress=False)
    after = evaluate(model, mse_loss, valid)["loss"]
    assert after < 0.5 * before
    assert [v["step"] for v in history.valid] == [20, 40, 60]
    assert history.train[-1]["step"] == 60 and "mse" in history.train[-1] and "grad_norm" in history.train[-1]
    assert history.best_valid == min(v["loss"] for v in history.valid)


def test_fit_is_deterministic():
    items = _regression_items()
    runs = []
    for _ in range(2):
        model = _model()
        fit(model, mse_loss, Batches(items, 8, _collate, seed=1), _config(), progress=False)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_resume_reproduces_an_interrupted_run_exactly(tmp_path):
    items = _regression_items()
    cfg = _config(checkpoint_every=20)
    ref = _model()
    fit(ref, mse_loss, Batches(items, 8, _collate, seed=1), cfg, ckpt_dir=tmp_path / "ref", progress=False)

    class Stop(Exception):
        pass

    def crash_at_step_40(step, logs):
        if step == 40:
            raise Stop

    crashed = _model()
    with pytest.raises(Stop):  # dies during the validation at step 40, after the step-20 checkpoint
        fit(crashed, mse_loss, Batches(items, 8, _collate, seed=1), cfg, ckpt_dir=tmp_path / "run",
            valid_batches=Batches(items[:8], 8, _collate, shuffle=False), on_valid=crash_at_step_40,
            progress=False)
    again = _model(seed=5)
    fit(again, mse_loss, Batches(items, 8, _collate, seed=1), cfg, ckpt_dir=tmp_path / "run", progress=False)
    # the crashed run validated, the reference did not; validation does not touch weights or RNG
    ref_w = torch.cat([p.detach().flatten() for p in ref.parameters()])
    again_w = torch.cat([p.detach().flatten() for p in again.parameters()])
    assert torch.allclose(ref_w, again_w, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    items = _regression_items()
    fit(_model(), mse_loss, Batches(items, 8, _collate), _config(steps=20), ckpt_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other settings"):
        fit(_model(), mse_loss, Batches(items, 8, _collate), _config(steps=30, lr=0.5), ckpt_dir=tmp_path,
            progress=False)


def test_early_stopping_restores_the_best_weights():
    items = _regression_items()
    train = Batches(items, 8, _collate, seed=1)
    valid = Batches(items[:16], 8, _collate, shuffle=False)
    model = _model()
    # a huge constant lr makes validation get worse quickly after the first check
    history = fit(model, mse_loss, train, _config(steps=400, lr=3.0, schedule="constant", valid_every=5,
                                                   patience=2, grad_clip=None), valid_batches=valid,
                  progress=False)
    if history.stopped_early:
        assert len(history.valid) < 80
        assert evaluate(model, mse_loss, valid)["loss"] == pytest.approx(history.best_valid, rel=1e-5)


def test_nan_loss_is_a_clear_error():
    items = _regression_items()
    for it in items:
        it["x"][:] = np.nan
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(_model(), mse_loss, Batches(items, 8, _collate), _config(steps=3), progress=False)


def test_lr_schedule_and_config_validation():
    cfg = TrainConfig(steps=100, warmup=0, schedule="exponential", min_lr_ratio=0.01)
    assert lr_factor(0, cfg) == 1.0 and lr_factor(100, cfg) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


# Hand values for steps=110, warmup=10, min_lr_ratio r=0.1: warm-up is (s+1)/10; after it
# p = (s - 10)/100, so s=35 is p=1/4, s=60 is p=1/2 and s=110 is p=1 (the end; later steps stay there).
#   cosine       r + (1-r)(1 + cos(pi p))/2:  p=1/4 -> 0.1 + 0.9(1 + 1/sqrt 2)/2,  p=1/2 -> 0.55,  p=1 -> 0.1
#   exponential  r**p:                        p=1/4 -> 0.1**0.25,                p=1/2 -> sqrt(0.1), p=1 -> 0.1
#   constant     1 after warm-up
HAND_LR = {
    "cosine": {35: 0.1 + 0.9 * (1 + 1 / math.sqrt(2)) / 2, 60: 0.55, 110: 0.1, 500: 0.1},
    "exponential": {35: 0.1 ** 0.25, 60: math.sqrt(0.1), 110: 0.1, 500: 0.1},
    "constant": {35: 1.0, 60: 1.0, 110: 1.0, 500: 1.0},
}


@pytest.mark.parametrize("schedule", sorted(HAND_LR))
def test_lr_factor_warm_up_peak_and_end_by_hand(schedule):
    cfg = TrainConfig(steps=110, warmup=10, schedule=schedule, min_lr_ratio=0.1)
    warm_up = {0: 0.1, 4: 0.5, 9: 1.0}          # linear from 1/warmup, reaching the peak on the last warm-up step
    peak = {10: 1.0}                            # first step after warm-up: p = 0
    for step, expected in {**warm_up, **peak, **HAND_LR[schedule]}.items():
        assert lr_factor(step, cfg) == pytest.approx(expected, rel=1e-12), step
    factors = [lr_factor(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))  # never rises after warm-up


def test_lr_factor_without_warm_up_starts_at_the_peak():
    for schedule in HAND_LR:
        assert lr_factor(0, TrainConfig(steps=50, warmup=0, schedule=schedule, min_lr_ratio=0.2)) == 1.0


def test_batches_are_deterministic_bucketed_and_cover_every_item():
    items = list(range(100))
    lengths = list(np.random.default_rng(0).integers(10, 500, size=100))
    b = Batches(items, 10, list, lengths=lengths, seed=4)
    e0 = b.indices(0)
    assert e0 == Batches(items, 10, list, lengths=lengths, seed=4).indices(0)
    assert e0 != b.indices(1)
    assert sorted(i for g in e0 for i in g) == items
    spread = np.mean([np.ptp([lengths[i] for i in g]) for g in e0])
    assert spread < 0.5 * np.ptp(lengths)  # bucketing keeps similar lengths together
    with pytest.raises(ValueError, match="no training items"):
        Batches([], 4, list)


def test_checkpoint_roundtrip_half_and_corruption(tmp_path):
    model = _model()
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, model, model_config={"hidden": 8}, extra={"note": "x"}, half=True)
    assert sidecar(path).read_text().split()[0] == digest
    state = load_checkpoint(path)
    assert state["model_config"] == {"hidden": 8} and state["extra"] == {"note": "x"}
    for k, v in model.state_dict().items():
        assert state["model"][k].dtype == torch.float32
        assert torch.allclose(state["model"][k], v, atol=1e-3)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="plain Python"):
        save_checkpoint(tmp_path / "bad.pt", model, extra={"array": np.zeros(3)})
    assert not (tmp_path / "bad.pt").exists()


def test_load_or_train_trains_once_per_config(tmp_path):
    calls = []

    def train(folder):
        calls.append(folder)
        path = folder / "model.pt"
        save_checkpoint(path, _model())
        return path

    a = load_or_train("toy", {"hidden": 8}, train, root=tmp_path)
    b = load_or_train("toy", {"hidden": 8}, train, root=tmp_path)
    c = load_or_train("toy", {"hidden": 16}, train, root=tmp_path)
    assert a == b != c and len(calls) == 2


def test_acoustic_features_and_collate(ci_corpus):
    from ttslab.data.datasets import AcousticDataset, MEL_PAD, collate_acoustic

    utts = list(ci_corpus.filter(split="train", language="en"))[:3]
    ds = AcousticDataset(utts, progress=False)
    for utt, item in zip(utts, ds.items):
        assert item["durations"].sum() == len(item["mel"]) == len(item["f0"])
        assert len(item["phone_ids"]) == len(utt.segments) == len(item["pitch"])
        assert np.all(item["durations"] >= 0) and np.all(item["phone_ids"] > 0)
        voiced = item["f0"] > 0
        assert voiced.mean() > 0.3 and 50 < np.median(item["f0"][voiced]) < 400
    batch = collate_acoustic(ds.items)
    assert batch["mel"].shape[0] == 3 and batch["mel"].shape[2] == 80
    short = int(batch["mel_lengths"].argmin())
    assert torch.all(batch["mel"][short, batch["mel_lengths"][short]:] == MEL_PAD)
    assert torch.equal(batch["durations"].sum(1), batch["mel_lengths"])


def test_acoustic_dataset_rejects_unknown_speakers_and_empty_input(ci_corpus):
    from ttslab.data.datasets import AcousticDataset

    utts = list(ci_corpus.filter(split="train", language="en"))[:1]
    with pytest.raises(ValueError, match="speaker list"):
        AcousticDataset(utts, speakers=("nobody",), progress=False)
    with pytest.raises(ValueError, match="no utterances"):
        AcousticDataset([], progress=False)
