"""The classic distillation experiment (ttslab.distill.classic): frame windows and labels built by hand,
normalisation, the dark-knowledge matrix against a loop, students that learn from soft labels alone,
and the experiment's rows on the CI corpus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.distill.classic import (IGNORE, ClassicSettings, FrameModelConfig, FrameSet, accuracy, band_stats,
                                    frame_windows, label_subset, normalized, predict_logits, run_classic_experiment,
                                    soft_confusion, teacher_logits, top_confusions, train_classifier)
from ttslab.text.phoneset import ID_TO_PHONE, NUM_PHONE_IDS, phone_id
from ttslab.train import TrainConfig


def item(n_frames=250, durations=(100, 100, 50), ids=(5, 6, 7), seed=0):
    mel = np.random.default_rng(seed).normal(size=(n_frames, 80)).astype(np.float32)
    return {"utt_id": f"u{seed}", "mel": mel, "phone_ids": np.array(ids), "durations": np.array(durations)}


def test_frame_windows_label_every_frame_and_mask_the_padding():
    it = item()
    fs = frame_windows([it], window=100)
    assert fs.x.shape == (3, 100, 80) and fs.y.shape == fs.mask.shape == (3, 100)
    assert (fs.y[0] == 5).all() and (fs.y[1] == 6).all()
    assert (fs.y[2, :50] == 7).all() and (fs.y[2, 50:] == IGNORE).all()
    assert fs.mask[2].sum() == 50 and fs.frames == 250
    assert np.array_equal(fs.x[2, :50], it["mel"][200:]) and (fs.x[2, 50:] == 0).all()
    with pytest.raises(ValueError, match="durations sum to 240"):
        frame_windows([item(durations=(100, 100, 40))])
    with pytest.raises(ValueError, match="window"):
        frame_windows([it], window=0)


def test_normalisation_uses_real_frames_only():
    fs = frame_windows([item(seed=s) for s in range(3)], window=64)
    fs.x[~fs.mask] = 1e6  # garbage on padding must not leak into the statistics
    mean, std = band_stats(fs)
    real = fs.x[fs.mask].astype(np.float64)
    assert np.allclose(mean, real.mean(0), atol=1e-5) and np.allclose(std, real.std(0) + 1e-3, atol=1e-5)
    z = normalized(fs, mean, std)
    assert (z.x[~z.mask] == 0).all()
    assert np.allclose(z.x[z.mask].mean(0), 0, atol=1e-4)


def test_label_subset():
    fs = frame_windows([item(seed=s) for s in range(4)], window=50)
    sub = label_subset(fs, 0.25, seed=1)
    assert len(sub) == 5 and len(set(sub)) == 5 and np.array_equal(sub, label_subset(fs, 0.25, seed=1))
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="label fraction"):
            label_subset(fs, bad)


def test_soft_confusion_equals_a_loop_and_top_pairs_are_off_diagonal():
    rng = np.random.default_rng(0)
    K, T = 6, 2.0
    y = rng.integers(1, K, size=(4, 10))
    mask = np.ones_like(y, bool)
    mask[3, 7:] = False
    y[~mask] = IGNORE
    logits = rng.normal(size=(4, 10, K))
    logits[..., 2] += 2 * (y == 1)  # the "teacher" finds phone 2 likely on frames of phone 1
    fs = FrameSet(np.zeros((4, 10, 80), np.float32), y, mask, ["u"] * 4)
    M, counts = soft_confusion(logits, fs, T)
    for i in range(1, K):
        rows = [np.exp(z / T) / np.exp(z / T).sum() for z, t, m in zip(logits.reshape(-1, K), y.ravel(), mask.ravel())
                if m and t == i]
        assert counts[i] == len(rows)
        if rows:
            assert np.allclose(M[i], np.mean(rows, 0), atol=1e-12)
    assert counts.sum() == mask.sum()
    top = top_confusions(M, counts, k=1, min_frames=1)[0]
    assert (top["phone"], top["confused_with"]) == (ID_TO_PHONE[1], ID_TO_PHONE[2])


def small_frames(n=24, window=40, seed=0):
    """Windows whose label is a linear function of the frame: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, window, 80)).astype(np.float32)
    y = 1 + (x[..., :4].argmax(-1))  # classes 1..4
    return FrameSet(x, y.astype(np.int64), np.ones((n, window), bool), [f"u{i}" for i in range(n)])


def test_a_student_learns_from_soft_labels_alone():
    """alpha = 1 and no labelled window: all the student knows comes from the teacher's logits."""
    train = small_frames(n=16, window=20)
    quick = TrainConfig(steps=80, batch_size=8, lr=2e-2, grad_clip=5.0, seed=0, threads=1)
    cfg = FrameModelConfig.student(hidden=16, dense=16)
    teacher, _ = train_classifier(FrameModelConfig.teacher(hidden=16, layers=1, dense=16), train, quick)
    z_t = teacher_logits(teacher, train)
    assert accuracy(z_t.astype(np.float32), train) > 0.6
    student, _ = train_classifier(cfg, train, quick, teacher_logits=z_t, T=2.0, alpha=1.0,
                                  labelled=np.array([], dtype=int))
    agree = (predict_logits(student, train).argmax(-1) == z_t.argmax(-1)).mean()
    untrained, _ = train_classifier(cfg, train, TrainConfig(steps=1, batch_size=8, lr=1e-9))
    chance = (predict_logits(untrained, train).argmax(-1) == z_t.argmax(-1)).mean()
    assert agree > chance + 0.3, (agree, chance)
    with pytest.raises(ValueError, match="do not fit"):
        train_classifier(cfg, train, quick, teacher_logits=z_t[:, :, :10], T=2.0, alpha=0.5)


def test_models_refuse_wrong_inputs_and_sizes_are_as_documented():
    from ttslab.distill.classic import FrameClassifier

    teacher, student = FrameClassifier(FrameModelConfig.teacher()), FrameClassifier(FrameModelConfig.student())
    assert student.num_parameters() < 0.12 * teacher.num_parameters()
    assert teacher(torch.zeros(2, 7, 80)).shape == (2, 7, NUM_PHONE_IDS)
    with pytest.raises(ValueError, match="log-mels"):
        student(torch.zeros(2, 7, 40))
    with pytest.raises(ValueError, match="rnn"):
        FrameModelConfig(rnn="transformer")


@pytest.mark.slow
def test_experiment_rows_on_the_ci_corpus(ci_corpus):
    from ttslab.train.distill_classic import FRAME_RATE, classic_data

    train, test = classic_data(ci_corpus, "ci")
    assert set(np.unique(train.y[train.mask])) <= set(range(1, NUM_PHONE_IDS))
    assert phone_id("pau") in set(np.unique(train.y[train.mask])) or phone_id("sil") in set(np.unique(train.y))
    quick = TrainConfig(steps=2, batch_size=8, seed=0, threads=1)
    settings = ClassicSettings(temperatures=(2.0,), alphas=(0.0, 0.5), few_label_runs=((2.0, 0.5),),
                               teacher_train=quick, student_train=quick)
    out = run_classic_experiment(train, test, settings, frame_rate=FRAME_RATE)
    names = [r["model"] for r in out["rows"]]
    assert names == ["teacher (BiLSTM)", "student scratch", "student KD T=2 a=0.5", "student scratch 10% labels",
                     "student KD T=2 a=0.5 10% labels"]
    assert all(0 <= r["accuracy"] <= 1 and r["rtf"] > 0 for r in out["rows"])
    assert out["labelled_windows"] == round(0.1 * len(train))
    seen = out["counts"] > 0
    assert np.allclose(out["confusion"][seen].sum(1), 1.0, atol=1e-6)
