"""Waveform above a log-mel spectrogram, with a phone alignment on both (:func:`plot_waveform_and_spectrogram`)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.widgets.audio import as_mono_float, check_sample_rate
from ttslab.widgets.spectrogram import CMAP, DB_RANGE, HOP_LENGTH, MEL_FMAX, mel_power, power_to_db


def _segments_in_seconds(segments, sample_rate: int) -> list[tuple[str, float, float]]:
    """``[(label, start_s, end_s)]`` from objects with ``.label/.start/.end`` in samples or tuples in s."""
    spans = []
    for seg in segments:
        if hasattr(seg, "label"):
            label, start, end = seg.label, seg.start / sample_rate, seg.end / sample_rate
        else:
            label, start, end = seg
        if end < start:
            raise ValueError(f"segment {label!r} ends ({end}) before it starts ({start})")
        spans.append((str(label), float(start), float(end)))
    return spans


def _draw_alignment(spans, wave_ax, spec_ax) -> None:
    """Boundaries as vertical lines on both axes, labels inside the top of the spectrogram."""
    boundaries = sorted({t for _, start, end in spans for t in (start, end)})
    for ax in (wave_ax, spec_ax):
        if ax is not None:
            for t in boundaries:
                ax.axvline(t, color="white" if ax is spec_ax else "0.3", lw=0.7, alpha=0.8)
    from matplotlib import patheffects

    transform = spec_ax.get_xaxis_transform()  # x in seconds, y in axes fraction
    outline = [patheffects.withStroke(linewidth=2, foreground="black")]  # readable on any colour
    for i, (label, start, end) in enumerate(spans):
        y = 0.97 if i % 2 == 0 else 0.88  # alternate heights so short neighbours do not overlap
        spec_ax.text((start + end) / 2, y, label, transform=transform, ha="center", va="top",
                     fontsize=8, color="white", path_effects=outline, clip_on=True)


def plot_waveform_and_spectrogram(audio: Any, sample_rate: int = SAMPLE_RATE, segments=None, ax=None, *, title=None):
    """Waveform above a log-mel spectrogram, with an optional phone alignment on both.

    ``segments``: objects with ``.label``, ``.start``, ``.end`` in samples (``ttslab.data``'s
    ``Segment``) or ``(label, start_s, end_s)`` tuples. ``ax``: None (new pyplot figure), a pair
    ``(wave_ax, spec_ax)``, or one Axes (spectrogram only). Returns ``(wave_ax, spec_ax)``;
    ``wave_ax`` is None when one Axes was given. The spectrogram is in dB relative to its loudest bin.
    """
    import librosa.display

    sample_rate = check_sample_rate(sample_rate)
    samples = as_mono_float(audio)
    if ax is None:
        import matplotlib.pyplot as plt

        _, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True,
                                             height_ratios=(1, 2.2), layout="constrained")
    elif hasattr(ax, "plot"):
        wave_ax, spec_ax = None, ax
    else:
        wave_ax, spec_ax = ax

    duration = len(samples) / sample_rate
    if wave_ax is not None:
        wave_ax.plot(np.arange(len(samples)) / sample_rate, samples, lw=0.6, color="C0")
        wave_ax.set(xlim=(0, duration), ylabel="amplitude")
        if title:
            wave_ax.set_title(title)
    elif title:
        spec_ax.set_title(title)
    power = mel_power(samples, sample_rate)
    # Frame k is centred on sample k * hop; giving centres (not edges) puts each column where its
    # frame is, so phone boundaries line up with the waveform instead of half a hop late.
    frame_centres = np.arange(power.shape[1]) * HOP_LENGTH / sample_rate
    librosa.display.specshow(power_to_db(power, float(power.max())), sr=sample_rate, hop_length=HOP_LENGTH,
                             x_coords=frame_centres, x_axis="time", y_axis="mel",
                             fmax=min(MEL_FMAX, sample_rate / 2), ax=spec_ax, cmap=CMAP, vmin=-DB_RANGE, vmax=0.0)
    spec_ax.set(xlim=(0, duration), xlabel="time (s)")
    if segments is not None:
        _draw_alignment(_segments_in_seconds(segments, sample_rate), wave_ax, spec_ax)
    return wave_ax, spec_ax


def figure_png(samples: np.ndarray, sample_rate: int) -> bytes:
    """A small waveform + spectrogram PNG, drawn without pyplot (no global state, no auto-display)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.8), dpi=72, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    plot_waveform_and_spectrogram(samples, sample_rate, ax=tuple(axes))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
