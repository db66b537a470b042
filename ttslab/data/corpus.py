"""The corpus interface shared by the built-in corpus and every real-corpus reader.

An :class:`Utterance` is one recording: its text, speaker, audio file and, when the corpus has
timings (the built-in corpus does, real corpora usually do not), its phone :class:`Segment` s.
A :class:`Corpus` is an ordered, filterable collection of utterances.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from ttslab.io import read_wav


class CorpusNotFoundError(FileNotFoundError):
    """A corpus folder or manifest is missing; the message says how to build or fetch it."""


@dataclass(frozen=True)
class Segment:
    """One labelled stretch of an utterance, ``[start, end)`` in samples.

    ``label`` is a phone of :mod:`ttslab.text.phoneset` (or ``pau``/``sil``); ``word`` indexes
    :attr:`Utterance.words` (-1 for pauses); ``stress`` is 0 (none), 1 (primary), 2 (secondary).
    """

    label: str
    start: int
    end: int
    word: int = -1
    stress: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Utterance:
    id: str
    speaker: str
    text: str
    wav_path: Path
    sample_rate: int
    language: str = "en"
    split: str = "train"
    segments: tuple[Segment, ...] | None = None
    words: tuple[str, ...] | None = None
    phones_: tuple[str, ...] | None = field(default=None, repr=False)
    num_samples: int | None = None
    sha256: str | None = field(default=None, repr=False)

    @property
    def phones(self) -> tuple[str, ...] | None:
        """Phone labels (with pauses) from the segments, or the stored phone string."""
        if self.segments is not None:
            return tuple(s.label for s in self.segments)
        return self.phones_

    @property
    def duration(self) -> float | None:
        """Length in seconds, when known without reading the audio."""
        return None if self.num_samples is None else self.num_samples / self.sample_rate

    def load_audio(self, sample_rate: int | None = None) -> np.ndarray:
        """Audio as float32 in [-1, 1], checked against the stored checksum (if any).

        With ``sample_rate`` different from the corpus rate the audio is resampled with librosa.
        """
        audio, sr = read_wav(self.wav_path, sha256=self.sha256)
        if sr != self.sample_rate:
            from ttslab.io import SampleRateError

            raise SampleRateError(f"{self.wav_path} is {sr} Hz but the corpus says {self.sample_rate} Hz")
        if sample_rate is not None and sample_rate != sr:
            import librosa

            audio = librosa.resample(audio, orig_sr=sr, target_sr=sample_rate).astype(np.float32)
        return audio

    def boundaries(self, unit: str = "s") -> np.ndarray:
        """Segment boundaries (starts plus the final end) in seconds (``"s"``) or samples."""
        if self.segments is None:
            raise ValueError(f"utterance {self.id} has no timings")
        b = np.array([s.start for s in self.segments] + [self.segments[-1].end])
        return b / self.sample_rate if unit == "s" else b


class Corpus(Sequence[Utterance]):
    """An ordered collection of utterances with simple filters.

    >>> c = Corpus("demo", [])
    >>> len(c), c.speakers
    (0, [])
    """

    def __init__(self, name: str, utterances: Iterable[Utterance], root: Path | None = None, info: dict | None = None):
        self.name = name
        self.root = Path(root) if root is not None else None
        self.info = dict(info or {})
        self._utts = list(utterances)
        self._by_id = {u.id: u for u in self._utts}
        if len(self._by_id) != len(self._utts):
            raise ValueError(f"corpus {name!r} has duplicate utterance ids")

    def __len__(self) -> int:
        return len(self._utts)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._utts)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._by_id[key]
            except KeyError:
                raise KeyError(f"no utterance {key!r} in corpus {self.name!r}") from None
        if isinstance(key, slice):
            return Corpus(self.name, self._utts[key], self.root, self.info)
        return self._utts[key]

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self)} utterances, {len(self.speakers)} speakers)"

    @property
    def speakers(self) -> list[str]:
        """Speaker ids in first-seen order."""
        return list(dict.fromkeys(u.speaker for u in self._utts))

    @property
    def languages(self) -> list[str]:
        return list(dict.fromkeys(u.language for u in self._utts))

    def filter(self, *, speakers: str | Iterable[str] | None = None, split: str | None = None,
               language: str | None = None, ids: Iterable[str] | None = None) -> "Corpus":
        """A new corpus with the utterances that match every given condition."""
        if isinstance(speakers, str):
            speakers = [speakers]
        spk = None if speakers is None else set(speakers)
        if spk is not None and (unknown := spk - set(self.speakers)):
            raise KeyError(f"unknown speaker(s) {sorted(unknown)}; this corpus has {self.speakers}")
        wanted = None if ids is None else set(ids)
        utts = [u for u in self._utts
                if (spk is None or u.speaker in spk)
                and (split is None or u.split == split)
                and (language is None or u.language == language)
                and (wanted is None or u.id in wanted)]
        return Corpus(self.name, utts, self.root, self.info)

    def total_duration(self) -> float:
        """Total audio in seconds (from stored lengths; reads file headers where unknown)."""
        import soundfile as sf

        total = 0.0
        for u in self._utts:
            total += u.duration if u.duration is not None else sf.info(str(u.wav_path)).duration
        return total

    def with_root(self, root: Path) -> "Corpus":
        """The same corpus with audio paths re-rooted (for a moved corpus folder)."""
        old = self.root
        if old is None:
            raise ValueError("corpus has no root to move from")
        utts = [replace(u, wav_path=Path(root) / Path(u.wav_path).relative_to(old)) for u in self._utts]
        return Corpus(self.name, utts, root, self.info)
