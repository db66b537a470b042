"""The TTS students recipe (ttslab.train.distill_fastspeech): each method runs from the command line on the
CI corpus with a CI-trained tiny teacher, its loss falls, the fp16 checkpoint loads and speaks, the log has
the keys scripts/train_pretrained.py reads; the KD loss is the recordings' loss plus the three terms (by hand)
and validation uses the plain loss; batched teacher generation equals one utterance at a time; students
that do not match the teacher are refused before any training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ttslab.distill import teacher_generated_items
from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, fastspeech_loss
from ttslab.train.distill_fastspeech import METHODS, KDWeights, check_student, main, student_loss, train_student

#: What ttslab.train.fastspeech's main logs (scripts/train_pretrained.py reads seconds and threads).
FASTSPEECH_LOG_KEYS = {"model_config", "train_config", "parameters", "seconds", "steps_done", "best_step",
                       "best_valid", "train", "valid", "threads", "corpus_mode", "size", "wall_seconds",
                       "cpu_seconds", "command", "device", "sha256", "bytes"}


@pytest.fixture(scope="module")
def teacher_path(ci_corpus, tmp_path_factory):
    """The CI tiny FastSpeech (trained once per machine and cached) as a teacher checkpoint file."""
    from ttslab.train.fastspeech import cached_fastspeech

    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    cached_fastspeech("ci", "tiny", progress=False, device="cpu").save(path, half=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_saves_a_loadable_student_and_logs_like_the_fastspeech_recipe(method, teacher_path,
                                                                                         tmp_path):
    out = tmp_path / f"student_{method}.pt"
    assert main(["--mode", "ci", "--size", "tiny", "--method", method, "--steps", "24", "--teacher",
                 str(teacher_path), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    log = json.loads(out.with_name(out.name + ".log.json").read_text())
    assert FASTSPEECH_LOG_KEYS <= set(log) and log["method"] == method and log["steps_done"] == 24
    assert f"--method {method}" in log["command"] and log["device"] == "cpu"
    train = [row["loss"] for row in log["train"]]
    assert np.mean(train[-2:]) < 0.8 * train[0], train  # the (training) loss falls
    assert log["best_valid"] == min(v["loss"] for v in log["valid"])
    if method.endswith("kd"):  # the KD terms were in the training loss, not in validation
        assert "kd_OutputKD" in log["train"][0] and "kd_OutputKD" not in log["valid"][0]
    student = FastSpeech.from_checkpoint(out)
    assert student.num_parameters() == log["parameters"] and torch.load(out, weights_only=True)["half"]
    audio, sr = student.synthesize("The student reads this.", "en_us_m")
    assert sr > 0 and len(audio) > sr // 10 and np.isfinite(audio).all() and np.abs(audio).max() > 0


def tiny_pair(speakers=("a", "b")):
    torch.manual_seed(0)
    teacher = FastSpeech(FastSpeechConfig.tiny(speakers=speakers, d_model=48, encoder_layers=2, decoder_layers=2))
    return teacher.eval(), FastSpeech(FastSpeechConfig.tiny(speakers=speakers))


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 4])
    mask = torch.arange(6) < lengths[:, None]
    durations = (torch.randint(1, 4, (2, 6), generator=g)) * mask
    return {"phone_ids": torch.randint(1, 40, (2, 6), generator=g) * mask, "phone_lengths": lengths,
            "speaker": torch.tensor([0, 1]), "durations": durations, "mel_lengths": durations.sum(1),
            "mel": torch.randn(2, int(durations.sum(1).max()), 80, generator=g) - 4.0,
            "pitch": torch.randn(2, 6, generator=g) + 5.0, "energy": torch.randn(2, 6, generator=g),
            "stress": torch.randint(0, 3, (2, 6), generator=g) * mask,
            "word_position": torch.randint(0, 4, (2, 6), generator=g) * mask}


def test_kd_loss_is_the_recordings_loss_plus_the_three_terms_and_validation_is_plain():
    teacher, student = tiny_pair()
    w = KDWeights(output=0.7, feature=0.3, duration=2.0, hints=(("encoder_out", "encoder_out"),))
    model, loss_fn = student_loss("kd", student, teacher, w)
    b = batch()
    model.train()
    loss, logs = loss_fn(model, b)
    kw = dict(durations=b["durations"], pitch=b["pitch"], energy=b["energy"], stress=b["stress"],
              word_position=b["word_position"])
    with torch.no_grad():
        base, _ = fastspeech_loss(student, b)
        out_s = student(b["phone_ids"], b["speaker"], b["phone_lengths"], **kw)
        out_t = teacher(b["phone_ids"], b["speaker"], b["phone_lengths"], **kw)
        fm, pm = out_s["frame_mask"], out_s["phone_mask"]
        mel = (out_s["mel"] - out_t["mel"]).abs()[fm].mean()
        proj = model.extras[0].projections[0]
        feat = ((proj(out_s["encoder_out"]) - out_t["encoder_out"]) ** 2)[pm].mean()
        dur = ((out_s["log_duration"] - out_t["log_duration"]) ** 2)[pm].mean()
    expected = base + 0.7 * mel + 0.3 * feat + 2.0 * dur
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["kd_OutputKD"] == pytest.approx(mel.item(), rel=1e-5)
    model.eval()
    plain, plain_logs = loss_fn(model, b)
    assert plain.item() == pytest.approx(base.item(), rel=1e-6) and "kd_OutputKD" not in plain_logs
    assert student_loss("scratch", student, teacher) == (student, fastspeech_loss)
    with pytest.raises(ValueError, match="unknown method"):
        student_loss("mixup", student, teacher)


def test_batched_teacher_generation_equals_one_utterance_at_a_time():
    teacher, _ = tiny_pair()
    b = batch(1)
    items = []
    for i in range(2):
        n, t = int(b["phone_lengths"][i]), int(b["mel_lengths"][i])
        items.append({"utt_id": f"u{i}", "speaker": i, "phone_ids": b["phone_ids"][i, :n].numpy(),
                      "durations": b["durations"][i, :n].numpy(), "stress": b["stress"][i, :n].numpy(),
                      "word_position": b["word_position"][i, :n].numpy(), "mel": b["mel"][i, :t].numpy()})
    one, both = teacher_generated_items(teacher, items), teacher_generated_items(teacher, items, batch_size=2)
    for a, c in zip(one, both):
        assert a["utt_id"] == c["utt_id"] and np.array_equal(a["durations"], c["durations"])
        assert a["mel"].shape == c["mel"].shape and np.allclose(a["mel"], c["mel"], atol=1e-4)
        assert np.allclose(a["pitch"], c["pitch"], atol=1e-5) and np.allclose(a["energy"], c["energy"], atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        teacher_generated_items(teacher, items, batch_size=0)


def test_a_student_that_does_not_match_the_teacher_is_refused(teacher_path, tmp_path):
    teacher, _ = tiny_pair(("a", "b"))
    with pytest.raises(ValueError, match="differ in speakers"):
        check_student(FastSpeechConfig.tiny(speakers=("a", "c")), teacher)
    with pytest.raises(ValueError, match="differ in n_phones"):
        check_student(FastSpeechConfig.tiny(speakers=("a", "b"), n_phones=60), teacher)
    with pytest.raises(ValueError, match="differ in speakers"):  # before the corpus is even read
        train_student(None, teacher, "kd", FastSpeechConfig.tiny(speakers=("b", "a")), device="cpu")
    # a teacher of other speakers than the corpus' English ones: refused before any feature is computed
    other = tmp_path / "other.pt"
    teacher.save(other, half=False)
    with pytest.raises(ValueError, match="no training utterances"):
        main(["--mode", "ci", "--method", "scratch", "--teacher", str(other), "--out", str(tmp_path / "s.pt"),
              "--device", "cpu", "--no-progress"])


def load_benchmark():
    """benchmarks/distill.py as a module (the folder is not a package; its ``import harness`` needs the folder)."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("distill_benchmark_under_test", folder / "distill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_goal_columns_by_hand_and_the_table_has_the_anchor_row(tmp_path):
    bench = load_benchmark()

    teacher = {"model": "teacher", "method": "teacher", "parameters": 6_000_000, "parameters_end_to_end": 7_500_000,
               "mcd_dtw_db": 6.0, "f0_rmse_hz": 20.0, "vuv_error": 0.1, "per": 0.10, "rtf_acoustic": 0.02,
               "rtf_end_to_end": 0.05, "peak_rss_mb": 500.0, "rss_growth_mb": 50.0, "train_seconds": 100.0,
               "train_device": "cpu"}
    good = {**teacher, "model": "good", "method": "kd", "parameters": 500_000, "parameters_end_to_end": 1_400_000,
            "mcd_dtw_db": 6.25, "per": 0.115, "rtf_acoustic": 0.002, "rtf_end_to_end": 0.009}
    bad = {**good, "model": "bad", "parameters_end_to_end": 1_600_000, "mcd_dtw_db": 6.35, "per": 0.125,
           "rtf_end_to_end": 0.011}
    rows = bench.add_goal_columns([teacher, good, bad])
    assert good["parameter_share"] == pytest.approx(1.4 / 7.5) and good["speedup"] == pytest.approx(0.05 / 0.009)
    assert good["speedup_acoustic"] == pytest.approx(10.0) and good["per_points_behind"] == pytest.approx(1.5)
    assert all(good["goals"].values()) and not any(bad["goals"].values())  # 21.3 %, 4.5x, 0.35 dB, 2.5 points
    result = {"rows": rows, "sentences": 2, "speakers": ["en_us_m"], "repeats": 2, "vocoder_parameters": 900_000,
              "peak_rss_baseline_mb": 400.0, "goals": bench.GOALS, "nix_tts": bench.NIX_TTS}
    text = "\n".join(bench.students_markdown(result))
    assert "| good | kd |" in text and text.count("pass") == 4 and text.count("FAIL") == 4
    assert "Nix-TTS (reported, vs VITS) | | | 11%-18% |" in text and "3-3.3x" in text
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        bench.student_checkpoints("ci", [f"x={tmp_path / 'missing.pt'}"], tmp_path)


def test_ablation_table_compares_each_method_with_the_scratch_student_of_its_size_and_steps():
    bench = load_benchmark()
    base = {"vocoder": "vocoder", "f0_rmse_hz": 20.0, "vuv_error": 0.10, "train_seconds": 60.0,
            "train_device": "CPU (x86_64)", "best_valid": 1.0}
    rows = [{**base, "model": "teacher", "method": "teacher", "size": "teacher", "steps": 5000, "parameters": 6_000_000,
             "mcd_dtw_db": 5.0, "per": 0.01},
            {**base, "model": "s_scratch", "method": "scratch", "size": "small", "steps": 2000, "parameters": 900_000,
             "mcd_dtw_db": 6.0, "per": 0.05},
            {**base, "model": "s_kd", "method": "kd", "size": "small", "steps": 2000, "parameters": 900_000,
             "mcd_dtw_db": 5.75, "per": 0.04, "f0_rmse_hz": 22.5},
            {**base, "model": "s_seq_short", "method": "sequence", "size": "small", "steps": 500,
             "parameters": 900_000, "mcd_dtw_db": 6.5, "per": 0.06},
            {**base, "model": "s_kd + small", "vocoder": "vocoder_small", "method": "kd", "size": "small",
             "steps": 2000, "parameters": 900_000, "mcd_dtw_db": 9.0, "per": 0.5},
            {**base, "model": "t_scratch", "method": "scratch", "size": "tiny", "steps": 2000, "parameters": 50_000,
             "mcd_dtw_db": 8.0, "per": 0.20}]
    lines = bench.ablation_markdown({"rows": rows})
    body = [ln for ln in lines if ln.startswith("| small") or ln.startswith("| tiny")]
    # bigger models first, then (a) scratch, (b) sequence, (c) kd; the row with another vocoder is not here
    assert [ln.split(" | ")[1] for ln in body] == ["scratch", "sequence", "kd", "scratch"]
    kd = body[2]
    assert "5.75 (-0.25)" in kd and "22.5 (+2.5)" in kd and "4.0 (-1.0)" in kd  # by hand: kd - scratch
    assert "(" not in body[1].split(" | ")[4]  # 500 steps: not compared with the 2000-step scratch student
    assert "9.00" not in "\n".join(lines)
