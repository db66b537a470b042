"""The one text front-end (ttslab.text.frontend): the phones a model reads at inference are the
phones it was trained on, and text it cannot read gets an error that speaks about the text."""

from __future__ import annotations

import pytest

from ttslab.data import builtin
from ttslab.data.speakers import SPEAKERS, espeak_voice_for, speaker
from ttslab.text import frontend
from ttslab.text.frontend import EspeakVoice, TextError, analyze


def _one_speaker_per_voice_and_language():
    """Every prompt file is read by every speaker of its language; one speaker per distinct accent setting
    would be ~4000 eSpeak calls, so: the first English speaker of each voice family and both speakers of es/de."""
    chosen, voices = [], set()
    for s in SPEAKERS:
        family = s.voice.split("+")[0]
        if (s.language, family) not in voices:
            voices.add((s.language, family))
            chosen.append(s.id)
    return chosen


@pytest.mark.parametrize("speaker_id", _one_speaker_per_voice_and_language())
def test_inference_phones_equal_training_phones_for_every_prompt(ci_corpus, speaker_id):
    """For every prompt of the corpus, in every language: the model-facing front-end (text -> analyze)
    gives exactly the phones, stress and word indices the corpus labels hold (what models train on)."""
    utts = list(ci_corpus.filter(speakers=speaker_id))
    assert utts, speaker_id
    voice = speaker(speaker_id).espeak_voice
    for utt in utts:
        got = analyze(utt.text, voice).segments
        assert [(s.label, s.word, s.stress) for s in got] == [(s.label, s.word, s.stress) for s in utt.segments], utt.id
        assert got == utt.segments  # the very same segments, timing included: the corpus is labelled by analyze


def test_full_prompt_files_normalize_to_themselves():
    """Every prompt of the full corpus (not only the CI slice) passes normalization unchanged, so the
    front-end at inference feeds eSpeak the very text the corpus was built from."""
    for name, (language, _) in builtin.PROMPT_FILES.items():
        for prompt in builtin.read_prompts(name):
            assert frontend.normalize(prompt, language) == prompt, (name, prompt)


def test_model_inputs_match_corpus_labels_through_fastspeech(ci_corpus):
    from ttslab.models.fastspeech import text_to_inputs, utterance_inputs

    for utt in list(ci_corpus.filter(speakers="en_gb_f"))[:5]:
        a, b = text_to_inputs(utt.text, utt.speaker), utterance_inputs(utt)
        for key in ("phone_ids", "stress", "word_position"):
            assert a[key].tolist() == b[key].tolist(), (utt.id, key)


def test_models_read_text_through_the_normalizer():
    """'Dr.' and '2' are read as the normalizer says (doctor, two), the same for every model path."""
    a = analyze("Dr. Smith has 2 cats.", espeak_voice_for("en_us_m"))
    b = analyze("doctor Smith has two cats.", espeak_voice_for("en_us_m"))
    assert a.normalized == "doctor Smith has two cats."
    assert a.segments == b.segments


@pytest.mark.parametrize("text, words", [
    ("مرحبا بالعالم", ["Arabic", "Latin script", "Transliterate"]),
    ("你好", ["Chinese/Japanese (CJK)", "Latin script"]),
    ("Привет", ["Cyrillic"]),
])
def test_text_in_another_script_gets_an_error_about_the_text(text, words):
    with pytest.raises(TextError) as err:
        analyze(text, espeak_voice_for("en_us_m"))
    for w in words:
        assert w in str(err.value)
    assert "espeak_phones" not in str(err.value)  # not an internal table error


def test_a_lone_surrogate_is_reported_as_broken_unicode():
    with pytest.raises(TextError, match=r"not valid Unicode: a lone surrogate U\+D83D at position 6.*encoding"):
        analyze("hello \ud83d there", "en-us")


def test_emoji_are_never_read_out_by_name():
    with pytest.raises(TextError, match="emoji"):
        analyze("I love 🍕 pizza", "en-us")
    dropped = analyze("I love 🍕 pizza", "en-us", on_unknown="drop")  # the documented fallback
    assert dropped.phones == analyze("I love pizza", "en-us").phones


def test_spanish_and_german_keep_their_letters():
    assert frontend.normalize("Größe  und Straße", "de") == "Größe und Straße"
    with pytest.raises(TextError, match="Greek"):
        frontend.normalize("αβγ", "es")


def test_empty_and_unknown_language():
    with pytest.raises(TextError, match="empty"):
        analyze("   ", "en-us")
    with pytest.raises(TextError, match="fr"):
        EspeakVoice("fr", "fr")


def test_every_model_uses_the_front_end_for_text():
    """HTS and DNN voices and FastSpeech turn text into segments through ttslab.text.frontend only."""
    import ttslab.classical.hts.voice as hts_voice
    import ttslab.models.dnn_spss as dnn
    import ttslab.models.fastspeech.synthesis as fs

    for module in (hts_voice, dnn, fs):
        source = open(module.__file__, encoding="utf-8").read()
        assert "ttslab.text.frontend" in source, module.__name__
        assert "espeak.synthesize" not in source and "segments_from_events" not in source, module.__name__
