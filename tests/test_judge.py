"""Tests of the intelligibility judge: edit distance / PER, CTC decoding, training, inference, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttslab.checkpoint import CheckpointError
from ttslab.io import SampleRateError
from ttslab.metrics import corpus_phone_error_rate, edit_distance, edit_operations, phone_error_rate
from ttslab.models.judge import (BLANK, JudgeConfig, PhoneRecognizer, ctc_greedy_decode, ctc_loss, from_checkpoint,
                                 strip_silences, transcribe_batch)
from ttslab.text.phoneset import PHONE_TO_ID


# --- edit distance and PER ------------------------------------------------------------------------
def test_edit_operations_known_cases():
    ref = ["k", "ae", "t"]
    assert edit_operations(ref, ref) == (0, 0, 0)
    assert edit_operations(ref, ["k", "ah", "t"]) == (1, 0, 0)          # substitution
    assert edit_operations(ref, ["k", "t"]) == (0, 1, 0)                # deletion
    assert edit_operations(ref, ["k", "ae", "ae", "t"]) == (0, 0, 1)    # insertion
    assert edit_operations(ref, []) == (0, 3, 0)
    assert edit_operations([], ["a", "b"]) == (0, 0, 2)
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance(["a", "b", "c"], ["c", "b", "a"]) == 2


def _levenshtein(a, b):
    """Independent two-row implementation to check against."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j - 1] + (x != y), prev[j] + 1, cur[j - 1] + 1))
        prev = cur
    return prev[-1]


def test_edit_operations_agree_with_independent_levenshtein():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = list(rng.choice(list("abc"), size=rng.integers(0, 8)))
        b = list(rng.choice(list("abc"), size=rng.integers(0, 8)))
        s, d, i = edit_operations(a, b)
        assert s + d + i == _levenshtein(a, b)
        assert len(a) - d + i == len(b)   # the counted operations really turn a into b's length


def test_phone_error_rate_values_and_silences():
    assert phone_error_rate(["k", "ae", "t"], ["k", "ae", "t"]) == 0.0
    assert phone_error_rate(["k", "ae", "t"], ["k", "ah", "t"]) == pytest.approx(1 / 3)
    assert phone_error_rate(["k", "ae", "t"], ["k", "t"]) == pytest.approx(1 / 3)
    assert phone_error_rate(["k", "ae", "t"], ["s", "k", "ae", "t", "s"]) == pytest.approx(2 / 3)
    assert phone_error_rate(["k", "ae", "t"], []) == 1.0
    assert phone_error_rate(["k"], ["a", "b", "c"]) == 3.0            # insertions can push PER above 1
    # silences are not scored by default, on either side
    assert phone_error_rate(["sil", "k", "pau", "ae", "t", "sil"], ["k", "ae", "t", "pau"]) == 0.0
    assert phone_error_rate(["sil", "k"], ["k"], ignore=()) == 0.5


def test_phone_error_rate_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        phone_error_rate([], ["k"])
    with pytest.raises(ValueError, match="empty"):
        phone_error_rate(["sil", "pau"], ["k"])
    with pytest.raises(TypeError, match="split"):
        phone_error_rate("k ae t", ["k", "ae", "t"])


def test_corpus_per_sums_edits_over_phones():
    refs = [["a", "b", "c", "d"], ["e"]]
    hyps = [["a", "b", "c", "d"], []]
    assert corpus_phone_error_rate(refs, hyps) == pytest.approx(1 / 5)   # not the mean 0.5 of (0, 1)
    with pytest.raises(ValueError, match="hypotheses"):
        corpus_phone_error_rate(refs, hyps[:1])
    with pytest.raises(ValueError):
        corpus_phone_error_rate([], [])


# --- CTC pieces ----------------------------------------------------------------------------------
def test_greedy_decode_collapses_repeats_and_drops_blanks():
    assert ctc_greedy_decode([]) == []
    assert ctc_greedy_decode([BLANK, BLANK]) == []
    assert ctc_greedy_decode([3, 3, 3]) == [3]
    assert ctc_greedy_decode([3, 3, BLANK, 3]) == [3, 3]           # a blank separates a doubled phone
    assert ctc_greedy_decode([BLANK, 3, 4, 4, BLANK, 5, BLANK]) == [3, 4, 5]


def test_strip_silences_makes_ctc_targets():
    sil, pau = PHONE_TO_ID["sil"], PHONE_TO_ID["pau"]
    k, ae = PHONE_TO_ID["k"], PHONE_TO_ID["ae"]
    ids = torch.tensor([[sil, k, pau, ae, sil], [k, k, 0, 0, 0]])
    targets, lengths = strip_silences(ids, torch.tensor([5, 2]))
    assert lengths.tolist() == [2, 2]
    assert targets.tolist() == [[k, ae], [k, k]]


def test_config_sizes_and_validation():
    full = PhoneRecognizer(JudgeConfig.full())
    assert 0.5e6 < full.num_parameters() <= 1.5e6
    assert PhoneRecognizer(JudgeConfig.tiny()).num_parameters() < 50_000
    with pytest.raises(ValueError, match="odd"):
        JudgeConfig(kernel_size=4)
    with pytest.raises(ValueError, match="unknown"):
        JudgeConfig.from_dict({"conv_channels": 8, "no_such_field": 1})


def _random_batch(B=3, T=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    mel = torch.randn(B, T, 80, generator=g)
    lengths = torch.tensor([T, T - 17, T - 31])[:B]
    ids = torch.randint(1, 40, (B, 12), generator=g)
    return {"mel": mel, "mel_lengths": lengths, "phone_ids": ids, "phone_lengths": torch.tensor([12, 9, 5])[:B]}


def test_output_lengths_and_padding_invariance():
    torch.manual_seed(0)
    model = PhoneRecognizer(JudgeConfig(conv_channels=16, conv_layers=2, rnn_hidden=8, rnn_layers=1)).eval()
    batch = _random_batch()
    log_probs, out_lengths = model(batch["mel"], batch["mel_lengths"])
    assert out_lengths.tolist() == [30, 22, 15]   # ceil(T / 2)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), atol=1e-5)
    # one utterance alone gives the same frames as inside a padded batch
    alone, _ = model(batch["mel"][1:2, :43], torch.tensor([43]))
    assert torch.allclose(alone[0], log_probs[1, :22], atol=1e-5)


def test_ctc_loss_is_finite_and_augmentation_only_in_training():
    torch.manual_seed(0)
    model = PhoneRecognizer(JudgeConfig.tiny())
    batch = _random_batch()
    model.train()
    loss, logs = ctc_loss(model, batch)
    assert torch.isfinite(loss) and loss.item() > 0 and set(logs) == {"ctc"}
    model.eval()
    assert ctc_loss(model, batch)[0].item() == ctc_loss(model, batch)[0].item()   # no random masks in eval
    with pytest.raises(KeyError, match="phone_ids"):
        ctc_loss(model, {"mel": batch["mel"], "mel_lengths": batch["mel_lengths"]})


# --- training on the CI corpus -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_trained(ci_corpus):
    """A tiny judge trained for 20 steps on 24 CI utterances (3 held out for validation)."""
    from ttslab.train import TrainConfig
    from ttslab.train.judge import train_judge

    from ttslab.data.corpus import Corpus

    speakers = ci_corpus.filter(language="en").speakers[:3]
    utts = [u for s in speakers for u in ci_corpus.filter(speakers=s, split="train")[:8]]
    corpus = Corpus("tiny", utts)
    tc = TrainConfig(steps=20, batch_size=8, lr=5e-3, warmup=0, schedule="constant", valid_every=10,
                     log_every=5, seed=0)
    return train_judge(corpus, JudgeConfig.tiny(), tc, progress=False, valid_every_nth=8)


def test_training_lowers_the_ctc_loss(tiny_trained):
    model, history = tiny_trained
    losses = [row["loss"] for row in history.train]
    assert losses[-1] < 0.7 * losses[0], losses
    assert history.valid and all(0 <= row["per"] for row in history.valid)
    assert not model.training


def test_transcribe_types_and_inputs(tiny_trained, ci_corpus):
    model, _ = tiny_trained
    utt = ci_corpus.filter(split="test", language="en")[0]
    x = utt.load_audio()
    from ttslab.dsp import log_mel

    mel = log_mel(x)
    hyp = model.transcribe(x)
    assert isinstance(hyp, list) and all(isinstance(p, str) for p in hyp)
    assert "sil" not in hyp and "pau" not in hyp and "<pad>" not in hyp
    assert model.transcribe(mel) == hyp                              # waveform and its log-mel agree
    assert model.transcribe(torch.from_numpy(x)) == hyp              # torch input too
    batch_hyp = transcribe_batch(model, torch.from_numpy(mel.T).unsqueeze(0), torch.tensor([mel.shape[1]]))
    assert batch_hyp == [hyp]
    per = model.per(x, utt.phones)
    assert per == phone_error_rate(utt.phones, hyp) and per >= 0


def test_transcribe_rejects_bad_input(tiny_trained):
    model, _ = tiny_trained
    x = np.zeros(8000, dtype=np.float32)
    with pytest.raises(SampleRateError, match="22050"):
        model.transcribe(x, sample_rate=16000)
    with pytest.raises(ValueError, match="transpose"):
        model.transcribe(np.zeros((50, 80), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.transcribe(np.full((80, 10), np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        model.transcribe(np.zeros((2, 3, 4), dtype=np.float32))


# --- checkpoints ---------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_corruption(tmp_path, tiny_trained):
    model, _ = tiny_trained
    mel = torch.randn(1, 40, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = model(mel)

    exact = tmp_path / "judge32.pt"
    digest = model.save(exact, half=False)
    loaded = from_checkpoint(exact, sha256=digest)
    assert loaded.config == model.config and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(mel)[0], expected)

    half = tmp_path / "judge16.pt"
    model.save(half)                                                 # fp16 by default: what ships
    assert half.stat().st_size < exact.stat().st_size
    with torch.no_grad():
        assert torch.allclose(PhoneRecognizer.from_checkpoint(half)(mel)[0], expected, atol=0.05)

    data = bytearray(exact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    exact.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        from_checkpoint(exact)
    with pytest.raises(CheckpointError):
        from_checkpoint(half, sha256="0" * 64)


def test_doctests():
    import doctest
    import importlib

    for name in ("ttslab.metrics", "ttslab.models.judge", "ttslab.train.judge"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
        assert result.attempted > 0, name
