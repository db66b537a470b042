"""Phone-level label files: HTK ``.lab`` (100 ns units) and Praat TextGrid.

HTK label files hold one segment a line, ``start end label``, with times in units of 100 ns.
At 22050 Hz one sample lasts 453.5 units, so times are rounded to the nearest unit and
:func:`htk_to_samples` recovers the exact sample index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from ttslab.data.corpus import Segment
from ttslab.io import atomic_write_text

HTK_UNITS_PER_SECOND = 10_000_000


def samples_to_htk(sample: int, sample_rate: int) -> int:
    """Sample index -> HTK time (100 ns units), rounded to the nearest unit.

    >>> samples_to_htk(22050, 22050)
    10000000
    >>> samples_to_htk(1, 22050)
    454
    """
    return (2 * sample * HTK_UNITS_PER_SECOND + sample_rate) // (2 * sample_rate)


def htk_to_samples(t: int, sample_rate: int) -> int:
    """HTK time (100 ns units) -> nearest sample index; inverts :func:`samples_to_htk`.

    >>> all(htk_to_samples(samples_to_htk(n, 22050), 22050) == n for n in range(5000))
    True
    """
    return (2 * t * sample_rate + HTK_UNITS_PER_SECOND) // (2 * HTK_UNITS_PER_SECOND)


def format_htk_lab(segments: Iterable[Segment], sample_rate: int) -> str:
    """The text of an HTK label file for ``segments``."""
    return "".join(f"{samples_to_htk(s.start, sample_rate)} {samples_to_htk(s.end, sample_rate)} {s.label}\n"
                   for s in segments)


def write_htk_lab(path: str | Path, segments: Iterable[Segment], sample_rate: int) -> Path:
    return atomic_write_text(path, format_htk_lab(segments, sample_rate))


def read_htk_lab(path: str | Path, sample_rate: int) -> list[Segment]:
    """Read an HTK label file (``start end label`` a line, extra columns ignored)."""
    segments = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 3:
            raise ValueError(f"{path}:{lineno}: expected 'start end label', got {line!r}")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: start and end must be integers in 100 ns units, got {line!r}") from None
        if end < start:
            raise ValueError(f"{path}:{lineno}: segment ends before it starts")
        segments.append(Segment(parts[2], htk_to_samples(start, sample_rate), htk_to_samples(end, sample_rate)))
    return segments


def format_textgrid(segments: Sequence[Segment], sample_rate: int, words: Sequence[str] | None = None) -> str:
    """A Praat TextGrid (long text format) with a ``phones`` tier and, given ``words``, a ``words`` tier."""
    if not segments:
        raise ValueError("no segments to write")
    xmax = segments[-1].end / sample_rate

    def tier(name: str, items: list[tuple[float, float, str]]) -> list[str]:
        out = ['    class = "IntervalTier"', f'    name = "{name}"', "    xmin = 0", f"    xmax = {xmax!r}",
               f"    intervals: size = {len(items)}"]
        for i, (a, b, text) in enumerate(items, 1):
            text = text.replace('"', '""')
            out += [f"    intervals [{i}]:", f"        xmin = {a!r}", f"        xmax = {b!r}", f'        text = "{text}"']
        return out

    phone_items = [(s.start / sample_rate, s.end / sample_rate, s.label) for s in segments]
    tiers = [tier("phones", phone_items)]
    if words is not None:
        word_items: list[tuple[float, float, str]] = []
        for s in segments:
            text = words[s.word] if s.word >= 0 else ""
            a, b = s.start / sample_rate, s.end / sample_rate
            if word_items and word_items[-1][2] == text and s.word >= 0 and word_items[-1][3] == s.word:  # type: ignore[misc]
                word_items[-1] = (word_items[-1][0], b, text, s.word)  # type: ignore[assignment]
            else:
                word_items.append((a, b, text, s.word))  # type: ignore[arg-type]
        tiers.append(tier("words", [(a, b, t) for a, b, t, _ in word_items]))  # type: ignore[misc]
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax!r}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for i, t in enumerate(tiers, 1):
        lines += [f"    item [{i}]:"] + t
    return "\n".join(lines) + "\n"


def write_textgrid(path: str | Path, segments: Sequence[Segment], sample_rate: int,
                   words: Sequence[str] | None = None) -> Path:
    return atomic_write_text(path, format_textgrid(segments, sample_rate, words))
