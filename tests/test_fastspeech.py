"""Tests of the FastSpeech-2-style acoustic model (ttslab.models.fastspeech) and its recipe (ttslab.train.fastspeech)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ttslab.checkpoint import CheckpointError
from ttslab.data.datasets import ENGLISH_SPEAKERS
from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items,
                                      fastspeech_loss, length_regulate, load_fastspeech, phone_context,
                                      round_durations, stats_from_items, synthesize, text_to_inputs,
                                      text_to_phone_ids, utterance_inputs)
from ttslab.data.corpus import Segment
from ttslab.text.phoneset import PHONE_TO_ID
from ttslab.train import Batches, TrainConfig, fit


def tiny_model(seed: int = 0, **overrides) -> FastSpeech:
    torch.manual_seed(seed)
    return FastSpeech(FastSpeechConfig.tiny(**overrides)).eval()


@pytest.fixture(scope="module")
def items(ci_corpus):
    """Acoustic items of two speakers' first utterances (features cached on disk)."""
    utts = [u for u in ci_corpus.filter(speakers=["en_us_m", "en_gb_f"], split="train")][:12]
    return fastspeech_items(utts)


@pytest.fixture(scope="module")
def stats(items):
    return stats_from_items(items, ENGLISH_SPEAKERS)


def random_batch(seed=0, lengths=(7, 4)):
    g = torch.Generator().manual_seed(seed)
    B, N = len(lengths), max(lengths)
    ids = torch.zeros(B, N, dtype=torch.long)
    dur = torch.zeros(B, N, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(1, 54, (n,), generator=g)
        dur[b, :n] = torch.randint(0, 5, (n,), generator=g)
        dur[b, 0] += 1
    pitch = 5.0 + 0.2 * torch.randn(B, N, generator=g)
    energy = 2.0 + torch.randn(B, N, generator=g)
    ctx = {"stress": torch.randint(0, 3, (B, N), generator=g), "word_position": torch.randint(0, 5, (B, N), generator=g)}
    return ids, torch.tensor(lengths), dur, pitch, energy, ctx


def inputs(phones: str) -> dict:
    """Model inputs for a space-separated phone string ("|" between words, stress digits on vowels)."""
    segs, word = [], -1
    for w in phones.split("|"):
        word += 1
        for p in w.split():
            stress = int(p[-1]) if p[-1].isdigit() else 0
            label = p.rstrip("012")
            segs.append(Segment(label, 0, 1, -1 if label in ("sil", "pau") else word, stress))
    stress, position = phone_context(segs)
    return {"phone_ids": np.array([PHONE_TO_ID[s.label] for s in segs]), "stress": stress, "word_position": position}


# --- configuration ------------------------------------------------------------------------------

def test_sizes_from_one_config():
    sizes = {name: FastSpeech(getattr(FastSpeechConfig, name)()).num_parameters() for name in ("teacher", "small", "tiny")}
    assert sizes["teacher"] <= 6_000_000                     # ships as fp16 in <= ~12 MB
    assert 4 <= sizes["teacher"] / sizes["small"] <= 8       # the distillation student
    assert sizes["tiny"] < sizes["small"] / 10
    cfg = FastSpeechConfig.small(d_model=96)
    assert FastSpeechConfig.from_dict(cfg.to_dict()) == cfg and cfg.n_speakers == len(ENGLISH_SPEAKERS)
    with pytest.raises(ValueError, match="divisible"):
        FastSpeechConfig(d_model=33, n_heads=2)
    with pytest.raises(ValueError, match="variance_embedding"):
        FastSpeechConfig(variance_embedding="spline")
    with pytest.raises(ValueError, match="unknown FastSpeechConfig"):
        FastSpeechConfig.from_dict({"d_model": 8, "bogus": 1})


# --- shapes, masks, length regulation ----------------------------------------------------------

@pytest.mark.parametrize("embedding", ["linear", "bins"])
def test_shapes_and_padding_does_not_change_real_outputs(embedding):
    model = tiny_model(variance_embedding=embedding)
    ids, lengths, dur, pitch, energy, ctx = random_batch()
    spk = torch.tensor([1, 3])
    out = model(ids, spk, lengths, durations=dur, pitch=pitch, energy=energy, **ctx)
    B, N, T = 2, ids.shape[1], int(dur.sum(1).max())
    assert out["mel"].shape == out["mel_postnet"].shape == (B, T, 80)
    for key in ("log_duration", "pitch", "energy", "pitch_target", "energy_target"):
        assert out[key].shape == (B, N)
    assert out["encoder_out"].shape == (B, N, 32) and out["decoder_out"].shape == (B, T, 32)
    assert len(out["encoder_states"]) == 1 and len(out["decoder_states"]) == 1
    assert out["frame_lengths"].tolist() == dur.sum(1).tolist()
    # the short utterance alone (no padding) gives the same outputs on its real phones and frames
    n, t = int(lengths[1]), int(dur[1].sum())
    one = {k: v[1:, :n] for k, v in ctx.items()}
    alone = model(ids[1:, :n], spk[1:], durations=dur[1:, :n], pitch=pitch[1:, :n], energy=energy[1:, :n], **one)
    for key, length in (("mel_postnet", t), ("decoder_out", t), ("log_duration", n), ("pitch", n),
                        ("energy", n), ("encoder_out", n)):
        torch.testing.assert_close(out[key][1, :length], alone[key][0, :length], atol=1e-5, rtol=1e-5)
    assert torch.all(out["encoder_out"][1, n:] == 0) and torch.all(out["decoder_out"][1, t:] == 0)
    # also without teacher forcing (predicted durations, pitch, energy)
    free = model(ids, spk, lengths, **ctx)
    free_alone = model(ids[1:, :n], spk[1:], **one)
    t = int(free["frame_lengths"][1])
    assert torch.equal(free["durations"][1, :n], free_alone["durations"][0])
    torch.testing.assert_close(free["mel"][1, :t], free_alone["mel"][0], atol=1e-5, rtol=1e-5)


def test_length_regulator_matches_repeat_interleave():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 5, generator=g)
    dur = torch.randint(0, 4, (3, 6), generator=g)
    dur[2] = 0
    dur[2, 3] = 2                                         # an utterance with a single sounding phone
    y, totals = length_regulate(x, dur)
    assert y.shape == (3, int(dur.sum(1).max()), 5) and totals.tolist() == dur.sum(1).tolist()
    for b in range(3):
        ref = torch.repeat_interleave(x[b], dur[b], dim=0)
        torch.testing.assert_close(y[b, : len(ref)], ref)
        assert torch.all(y[b, len(ref):] == 0)
    with pytest.raises(TypeError, match="integer"):
        length_regulate(x, dur.float())
    with pytest.raises(ValueError, match=">= 0"):
        length_regulate(x, -dur)


def test_round_durations_keeps_the_total_and_rate_control():
    frames = torch.tensor([[0.4, 1.6, 2.5, 0.2, 3.3, 0.0]])
    d = round_durations(frames)
    assert d.dtype == torch.long and int(d.sum()) == round(float(frames.sum()))
    assert torch.all((d - frames).abs() <= 1)
    model = tiny_model()
    ids = inputs("sil | hh ah0 l ow1 | sil")
    dur = torch.tensor([3, 4, 9, 6, 12, 5])
    for rate in (0.5, 1.0, 1.7, 2.0):
        out = model.infer(ids, "en_us_m", durations=dur, rate=rate)
        assert out["mel"].shape == (round(int(dur.sum()) / rate), 80)
        assert abs(int(out["durations"].sum()) - dur.sum() / rate) <= 0.5
    # predicted durations: twice as fast gives about half the frames
    slow, fast = model.infer(ids, "en_us_m", rate=0.5), model.infer(ids, "en_us_m", rate=2.0)
    assert abs(len(slow["mel"]) / 4 - len(fast["mel"])) <= 1


def test_pitch_shift_and_energy_scale_move_the_predictions_by_the_right_amount(stats):
    model = tiny_model()
    model.set_stats(stats)
    ids = inputs("sil | dh ih1 s | pau | ih1 z | sil")
    n = len(ids["phone_ids"])
    base = model.infer(ids, "en_gb_f")
    up = model.infer(ids, "en_gb_f", pitch_shift_semitones=3.0)
    down = model.infer(ids, "en_gb_f", pitch_shift_semitones=-12.0)
    torch.testing.assert_close(up["pitch"] / base["pitch"], torch.full((n,), 2 ** 0.25), rtol=1e-4, atol=0)
    torch.testing.assert_close(down["pitch"] / base["pitch"], torch.full((n,), 0.5), rtol=1e-4, atol=0)
    assert torch.equal(up["durations"], base["durations"])
    assert not torch.allclose(up["mel"], base["mel"])          # the decoder hears the shift
    loud = model.infer(ids, "en_gb_f", energy_scale=2.0)
    torch.testing.assert_close(loud["energy"] - base["energy"], torch.full((n,), math.log(2.0)),
                               rtol=0, atol=1e-4)
    # the plausible range of the speaker: predicted F0 near the speaker's statistics
    assert 40 < float(base["pitch"].median()) < 600


def test_speakers_change_the_output_and_can_be_added(stats):
    model = tiny_model()
    model.set_stats(stats)
    ids = inputs("sil | k ae1 t | sil")
    dur = torch.tensor([2, 3, 5, 4, 2])
    a, b = model.infer(ids, "en_us_m", durations=dur), model.infer(ids, 5, durations=dur)
    assert not torch.allclose(a["mel"], b["mel"])
    rows = model.add_speakers(["new_spk"], init_from="en_us_m",
                              stats={"new_spk": {"pitch_mean": 5.5, "pitch_std": 0.1}})
    assert rows == [10] and model.speakers[-1] == "new_spk" and model.speaker_embedding.num_embeddings == 11
    assert float(model.pitch_mean[10]) == pytest.approx(5.5) and float(model.energy_std[10]) == float(model.energy_std[0])
    torch.testing.assert_close(model.infer(ids, "en_us_m", durations=dur)["mel"], a["mel"])
    assert model.infer(ids, "new_spk", durations=dur)["mel"].shape == a["mel"].shape
    with pytest.raises(ValueError, match="new, distinct"):
        model.add_speakers(["en_us_m"])


# --- training ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_loss_decreases_on_a_tiny_config(items, stats):
    torch.manual_seed(0)
    model = FastSpeech(FastSpeechConfig.tiny())
    model.set_stats(stats)
    batch = collate_fastspeech(items[:4])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss, logs = fastspeech_loss(model, batch)
        assert set(logs) == {"mel", "postnet", "duration", "pitch", "energy"}
        assert loss.item() == pytest.approx(sum(logs.values()), rel=1e-5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    bad = dict(batch, durations=batch["durations"].clone())
    bad["durations"][0, 0] += 1
    with pytest.raises(ValueError, match="durations do not sum"):
        fastspeech_loss(model, bad)


@pytest.mark.slow
def test_training_is_deterministic_with_a_seed(items, stats):
    def run():
        torch.manual_seed(3)
        model = FastSpeech(FastSpeechConfig.tiny(dropout=0.1, predictor_dropout=0.5))
        model.set_stats(stats)
        batches = Batches(items, 4, collate_fastspeech, lengths=[len(i["mel"]) for i in items], seed=3)
        fit(model, fastspeech_loss, batches, TrainConfig(steps=4, batch_size=4, seed=3, valid_every=100),
            progress=False)
        return model.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_recipe_on_the_ci_corpus(ci_corpus, tmp_path):
    from ttslab.train.fastspeech import split_train_valid, train_fastspeech

    corpus = ci_corpus.filter(speakers=["en_us_m", "en_gb_f"])
    train, valid = split_train_valid(corpus.filter(split="train"), 2)
    assert len(valid) == 4 and not {u.text for u in valid} & {u.text for u in train}
    model, history = train_fastspeech(corpus, FastSpeechConfig.tiny(), TrainConfig(steps=3, batch_size=8, valid_every=3),
                                      valid_prompts=2, progress=False)
    assert history.steps_done == 3 and len(history.valid) == 1 and np.isfinite(history.valid[0]["mel"])
    # statistics come from the training speakers' data; unseen speakers get the mean
    spk = model.speaker_index("en_gb_f")
    assert 4.5 < float(model.pitch_mean[spk]) < 6.0 and float(model.mel_std.min()) > 0
    path = tmp_path / "fs.pt"
    model.save(path, half=True)
    assert (tmp_path / "fs.pt.sha256").is_file()


# --- checkpoints, front end, errors ------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path, stats):
    model = tiny_model()
    model.set_stats(stats)
    model.add_speakers(["adapted"])
    ids, lengths, dur, pitch, energy, ctx = random_batch(seed=5)
    spk = torch.tensor([10, 2])
    ref = model(ids, spk, lengths, durations=dur, pitch=pitch, energy=energy, **ctx)["mel_postnet"]
    model.save(tmp_path / "a.pt", half=False, extra={"note": "test"})
    loaded = load_fastspeech(tmp_path / "a.pt")
    assert loaded.speakers == model.speakers and loaded.config == model.config
    torch.testing.assert_close(loaded(ids, spk, lengths, durations=dur, pitch=pitch, energy=energy, **ctx)["mel_postnet"],
                               ref)
    from ttslab.checkpoint import load_checkpoint

    extra = load_checkpoint(tmp_path / "a.pt")["extra"]
    assert extra["speakers"][-1] == "adapted" and extra["note"] == "test"
    assert extra["speaker_stats"]["en_gb_f"]["pitch_mean"] == pytest.approx(float(model.pitch_mean[3]))
    model.save(tmp_path / "h.pt", half=True)
    half = FastSpeech.from_checkpoint(tmp_path / "h.pt")
    out = half(ids, spk, lengths, durations=dur, pitch=pitch, energy=energy, **ctx)["mel_postnet"]
    assert (out - ref).abs().max() < 0.05
    data = bytearray((tmp_path / "a.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "a.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError):
        load_fastspeech(tmp_path / "a.pt")


def test_text_front_end_and_synthesis(stats):
    ids = text_to_phone_ids("Hello there.", "en_us_f")
    assert ids.dtype == np.int64 and ids[0] == ids[-1] == PHONE_TO_ID["sil"] and len(ids) >= 6
    full = text_to_inputs("Hello there.", "en_us_f")
    assert full["phone_ids"].tolist() == ids.tolist() and full["phones"][0] == "sil"
    assert full["stress"].max() == 1 and full["word_position"][0] == 0 and full["word_position"][1] == 1
    model = tiny_model()
    model.set_stats(stats)
    seen = {}

    def vocoder(log_mel):
        seen["shape"] = log_mel.shape
        return np.zeros(256 * log_mel.shape[1], dtype=np.float32)

    audio, sr = synthesize(model, "Hello there.", "en_us_f", vocoder=vocoder, rate=1.3)
    assert sr == 22050 and seen["shape"][0] == 80 and len(audio) == 256 * seen["shape"][1]
    with pytest.raises(ValueError, match="empty text"):
        text_to_phone_ids("  ?! ", "en_us_m")
    with pytest.raises(ValueError, match="unknown speaker"):
        text_to_phone_ids("Hello.", "nobody")
    with pytest.raises(ValueError, match="unknown speaker"):
        model.synthesize("Hello.", "nobody", vocoder=vocoder)


def test_utterance_inputs_match_the_training_items(items, ci_corpus):
    utt = next(u for u in ci_corpus if u.id == items[0]["utt_id"])
    got = utterance_inputs(utt)
    for key in ("phone_ids", "stress", "word_position"):
        assert np.array_equal(got[key], items[0][key])
    # the eSpeak front end gives the corpus' own phone sequence for a corpus sentence
    assert text_to_phone_ids(utt.text, utt.speaker).tolist() == got["phone_ids"].tolist()


def test_bad_inputs_raise_clear_errors(stats):
    model = tiny_model()
    ids = inputs("sil | aa1 | sil")
    with pytest.raises(ValueError, match="non-empty"):
        model.infer([], "en_us_m")
    with pytest.raises(ValueError, match="padding"):
        model.infer([5, 0, 7], "en_us_m")
    with pytest.raises(ValueError, match="0..53"):
        model.infer([5, 99], "en_us_m")
    with pytest.raises(ValueError, match="stress and word-position"):
        model.infer(ids["phone_ids"], "en_us_m")
    with pytest.raises(ValueError, match="must match"):
        model.infer(ids["phone_ids"], "en_us_m", stress=[0, 1], word_position=[0, 1])
    with pytest.raises(ValueError, match="0..4"):
        model.infer(dict(ids, word_position=np.array([0, 7, 0])), "en_us_m")
    with pytest.raises(ValueError, match="unknown speaker"):
        model.infer(ids, "es_m")
    with pytest.raises(ValueError, match="out of range"):
        model.infer(ids, 10)
    with pytest.raises(ValueError, match="must match"):
        model.infer(ids, "en_us_m", durations=[1, 2])
    with pytest.raises(ValueError, match="rate"):
        model.infer(ids, "en_us_m", rate=0.0)
    with pytest.raises(ValueError, match="energy_scale"):
        model.infer(ids, "en_us_m", energy_scale=-1.0)
    with pytest.raises(ValueError, match="shape"):
        model.set_stats({"pitch_mean": [1.0, 2.0]})
    with pytest.raises(ValueError, match="> 0"):
        model.set_stats({"mel_std": np.zeros(80)})
    with pytest.raises(KeyError, match="unknown statistic"):
        model.set_stats({"f0_mean": 1.0})
    with pytest.raises(ValueError, match="both pitch and energy"):
        model(torch.tensor(ids["phone_ids"])[None], torch.tensor([0]), pitch=torch.zeros(1, 3),
              stress=torch.tensor(ids["stress"])[None], word_position=torch.tensor(ids["word_position"])[None])
