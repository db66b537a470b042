"""Tests of ttslab.classical.align: the flat-start forced aligner on the CI built-in corpus, its
composite HMMs and transition counts, evaluation helpers, bad input, and the real-corpus path
(an LJSpeech-layout folder without timings, transcribed with the lexicon)."""

from __future__ import annotations

import doctest
import shutil

import numpy as np
import pytest

from ttslab.classical import align as align_module
from ttslab.classical.align import (SP, AlignerConfig, ForcedAligner, accuracy_within, boundary_errors,
                                    composite_hmm, mfcc_features, phone_models, split_mixtures, train_aligner,
                                    transcript, transcript_phones, transition_counts, word_boundary_errors)
from ttslab.classical.hmm import GMMEmission, posteriors
from ttslab.data.corpus import Corpus, Segment

SPEAKER = "en_us_m"
# Fewer iterations and one Gaussian keep the file fast; the benchmark measures the defaults.
FAST = dict(n_iter=5, mixtures=1, progress=False)


@pytest.fixture(scope="module")
def aligner(ci_corpus):
    return train_aligner(ci_corpus, speakers=SPEAKER, **FAST)


@pytest.fixture(scope="module")
def test_utterances(ci_corpus):
    return list(ci_corpus.filter(speakers=SPEAKER, split="test"))


def assert_tiles(segments, n_samples):
    assert segments[0].start == 0 and segments[-1].end == n_samples
    assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.start < s.end for s in segments)


# ----------------------------------------------------------------------------- the aligner on the built-in corpus


@pytest.mark.slow
def test_accuracy_on_held_out_utterances(aligner, test_utterances):
    errors = np.concatenate([boundary_errors(u.segments, aligner.align_utterance(u)) for u in test_utterances])
    assert errors.size > 300
    # measured 94.8 % (mean 7.9 ms) with this fast setting; the issue asks for >= 90 %
    assert accuracy_within(errors, 0.020) >= 0.90
    assert accuracy_within(errors, 0.050) >= 0.97


@pytest.mark.slow
def test_log_likelihood_increases_every_iteration(aligner):
    lls = [h["log_likelihood"] for h in aligner.history_]
    assert len(lls) == FAST["n_iter"]
    assert np.all(np.diff(lls) > 0)
    assert aligner.history_[-1]["per_frame"] == pytest.approx(lls[-1] / aligner.n_train_frames_)


@pytest.mark.slow
def test_segments_tile_the_audio_and_keep_the_transcript(aligner, test_utterances):
    for utt in test_utterances[:3]:
        segments = aligner.align_utterance(utt)
        assert_tiles(segments, utt.num_samples)
        assert [s.label for s in segments] == list(transcript_phones(utt))
        assert [s.word for s in segments] == [s.word for s in utt.segments]


@pytest.mark.slow
def test_align_from_audio_and_phones(aligner, test_utterances):
    utt = test_utterances[0]
    audio = utt.load_audio()
    segments = aligner.align(audio, [s.label for s in utt.segments], sample_rate=utt.sample_rate)
    assert_tiles(segments, len(audio))
    assert segments == [Segment(s.label, s.start, s.end) for s in aligner.align_utterance(utt)]


def test_training_is_deterministic(ci_corpus):
    utts = list(ci_corpus.filter(speakers=SPEAKER, split="train"))[:4]
    a = ForcedAligner(n_iter=2, mixtures=2, mixup_iter=1, progress=False).fit(utts)
    b = ForcedAligner(n_iter=2, mixtures=2, mixup_iter=1, progress=False).fit(utts)
    assert np.array_equal(a.emission.means, b.emission.means) and a.emission.means.shape[1] == 2
    assert [h["log_likelihood"] for h in a.history_] == [h["log_likelihood"] for h in b.history_]
    # one variance per phone (tie_variances): all states and components of "ah" share it
    rows = a.models["ah"].rows
    assert np.allclose(a.emission.covars[rows], a.emission.covars[rows[0], 0])


def test_multi_speaker_needs_to_be_asked_for(ci_corpus):
    with pytest.raises(ValueError, match="speakers="):
        train_aligner(ci_corpus, **FAST)
    few = Corpus("few", [u for s in ("en_us_m", "en_us_f") for u in list(ci_corpus.filter(speakers=s, split="train"))[:3]])
    pooled = train_aligner(few, speakers=["en_us_m", "en_us_f"], n_iter=1, mixtures=1, progress=False)
    assert len(pooled.history_) == 1 and pooled.n_train_frames_ > 0


# ----------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_clear_errors(aligner, test_utterances):
    audio, sr = test_utterances[0].load_audio(), test_utterances[0].sample_rate
    with pytest.raises(ValueError, match="empty"):
        aligner.align(audio, [], sample_rate=sr)
    with pytest.raises(ValueError, match=r"unknown phone\(s\) \['AH', 'xx'\]"):
        aligner.align(audio, ["sil", "AH", "xx"], sample_rate=sr)
    with pytest.raises(ValueError, match="too short"):
        aligner.align(audio[:2000], ["sil", "hh", "ah", "l", "ow", "w", "er", "l", "d", "sil"],  # 19 frames, 28 needed
                      sample_rate=sr)
    with pytest.raises(ValueError, match="only skippable"):
        aligner.align(audio, [SP, SP], sample_rate=sr)
    with pytest.raises(RuntimeError, match="not trained"):
        ForcedAligner().align(audio, ["sil"], sample_rate=sr)


def test_align_needs_the_sample_rate_of_the_audio(aligner, test_utterances):
    """Audio at another rate used to be aligned silently, to nonsense (issue 8 §7)."""
    import librosa

    from ttslab.io import SampleRateError

    utt = test_utterances[0]
    audio, phones = utt.load_audio(), [s.label for s in utt.segments]
    assert utt.sample_rate == aligner.config.sample_rate == 22050
    with pytest.raises(TypeError, match=r"sample_rate=<Hz> \(this aligner works at 22050 Hz"):
        aligner.align(audio, phones)
    slow = librosa.resample(audio, orig_sr=22050, target_sr=16000)
    with pytest.raises(SampleRateError, match=r"audio is at 16000 Hz but this aligner works at 22050 Hz.*"
                                              r"librosa\.resample\(audio, orig_sr=16000, target_sr=22050\)"):
        aligner.align(slow, phones, sample_rate=16000)
    with pytest.raises(ValueError, match="positive whole number"):
        aligner.align(audio, phones, sample_rate=22050.0)
    with pytest.raises(SampleRateError, match="16000 Hz"):      # training items are checked the same way
        ForcedAligner(progress=False).fit([(slow, phones, 16000)])
    with pytest.raises(TypeError, match=r"\(audio, phones, sample_rate\) triples"):
        ForcedAligner(progress=False).fit([(audio, phones)])
    back = librosa.resample(slow, orig_sr=16000, target_sr=22050)  # the advice works
    assert_tiles(aligner.align(back, phones, sample_rate=22050), len(back))
    with pytest.raises(ValueError, match="power of 2"):
        AlignerConfig(mixtures=3)


@pytest.mark.slow
def test_unseen_phone_warns(aligner, test_utterances):
    audio = test_utterances[0].load_audio()
    with pytest.warns(UserWarning, match="did not occur in the training data"):
        aligner.align(audio, ["sil", "rr", "a", "sil"], sample_rate=22050)   # Spanish phones: models at the flat start


# ----------------------------------------------------------------------------- building blocks


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")   # librosa, for the 50-sample clip
def test_features_shape_and_normalisation():
    audio = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    config = AlignerConfig()
    X = mfcc_features(audio, config)
    assert X.shape == (1 + 22050 // config.hop, 3 * config.n_mfcc)
    assert np.allclose(X.mean(axis=0), 0, atol=1e-8) and np.allclose(X.std(axis=0), 1, atol=1e-6)
    assert mfcc_features(np.zeros(50, np.float32), config).shape == (1, 3 * config.n_mfcc)


def test_composite_hmm_with_tee_models():
    models, _ = phone_models(AlignerConfig())
    comp = composite_hmm(["sil", "k", SP, "ae", "t", SP], models)
    K = len(comp.rows)
    assert K == 3 + 3 + 1 + 3 + 3 + 1
    A, end = np.exp(comp.log_trans), np.exp(comp.log_end)
    assert np.allclose(A.sum(axis=1) + end, 1.0)                # every state either moves on or ends
    assert np.exp(comp.log_start).tolist() == [1.0] + [0.0] * (K - 1)
    k_last, sp_state, ae_first = 5, 6, 7
    assert A[k_last, sp_state] == pytest.approx(0.5 * 0.5)     # exit (0.5) x enter sp (1 - tee = 0.5)
    assert A[k_last, ae_first] == pytest.approx(0.5 * 0.5)     # exit x tee: sp skipped
    assert end[12] == pytest.approx(0.5 * 0.5) and end[13] == pytest.approx(0.5)   # t may end through the final tee
    assert comp.rows[sp_state] == models["sil"].rows[1]         # sp is tied to sil's middle state
    assert comp.min_frames == 2 + 3 + 0 + 3 + 3 + 0


def test_transition_counts_add_up():
    models, n_rows = phone_models(AlignerConfig())
    comp = composite_hmm(["sil", "ae", SP, "t"], models)
    rng = np.random.default_rng(1)
    log_b = rng.standard_normal((40, len(comp.rows)))
    gamma, xi_sum, _ = posteriors(comp.log_start, comp.log_trans, log_b, comp.log_end)
    counts = transition_counts(comp, gamma, xi_sum)
    assert len(counts) == 4
    for c, frames in zip(counts, np.split(gamma.sum(axis=0), np.cumsum([3, 3, 1]))):
        # every frame in a model either stays, moves inside it or exits: row sums = occupancy
        assert np.allclose(c[1:-1].sum(axis=1), frames)
    # the sp model is either entered or skipped exactly once; so is every other model entered once
    assert counts[2][0].sum() == pytest.approx(1.0)
    assert [c[0, 1:].sum() for c in counts] == pytest.approx([1.0] * 4)


def test_split_mixtures_doubles_components():
    em = GMMEmission(weights=[[1.0]], means=[[[0.0, 1.0]]], covars=[[[4.0, 1.0]]])
    split = split_mixtures(em)
    assert split.weights.tolist() == [[0.5, 0.5]]
    assert split.means.tolist() == [[[-0.4, 0.8], [0.4, 1.2]]]
    assert np.array_equal(split.covars, np.repeat(em.covars, 2, axis=1))


def test_boundary_errors_only_count_shared_boundaries():
    ref = [Segment("sil", 0, 100), Segment("k", 100, 300), Segment("ae", 300, 700), Segment("t", 700, 900)]
    hyp = [Segment("sil", 0, 120), Segment("k", 120, 290), Segment("ae", 290, 650), Segment("t", 650, 900)]
    assert boundary_errors(ref, hyp, sample_rate=1000).tolist() == pytest.approx([0.02, 0.01, 0.05])
    with_pause = hyp[:2] + [Segment("pau", 290, 300), Segment("ae", 300, 650)] + hyp[3:]
    # k|ae no longer exists in the hypothesis; sil|k and ae|t still count
    assert boundary_errors(ref, with_pause, sample_rate=1000).tolist() == pytest.approx([0.02, 0.05])
    errors = np.array([0.005, 0.015, 0.02, 0.03])
    assert accuracy_within(errors, 0.02) == 0.75
    with pytest.raises(ValueError, match="no boundaries"):
        accuracy_within([])


# ----------------------------------------------------------------------------- a real corpus without timings


def test_real_corpus_layout_without_timings(ci_corpus, tmp_path):
    """20 built-in utterances as an LJSpeech folder: lexicon phones (+ sp), flat start, word starts."""
    from ttslab.data.readers import read_ljspeech

    builtin = list(ci_corpus.filter(speakers="en_us_f", split="train"))[:20]
    (tmp_path / "wavs").mkdir()
    for utt in builtin:
        shutil.copyfile(utt.wav_path, tmp_path / "wavs" / f"{utt.id}.wav")
    (tmp_path / "metadata.csv").write_text("".join(f"{u.id}|{u.text}|{u.text}\n" for u in builtin))
    corpus = read_ljspeech(tmp_path)
    assert len(corpus) == 20 and all(u.segments is None for u in corpus)

    phones = transcript_phones(corpus[0])
    assert phones[0] == phones[-1] == "sil" and SP in phones
    assert SP not in transcript_phones(corpus[0], sp=False)

    aligner = ForcedAligner(**FAST).fit(list(corpus))
    assert np.all(np.diff([h["log_likelihood"] for h in aligner.history_]) > 0)
    errors = []
    for ref in builtin:
        utt = corpus[ref.id]
        segments = aligner.align_utterance(utt)
        assert_tiles(segments, utt.num_samples)
        assert SP not in [s.label for s in segments]            # an sp that takes frames is written as pau
        errors.append(word_boundary_errors(ref.segments, ref.words, segments, transcript(utt).words))
    errors = np.concatenate(errors)
    assert errors.size > 200                                      # nearly every word is matched
    # measured here: 92.3 % of 233 word starts within 50 ms (80 % within 20 ms); the benchmark's
    # 30 utterances of en_us_m with the default config: 98.8 % (91.6 % within 20 ms)
    assert accuracy_within(errors, 0.050) >= 0.88


def test_doctests():
    result = doctest.testmod(align_module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 4
