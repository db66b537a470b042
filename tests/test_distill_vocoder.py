"""Vocoder distillation (ttslab.train.vocoder --teacher-vocoder): the training pairs are the teacher acoustic
model's generated mel and the teacher vocoder's audio of it (checked against calling the two models by hand),
they line up like the recordings' pairs (80 x F mel, F x 256 samples), the recipe trains on them from the
command line and logs its teacher, and bad teachers are refused with a clear error. Tiny models only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ttslab.dsp.spectral import HOP
from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, utterance_inputs
from ttslab.train.loop import Batches, evaluate
from ttslab.train.vocoder import (DataConfig, VocoderTeacher, analyse, collate_segments, default_train_config,
                                  load_teacher, main, segment_items, split_utterances, teacher_pairs, train_vocoder,
                                  vocoder_loss)
from ttslab.vocoders.neural import NeuralVocoder, VocoderConfig


def english_speakers(corpus):
    from ttslab.data.speakers import is_adaptation

    return sorted({u.speaker for u in corpus.filter(split="train", language="en") if not is_adaptation(u.speaker)})


def tiny_teacher(speakers) -> VocoderTeacher:
    torch.manual_seed(0)
    acoustic = FastSpeech(FastSpeechConfig.tiny(speakers=tuple(speakers))).eval()
    torch.manual_seed(1)
    return VocoderTeacher(acoustic=acoustic, vocoder=NeuralVocoder(VocoderConfig.tiny()).eval())


def test_teacher_pairs_are_the_generated_mel_and_the_teacher_vocoders_audio(ci_corpus):
    speakers = english_speakers(ci_corpus)
    teacher = tiny_teacher(speakers)
    utts = list(ci_corpus.filter(split="train", speakers=speakers[:1]))[:2]
    pairs = teacher_pairs(utts, teacher, progress=False)
    for utt, (mel, audio) in zip(utts, pairs):
        with torch.no_grad():  # by hand: the acoustic model's mel, then the teacher vocoder on it
            expect_mel = teacher.acoustic.infer(utterance_inputs(utt), utt.speaker)["mel"].numpy().T
            expect_audio = teacher.vocoder(torch.from_numpy(expect_mel)[None]).clamp(-1, 1)[0].numpy()
        assert mel.shape == (80, expect_mel.shape[1]) and mel.dtype == np.float32
        assert np.allclose(mel, expect_mel, atol=1e-6)
        assert audio.shape == (mel.shape[1] * HOP,)  # frame m centred on sample m * HOP, as analyse() lines up
        n = min(len(audio), len(expect_audio))
        assert np.allclose(audio[:n], expect_audio[:n], atol=1e-6) and np.abs(audio).max() > 0
    # the recordings' pairs have the same layout, but other content (the mel is the recording's own)
    (rec_mel, rec_audio), = analyse(utts[:1], progress=False)
    assert rec_audio.shape == (rec_mel.shape[1] * HOP,) and rec_mel.shape[0] == pairs[0][0].shape[0]
    assert rec_mel.shape != pairs[0][0].shape or not np.allclose(rec_mel, pairs[0][0])


@pytest.mark.slow
def test_distilled_training_uses_the_teachers_pairs_for_validation_too(ci_corpus):
    speakers = english_speakers(ci_corpus)
    teacher = tiny_teacher(speakers)
    train_config, data_config = default_train_config("ci")
    utts = [u for u in ci_corpus.filter(split="train", language="en") if u.speaker in speakers[:2]]
    model, history = train_vocoder(utts, VocoderConfig.tiny(), train_config, data_config, progress=False,
                                   device="cpu", teacher=teacher)
    assert history.steps_done == train_config.steps and all(np.isfinite(r["loss"]) for r in history.train)
    # the best validation loss, recomputed for the returned model on the teacher's pairs of the held-out
    # utterances (it differs on the recordings' pairs: validation is against the teacher, not the speech)
    _, valid = split_utterances(utts, data_config)
    seg = data_config.segment_frames

    def valid_loss(pairs):
        batches = Batches(segment_items(pairs, seg, seg), train_config.batch_size, collate_segments, shuffle=False)
        with torch.no_grad():
            return evaluate(model, lambda m, b: vocoder_loss(m, b, **data_config.loss_weights()), batches)["loss"]

    assert valid_loss(teacher_pairs(valid, teacher, progress=False)) == pytest.approx(history.best_valid, rel=1e-4)
    assert valid_loss(analyse(valid, progress=False)) != pytest.approx(history.best_valid, rel=1e-2)


def test_vocoder_recipe_distils_from_the_command_line_and_logs_its_teacher(ci_corpus, tmp_path):
    teacher = tiny_teacher(english_speakers(ci_corpus))
    acoustic_path, vocoder_path = tmp_path / "acoustic.pt", tmp_path / "vocoder.pt"
    teacher.acoustic.save(acoustic_path, half=False)
    teacher.vocoder.save(vocoder_path, half=False)
    out = tmp_path / "student_vocoder.pt"
    main(["--mode", "ci", "--teacher-vocoder", str(vocoder_path), "--teacher-acoustic", str(acoustic_path),
          "--out", str(out)])
    log = json.loads(out.with_suffix(".json").read_text())
    assert log["teacher"]["vocoder"] == str(vocoder_path) and log["teacher"]["acoustic"] == str(acoustic_path)
    assert log["teacher"]["vocoder_parameters"] == teacher.vocoder.num_parameters()
    assert "--teacher-vocoder" in log["command"] and log["threads"] == 1
    student = NeuralVocoder.from_checkpoint(out)
    assert student.num_parameters() == log["parameters"]


def test_bad_teachers_are_refused(ci_corpus, tmp_path):
    speakers = english_speakers(ci_corpus)
    teacher = tiny_teacher(speakers[:1])
    other = [u for u in ci_corpus.filter(split="train") if u.speaker == speakers[-1]][:1]
    with pytest.raises(ValueError, match="does not know the speakers"):
        teacher_pairs(other, teacher, progress=False)
    with pytest.raises(ValueError, match="neither a checkpoint file nor a registered model"):
        load_teacher(str(tmp_path / "missing.pt"), "fastspeech_teacher")
    vocoder_path = tmp_path / "vocoder.pt"
    teacher.vocoder.save(vocoder_path, half=False)
    with pytest.raises(Exception, match="FastSpeech|model_config|config"):  # a vocoder is no acoustic model
        load_teacher(str(vocoder_path), str(vocoder_path))
    assert DataConfig().utterances_per_speaker == 100  # the distilled vocoder sees as many utterances as vocoder_small
