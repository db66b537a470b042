"""A small ctypes binding to eSpeak NG: synthesis with exact phone timings, and phonemization.

The library and its voice data come from the PyPI wheel ``espeakng-loader`` (libespeak-ng 1.52);
where no wheel fits, a system ``libespeak-ng`` is used (``TTSLAB_ESPEAK_LIBRARY`` and
``TTSLAB_ESPEAK_DATA`` point at another build).

How timings are obtained: the library is initialised with ``AUDIO_OUTPUT_SYNCHRONOUS`` and
``espeakINITIALIZE_PHONEME_EVENTS``; the synthesis callback then receives the audio in chunks
together with ``espeakEVENT_PHONEME`` events whose ``sample`` field is the exact start sample of
each phone (``audio_position`` is only in truncated milliseconds).

Why a forked child per call: eSpeak keeps function-static state (a pitch-flutter counter) that
advances with every utterance, so the same text synthesized twice in one process differs by a few
milliseconds. Each call therefore runs in a freshly forked child of a process that initialised the
library but never synthesized, which makes every call byte-reproducible
(``reproducible=False`` synthesizes in-process, slightly faster, without that guarantee).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Constants of speak_lib.h (eSpeak NG 1.52).
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_SENTENCE, EVENT_END, EVENT_PHONEME = 0, 1, 2, 5, 7
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
PHONEMES_IPA = 0x02
PHONEMES_TIE = 0x80

#: Seed of eSpeak's random generator (breath noise), set before every utterance.
RANDOM_SEED = 1
#: Longest text accepted in one call; longer text should be split into sentences.
MAX_TEXT_CHARS = 2000


class ESpeakError(RuntimeError):
    """eSpeak NG is missing or failed."""


class UnknownVoiceError(ESpeakError, ValueError):
    """The requested voice (or voice+variant) does not exist."""


class _Event(ctypes.Structure):
    """``espeak_EVENT``: 40 bytes on x86-64; the union at offset 32 holds the phone name."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class PhoneEvent:
    """A phone as eSpeak reports it: its name (stress marks kept), start sample and word."""

    name: str
    sample: int
    word: int  # index into Synthesis.words, -1 before the first word


@dataclass(frozen=True)
class Synthesis:
    """The result of :func:`synthesize`."""

    audio: np.ndarray  # int16, mono
    sample_rate: int
    phones: tuple[PhoneEvent, ...]
    words: tuple[str, ...]  # the text of each word event, in order
    voice: str

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def float_audio(self) -> np.ndarray:
        """Audio as float32 in [-1, 1)."""
        return self.audio.astype(np.float32) / 32768.0


# ---------------------------------------------------------------------------------------------
# Loading and initialising the library (once per process)

_lock = threading.Lock()
_state: dict = {}


def _locate() -> tuple[str, str | None]:
    """(library path, data path or None for the library's default)."""
    lib = os.environ.get("TTSLAB_ESPEAK_LIBRARY")
    data = os.environ.get("TTSLAB_ESPEAK_DATA")
    if lib:
        return lib, data
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), data or espeakng_loader.get_data_path()
    except Exception:  # wheel missing or built for another platform
        pass
    import ctypes.util

    for name in ("espeak-ng", "libespeak-ng.so.1", "libespeak-ng.so"):
        found = ctypes.util.find_library(name) or (name if name.endswith((".so", ".so.1")) else None)
        if found:
            try:
                ctypes.CDLL(found)
                return found, data
            except OSError:
                continue
    raise ESpeakError(
        "eSpeak NG was not found: install the wheel with `pip install espeakng-loader` "
        "(bundles libespeak-ng and its data), or a system package such as `apt-get install "
        "libespeak-ng1`, or set TTSLAB_ESPEAK_LIBRARY to a libespeak-ng shared library."
    )


def _library():
    """The initialised library handle (loads and initialises on first use)."""
    with _lock:
        if _state.get("pid") == os.getpid():
            return _state["lib"]
        if "lib" in _state and _state.get("pid") != os.getpid():
            # A forked child inherits the parent's initialised library: reuse it.
            _state["pid"] = os.getpid()
            return _state["lib"]
        path, data = _locate()
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise ESpeakError(f"cannot load eSpeak NG from {path}: {exc}") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        if data is not None and not Path(data, "phontab").is_file():
            raise ESpeakError(f"eSpeak NG data folder {data} has no 'phontab'; reinstall espeakng-loader")
        sr = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None,
                                   INITIALIZE_PHONEME_EVENTS)
        if sr <= 0:
            raise ESpeakError(f"espeak_Initialize failed (returned {sr}); data path: {data}")
        sink: dict = {"chunks": [], "events": []}

        def on_audio(wav, n, events):
            if n > 0:
                sink["chunks"].append(np.ctypeslib.as_array(wav, (n,)).copy())
            i = 0
            while events[i].type != EVENT_LIST_TERMINATED:
                e = events[i]
                sink["events"].append((e.type, e.sample, e.text_position, e.length, e.id if e.type == EVENT_PHONEME else b""))
                i += 1
            return 0

        callback = _CALLBACK(on_audio)
        lib.espeak_SetSynthCallback(callback)
        _state.update(lib=lib, pid=os.getpid(), sample_rate=sr, sink=sink, callback=callback, path=path, data=data)
        return lib


def version() -> str:
    """The eSpeak NG version string, e.g. ``'1.52.0'``."""
    return _library().espeak_Info(None).decode()


def sample_rate() -> int:
    """The library's output rate (22050 Hz for eSpeak NG)."""
    _library()
    return _state["sample_rate"]


def library_info() -> dict:
    """Where the library and data were loaded from, and its version."""
    _library()
    return {"version": version(), "library": _state["path"], "data": _state["data"], "sample_rate": _state["sample_rate"]}


def list_voices() -> list[str]:
    """Voice file names (usable as voice names, optionally with ``+variant``)."""
    _library()
    data = _state["data"]
    if data is None:
        return []
    return sorted(p.name for p in Path(data, "voices").rglob("*") if p.is_file() and p.parent.name != "!v")


def list_variants() -> list[str]:
    """Variant names (``m1`` … ``f5``, ``klatt`` …) for ``voice+variant``."""
    _library()
    data = _state["data"]
    return [] if data is None else sorted(p.name for p in Path(data, "voices", "!v").iterdir())


# ---------------------------------------------------------------------------------------------
# Calls, run in a forked child for reproducibility

def run_forked(fn, *args):
    """Run ``fn(*args)`` in a forked child and return its (pickled) result or re-raise its error."""
    _library()  # initialise in the parent so children start from the same, never-used state
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            payload = pickle.dumps((True, fn(*args)))
        except BaseException as exc:  # send any error back to the parent
            payload = pickle.dumps((False, exc))
        with os.fdopen(write_fd, "wb") as f:
            f.write(struct.pack("<Q", len(payload)))
            f.write(payload)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        header = f.read(8)
        data = f.read(struct.unpack("<Q", header)[0]) if len(header) == 8 else b""
    _, status = os.waitpid(pid, 0)
    if not data:
        raise ESpeakError(f"eSpeak worker process died (status {status})")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


def preload_voice(voice: str) -> None:
    """Load ``voice`` into this process' eSpeak now, so that forked children inherit it loaded.

    The corpus builder does this once per speaker chunk: setting a voice costs ~7 ms, and each
    utterance is then synthesized in a fork of this pristine, voice-loaded process.
    """
    _set_voice(_library(), voice)


def _set_voice(lib, voice: str) -> None:
    if not voice or not isinstance(voice, str):
        raise UnknownVoiceError(f"voice must be a non-empty string, got {voice!r}")
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        hint = " (eSpeak names British English 'en', not 'en-gb')" if voice.startswith("en-gb") else ""
        raise UnknownVoiceError(
            f"eSpeak NG has no voice {voice!r}{hint}; see ttslab.text.espeak.list_voices() and "
            f"list_variants() (a variant is added as 'voice+variant', e.g. 'en+f3')"
        )


def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not any(ch.isalnum() for ch in text):
        raise ValueError(f"nothing to speak in {text!r}: the text is empty or only punctuation/whitespace")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text has {len(text)} characters (limit {MAX_TEXT_CHARS}); split it into sentences "
                         "(ttslab.text.normalize.split_sentences) and synthesize them one by one")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
        bad = sorted({f"U+{ord(ch):04X}" for ch in text if ord(ch) < 32 and ch not in "\t\n\r"})
        raise ValueError(f"text contains control characters {bad}; remove them")
    return text.encode("utf-8") + b"\0"


def _seed_random() -> None:
    """Fix eSpeak's random numbers before each utterance.

    The breath noise of some variants (the female ones) is random; eSpeak NG seeds its generator
    from the clock at initialisation, so without this the same call gives different bytes in
    different processes. ``espeak_ng_SetRandSeed`` appeared in 1.51; older libraries fall back
    to seeding the C library's ``rand()``.
    """
    lib = _state["lib"]
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(ctypes.c_long(RANDOM_SEED))
    else:
        ctypes.CDLL(None).srand(RANDOM_SEED)


def _synthesize_here(text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> Synthesis:
    lib = _library()
    _seed_random()
    sink = _state["sink"]
    sink["chunks"].clear()
    sink["events"].clear()
    _set_voice(lib, voice)
    for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range), (PARAM_VOLUME, 100)):
        lib.espeak_SetParameter(param, int(value), 0)
    data = _check_text(text)
    err = lib.espeak_Synth(data, len(data), 0, 0, 0, CHARS_UTF8, None, None)
    if err != 0:
        raise ESpeakError(f"espeak_Synth failed with code {err}")
    lib.espeak_Synchronize()
    audio = np.concatenate(sink["chunks"]) if sink["chunks"] else np.zeros(0, np.int16)
    raw = text.encode("utf-8")
    words, phones = [], []
    for etype, sample, pos, length, name in sink["events"]:
        if etype == EVENT_WORD:
            # text_position is 1-based; eSpeak counts characters (UTF-8 aware).
            words.append(text[pos - 1:pos - 1 + length] if pos > 0 else "")
        elif etype == EVENT_PHONEME:
            phones.append(PhoneEvent(name.decode("utf-8", "replace"), int(sample), len(words) - 1))
    del raw
    return Synthesis(audio.astype(np.int16), _state["sample_rate"], tuple(phones), tuple(words), voice)


def synthesize(text: str, voice: str = "en-us", *, rate: int = 175, pitch: int = 50, pitch_range: int = 50,
               reproducible: bool = True) -> Synthesis:
    """Synthesize ``text`` with eSpeak NG; return audio (int16, 22050 Hz) and phone events.

    ``voice`` is an eSpeak voice name with an optional variant (``"en-us"``, ``"en+f3"``,
    ``"en-gb-scotland+m7"``); ``rate`` is in words per minute (80–450), ``pitch`` and
    ``pitch_range`` are 0–100. With ``reproducible=True`` (default) the call runs in a forked
    child so the same arguments always give the same bytes.
    """
    if not 80 <= rate <= 450:
        raise ValueError(f"rate must be 80..450 words per minute, got {rate}")
    for name, v in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= v <= 100:
            raise ValueError(f"{name} must be 0..100, got {v}")
    _check_text(text)
    if reproducible and hasattr(os, "fork"):
        return run_forked(_synthesize_here, text, voice, rate, pitch, pitch_range)
    return _synthesize_here(text, voice, rate, pitch, pitch_range)


def _phonemize_here(text: str, voice: str, ipa: bool) -> list[str]:
    lib = _library()
    _set_voice(lib, voice)
    buf = ctypes.c_char_p(_check_text(text))
    mode = (PHONEMES_IPA if ipa else 0) | (ord(" ") << 8)  # bits 8-23: separator between phones
    out = []
    while buf.value:
        chunk = lib.espeak_TextToPhonemes(ctypes.byref(buf), CHARS_UTF8, mode)
        if chunk is None:
            break
        out.append(chunk.decode("utf-8", "replace").strip())
    return [c for c in out if c]


def phonemize(text: str, voice: str = "en-us", *, ipa: bool = False) -> list[list[str]]:
    """eSpeak's phones for ``text``, one list per word (eSpeak mnemonics, or IPA with ``ipa=True``).

    Stress marks (``'`` primary, ``,`` secondary) stay attached to the vowel that follows them.
    """
    clauses = run_forked(_phonemize_here, text, voice, ipa) if hasattr(os, "fork") else _phonemize_here(text, voice, ipa)
    words = []
    for clause in clauses:
        for word in clause.split("  ") if "  " in clause else [clause]:
            phones = [p for p in word.split(" ") if p]
            if phones:
                words.append(phones)
    return words
