"""CUDA smoke tests: every neural model trains a few steps on the GPU and synthesizes end to end.

Skipped where PyTorch sees no CUDA GPU (the CPU-only test machines); they collect everywhere. What
they check is the device plumbing, not quality: the weights sit on the GPU after training, the
training losses are finite, and text -> FastSpeech -> neural vocoder gives finite audio, with the
inputs (numpy, CPU tensors) moved to the model and the outputs brought back as CPU numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.models.fastspeech import text_to_inputs
from ttslab.train import Batches, TrainConfig, fit

pytestmark = [pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"), pytest.mark.slow]

DEVICE = "cuda"
TEXT = "The quick brown fox jumps over the lazy dog."


def _on_device(model: torch.nn.Module) -> bool:
    want = torch.device(DEVICE).type
    return all(p.device.type == want for p in model.parameters())


def _finite_history(history) -> bool:
    return bool(history.train) and all(np.isfinite(row["loss"]) for row in history.train)


@pytest.fixture(scope="module")
def fastspeech(ci_corpus):
    from ttslab.models.fastspeech import FastSpeechConfig
    from ttslab.train.fastspeech import train_fastspeech

    corpus = ci_corpus.filter(speakers=["en_us_m", "en_gb_f"])
    model, history = train_fastspeech(corpus, FastSpeechConfig.tiny(), TrainConfig(steps=4, batch_size=8, valid_every=2),
                                      valid_prompts=2, progress=False, device=DEVICE)
    return model, history


@pytest.fixture(scope="module")
def vocoder(ci_corpus):
    from ttslab.train.vocoder import default_train_config, train_vocoder
    from ttslab.vocoders.neural import VocoderConfig

    train_config, data_config = default_train_config("ci")
    english = ci_corpus.filter(split="train", language="en")
    return train_vocoder(english.filter(speakers=english.speakers[:2]), VocoderConfig.tiny(), train_config,
                         data_config, progress=False, device=DEVICE)


def test_fastspeech_trains_on_the_gpu(fastspeech):
    model, history = fastspeech
    assert _on_device(model) and _finite_history(history) and np.isfinite(history.valid[-1]["loss"])
    inputs = text_to_inputs(TEXT, "en_us_m")
    out = model.infer({k: torch.as_tensor(v).to(DEVICE) for k, v in inputs.items() if k != "phones"}, "en_us_m")
    assert out["mel"].device.type == "cpu" and torch.isfinite(out["mel"]).all()


def test_vocoder_trains_on_the_gpu(vocoder):
    model, history = vocoder
    assert _on_device(model) and _finite_history(history)
    audio = model.resynthesize(np.sin(np.arange(8000) * 0.05).astype(np.float32) * 0.3)
    assert isinstance(audio, np.ndarray) and audio.shape == (8000,) and np.isfinite(audio).all()


def test_text_to_speech_end_to_end_on_the_gpu(fastspeech, vocoder):
    model, voc = fastspeech[0], vocoder[0]
    audio, sample_rate = model.synthesize(TEXT, "en_us_m", vocoder=voc.vocode)
    assert sample_rate == 22050 and isinstance(audio, np.ndarray) and audio.dtype == np.float32
    # a few steps teach no durations: at least one frame (256 samples), not a plausible length
    assert len(audio) >= 256 and np.isfinite(audio).all()
    # a GPU tensor as the vocoder's input works too and comes back as numpy
    mel = model.infer(text_to_inputs(TEXT, "en_us_m"), "en_us_m")["mel"].T.to(DEVICE)
    assert np.isfinite(voc.vocode(mel)).all()


def test_judge_trains_on_the_gpu_and_transcribes(ci_corpus, fastspeech, vocoder):
    from ttslab.data.corpus import Corpus
    from ttslab.models.judge import JudgeConfig
    from ttslab.train.judge import train_judge

    speakers = ci_corpus.filter(language="en").speakers[:3]
    corpus = Corpus("tiny", [u for s in speakers for u in ci_corpus.filter(speakers=s, split="train")[:8]])
    tc = TrainConfig(steps=6, batch_size=8, lr=5e-3, warmup=0, schedule="constant", valid_every=3, log_every=3)
    judge, history = train_judge(corpus, JudgeConfig.tiny(), tc, progress=False, valid_every_nth=8, device=DEVICE)
    assert _on_device(judge) and _finite_history(history) and all(r["per"] is not None for r in history.valid)
    audio, _ = fastspeech[0].synthesize(TEXT, "en_us_m", vocoder=vocoder[0].vocode)
    phones = judge.transcribe(audio)
    assert isinstance(phones, list) and all(isinstance(p, str) for p in phones)
    assert 0.0 <= judge.per(torch.from_numpy(audio).to(DEVICE), ["dh", "ah0"]) < float("inf")


def test_dnn_voice_trains_on_the_gpu_and_speaks(ci_corpus):
    from ttslab.models.dnn_spss import KINDS, DNNConfig
    from ttslab.train.dnn_spss import train_dnn_voice

    tc = TrainConfig(steps=6, batch_size=4, lr=3e-3, warmup=0, valid_every=3, log_every=3)
    voice = train_dnn_voice(ci_corpus, "en_us_m", DNNConfig.tiny(), {k: tc for k in ("duration", *KINDS)},
                            progress=False, kinds=KINDS, max_utterances=6, valid_fraction=0.2, device=DEVICE)
    assert _on_device(voice) and voice.device.type == torch.device(DEVICE).type
    for kind in KINDS:
        audio, sample_rate = voice.synthesize(TEXT, kind=kind)
        assert sample_rate == 22050 and len(audio) > 0 and np.isfinite(audio).all()


def test_a_gpu_checkpoint_loads_on_the_cpu_and_the_gpu(tmp_path, vocoder):
    from ttslab.vocoders.neural import NeuralVocoder

    model = vocoder[0]
    model.save(tmp_path / "v.pt", half=False)
    mel = np.full((80, 12), -5.0, np.float32)
    on_cpu = NeuralVocoder.from_checkpoint(tmp_path / "v.pt", device="cpu")
    on_gpu = NeuralVocoder.from_checkpoint(tmp_path / "v.pt", device=DEVICE)
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"} and _on_device(on_gpu)
    assert np.allclose(on_cpu.vocode(mel), on_gpu.vocode(mel), atol=1e-4)


def test_resume_on_the_gpu_continues_the_interrupted_run(tmp_path):
    """The CUDA RNG state travels in the checkpoint too (dropout on the GPU draws from it)."""
    rng = np.random.default_rng(0)
    items = [{"x": rng.normal(size=3).astype(np.float32)} for _ in range(64)]
    collate = lambda its: {"x": torch.from_numpy(np.stack([i["x"] for i in its]))}  # noqa: E731

    def loss(model, batch):
        err = ((model(batch["x"]) - batch["x"].sum(1, keepdim=True)) ** 2).mean()
        return err, {}

    def net():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.3), torch.nn.Linear(16, 1))

    cfg = TrainConfig(steps=60, batch_size=8, lr=1e-2, valid_every=20, checkpoint_every=20, seed=3)
    ref = net()
    fit(ref, loss, Batches(items, 8, collate, seed=1), cfg, progress=False, device=DEVICE)

    class Stop(Exception):
        pass

    def crash(step, logs):
        if step == 40:
            raise Stop

    with pytest.raises(Stop):  # dies at the validation of step 40, after the step-20 checkpoint
        fit(net(), loss, Batches(items, 8, collate, seed=1), cfg, ckpt_dir=tmp_path, progress=False, device=DEVICE,
            valid_batches=Batches(items[:8], 8, collate, shuffle=False), on_valid=crash)
    again = net()
    fit(again, loss, Batches(items, 8, collate, seed=1), cfg, ckpt_dir=tmp_path, progress=False, device=DEVICE)
    flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert _on_device(again) and torch.allclose(flat(ref), flat(again), atol=1e-5)


def _synthetic_items(n=12, speakers=2, seed=0):
    """FastSpeech training items with random features (no corpus needed)."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        N = int(rng.integers(4, 12))
        durations = rng.integers(1, 5, N)
        T = int(durations.sum())
        pitch = (5.0 + 0.1 * rng.normal(size=N)).astype(np.float32)
        energy = rng.normal(size=N).astype(np.float32)
        items.append({"utt_id": f"u{i}", "speaker": i % speakers, "phone_ids": rng.integers(1, 40, N),
                      "durations": durations, "mel": (rng.normal(size=(T, 80)) - 4).astype(np.float32),
                      "pitch": pitch, "energy_phone": energy, "f0": np.repeat(np.exp(pitch), durations),
                      "energy": np.repeat(energy, durations), "stress": rng.integers(0, 3, N),
                      "word_position": rng.integers(0, 4, N)})
    return items


def test_distilled_students_train_on_the_gpu():
    """ttslab.train.distill_fastspeech's pieces on CUDA: batched teacher generation on the GPU, then a
    sequence+kd student (teacher forward, hint projections) trained there."""
    from ttslab.distill import teacher_generated_items
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, collate_fastspeech, stats_from_items
    from ttslab.train.distill_fastspeech import student_loss

    speakers = ("a", "b")
    items = _synthetic_items()
    torch.manual_seed(0)
    teacher = FastSpeech(FastSpeechConfig.tiny(speakers=speakers, d_model=48)).to(DEVICE).eval()
    teacher.set_stats(stats_from_items(items, speakers))
    generated = teacher_generated_items(teacher, items, batch_size=8)
    one = teacher_generated_items(teacher, items[:3])
    assert all(np.array_equal(a["durations"], b["durations"]) for a, b in zip(one, generated[:3]))
    student = FastSpeech(FastSpeechConfig.tiny(speakers=speakers))
    student.set_stats(stats_from_items(items, speakers))
    model, loss_fn = student_loss("sequence+kd", student, teacher)
    batches = Batches(generated, 4, collate_fastspeech, lengths=[len(it["mel"]) for it in generated], seed=0)
    valid = Batches(items, 4, collate_fastspeech, lengths=[len(it["mel"]) for it in items], shuffle=False)
    history = fit(model, loss_fn, batches, TrainConfig(steps=6, batch_size=4, valid_every=3, log_every=1),
                  valid_batches=valid, progress=False, device=DEVICE)
    assert _on_device(model) and _finite_history(history) and "kd_FeatureKD" in history.train[0]
    assert "kd_FeatureKD" not in history.valid[-1] and np.isfinite(history.valid[-1]["loss"])
