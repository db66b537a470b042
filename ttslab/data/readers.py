"""Readers for real speech corpora, each in the layout its publisher ships.

Every reader returns a :class:`~ttslab.data.corpus.Corpus` built the same way:

* utterances sorted deterministically (natural order of speaker, then utterance id, so
  ``p225_002`` comes before ``p225_010`` and speaker ``84`` before ``1034``);
* ``segments=None``: these corpora ship text, not phone timings;
* ``language="en"``;
* ``sample_rate`` and ``num_samples`` read from each file's header with ``soundfile.info``
  (fast, no audio decoded); utterances keep their native rate, and
  :meth:`Utterance.load_audio(sample_rate=...) <ttslab.data.corpus.Utterance.load_audio>`
  resamples on request. ``corpus.info["sample_rate"]`` is the rate of the first file;
* ``split`` from a fixed rule, :func:`assign_split`: the first 8 hex digits of the SHA-256
  of a key, modulo 10000, below ``TEST_PERCENT * 100`` (5 %) means ``"test"``, anything else
  ``"train"``. The key is the utterance id, except for ARCTIC where it is the prompt id, so a
  sentence is in the test split for every voice at once (ARCTIC voices read the same prompts).
  The rule depends on nothing but the key: adding or removing files never moves an utterance
  to another split;
* files with text but no audio, or audio but no text, are skipped and counted in
  ``corpus.info["skipped_no_text"]``, ``corpus.info["skipped_no_audio"]`` and
  ``corpus.info["skipped_ids"]``.

A missing corpus raises :class:`~ttslab.data.corpus.CorpusNotFoundError` whose message names
the missing path and the command that fetches the corpus (``data_scripts/fetch_*.py``); a
malformed metadata line raises :class:`ValueError` naming the file and the line number.

Every text file (``metadata.csv``, transcripts, prompt lists) is read as UTF-8, with or without
a byte-order mark (``utf-8-sig``: spreadsheet programs and Windows editors add one when they save).
A file that is not UTF-8 raises :class:`TextEncodingError` naming the file, the line, the byte and
how to convert it, rather than a bare ``UnicodeDecodeError`` or silently replaced characters.

Each reader accepts either the corpus folder itself or the folder that holds it under its
usual name (``LJSpeech-1.1``, ``VCTK-Corpus-0.92``, ``LibriTTS``, ``cmu_arctic`` ...), so
``read_ljspeech("data/corpora")`` and ``read_ljspeech("data/corpora/LJSpeech-1.1")`` agree.

For corpora with hundreds of thousands of files (LibriTTS in full) pass
``probe_audio=False`` to skip the per-file header reads: ``num_samples`` is then ``None`` and
every utterance is assumed to have the rate of the first file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ttslab.data.corpus import Corpus, CorpusNotFoundError, Utterance
from ttslab.io import AudioFileError

__all__ = [
    "TEST_PERCENT", "LIBRITTS_SUBSETS", "READERS", "TextEncodingError", "assign_split",
    "read_ljspeech", "read_vctk", "read_libritts", "read_arctic", "read_corpus",
]

TEST_PERCENT = 5.0
"""Share of utterances (in percent) that :func:`assign_split` puts in the ``"test"`` split."""

LIBRITTS_SUBSETS = (
    "dev-clean", "dev-other", "test-clean", "test-other",
    "train-clean-100", "train-clean-360", "train-other-500",
)
"""The subset folders LibriTTS is published as (one archive each)."""

VCTK_MICS = ("mic1", "mic2")


# --------------------------------------------------------------------------- shared helpers

class TextEncodingError(ValueError):
    """A corpus text file is not UTF-8; the message names the file, line and byte, and the fix."""


def _read_text(path: Path) -> str:
    r"""The text of a corpus file: UTF-8, a leading byte-order mark dropped; :class:`TextEncodingError` if not UTF-8.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "metadata.csv"
    >>> _ = p.write_bytes(codecs.BOM_UTF8 + "LJ001-0001|Café|Café\n".encode())
    >>> _read_text(p)
    'LJ001-0001|Café|Café\n'
    >>> _ = p.write_bytes(b"LJ001-0001|ok|ok\nLJ001-0002|Caf\xe9|Caf\xe9\n")
    >>> _read_text(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ttslab.data.readers.TextEncodingError: ...metadata.csv:2: byte 0xE9 at column 15 is not UTF-8...
    """
    data = path.read_bytes()
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, body, exc) from None


def _encoding_error(path: Path, data: bytes, exc: UnicodeDecodeError) -> TextEncodingError:
    """Where the first non-UTF-8 byte is (1-based line and column, as editors count) and how to convert the file."""
    line_start = data.rfind(b"\n", 0, exc.start) + 1
    line_no = data.count(b"\n", 0, exc.start) + 1
    line = data[line_start:data.find(b"\n", exc.start) if b"\n" in data[exc.start:] else len(data)]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows' "Unicode" = UTF-16
        guess, source = "it starts with a UTF-16 byte-order mark", "utf-16"
    else:
        try:  # most other non-UTF-8 text files are Windows-1252 (a superset of Latin-1 for printable text)
            shown = line.decode("cp1252").strip()
            guess, source = f"it reads as Windows-1252/Latin-1: {shown[:80]!r}", "cp1252"
        except UnicodeDecodeError:
            guess, source = "its encoding is unknown", "<its encoding>"
    return TextEncodingError(
        f"{path}:{line_no}: byte 0x{data[exc.start]:02X} at column {exc.start - line_start + 1} is not UTF-8 "
        f"({guess}); corpus text must be UTF-8. Convert the file, e.g. `iconv -f {source.upper()} -t UTF-8 "
        f"{path.name} > fixed && mv fixed {path.name}`, or in Python: p.write_text(p.read_text(encoding="
        f"{source!r}), encoding='utf-8')")

def assign_split(key: str, test_percent: float = TEST_PERCENT) -> str:
    """``"test"`` for about ``test_percent`` % of keys, else ``"train"``; depends only on ``key``.

    >>> assign_split("LJ001-0001") == assign_split("LJ001-0001")
    True
    """
    bucket = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % 10000
    return "test" if bucket < round(test_percent * 100) else "train"


def _natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: ``p2 < p10``, ``84 < 1034``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _fetch_hint(script: str, dest: Path, extra: str = "") -> str:
    return f"run `python data_scripts/{script} --dest {dest}{extra}` (see data_scripts/README.md)"


def _dest_for(root: Path, usual_name: str) -> Path:
    """The ``--dest`` to suggest: the parent when ``root`` carries the corpus' usual name."""
    return root.parent if root.name == usual_name else root


def _require_dir(root: Path, corpus_title: str, hint: str) -> None:
    if not root.is_dir():
        raise CorpusNotFoundError(f"{corpus_title} not found: {root} is not a folder. To fetch it, {hint}")


def _locate(root: Path, marker: str, usual_names: Iterable[str]) -> Path | None:
    """``root`` if ``root/marker`` exists, else ``root/<usual name>`` holding it, else None."""
    if (root / marker).exists():
        return root
    for name in usual_names:
        if (root / name / marker).exists():
            return root / name
    return None


def _probe(path: Path) -> tuple[int, int]:
    """``(sample_rate, num_samples)`` from the file header only."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for bad headers
        raise AudioFileError(f"cannot read the audio header of {path} ({exc}); the file is corrupt or truncated") from exc
    return int(info.samplerate), int(info.frames)


@dataclass
class _Entry:
    """One utterance found on disk, before its audio header is read."""

    id: str
    speaker: str
    text: str
    audio_path: Path
    split_key: str


@dataclass
class _Skipped:
    no_text: list[str] = field(default_factory=list)
    no_audio: list[str] = field(default_factory=list)


def _build_corpus(name: str, root: Path, entries: list[_Entry], skipped: _Skipped, probe_audio: bool,
                  extra_info: dict, empty_hint: str, split_key: str = "utterance id") -> Corpus:
    """Sort entries, read headers, assign splits and wrap everything in a :class:`Corpus`."""
    if not entries:
        raise CorpusNotFoundError(f"{name}: no utterance with both text and audio under {root}. {empty_hint}")
    entries = sorted(entries, key=lambda e: (_natural_key(e.speaker), _natural_key(e.id)))
    corpus_rate, _ = _probe(entries[0].audio_path)
    utterances = []
    for e in entries:
        rate, frames = _probe(e.audio_path) if probe_audio else (corpus_rate, None)
        utterances.append(Utterance(
            id=e.id, speaker=e.speaker, text=e.text, wav_path=e.audio_path, sample_rate=rate,
            language="en", split=assign_split(e.split_key), segments=None, num_samples=frames,
        ))
    info = {
        "source": name,
        "sample_rate": corpus_rate,
        "sample_rates": sorted({u.sample_rate for u in utterances}),
        "split_rule": f"sha256(key)[:8] % 10000 < {round(TEST_PERCENT * 100)} -> test (key: {split_key})",
        "skipped_no_text": len(skipped.no_text),
        "skipped_no_audio": len(skipped.no_audio),
        "skipped_ids": sorted(skipped.no_text + skipped.no_audio, key=_natural_key),
        **extra_info,
    }
    return Corpus(name, utterances, root=root, info=info)


# --------------------------------------------------------------------------- LJSpeech

def read_ljspeech(root: str | Path, *, probe_audio: bool = True) -> Corpus:
    """Read LJSpeech-1.1 (one female speaker reading non-fiction, 13,100 clips, 22,050 Hz).

    Expected layout (as extracted from ``LJSpeech-1.1.tar.bz2``)::

        LJSpeech-1.1/                 <- root (or its parent)
        ├── metadata.csv              id|raw text|normalized text   (no header, no quoting)
        ├── README
        └── wavs/
            ├── LJ001-0001.wav
            └── ...

    Speaker is ``"LJ"``; text is the normalized column (numbers and abbreviations spelled
    out). Metadata rows whose WAV is missing are skipped and counted.
    """
    given = Path(root)
    hint = _fetch_hint("fetch_ljspeech.py", _dest_for(given, "LJSpeech-1.1"))
    _require_dir(given, "LJSpeech", hint)
    root = _locate(given, "metadata.csv", ["LJSpeech-1.1"])
    if root is None:
        raise CorpusNotFoundError(
            f"LJSpeech metadata not found: {given / 'metadata.csv'} is missing (nor is there "
            f"{given / 'LJSpeech-1.1' / 'metadata.csv'}). To fetch the corpus, {hint}")
    wav_dir = root / "wavs"
    if not wav_dir.is_dir():
        raise CorpusNotFoundError(f"LJSpeech audio folder {wav_dir} is missing (interrupted extraction?). To fetch it again, {hint}")

    rows = _read_ljspeech_metadata(root / "metadata.csv")
    on_disk = {p.stem: p for p in wav_dir.glob("*.wav")}
    entries, skipped = [], _Skipped()
    for utt_id, text in rows:
        if utt_id in on_disk:
            entries.append(_Entry(utt_id, "LJ", text, on_disk[utt_id], utt_id))
        else:
            skipped.no_audio.append(utt_id)
    skipped.no_text = sorted(set(on_disk) - {utt_id for utt_id, _ in rows})
    return _build_corpus("ljspeech", root, entries, skipped, probe_audio, {}, hint)


def _read_ljspeech_metadata(path: Path) -> list[tuple[str, str]]:
    """``(id, normalized text)`` per line of ``metadata.csv``; ValueError on a malformed line."""
    rows = []
    seen = set()
    with io.StringIO(_read_text(path), newline="") as f:  # newline="": csv sees the lines as written
        for line_no, fields in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), start=1):
            if not fields or fields == [""]:
                continue
            if len(fields) != 3:
                raise ValueError(f"{path}:{line_no}: expected 3 '|'-separated fields "
                                 f"(id|raw text|normalized text), found {len(fields)}")
            utt_id, _raw, normalized = (x.strip() for x in fields)
            if not utt_id or not normalized:
                raise ValueError(f"{path}:{line_no}: empty {'id' if not utt_id else 'normalized text'}")
            if utt_id in seen:
                raise ValueError(f"{path}:{line_no}: duplicate id {utt_id!r}")
            seen.add(utt_id)
            rows.append((utt_id, normalized))
    return rows


# --------------------------------------------------------------------------- VCTK

def read_vctk(root: str | Path, mic: str = "mic1", *, probe_audio: bool = True) -> Corpus:
    """Read the CSTR VCTK corpus (110 English speakers with various accents, 48 kHz).

    Version 0.92 (``VCTK-Corpus-0.92.zip``, FLAC, two microphones, silence trimmed)::

        VCTK-Corpus-0.92/                     <- root (or its parent)
        ├── speaker-info.txt
        ├── txt/
        │   └── p225/
        │       ├── p225_001.txt              one line: the prompt
        │       └── ...
        └── wav48_silence_trimmed/
            └── p225/
                ├── p225_001_mic1.flac        ``mic`` picks _mic1 or _mic2
                ├── p225_001_mic2.flac
                └── ...

    Version 0.80 (``VCTK-Corpus.tar.gz``, one microphone; ``mic`` is ignored)::

        VCTK-Corpus/
        ├── txt/p225/p225_001.txt
        └── wav48/p225/p225_001.wav

    Utterance ids are ``<speaker>_<nnn>`` (``p225_001``) in both versions. Utterances without
    text (all of speaker p315, whose transcripts were lost) or without audio are skipped and
    counted in ``corpus.info``. ``corpus.info["layout"]`` says which version was read.
    """
    if mic not in VCTK_MICS:
        raise ValueError(f"mic must be one of {VCTK_MICS}, got {mic!r}")
    given = Path(root)
    hint = _fetch_hint("fetch_vctk.py", _dest_for(given, "VCTK-Corpus-0.92"))
    _require_dir(given, "VCTK", hint)
    root = _locate(given, "txt", ["VCTK-Corpus-0.92", "VCTK-Corpus"])
    if root is None:
        raise CorpusNotFoundError(
            f"VCTK transcripts not found: {given / 'txt'} is missing (nor is there a "
            f"VCTK-Corpus-0.92/txt or VCTK-Corpus/txt inside {given}). To fetch the corpus, {hint}")
    if (root / "wav48_silence_trimmed").is_dir():
        layout, audio = "0.92", _vctk_audio(root / "wav48_silence_trimmed", f"*_{mic}.flac", f"_{mic}")
    elif (root / "wav48").is_dir():
        layout, audio = "0.80", _vctk_audio(root / "wav48", "*.wav", "")
    else:
        raise CorpusNotFoundError(
            f"VCTK audio not found: neither {root / 'wav48_silence_trimmed'} (version 0.92) nor "
            f"{root / 'wav48'} (version 0.80) exists. To fetch the corpus, {hint}")

    texts = {p.stem: p for p in (root / "txt").glob("*/*.txt")}
    entries, skipped = [], _Skipped()
    for utt_id in sorted(set(texts) | set(audio), key=_natural_key):
        text = _read_text(texts[utt_id]).strip() if utt_id in texts else ""
        if utt_id not in audio:
            skipped.no_audio.append(utt_id)
        elif not text:
            skipped.no_text.append(utt_id)
        else:
            speaker = audio[utt_id].parent.name
            entries.append(_Entry(utt_id, speaker, " ".join(text.split()), audio[utt_id], utt_id))
    extra = {"layout": layout, "mic": mic if layout == "0.92" else None}
    return _build_corpus("vctk", root, entries, skipped, probe_audio, extra, hint)


def _vctk_audio(audio_dir: Path, pattern: str, suffix: str) -> dict[str, Path]:
    """Utterance id -> audio file, with the microphone suffix removed from the id."""
    found = {}
    for path in audio_dir.glob(f"*/{pattern}"):
        stem = path.stem
        found[stem[: len(stem) - len(suffix)] if suffix else stem] = path
    return found


# --------------------------------------------------------------------------- LibriTTS

def read_libritts(root: str | Path, subsets: str | Iterable[str] | None = None, *, probe_audio: bool = True) -> Corpus:
    """Read LibriTTS (audiobook speech from LibriSpeech, re-segmented for TTS, 24 kHz).

    Expected layout (each ``<subset>.tar.gz`` extracts into ``LibriTTS/<subset>/``)::

        LibriTTS/                                   <- root (or its parent)
        ├── dev-clean/                              one folder per downloaded subset
        │   └── 84/                                 speaker
        │       └── 121123/                         chapter (book section)
        │           ├── 84_121123_000007_000000.wav
        │           ├── 84_121123_000007_000000.normalized.txt   <- text used
        │           ├── 84_121123_000007_000000.original.txt
        │           └── 84_121123.trans.tsv
        └── train-clean-100/ ...

    ``subsets`` picks subset folders (a name or a list, from :data:`LIBRITTS_SUBSETS`); by
    default every one present is read. Speaker is the speaker folder name. WAVs without a
    ``.normalized.txt`` are skipped and counted. ``corpus.info["subsets"]`` lists what was read.
    """
    given = Path(root)
    hint = _fetch_hint("fetch_libritts.py", _dest_for(given, "LibriTTS"))
    _require_dir(given, "LibriTTS", hint)
    root = next((c for c in (given, given / "LibriTTS") if any((c / s).is_dir() for s in LIBRITTS_SUBSETS)), None)
    wanted = _libritts_subsets(subsets)
    if root is None:
        raise CorpusNotFoundError(
            f"LibriTTS not found: {given} holds none of the subset folders {list(LIBRITTS_SUBSETS)} "
            f"(nor does {given / 'LibriTTS'}). To fetch e.g. dev-clean, {hint} --subsets dev-clean")
    if wanted is None:
        wanted = [s for s in LIBRITTS_SUBSETS if (root / s).is_dir()]
    missing = [s for s in wanted if not (root / s).is_dir()]
    if missing:
        raise CorpusNotFoundError(
            f"LibriTTS subset folder(s) missing: {', '.join(str(root / s) for s in missing)}. To fetch them, "
            + _fetch_hint("fetch_libritts.py", _dest_for(root, "LibriTTS"), " --subsets " + " ".join(missing)))

    entries, skipped = [], _Skipped()
    for subset in wanted:
        _collect_libritts_subset(root / subset, entries, skipped)
    return _build_corpus("libritts", root, entries, skipped, probe_audio, {"subsets": wanted}, hint)


def _libritts_subsets(subsets: str | Iterable[str] | None) -> list[str] | None:
    if subsets is None:
        return None
    wanted = [subsets] if isinstance(subsets, str) else list(subsets)
    unknown = [s for s in wanted if s not in LIBRITTS_SUBSETS]
    if unknown:
        raise ValueError(f"unknown LibriTTS subset(s) {unknown}; choose from {list(LIBRITTS_SUBSETS)}")
    return list(dict.fromkeys(wanted))


def _collect_libritts_subset(subset_dir: Path, entries: list[_Entry], skipped: _Skipped) -> None:
    """Add the utterances of ``<subset>/<speaker>/<chapter>/*.wav`` to ``entries``."""
    wavs = {p.name[: -len(".wav")]: p for p in subset_dir.glob("*/*/*.wav")}
    texts = {p.name[: -len(".normalized.txt")]: p for p in subset_dir.glob("*/*/*.normalized.txt")}
    for utt_id in sorted(set(wavs) | set(texts), key=_natural_key):
        text = _read_text(texts[utt_id]).strip() if utt_id in texts else ""
        if utt_id not in wavs:
            skipped.no_audio.append(utt_id)
        elif not text:
            skipped.no_text.append(utt_id)
        else:
            speaker = wavs[utt_id].parent.parent.name
            entries.append(_Entry(utt_id, speaker, " ".join(text.split()), wavs[utt_id], utt_id))


# --------------------------------------------------------------------------- CMU ARCTIC

_ARCTIC_VOICE_DIR = re.compile(r"^cmu_us_([a-z0-9]+)_arctic$")
_ARCTIC_PROMPT_LINE = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)$')


def read_arctic(root: str | Path, *, probe_audio: bool = True) -> Corpus:
    """Read CMU ARCTIC voices (about 1,130 phonetically balanced prompts per voice, 16 kHz).

    ARCTIC is a *parallel* corpus: every voice reads the same prompts. Utterance ids are
    therefore ``<voice>_<prompt id>`` (``slt_arctic_a0001``), and the split is assigned per
    prompt, so a sentence held out for testing is held out for every voice (no test sentence
    leaks into training through another speaker).

    Either one voice folder, as extracted from ``cmu_us_slt_arctic.tar.bz2``::

        cmu_us_slt_arctic/                  <- root
        ├── etc/
        │   └── txt.done.data               ( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )
        └── wav/
            ├── arctic_a0001.wav
            └── ...

    or a folder holding several voice folders (``cmu_us_bdl_arctic/``, ``cmu_us_slt_arctic/``,
    ...). Speaker is the voice code from the folder name (``slt``, ``bdl``, ``clb`` ...).
    """
    given = Path(root)
    hint = _fetch_hint("fetch_arctic.py", given.parent if _ARCTIC_VOICE_DIR.match(given.name) else given)
    _require_dir(given, "CMU ARCTIC", hint)
    if (given / "etc" / "txt.done.data").is_file():
        voice_dirs = [given]
    else:
        voice_dirs = sorted((d for d in given.iterdir() if d.is_dir() and _ARCTIC_VOICE_DIR.match(d.name)),
                            key=lambda d: d.name)
        if not voice_dirs and (given / "cmu_arctic").is_dir():
            return read_arctic(given / "cmu_arctic", probe_audio=probe_audio)
    if not voice_dirs:
        raise CorpusNotFoundError(
            f"CMU ARCTIC not found: {given / 'etc' / 'txt.done.data'} is missing and {given} holds no "
            f"cmu_us_<voice>_arctic folders. To fetch voices, {hint}")

    entries, skipped, voices = [], _Skipped(), []
    for voice_dir in voice_dirs:
        voices.append(_collect_arctic_voice(voice_dir, entries, skipped, hint))
    return _build_corpus("arctic", given, entries, skipped, probe_audio, {"voices": voices}, hint,
                         split_key="prompt id (same split for every voice)")


def _arctic_voice_code(voice_dir: Path) -> str:
    match = _ARCTIC_VOICE_DIR.match(voice_dir.name)
    return match.group(1) if match else voice_dir.name


def _collect_arctic_voice(voice_dir: Path, entries: list[_Entry], skipped: _Skipped, hint: str) -> str:
    """Add one voice's utterances to ``entries``; return its voice code."""
    voice = _arctic_voice_code(voice_dir)
    prompts_file = voice_dir / "etc" / "txt.done.data"
    if not prompts_file.is_file():
        raise CorpusNotFoundError(f"CMU ARCTIC prompts file {prompts_file} is missing. To fetch the voice again, {hint}")
    prompts = _read_arctic_prompts(prompts_file)
    wavs = {p.stem: p for p in (voice_dir / "wav").glob("*.wav")}
    for prompt_id in sorted(set(prompts) | set(wavs), key=_natural_key):
        utt_id = f"{voice}_{prompt_id}"
        if prompt_id not in wavs:
            skipped.no_audio.append(utt_id)
        elif prompt_id not in prompts:
            skipped.no_text.append(utt_id)
        else:
            entries.append(_Entry(utt_id, voice, prompts[prompt_id], wavs[prompt_id], prompt_id))
    return voice


def _read_arctic_prompts(path: Path) -> dict[str, str]:
    """Prompt id -> text from a festival ``txt.done.data`` file; ValueError on a malformed line."""
    prompts = {}
    for line_no, line in enumerate(_read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        match = _ARCTIC_PROMPT_LINE.match(line)
        if match is None:
            raise ValueError(f'{path}:{line_no}: expected a line like ( arctic_a0001 "text" ), found {line[:80]!r}')
        prompt_id, text = match.groups()
        if prompt_id in prompts:
            raise ValueError(f"{path}:{line_no}: duplicate prompt id {prompt_id!r}")
        prompts[prompt_id] = " ".join(text.split())
    return prompts


# --------------------------------------------------------------------------- dispatcher

READERS: dict[str, Callable[..., Corpus]] = {
    "ljspeech": read_ljspeech,
    "vctk": read_vctk,
    "libritts": read_libritts,
    "arctic": read_arctic,
}
"""Corpus name -> reader, as used by :func:`read_corpus`."""


def read_corpus(name: str, root: str | Path, **options) -> Corpus:
    """Read corpus ``name`` (``"ljspeech"``, ``"vctk"``, ``"libritts"`` or ``"arctic"``) from ``root``.

    ``options`` go to the reader (e.g. ``mic="mic2"`` for VCTK, ``subsets=["dev-clean"]`` for
    LibriTTS, ``probe_audio=False`` for any).
    """
    key = name.strip().lower().replace("-", "").replace("_", "")
    key = {"lj": "ljspeech", "cmuarctic": "arctic"}.get(key, key)
    if key not in READERS:
        raise ValueError(f"unknown corpus {name!r}; known corpora: {sorted(READERS)}")
    return READERS[key](root, **options)
