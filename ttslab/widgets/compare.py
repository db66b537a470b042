"""The A/B grid: per system its name, a player, a log-mel thumbnail and metrics (:func:`compare`).

Grids are plain ``<table>`` markup with ``<img>`` data URIs, which survive JupyterLab's sanitizer,
nbviewer and nbconvert.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.widgets.audio import as_mono_float, check_sample_rate, embedded_audio, shared_scale
from ttslab.widgets.spectrogram import DB_RANGE, MEL_FMAX, THUMB_HEIGHT, spectrogram_thumbnails


def _named_clips(systems, *, what: str = "systems") -> list[tuple[str, np.ndarray]]:
    """``[(name, samples)]`` from a dict or a list of pairs; names must be unique."""
    pairs = list(systems.items()) if isinstance(systems, Mapping) else list(systems)
    if not pairs:
        raise ValueError(f"{what} is empty; give at least one (name, audio) pair")
    names = [str(name) for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique, got {names}")
    return [(name, as_mono_float(audio, name=f"audio of {name!r}")) for name, (_, audio) in zip(names, pairs)]


def _format_metrics(values: Mapping[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        shown = f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)
        parts.append(f"{html.escape(str(key))}&nbsp;{html.escape(shown)}")
    return " · ".join(parts)


def _grid_cell(name, samples, sample_rate, scale, thumb, metrics, is_ref) -> str:
    """One system's cell: name, player, spectrogram, duration and metrics."""
    player = embedded_audio(samples * scale, sample_rate)
    heading = f"<b>{html.escape(name)}</b>" + (" <small>(reference)</small>" if is_ref else "")
    lines = [heading, player._repr_html_()]
    if thumb is not None:
        png, width = thumb
        b64 = base64.b64encode(png).decode("ascii")
        lines.append(
            f'<img src="data:image/png;base64,{b64}" width="{width}" height="{THUMB_HEIGHT}" '
            f'alt="log-mel spectrogram of {html.escape(name)}">'
        )
    info = f"{len(samples) / sample_rate:.2f} s"
    if metrics:
        info += " · " + _format_metrics(metrics)
    lines.append(f"<small>{info}</small>")
    return '<td style="text-align:left;vertical-align:top;padding:4px 10px">' + "<br>".join(lines) + "</td>"


def compare(
    systems: Mapping[str, Any] | Sequence[tuple[str, Any]],
    sample_rate: int = SAMPLE_RATE,
    *,
    title: str | None = None,
    spectrogram: bool = True,
    ref: str | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    columns: int = 4,
):
    """A labelled A/B grid: per system its name, a player, a log-mel thumbnail and metrics.

    ``systems`` maps names to 1-D clips (or is a list of ``(name, clip)`` pairs), all at ``sample_rate``.
    ``ref`` names the reference recording: it goes first and is marked. ``metrics`` maps system
    names to ``{metric: value}`` shown under the clip. Thumbnails share one colour scale (0 dB =
    loudest mel bin of any clip) and one time scale. If any clip peaks above 1, all clips get
    the same gain so relative loudness is kept. At most ``columns`` systems per row.

    Returns an ``IPython.display.HTML``: self-contained, so it renders in saved notebooks,
    JupyterLab (trusted or not), nbviewer and nbconvert without a kernel.
    """
    sample_rate = check_sample_rate(sample_rate)
    clips = _named_clips(systems)
    names = [name for name, _ in clips]
    if ref is not None:
        if ref not in names:
            raise ValueError(f"ref={ref!r} is not one of the systems {names}")
        clips.sort(key=lambda pair: pair[0] != ref)  # stable: reference first, others in order
    metrics = dict(metrics or {})
    unknown = set(metrics) - set(names)
    if unknown:
        raise ValueError(f"metrics given for unknown systems {sorted(unknown)}; systems are {names}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")

    samples = [s for _, s in clips]
    scale = shared_scale(samples)
    thumbs = spectrogram_thumbnails(samples, sample_rate) if spectrogram else [None] * len(clips)
    cells = [
        _grid_cell(name, s, sample_rate, scale, thumb, metrics.get(name), name == ref)
        for (name, s), thumb in zip(clips, thumbs)
    ]
    rows = ["<tr>" + "".join(cells[i : i + columns]) + "</tr>" for i in range(0, len(cells), columns)]

    notes = []
    if spectrogram:
        notes.append(f"log-mel spectrograms (0–{min(MEL_FMAX, sample_rate / 2):.0f} Hz) share one colour "
                     f"scale: loudest bin = 0 dB, {DB_RANGE:.0f} dB range")
    if scale != 1.0:
        notes.append(f"all clips scaled by {scale:.3g} to avoid clipping")
    parts = [f"<b>{html.escape(title)}</b>"] if title else []
    parts.append("<table>" + "".join(rows) + "</table>")
    if notes:
        parts.append("<small>" + "; ".join(notes) + "</small>")
    from IPython.display import HTML

    return HTML("<div>" + "\n".join(parts) + "</div>")
