"""Tests of the text front end: phone set, normalization, lexicon/G2P and linguistic context."""

from __future__ import annotations

import doctest
import importlib
import random

import numpy as np
import pytest

from ttslab.text import context, lexicon, normalize, phoneset
from ttslab.text.context import (
    CONTEXT_FIELDS,
    LEGAL_ONSETS,
    Question,
    answer_matrix,
    feature_names,
    frame_features,
    full_context_labels,
    linguistic_features,
    parse_full_context,
    phone_contexts,
    question_set,
    syllabify,
)
from ttslab.text.lexicon import Lexicon, OOVError, align_phone_sequences, phones_only, spell_fallback
from ttslab.text.normalize import (
    MAX_CHARS,
    EmptyTextError,
    TextTooLongError,
    UnknownCharacterError,
    normalize_text,
    split_sentences,
)
from ttslab.text.phoneset import PHONES, features, inventory_table, phone_id, validate_phones


@pytest.mark.parametrize("module", ["ttslab.text", "ttslab.text.phoneset", "ttslab.text.normalize",
                                    "ttslab.text.numbers", "ttslab.text.abbreviations", "ttslab.text.lexicon",
                                    "ttslab.text.context"])
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# ---------------------------------------------------------------------------------------------
# phoneset
# ---------------------------------------------------------------------------------------------

def test_inventory_is_exactly_the_decided_one():
    english = "aa ae ah ao aw ay eh er ey ih iy ow oy uh uw b ch d dh f g hh jh k l m n ng p r s sh t th v w y z zh"
    assert phoneset.ENGLISH_PHONES == tuple(english.split())
    assert phoneset.EXTRA_PHONES == ("a", "e", "o", "ue", "oe", "x", "cc", "rr", "dx", "ny", "ts", "pf")
    assert phoneset.SILENCES == ("pau", "sil")
    assert PHONES == phoneset.ENGLISH_PHONES + phoneset.EXTRA_PHONES + phoneset.SILENCES
    assert len(set(PHONES)) == len(PHONES) == 53


def test_phone_ids_reserve_zero_for_padding():
    assert phone_id(phoneset.PAD) == 0
    assert sorted(phone_id(p) for p in PHONES) == list(range(1, len(PHONES) + 1))
    assert all(phoneset.ID_TO_PHONE[phone_id(p)] == p for p in PHONES)
    assert phoneset.NUM_PHONE_IDS == len(PHONES) + 1


def test_every_phone_has_complete_features():
    for p in PHONES:
        f = features(p)
        assert f["ipa"]
        if f["kind"] == "vowel":
            assert f["height"] in phoneset.HEIGHTS and f["backness"] in phoneset.BACKNESSES
            assert isinstance(f["rounded"], bool) and isinstance(f["diphthong"], bool)
            assert f["manner"] is None and f["place"] is None
        elif f["kind"] == "consonant":
            assert f["manner"] in phoneset.MANNERS and f["place"] in phoneset.PLACES
            assert isinstance(f["voiced"], bool) and f["height"] is None
        else:
            assert p in phoneset.SILENCES
    assert features("k") is not features("k")  # a copy: callers cannot corrupt the table
    assert {p for p in PHONES if features(p).get("diphthong")} == {"aw", "ay", "ey", "ow", "oy"}
    assert features("x")["manner"] == "fricative" and features("x")["place"] == "velar"
    assert features("cc")["place"] == "palatal" and features("rr")["manner"] == "trill"
    assert features("dx")["manner"] == "tap" and features("ny")["manner"] == "nasal"


def test_validate_phones_lists_unknown_symbols_and_points_to_inventory():
    with pytest.raises(ValueError) as e:
        validate_phones(["k", "AE1", "q", "t", "q"])
    msg = str(e.value)
    assert "['AE1', 'q']" in msg and "PHONES" in msg and "'AE1' -> 'ae'" in msg
    with pytest.raises(TypeError):
        validate_phones("k ae t")


def test_inventory_table_has_a_row_per_phone():
    rows = inventory_table().splitlines()[2:]
    assert [r.split("|")[2].strip() for r in rows] == list(PHONES)


# ---------------------------------------------------------------------------------------------
# normalization
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("I have 3 cats.", "i have three cats."),
    ("1,234,567", "one million two hundred thirty four thousand five hundred sixty seven"),
    ("2,000,000,000", "two billion"),
    ("It is -7 today", "it is minus seven today"),
    ("pi is 3.14", "pi is three point one four"),
    ("the 21st time", "the twenty first time"),
    ("the 2nd and 3rd", "the second and third"),
    ("In 1984 we", "in nineteen eighty four we"),
    ("In 2005 we", "in two thousand five we"),
    ("In 2021 we", "in twenty twenty one we"),
    ("the 1990s", "the nineteen nineties"),
    ("March 5, 2021", "march fifth, twenty twenty one"),
    ("5/3/2021", "may third, twenty twenty one"),
    ("10:30 am", "ten thirty a m"),
    ("at 9 pm.", "at nine p m."),
    ("$5.50", "five dollars and fifty cents"),
    ("$1", "one dollar"),
    ("£3", "three pounds"),
    ("€20", "twenty euros"),
    ("$2.5 million", "two point five million dollars"),
    ("50%", "fifty percent"),
    ("5 km and 1 kg and 30 cm", "five kilometers and one kilogram and thirty centimeters"),
    ("Dr. Smith", "doctor smith"),
    ("Mr. and Mrs. Jones", "mister and missus jones"),
    ("St. Louis", "saint louis"),
    ("He lives on Main St.", "he lives on main street."),
    ("He lives on Main St. near St. Mary's.", "he lives on main street near saint mary's."),
    ("cats, dogs, etc. and e.g. rats vs. mice", "cats, dogs, et cetera and for example rats versus mice"),
    ("The FBI and the CIA", "the f b i and the c i a"),
    ("NASA launched", "nasa launched"),
    ("the U.S. army", "the u s army"),
    ("  “Hello”   world…  ", "hello world."),
    ("rock & roll", "rock and roll"),
    ("café", "cafe"),
])
def test_normalize_cases(text, expected):
    assert normalize_text(text) == expected


def test_normalize_date_order_and_case():
    assert normalize_text("5/3/2021", date_order="dmy") == "march fifth, twenty twenty one"
    assert normalize_text("Hello World", lowercase=False) == "Hello World"
    with pytest.raises(ValueError):
        normalize_text("5/3/2021", date_order="ymd")


@pytest.mark.parametrize("text", ["", "   \n\t", "?!...", "-- * --", "()"])
def test_nothing_to_speak(text):
    with pytest.raises(EmptyTextError, match="nothing to speak"):
        normalize_text(text)
    assert issubclass(EmptyTextError, ValueError)


def test_too_long_text_points_to_split_sentences():
    text = "a" * 10_000
    with pytest.raises(TextTooLongError, match="split_sentences") as e:
        normalize_text(text)
    assert str(MAX_CHARS) in str(e.value) and "10000" in str(e.value)


def test_split_sentences_makes_normalizable_pieces():
    text = "The cat sat on the mat. Dr. Smith said hi! " * 250  # 10,750 characters
    pieces = split_sentences(text)
    assert len(pieces) == 500
    assert pieces[:2] == ["The cat sat on the mat.", "Dr. Smith said hi!"]
    assert all(len(p) <= MAX_CHARS for p in pieces)
    assert [normalize_text(p) for p in pieces[:2]] == ["the cat sat on the mat.", "doctor smith said hi!"]
    long_sentence = "word " * 2000  # no punctuation: cut at whitespace
    assert all(len(p) <= MAX_CHARS for p in split_sentences(long_sentence))
    assert " ".join(split_sentences(long_sentence)) == long_sentence.strip()


def test_unknown_characters_are_named_with_positions():
    with pytest.raises(UnknownCharacterError) as e:
        normalize_text("Hi 🙂 there 你好\x01")
    err = e.value
    assert err.characters == [("🙂", 3), ("你", 11), ("好", 12), ("\x01", 13)]
    assert "U+1F642" in str(err) and "position 3" in str(err) and "on_unknown='drop'" in str(err)
    assert isinstance(err, ValueError)
    assert normalize_text("Hi 🙂 there 你好", on_unknown="drop") == "hi there"
    with pytest.raises(EmptyTextError):
        normalize_text("🙂", on_unknown="drop")
    with pytest.raises(ValueError):
        normalize_text("hi", on_unknown="ignore")
    with pytest.raises(TypeError):
        normalize_text(None)


def test_number_helpers():
    assert normalize.number_to_words(999_999_999_999) == (
        "nine hundred ninety nine billion nine hundred ninety nine million nine hundred ninety nine thousand "
        "nine hundred ninety nine")
    assert normalize.number_to_words(10**12) == "one trillion"
    assert normalize.number_to_words(-0.5) == "minus zero point five"
    assert normalize.ordinal_to_words(1_000_000) == "one millionth"
    assert normalize.year_to_words(1800) == "eighteen hundred"
    with pytest.raises(ValueError):
        normalize.number_to_words("12a")


@pytest.mark.parametrize("text, expected", [
    # the sign of a money amount is read, wherever it is written (issue 8 §7)
    ("$-0.5", "minus zero point five dollars"),
    ("-$0.50", "minus fifty cents"),
    ("$-5.25", "minus five dollars and twenty five cents"),
    ("from -$5 to $5", "from minus five dollars to five dollars"),
    ("-5€ or −£3", "minus five euros or minus three pounds"),
    ("-$1.2M", "minus one point two million dollars"),
    ("abc-$5", "abc five dollars"),  # a hyphen inside a word is no minus sign
    ("x=-5", "x equals minus five"),
    # impossible numeric dates are numbers with a spoken slash, not a date or "or"
    ("3/0/2020", "three slash zero slash twenty twenty"),
    ("0/5/2020", "zero slash five slash twenty twenty"),
    ("13/5/2020", "thirteen slash five slash twenty twenty"),
    ("2/30/2020", "two slash thirty slash twenty twenty"),
    ("2/29/2021", "two slash twenty nine slash twenty twenty one"),
    ("2/29/2024", "february twenty ninth, twenty twenty four"),
    ("4/31/21", "four slash thirty one slash twenty one"),
    ("2021-02-30", "twenty twenty one dash zero two dash thirty"),
    ("Feb 30, 2020", "february thirty, twenty twenty"),
    ("On 31 April", "on thirty one april"),
    ("3/0", "three slash zero"),
    # exponent notation keeps the exponent's sign and is read as a power of ten
    ("1e-5", "one times ten to the minus five"),
    ("2.5E+3", "two point five times ten to the three"),
    ("6.02e23", "six point zero two times ten to the twenty three"),
    ("-1e-05 m", "minus one times ten to the minus five m"),
])
def test_normalize_signs_impossible_dates_exponents(text, expected):
    assert normalize_text(text) == expected


def test_impossible_date_order_dependent():
    # 13/5 is no month-day date, but is the thirteenth of May when read day-first
    assert normalize_text("13/5/2020", date_order="dmy") == "may thirteenth, twenty twenty"
    assert normalize_text("5/13/2020", date_order="dmy") == "five slash thirteen slash twenty twenty"


def test_exponent_helpers():
    assert normalize.number_to_words(1e-05) == "one times ten to the minus five"
    assert normalize.number_to_words("-6.02E+23") == "minus six point zero two times ten to the twenty three"
    assert normalize.currency_to_words("-0.50") == "minus fifty cents"
    with pytest.raises(ValueError, match="exponent must be an integer"):
        normalize.scientific_to_words("1", "5.5")


# ---------------------------------------------------------------------------------------------
# lexicon
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lex():
    return Lexicon()


def test_lookup(lex):
    assert lex.lookup("cat") == [(("k", 0), ("ae", 1), ("t", 0))]
    assert lex.lookup("CAT") == lex.lookup("cat")
    assert phones_only(lex.lookup("extra")[0]) == ("eh", "k", "s", "t", "r", "ah")
    assert lex.lookup("qzxv") == [] and "qzxv" not in lex and "cat" in lex
    assert all(p in PHONES for prons in (lex.lookup(w) for w in ["the", "judge", "thought"])
               for pron in prons for p, _ in pron)


def test_oov_reported_all_at_once(lex):
    with pytest.raises(OOVError) as e:
        lex.g2p("The blorft and the zzyzxq met the blorft.")
    assert e.value.words == ["blorft", "zzyzxq"]
    assert "fallback" in str(e.value)


def test_fallback_hook(lex):
    calls = []

    def fake_espeak(word):
        calls.append(word)
        return ["b", "l", "ao1", "r", "f", "t"]

    out = lex.g2p("the blorft", fallback=fake_espeak)
    assert calls == ["blorft"]
    assert out[1] == ("blorft", (("b", 0), ("l", 0), ("ao", 1), ("r", 0), ("f", 0), ("t", 0)))
    with pytest.raises(ValueError, match="unknown phone"):
        lex.g2p("the blorft", fallback=lambda w: ["QQ"])
    assert phones_only(Lexicon(fallback=spell_fallback).pronounce("xkcd"))[:3] == ("eh", "k", "s")


def test_extra_entries_and_possessives():
    lex = Lexicon(extra={"ttslab": "T IY1 T IY1 EH1 S L AE2 B", "tomato": ["T AH0 M EY1 T OW2", "T AH0 M AA1 T OW2"]})
    assert len(lex.lookup("tomato")) == 2
    assert phones_only(lex.pronounce("ttslab's"))[-1] == "z"
    assert phones_only(lex.pronounce("bus's"))[-2:] == ("ih", "z")
    assert phones_only(lex.pronounce("cat's"))[-2:] == ("t", "s")


def test_normalizer_output_vocabulary_is_pronounceable(lex):
    text = ("Dr. Smith and Ms. Jones paid $1,234.56 and £3 on March 21st, 1999 at 10:05 pm; "
            "it was 15% off 2.5 kg, 3/4 of 20 km, the 1980s, 4 GHz, #7 vs. No. 8, etc.")
    assert [w for w, _ in lex.g2p(text)]  # no OOVError


def test_transcribe_marks_pauses_and_words(lex):
    seq = lex.transcribe("Hello, world. Bye!")
    assert seq.phones[0] == seq.phones[-1] == "sil"
    assert seq.phones.count("pau") == 2 and seq.words == ("hello", "world", "bye")
    assert len(seq.phones) == len(seq.word_index) == len(seq.stress)
    assert all(w == -1 for p, w in zip(seq.phones, seq.word_index) if p in ("sil", "pau"))


def test_align_phone_sequences():
    ops = align_phone_sequences("s t r eh ng k th s".split(), "s t r eh ng th s".split())
    assert [op for op, _, _ in ops].count("del") == 1 and sum(op != "match" for op, _, _ in ops) == 1
    assert align_phone_sequences([], ["a"]) == [("ins", None, "a")]
    assert align_phone_sequences("a b".split(), "a b".split()) == [("match", "a", "a"), ("match", "b", "b")]


# ---------------------------------------------------------------------------------------------
# syllables and context
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("word, expected", [
    ("extra", "eh k . s t r ah"),
    ("strengths", "s t r eh ng k th s"),
    ("atlantic", "ah t . l ae n . t ih k"),
    ("apple", "ae . p ah l"),
    ("window", "w ih n . d ow"),
    ("construct", "k ah n . s t r ah k t"),
    ("display", "d ih . s p l ey"),
])
def test_syllabify_maximal_onset(lex, word, expected):
    phones = phones_only(lex.lookup(word)[0])
    assert " . ".join(" ".join(s) for s in syllabify(phones)) == expected


def test_syllabify_invariants_on_cmudict(lex):
    words = sorted(lexicon.cmu_dict())
    for word in random.Random(0).sample(words, 2000):
        phones = phones_only(lex.lookup(word)[0])
        sylls = syllabify(phones)
        assert [p for s in sylls for p in s] == list(phones)
        assert all(sum(phoneset.is_vowel(p) for p in s) <= 1 for s in sylls)
        for s in sylls[1:]:  # every non-initial syllable starts with a legal onset
            onset = tuple(p for p in s[:next(i for i, p in enumerate(s) if phoneset.is_vowel(p))])
            assert onset in LEGAL_ONSETS


@pytest.fixture(scope="module")
def sentence_contexts(lex):
    seq = lex.transcribe("The quick brown fox, who was extraordinarily clever, jumped over the lazy dog.")
    return seq, phone_contexts(seq.phones, seq.word_index, seq.stress)


def test_context_fields(sentence_contexts):
    seq, ctx = sentence_contexts
    assert len(ctx) == len(seq.phones) and all(tuple(c) == CONTEXT_FIELDS for c in ctx)
    first = ctx[1]  # "dh" of "the"
    assert (first["LL"], first["L"], first["C"], first["R"]) == (None, "sil", "dh", "ah")
    assert first["word_fw"] == 1 and first["phrase_fw"] == 1 and first["utt_num_phrases"] == 3
    assert first["utt_num_words"] == len(seq.words) == 13
    extra = [c for c, w in zip(ctx, seq.word_index) if w == seq.words.index("extraordinarily")]
    assert {c["word_num_syls"] for c in extra} == {len(syllabify([p for p, w in zip(seq.phones, seq.word_index)
                                                                  if w == seq.words.index("extraordinarily")]))}
    assert [c["phrase_num_words"] for c in ctx if c["C"] == "pau"] == [None, None]
    assert {c["phrase_num_words"] for c in ctx if c["phrase_fw"] == 2} == {4}
    for c in ctx:
        if c["C"] not in ("sil", "pau"):
            assert c["phone_fw"] + c["phone_bw"] == c["syl_num_phones"] + 1
            assert c["syl_fw"] + c["syl_bw"] == c["word_num_syls"] + 1
            assert c["word_fw"] + c["word_bw"] == c["phrase_num_words"] + 1
            assert c["phrase_fw"] + c["phrase_bw"] == c["utt_num_phrases"] + 1
            assert (c["syl_vowel"] == c["C"]) or not phoneset.is_vowel(c["C"])


def test_contexts_from_corpus_segments():
    from ttslab.data.corpus import Segment

    segs = [Segment("sil", 0, 10), Segment("hh", 10, 20, 0), Segment("ay", 20, 30, 0, 1), Segment("sil", 30, 40)]
    ctx = context.contexts_from_segments(segs)
    assert [c["syl_stress"] for c in ctx] == [None, 1, 1, None]
    assert ctx[1]["R"] == "ay" and ctx[1]["utt_num_words"] == 1


def test_full_context_round_trip(sentence_contexts):
    _, ctx = sentence_contexts
    labels = full_context_labels(ctx)
    assert [parse_full_context(lab) for lab in labels] == ctx
    assert labels[1].startswith("xx^sil-dh+ah=")
    with pytest.raises(ValueError, match="full-context"):
        parse_full_context(labels[1].replace("/B:", "/Q:"))


def test_context_errors():
    with pytest.raises(ValueError, match="unknown phone"):
        phone_contexts(["sil", "K", "sil"])
    with pytest.raises(ValueError, match="word indices"):
        phone_contexts(["k", "ae"], [0])
    with pytest.raises(ValueError):
        phone_contexts([])


def test_question_set_and_masks(sentence_contexts):
    _, ctx = sentence_contexts
    qs = question_set()
    names = [q.name for q in qs]
    assert len(set(names)) == len(qs) == 607
    for required in ["C-Phone_aa", "LL-Phone_sil", "RR-Vowel", "L-Stop", "R-Fricative", "C-Nasal", "C-Voiced",
                     "C-Front", "C-Back", "C-High", "C-Low", "L-Bilabial", "C-Alveolar", "R-Velar", "C-Silence",
                     "C-Syl_Stress==1", "Pos_C-Syl_in_Word(Fw)<=2", "Num_Words_in_C-Phrase<=3"]:
        assert required in names
    matrix = answer_matrix(qs, ctx)
    assert matrix.shape == (len(ctx), len(qs))
    for j in random.Random(1).sample(range(len(qs)), 80):
        q = qs[j]
        loop = np.array([q.matches(c) for c in ctx])
        assert np.array_equal(q.mask(ctx), loop) and np.array_equal(matrix[:, j], loop)
    vowel = qs[names.index("C-Vowel")]
    assert vowel.mask(ctx).sum() == sum(phoneset.is_vowel(c["C"]) for c in ctx)
    assert not qs[names.index("Pos_C-Syl_in_Word(Fw)<=2")].matches(ctx[0])  # silence: field is None
    with pytest.raises(ValueError):
        Question("bad", "C")


def test_linguistic_features(sentence_contexts):
    _, ctx = sentence_contexts
    x = linguistic_features(ctx)
    names = feature_names()
    assert x.shape == (len(ctx), len(names)) == (len(ctx), 498)
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert np.array_equal(x, linguistic_features([dict(c) for c in ctx]))  # deterministic
    assert np.array_equal(x[:, names.index("C-Phone_dh")], [c["C"] == "dh" for c in ctx])
    assert np.all(x[:, [names.index(f"C-Phone_{p}") for p in PHONES]].sum(axis=1) == 1)  # one-hot


def test_frame_features(sentence_contexts):
    _, ctx = sentence_contexts
    x = linguistic_features(ctx)
    durations = np.arange(len(ctx)) % 7  # includes zero-length phones
    y = frame_features(x, durations)
    assert y.shape == (durations.sum(), x.shape[1] + 3) and y.dtype == np.float32
    assert np.array_equal(y[:, :x.shape[1]], np.repeat(x, durations, axis=0))
    elapsed = y[:, x.shape[1]]
    assert np.all((elapsed > 0) & (elapsed < 1))
    assert frame_features(x[:2], [0, 0]).shape == (0, x.shape[1] + 3)
    with pytest.raises(ValueError):
        frame_features(x, durations[:-1])
    with pytest.raises(ValueError):
        frame_features(x, -np.ones(len(ctx), dtype=int))
    with pytest.raises(ValueError):
        frame_features(x, np.full(len(ctx), 1.5))
