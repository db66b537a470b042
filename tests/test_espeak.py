"""The eSpeak NG binding: facts the corpus relies on, reproducibility and bad input."""

import ctypes
import subprocess
import sys

import numpy as np
import pytest

from ttslab.text import espeak

TEXT = "The quick brown fox jumped over the lazy dog, and it slept."


def test_library_facts():
    info = espeak.library_info()
    assert info["version"].startswith("1.52")
    assert info["sample_rate"] == 22050
    assert ctypes.sizeof(espeak._Event) == 40  # the C struct on x86-64


def test_synthesis_has_phone_events_inside_the_audio():
    syn = espeak.synthesize(TEXT, "en-us")
    assert syn.audio.dtype == np.int16 and 2.0 < syn.duration < 6.0
    starts = [p.sample for p in syn.phones]
    assert starts == sorted(starts) and 0 <= starts[0] and starts[-1] <= len(syn.audio)
    assert syn.words[:3] == ("The", "quick", "brown")
    names = [espeak_phone.name.lstrip("',") for espeak_phone in syn.phones]
    assert names[:2] == ["D", "@2"] and "k" in names


def test_synthesis_is_byte_reproducible_even_for_breathy_variants():
    for voice in ("en-us+f3", "es+f2"):
        a = espeak.synthesize(TEXT, voice, rate=170, pitch=55)
        b = espeak.synthesize(TEXT, voice, rate=170, pitch=55)
        assert a.audio.tobytes() == b.audio.tobytes()
        assert a.phones == b.phones


def test_in_process_synthesis_drifts_which_is_why_we_fork():
    def twice():
        return [espeak._synthesize_here(TEXT, "en-us", 175, 50, 50).audio for _ in range(3)]

    runs = espeak.run_forked(twice)
    assert any(len(r) != len(runs[0]) or not np.array_equal(r, runs[0]) for r in runs[1:])


def test_voice_and_rate_change_the_sound():
    base = espeak.synthesize(TEXT, "en-us")
    assert len(espeak.synthesize(TEXT, "en-us", rate=300).audio) < 0.75 * len(base.audio)
    assert base.audio.tobytes() != espeak.synthesize(TEXT, "en+f3").audio.tobytes()


@pytest.mark.parametrize("text", ["", "   ", "?!...", "—"])
def test_nothing_to_speak(text):
    with pytest.raises(ValueError, match="nothing to speak"):
        espeak.synthesize(text)


def test_too_long_text_names_the_fix():
    with pytest.raises(ValueError, match="split it into sentences"):
        espeak.synthesize("word " * 2000)


def test_control_characters_rejected():
    with pytest.raises(ValueError, match="control characters"):
        espeak.synthesize("hello\x07 there")


@pytest.mark.parametrize("voice", ["en-gb", "zz-notavoice", ""])
def test_unknown_voice(voice):
    with pytest.raises(espeak.UnknownVoiceError, match="voice"):
        espeak.synthesize("hello", voice)


def test_parameter_ranges():
    with pytest.raises(ValueError, match="rate"):
        espeak.synthesize("hello", rate=10)
    with pytest.raises(ValueError, match="pitch"):
        espeak.synthesize("hello", pitch=101)


def test_phonemize_words_and_ipa():
    words = espeak.phonemize("Hello there, measure.", "en-us")
    assert len(words) == 3 and words[2] == ["m", "'E", "Z", "3"]
    assert espeak.phonemize("the", "en-us", ipa=True) == [["ð", "ə"]]


def test_missing_library_gives_a_clear_error(tmp_path):
    code = ("import os; os.environ['TTSLAB_ESPEAK_LIBRARY']='/nonexistent/libespeak-ng.so'\n"
            "from ttslab.text import espeak\n"
            "try:\n    espeak.synthesize('hi')\nexcept espeak.ESpeakError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ERR cannot load eSpeak NG from /nonexistent" in out.stdout, out.stderr
