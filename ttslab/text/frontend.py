"""The text front-end: the one path from written text to the phones every model reads.

::

    text ──check──> readable?      (a clear error for other scripts, emoji, broken Unicode)
         ──normalize──> words      (English: ttslab.text.normalize, case kept; es/de: Unicode NFC, spaces)
         ──eSpeak NG──> phone events with sample positions, in the voice's accent
         ──espeak_phones──> segments (label, start, end, word, stress) that tile the audio
         ──context──> stress, word position (:func:`phone_context`), full contexts (ttslab.text.context)

The built-in corpus is labelled by this module (:func:`analyze` on each prompt), and every model
reads text through it at synthesis time, so a model sees at inference exactly the phones it was
trained on (a test checks this for every prompt and language). eSpeak's timing is kept for the
corpus labels and thrown away at synthesis, where the models predict their own durations.

Why the English normalizer keeps case here: eSpeak reads a lone lower-case "i" as the letter name
(stressed), not the pronoun, so lower-casing would change the phones of 10 of the 370 English
prompts. With case kept, normalization leaves every prompt of the corpus unchanged.

>>> voice = EspeakVoice("en-us")
>>> analysis = analyze("Dr. Smith has 2 cats.", voice)
>>> analysis.normalized
'doctor Smith has two cats.'
>>> " ".join(analysis.phones)
'sil d aa k t er s m ih th hh ah z t uw k ae t s sil'
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np

from ttslab.data.corpus import Segment

#: Languages the front-end reads (one eSpeak phone table each, :mod:`ttslab.text.espeak_phones`).
LANGUAGES = ("en", "es", "de")
#: Word-position classes of :func:`phone_context` (index = class id).
WORD_POSITIONS = ("none", "initial", "medial", "final", "single")
#: Stress classes: 0 unstressed or consonant, 1 primary, 2 secondary.
N_STRESS = 3
SILENCE_PHONES = ("sil", "pau")

# From eSpeak's phone events to segments: stops start at their closure (see closure_start)
#: Phones that start at their closure: eSpeak's event marks a stop's burst, so the closure silence
#: would otherwise end the preceding phone (TIMIT labels ``tcl`` + ``t``; here it is one ``t``).
STOPS = frozenset({"p", "t", "k", "b", "d", "g", "ch", "jh", "ts", "pf"})
#: Envelope (moving RMS) at or below this magnitude is silence whatever the level around it.
SILENCE_LEVEL = 2
#: A closure is this many dB below the loudest point of the segment before the stop.
CLOSURE_DB = 25.0
#: Width of the moving-RMS envelope used to find closures (2 ms at 22050 Hz).
ENVELOPE_SAMPLES = 44
#: A silent run must end within this many samples of the stop event to count as its closure.
CLOSURE_TOLERANCE = 22  # 1 ms
#: A silent run shorter than this is not a closure.
MIN_CLOSURE_SAMPLES = 44  # 2 ms
#: No phone is shortened below this by moving a stop boundary.
MIN_PHONE_SAMPLES = 110  # 5 ms


class TextError(ValueError):
    """Text the front-end cannot read; the message says what is wrong with it and what to do."""


@dataclass(frozen=True)
class EspeakVoice:
    """How eSpeak NG reads text: voice (+variant), language of its phone table, rate (wpm), pitch."""

    voice: str = "en-us"
    language: str = "en"
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50

    def __post_init__(self):
        if self.language not in LANGUAGES:
            raise TextError(f"the front-end reads {list(LANGUAGES)}, not {self.language!r}: ttslab has eSpeak "
                            "phone tables for those languages only (ttslab.text.espeak_phones)")

    @classmethod
    def from_dict(cls, d: Mapping) -> "EspeakVoice":
        """From a saved dict (older voices stored only some keys; the rest take the defaults)."""
        known = {k: d[k] for k in ("voice", "language", "rate", "pitch", "pitch_range") if k in d}
        return cls(**known)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PhoneLabel:
    """A phone without timing: what context building needs (the shape of a Segment without start/end)."""

    label: str
    word: int = -1
    stress: int = 0


# ---------------------------------------------------------------------------------------------
# Checking and normalizing


def _script(ch: str) -> str:
    """The script of a letter from its Unicode name: 'ARABIC LETTER MEEM' -> 'Arabic'."""
    name = unicodedata.name(ch, "")
    if name.startswith("CJK"):
        return "Chinese/Japanese (CJK)"
    return name.split(" ")[0].title() if name else "unnamed"


def check_text(text: str, language: str = "en") -> None:
    """Raise :class:`TextError` for text the front-end cannot read, naming what is wrong and the fix.

    Checked: the type, emptiness, broken Unicode (a lone surrogate, typically half of an emoji
    decoded with the wrong codec) and letters of another script than Latin (Arabic in an English
    voice would otherwise reach eSpeak, which either reads out character names or emits phones
    that no table of this project knows).

    >>> check_text("Hello there.")
    >>> check_text("مرحبا")
    Traceback (most recent call last):
    ...
    ttslab.text.frontend.TextError: the text has Arabic letters ('مرحبا') that the en voice cannot read: it reads Latin script. Transliterate them, or drop them with on_unknown='drop'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not any(ch.isalnum() for ch in text):
        raise TextError(f"empty text {text!r}: nothing to speak but punctuation or whitespace; give at least one word")
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise TextError(
                f"the text is not valid Unicode: a lone surrogate U+{ord(ch):04X} at position {i} (often half of "
                "an emoji read with the wrong codec, or bytes decoded with errors='surrogateescape'); read the "
                "source with its real encoding (e.g. open(path, encoding='utf-8')) or remove that character")
    foreign: dict[str, list[str]] = {}
    for ch in text:
        if ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN"):
            foreign.setdefault(_script(ch), []).append(ch)
    if foreign:
        script, chars = next(iter(foreign.items()))
        shown = "".join(chars[:12]) + ("..." if len(chars) > 12 else "")
        raise TextError(f"the text has {script} letters ({shown!r}) that the {language} voice cannot read: it reads "
                        "Latin script. Transliterate them, or drop them with on_unknown='drop'")


def normalize(text: str, language: str = "en", *, on_unknown: str = "raise") -> str:
    """The words eSpeak is given: English through :func:`ttslab.text.normalize.normalize_text` (case kept,
    see the module docstring); Spanish and German in Unicode NFC with runs of whitespace collapsed (their
    numbers are read by eSpeak's own rules). ``on_unknown="drop"`` replaces unreadable characters
    (other scripts, emoji, symbols) by spaces instead of raising.

    >>> normalize("It costs $5 on 3/5/2021.")
    'It costs five dollars on march fifth, twenty twenty one.'
    >>> normalize("¿Qué  tal?", "es")
    '¿Qué tal?'
    """
    from ttslab.text.normalize import UnknownCharacterError, normalize_text

    if on_unknown not in ("raise", "drop"):
        raise ValueError(f"on_unknown must be 'raise' or 'drop', got {on_unknown!r}")
    if on_unknown == "raise":
        check_text(text, language)
    if language == "en":
        try:
            return normalize_text(text, lowercase=False, on_unknown=on_unknown)
        except UnknownCharacterError as exc:  # emoji and symbols: say what to do in front-end terms
            raise TextError(f"{exc}; emoji and symbols are not read out (the front-end never speaks "
                            "character names)") from None
    out = []
    for ch in unicodedata.normalize("NFC", text):
        readable = (ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")) or ch.isdigit() or ch.isspace() \
            or ch in ".,;:?!¿¡'\"-()"
        if readable:
            out.append(ch)
        elif on_unknown == "drop":
            out.append(" ")
        else:
            raise TextError(f"cannot read {ch!r} (U+{ord(ch):04X}) in {language} text; remove it, or pass "
                            "on_unknown='drop' to replace such characters by spaces")
    words = " ".join("".join(out).split())
    if not any(ch.isalnum() for ch in words):
        raise TextError(f"nothing to speak in {text!r}: only punctuation, symbols or whitespace are left")
    return words


# ---------------------------------------------------------------------------------------------
# eSpeak's phone events -> segments


def _envelope(x: np.ndarray, width: int = ENVELOPE_SAMPLES) -> np.ndarray:
    """Moving RMS over ``width`` samples (centred), in the units of ``x``."""
    power = np.convolve(x.astype(np.float64) ** 2, np.ones(width) / width, mode="same")
    return np.sqrt(power)


def closure_start(audio: np.ndarray, stop_start: int, earliest: int, segment_start: int | None = None) -> int:
    """Where the quiet closure before ``stop_start`` begins (``stop_start`` if there is none).

    A sample is quiet when the moving RMS is :data:`CLOSURE_DB` below the loudest point of the
    preceding segment (which begins at ``segment_start``, default ``earliest``) or under
    :data:`SILENCE_LEVEL`: eSpeak renders closures as digital silence, or as faint breath noise in
    the breathy (female) variants. The quiet run must end within :data:`CLOSURE_TOLERANCE` samples
    of the stop event, last at least :data:`MIN_CLOSURE_SAMPLES`, and may not reach before ``earliest``.

    >>> x = np.r_[np.ones(300), np.zeros(200), np.ones(100)].astype(np.int16) * 1000
    >>> closure_start(x, 500, earliest=110), closure_start(x, 500, earliest=400)
    (322, 400)
    >>> closure_start(np.full(600, 500, np.int16), 500, earliest=110)
    500
    """
    if segment_start is None:
        segment_start = earliest
    if stop_start - earliest < MIN_CLOSURE_SAMPLES:
        return stop_start
    env = _envelope(audio[segment_start:stop_start])
    threshold = max(env.max() * 10 ** (-CLOSURE_DB / 20), SILENCE_LEVEL)
    quiet = env[earliest - segment_start:] <= threshold
    end = len(quiet)  # skip at most CLOSURE_TOLERANCE loud samples just before the event
    while end > 0 and len(quiet) - end < CLOSURE_TOLERANCE and not quiet[end - 1]:
        end -= 1
    if end == 0 or not quiet[end - 1]:
        return stop_start
    loud = np.flatnonzero(~quiet[:end])
    begin = int(loud[-1]) + 1 if loud.size else 0
    if end - begin < MIN_CLOSURE_SAMPLES:
        return stop_start
    return earliest + begin


def segments_from_events(audio: np.ndarray, phones, language: str) -> list[Segment]:
    """Turn eSpeak phone events into segments that tile ``[0, len(audio))`` exactly.

    Leading and trailing silence become ``sil``, pauses inside ``pau``; stress marks move into
    :attr:`Segment.stress`; stops start at their closure (:func:`closure_start`).
    """
    from ttslab.text.espeak_phones import MARKERS, MERGE_WITH_NEXT, split_stress, to_inventory

    n = len(audio)
    if n == 0 or not phones:
        raise TextError("eSpeak returned no audio or no phones for this text")
    # 1. (label, start, word, stress) for each sounding event, in time order
    raw = []
    carry_start = None
    for ev in phones:
        name, stress = split_stress(ev.name)
        if name in MARKERS:
            continue
        if name in MERGE_WITH_NEXT:
            carry_start = ev.sample if carry_start is None else carry_start
            continue
        label = to_inventory(name, language)
        start = min(ev.sample if carry_start is None else carry_start, n)
        carry_start = None
        raw.append([label, start, -1 if label == "pau" else ev.word, stress if label != "pau" else 0])
    # 2. segments between consecutive starts; drop empty ones, merge neighbouring pauses
    segs: list[list] = []
    if raw and raw[0][1] > 0:
        segs.append(["sil", 0, raw[0][1], -1, 0])
    for i, (label, start, word, stress) in enumerate(raw):
        end = raw[i + 1][1] if i + 1 < len(raw) else n
        if end <= start:
            continue
        if label == "pau" and segs and segs[-1][0] in ("pau", "sil"):
            segs[-1][2] = end
            continue
        segs.append([label, start, end, word, stress])
    if not segs:
        raise TextError("eSpeak produced only silence for this text")
    if segs[-1][0] == "pau":
        segs[-1][0] = "sil"
    elif segs[-1][2] < n:
        segs.append(["sil", segs[-1][2], n, -1, 0])
    # 3. stops start at their closure
    for i in range(1, len(segs)):
        label, prev = segs[i][0], segs[i - 1]
        if label in STOPS and prev[0] not in ("pau", "sil"):
            new_start = closure_start(audio, segs[i][1], earliest=prev[1] + MIN_PHONE_SAMPLES, segment_start=prev[1])
            prev[2] = segs[i][1] = new_start
    segs[0][1], segs[-1][2] = 0, n
    out = [Segment(str(l), int(a), int(b), int(w), int(s)) for l, a, b, w, s in segs]
    for a, b in zip(out, out[1:]):
        assert a.end == b.start and a.start < a.end, (a, b)
    return out


# ---------------------------------------------------------------------------------------------
# Linguistic context a model reads


def phone_context(segments) -> tuple[np.ndarray, np.ndarray]:
    """``(stress, word_position)`` (N,) int64 of labelled segments: stress 0/1/2 and the class of
    :data:`WORD_POSITIONS` (0 none for pauses/silence, 1 initial, 2 medial, 3 final, 4 single-phone word).

    >>> segs = [Segment("sil", 0, 1), Segment("k", 1, 2, 0), Segment("ae", 2, 3, 0, 1), Segment("t", 3, 4, 0),
    ...         Segment("ay", 4, 5, 1, 1), Segment("sil", 5, 6)]
    >>> [a.tolist() for a in phone_context(segs)]
    [[0, 0, 1, 0, 1, 0], [0, 1, 2, 3, 4, 0]]
    """
    segments = list(segments)
    stress = np.array([min(max(int(s.stress), 0), N_STRESS - 1) for s in segments], dtype=np.int64)
    word = np.array([int(s.word) for s in segments])
    pos = np.zeros(len(segments), dtype=np.int64)
    for i, w in enumerate(word):
        if w < 0:
            continue
        first = i == 0 or word[i - 1] != w
        last = i == len(word) - 1 or word[i + 1] != w
        pos[i] = 4 if first and last else 1 if first else 3 if last else 2
    return stress, pos


def model_inputs(segments) -> dict:
    """What the neural models read: ``{"phone_ids", "stress", "word_position"}`` (N,) int64 and
    ``"phones"`` (labels), from labelled segments.

    >>> model_inputs([Segment("sil", 0, 1), Segment("ay", 1, 2, 0, 1), Segment("sil", 2, 3)])["word_position"].tolist()
    [0, 4, 0]
    """
    from ttslab.text.phoneset import phone_id

    segments = list(segments)
    stress, word_position = phone_context(segments)
    return {"phone_ids": np.array([phone_id(s.label) for s in segments], dtype=np.int64), "stress": stress,
            "word_position": word_position, "phones": [s.label for s in segments]}


def as_segments(item) -> list:
    """Segments (label, word, stress) from a list of Segments, or of phone strings like ``"ah1"``.

    Phone strings get ``sil`` at both ends when missing; every label is checked against the inventory.

    >>> [(s.label, s.stress) for s in as_segments(["hh", "ah0", "l", "ow1"])][:3]
    [('sil', 0), ('hh', 0), ('ah', 0)]
    """
    from ttslab.text.phoneset import split_stress, validate_phones

    items = list(item)
    if not items:
        raise ValueError("empty phone sequence: give at least one phone")
    if all(isinstance(p, str) for p in items):
        parsed = [split_stress(p) if p[-1:] in "012" and not p.isdigit() else (p, 0) for p in items]
        validate_phones([p for p, _ in parsed])  # names every unknown phone
        labels = [PhoneLabel(p, -1 if p in SILENCE_PHONES else 0, s) for p, s in parsed]
        if labels[0].label != "sil":
            labels.insert(0, PhoneLabel("sil"))
        if labels[-1].label != "sil":
            labels.append(PhoneLabel("sil"))
        return labels
    if not all(hasattr(s, "label") for s in items):
        raise TypeError("give text (str), a list of phone strings, or a list of Segments (label, word, stress)")
    validate_phones([s.label for s in items])
    return items


# ---------------------------------------------------------------------------------------------
# The whole path


@dataclass(frozen=True)
class Analysis:
    """What the front-end makes of one text: the normalized words, eSpeak's rendering and its segments."""

    text: str
    normalized: str
    voice: EspeakVoice
    segments: tuple[Segment, ...]
    words: tuple[str, ...]
    audio: np.ndarray = field(repr=False)  # eSpeak's own audio (int16), whose timing the segments carry
    sample_rate: int
    events: tuple = field(repr=False, default=())  # eSpeak's phone events (mnemonic, sample, word) behind the segments

    @property
    def phones(self) -> list[str]:
        return [s.label for s in self.segments]

    def inputs(self) -> dict:
        """The neural models' inputs (:func:`model_inputs`)."""
        return model_inputs(self.segments)

    def contexts(self) -> list[dict]:
        """Full linguistic contexts of the phones (:func:`ttslab.text.context.contexts_from_segments`)."""
        from ttslab.text.context import contexts_from_segments

        return contexts_from_segments(self.segments)


def analyze(text: str, voice: EspeakVoice | Mapping | str = EspeakVoice(), *, on_unknown: str = "raise") -> Analysis:
    """Text -> :class:`Analysis`: check, normalize, eSpeak NG in ``voice``'s accent, segments.

    ``voice`` is an :class:`EspeakVoice`, a dict of its fields, or an eSpeak voice name (English).
    Errors speak about the text: other scripts, emoji, broken Unicode and empty text raise
    :class:`TextError` before eSpeak runs.
    """
    from ttslab.text import espeak

    if isinstance(voice, str):
        voice = EspeakVoice(voice)
    elif not isinstance(voice, EspeakVoice):
        voice = EspeakVoice.from_dict(voice)
    normalized = normalize(text, voice.language, on_unknown=on_unknown)
    syn = espeak.synthesize(normalized, voice.voice, rate=voice.rate, pitch=voice.pitch, pitch_range=voice.pitch_range)
    try:
        segments = segments_from_events(syn.audio, syn.phones, voice.language)
    except ValueError as exc:  # a phone no table maps: eSpeak switched language or spelled something out
        raise TextError(f"eSpeak read {text!r} with the {voice.voice} voice in a way the {voice.language} phone "
                        f"table cannot label ({exc}). Write the text in {voice.language} words and Latin letters, "
                        "or choose a voice of the text's language") from None
    return Analysis(text, normalized, voice, tuple(segments), tuple(syn.words), syn.audio, syn.sample_rate,
                    tuple(syn.phones))


def segments_for(item, voice: EspeakVoice | Mapping | str) -> list:
    """The phone segments a model synthesizes for ``item``: text (through :func:`analyze`), an
    utterance (its own labels, which the corpus got from :func:`analyze`, else its text), or a list
    of phones or segments (:func:`as_segments`)."""
    if isinstance(item, str):
        return list(analyze(item, voice).segments)
    if hasattr(item, "segments") and hasattr(item, "text"):
        return list(item.segments) if item.segments is not None else list(analyze(item.text, voice).segments)
    return as_segments(item)


__all__ = ["LANGUAGES", "WORD_POSITIONS", "N_STRESS", "SILENCE_PHONES", "TextError", "EspeakVoice", "PhoneLabel",
           "Analysis", "check_text", "normalize", "closure_start", "segments_from_events", "phone_context",
           "model_inputs", "as_segments", "analyze", "segments_for"]
