"""Listening to and looking at speech in notebooks.

* :func:`play` – one clip as an ``IPython.display.Audio`` (base64 Ogg Vorbis, plays in saved notebooks).
* :func:`compare` – an A/B grid: name, player, log-mel thumbnail and metrics per system.
* :func:`synthesis_panel` – text box, speaker, rate, pitch and a *Synthesize* button around an
  injected ``synthesize(text, speaker=, rate=, pitch=) -> (audio, sr)`` callable.
* :func:`listening_test` – a blind, seeded MOS test (rate 1–5, then reveal the systems).
* :func:`plot_waveform_and_spectrogram` – waveform + log-mel with a phone alignment on top.

Why the HTML looks the way it does:

* Audio is embedded as ``<audio controls src="data:audio/ogg;base64,...">``. JupyterLab
  sanitizes HTML outputs of untrusted notebooks (any notebook you did not run yourself) and keeps
  ``src`` on ``<audio>`` but strips it from ``<source>``; IPython's own ``Audio`` uses
  ``<source src>`` and so is silent there. :func:`play` returns an ``Audio`` subclass that
  moves ``src`` onto ``<audio>``.
* The clips are **Ogg Vorbis** (:func:`encode_audio`), which Chromium and Firefox play: at
  libvorbis' default quality (q4, ~65 kbit/s for 22.05 kHz mono) a clip is a fifth of its 16-bit
  WAV, and a notebook full of clips stays within the project's 2 MB budget. Clips keep the sample
  rate they are given: the corpus and every vocoder run at 22050 Hz, and resampling to 16 kHz would
  cut the 8–11 kHz band where fricatives and vocoder noise live, which several notebooks are about.
  libsndfile gives every Ogg stream a random serial number; it is fixed here so that the same clip
  always encodes to the same bytes (re-executed notebooks only change where the audio changed).
* Grids are plain ``<table>`` markup with ``<img>`` data URIs, which survive the sanitizer,
  nbviewer and nbconvert.
* Widget panels cannot play without a kernel, so :class:`SynthesisPanel` also displays a plain
  audio clip of its default text when it is displayed. Panel results are written into
  ``Output.outputs`` directly (not ``with out:``), so what they hold does not depend on message
  routing and is stored with the widget state.

Heavy libraries (IPython, ipywidgets, matplotlib, librosa) are imported inside the functions
that need them, so ``import ttslab.widgets`` is cheap and works without a display.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_SR = 22050
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."

# Log-mel settings, fixed here so the pictures do not depend on ttslab.dsp.
N_FFT, HOP_LENGTH, N_MELS, MEL_FMAX = 1024, 256, 80, 8000.0
DB_RANGE = 80.0  # colour scale spans [loudest - 80 dB, loudest]
CMAP = "magma"
THUMB_WIDTH, THUMB_HEIGHT = 300, 120  # px, for the longest clip of a grid
THUMB_LEVELS = 64  # colours in a thumbnail

MOS_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")  # ITU-T P.800 ACR scale, 1..5


# ---------------------------------------------------------------------------------------------
# Checking and encoding audio


def as_mono_float(audio: Any, *, name: str = "audio") -> np.ndarray:
    """Return ``audio`` as a 1-D float64 array in its natural scale (int16 is mapped to [-1, 1)).

    Accepts numpy arrays, lists and torch tensors (duck-typed, so torch is never imported).
    Raises ``ValueError`` for 2-D, empty, non-numeric or non-finite input.
    """
    if hasattr(audio, "detach") and hasattr(audio, "cpu"):  # torch.Tensor
        tensor = audio.detach().cpu()
        if tensor.dtype.is_floating_point:  # bfloat16 has no numpy equivalent
            tensor = tensor.float()
        audio = tensor.numpy()
    samples = np.asarray(audio)
    if samples.ndim != 1:
        raise ValueError(
            f"{name} must be mono, a 1-D array of samples; got shape {samples.shape}. "
            "Pick a channel (x[0]) or average them (x.mean(axis=0))."
        )
    if samples.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if np.issubdtype(samples.dtype, np.signedinteger):
        samples = samples.astype(np.float64) / (np.iinfo(samples.dtype).max + 1)
    elif np.issubdtype(samples.dtype, np.floating):
        samples = samples.astype(np.float64)
    else:
        raise ValueError(f"{name} must hold float or signed integer samples, got dtype {samples.dtype}")
    bad = ~np.isfinite(samples)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/infinite samples (first at index {int(np.argmax(bad))}); "
            "fix the signal before listening to it"
        )
    return samples


def _check_sr(sr: Any) -> int:
    """A positive integer sample rate, or ``ValueError``."""
    if isinstance(sr, bool) or not isinstance(sr, (int, float, np.integer, np.floating)):
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    if not (sr > 0 and float(sr).is_integer()):
        raise ValueError(f"sample rate must be a positive integer, got {sr!r}")
    return int(sr)


def _peak(samples: np.ndarray) -> float:
    return float(np.max(np.abs(samples)))


def _shared_scale(clips: Iterable[np.ndarray]) -> float:
    """One gain for all clips: 1, or whatever brings the loudest peak down to 1.

    One shared factor keeps the clips' relative loudness, which matters when comparing them.
    """
    loudest = max(_peak(c) for c in clips)
    return 1.0 if loudest <= 1.0 else 1.0 / loudest


#: Embedded clips: Ogg Vorbis at libsndfile compression level 0.6 = Vorbis quality 0.4 (q4, libvorbis'
#: default; transparent for speech in informal listening, SNR ~22 dB on speech as a waveform coder).
AUDIO_MIME = "audio/ogg"
VORBIS_COMPRESSION_LEVEL = 0.6
_OGG_SERIAL = 0x7474736C  # "ttsl": a fixed stream serial number, so equal clips give equal bytes


@functools.cache
def _ogg_crc_table() -> tuple[int, ...]:
    """CRC-32 of Ogg pages: polynomial 0x04C11DB7, not reflected, initial value 0, no final xor."""
    table = []
    for byte in range(256):
        r = byte << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return tuple(table)


def _ogg_crc(page: bytes) -> int:
    table, crc = _ogg_crc_table(), 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ b]
    return crc


def _with_fixed_serial(ogg: bytes, serial: int = _OGG_SERIAL) -> bytes:
    """The Ogg stream with every page's serial number set to ``serial`` (page checksums redone)."""
    out, pos = bytearray(), 0
    while pos < len(ogg):
        if ogg[pos:pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        n_segments = ogg[pos + 26]
        size = 27 + n_segments + sum(ogg[pos + 27:pos + 27 + n_segments])
        page = bytearray(ogg[pos:pos + size])
        page[14:18] = serial.to_bytes(4, "little")
        page[22:26] = bytes(4)
        page[22:26] = _ogg_crc(page).to_bytes(4, "little")
        out += page
        pos += size
    return bytes(out)


def encode_audio(samples: np.ndarray, sr: int) -> tuple[bytes, str]:
    """``(file bytes, MIME type)`` of a clip in [-1, 1]: Ogg Vorbis, or 16-bit WAV where libsndfile
    has no Vorbis encoder (old builds).

    >>> data, mime = encode_audio(np.zeros(100), 22050)
    >>> mime, data[:4]
    ('audio/ogg', b'OggS')
    """
    import soundfile

    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, np.asarray(samples, dtype=np.float32), sr, format="OGG", subtype="VORBIS",
                        compression_level=VORBIS_COMPRESSION_LEVEL)
        return _with_fixed_serial(buffer.getvalue()), AUDIO_MIME
    except (soundfile.LibsndfileError, TypeError, ValueError):  # no Vorbis in this libsndfile
        buffer = io.BytesIO()
        soundfile.write(buffer, np.asarray(samples, dtype=np.float64), sr, format="WAV", subtype="PCM_16")
        return buffer.getvalue(), "audio/wav"


@functools.cache
def _embedded_audio_class():
    """Build the ``Audio`` subclass on first use, so importing this module skips IPython."""
    from IPython.display import Audio

    class EmbeddedAudio(Audio):
        """``IPython.display.Audio`` whose HTML survives JupyterLab's sanitizer (see module doc);
        ``data`` holds the encoded clip (Ogg Vorbis), ``mimetype`` its type."""

        def __init__(self, samples: np.ndarray, rate: int):
            data, mimetype = encode_audio(samples, rate)
            super().__init__(data=data)
            self.mimetype, self.rate, self.duration_s = mimetype, rate, len(samples) / rate

        def _repr_html_(self):
            return _audio_tag(self.data, self.mimetype)

        def __repr__(self):  # the text/plain output: short, deterministic, informative
            return f"<Audio: {self.duration_s:.2f} s at {self.rate} Hz>"

    return EmbeddedAudio


def _make_audio(samples: np.ndarray, sr: int):
    """An ``EmbeddedAudio`` of ``samples`` (already in [-1, 1])."""
    return _embedded_audio_class()(samples, sr)


def _audio_tag(data: bytes, mimetype: str = AUDIO_MIME) -> str:
    """An ``<audio>`` element that carries its clip as a data URI on the element itself."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<audio controls="controls" src="data:{mimetype};base64,{b64}"></audio>'


def _bundle_of(display_object) -> dict[str, str]:
    """Mime bundle (text/html + text/plain) of an HTML display object, without an IPython shell."""
    return {"text/html": display_object._repr_html_(), "text/plain": repr(display_object)}


def play(audio: Any, sr: int = DEFAULT_SR, *, normalize: bool = False, label: str | None = None):
    """A player for one clip that keeps working in a saved notebook.

    ``audio`` is 1-D float in [-1, 1], int16, or a torch tensor. With ``normalize=True`` the clip
    is scaled so its peak is 1; otherwise a peak above 1 is an error (it would clip). Returns an
    ``IPython.display.Audio`` (Ogg Vorbis in ``.data``), or with ``label`` an ``IPython.display.HTML``
    showing the label in bold above the player.
    """
    sr = _check_sr(sr)
    samples = as_mono_float(audio)
    peak = _peak(samples)
    if normalize and peak > 0:
        samples = samples / peak
    elif peak > 1.0:
        raise ValueError(
            f"audio peaks at {peak:.3g}, outside [-1, 1]; pass normalize=True or divide it by its peak"
        )
    player = _make_audio(samples, sr)
    if label is None:
        return player
    from IPython.display import HTML

    return HTML(f"<b>{html.escape(str(label))}</b><br>{player._repr_html_()}")


# ---------------------------------------------------------------------------------------------
# Spectrograms


def _mel_power(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mel power spectrogram, shape (80, frames), with the fixed settings above."""
    import librosa

    with warnings.catch_warnings():  # "n_fft too large" for clips shorter than 1024 samples
        warnings.simplefilter("ignore", UserWarning)
        return librosa.feature.melspectrogram(
            y=samples.astype(np.float32), sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH,
            n_mels=N_MELS, fmax=min(MEL_FMAX, sr / 2),
        )


def _to_db(power: np.ndarray, loudest: float) -> np.ndarray:
    """dB relative to ``loudest`` (a shared reference gives a shared colour scale)."""
    return 10.0 * np.log10(np.maximum(power, 1e-10) / max(loudest, 1e-10))


def _resample_columns(image: np.ndarray, width: int) -> np.ndarray:
    """Linearly resample the time axis of ``image`` (rows, frames) to ``width`` columns."""
    frames = image.shape[1]
    if frames == width:
        return image
    positions = np.linspace(0, frames - 1, width)
    return np.stack([np.interp(positions, np.arange(frames), row) for row in image])


@functools.cache
def _palette() -> list[int]:
    """The colour map as a flat RGB palette of ``THUMB_LEVELS`` entries for a palette PNG."""
    import matplotlib

    rgb = matplotlib.colormaps[CMAP](np.linspace(0.0, 1.0, THUMB_LEVELS))[:, :3]
    return np.round(rgb * 255).astype(np.uint8).ravel().tolist()


def _thumbnail_png(db: np.ndarray, width: int) -> bytes:
    """An 8-bit palette PNG of a dB image (low frequencies at the bottom), ``width`` px wide.

    Palette pixels with 64 levels (1.3 dB steps, no visible banding) compress to ~10 kB for a
    300 px thumbnail, a fifth of an RGBA PNG of the same picture; and no figure is needed.
    """
    from PIL import Image

    level = np.clip((db + DB_RANGE) / DB_RANGE, 0.0, 1.0)  # 0 dB -> 1, -80 dB -> 0
    indices = np.round(_resample_columns(level, width) * (THUMB_LEVELS - 1)).astype(np.uint8)[::-1]
    image = Image.fromarray(indices, mode="P")
    image.putpalette(_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _spectrogram_thumbnails(clips: Sequence[np.ndarray], sr: int) -> list[tuple[bytes, int]]:
    """(PNG, width px) per clip, on one colour scale and one time scale (longest = 300 px)."""
    powers = [_mel_power(c, sr) for c in clips]
    loudest = max(float(p.max()) for p in powers)
    longest = max(len(c) for c in clips)
    thumbs = []
    for clip, power in zip(clips, powers):
        width = max(8, round(THUMB_WIDTH * len(clip) / longest))
        thumbs.append((_thumbnail_png(_to_db(power, loudest), width), width))
    return thumbs


# ---------------------------------------------------------------------------------------------
# A/B comparison grid


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


def _grid_cell(name, samples, sr, scale, thumb, metrics, is_ref) -> str:
    """One system's cell: name, player, spectrogram, duration and metrics."""
    player = _make_audio(samples * scale, sr)
    heading = f"<b>{html.escape(name)}</b>" + (" <small>(reference)</small>" if is_ref else "")
    lines = [heading, player._repr_html_()]
    if thumb is not None:
        png, width = thumb
        b64 = base64.b64encode(png).decode("ascii")
        lines.append(
            f'<img src="data:image/png;base64,{b64}" width="{width}" height="{THUMB_HEIGHT}" '
            f'alt="log-mel spectrogram of {html.escape(name)}">'
        )
    info = f"{len(samples) / sr:.2f} s"
    if metrics:
        info += " · " + _format_metrics(metrics)
    lines.append(f"<small>{info}</small>")
    return '<td style="text-align:left;vertical-align:top;padding:4px 10px">' + "<br>".join(lines) + "</td>"


def compare(
    systems: Mapping[str, Any] | Sequence[tuple[str, Any]],
    sr: int = DEFAULT_SR,
    *,
    title: str | None = None,
    spectrogram: bool = True,
    ref: str | None = None,
    metrics: Mapping[str, Mapping[str, float]] | None = None,
    columns: int = 4,
):
    """A labelled A/B grid: per system its name, a player, a log-mel thumbnail and metrics.

    ``systems`` maps names to 1-D clips (or is a list of ``(name, clip)`` pairs), all at ``sr``.
    ``ref`` names the reference recording: it goes first and is marked. ``metrics`` maps system
    names to ``{metric: value}`` shown under the clip. Thumbnails share one colour scale (0 dB =
    loudest mel bin of any clip) and one time scale. If any clip peaks above 1, all clips get
    the same gain so relative loudness is kept. At most ``columns`` systems per row.

    Returns an ``IPython.display.HTML``: self-contained, so it renders in saved notebooks,
    JupyterLab (trusted or not), nbviewer and nbconvert without a kernel.
    """
    sr = _check_sr(sr)
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
    scale = _shared_scale(samples)
    thumbs = _spectrogram_thumbnails(samples, sr) if spectrogram else [None] * len(clips)
    cells = [
        _grid_cell(name, s, sr, scale, thumb, metrics.get(name), name == ref)
        for (name, s), thumb in zip(clips, thumbs)
    ]
    rows = ["<tr>" + "".join(cells[i : i + columns]) + "</tr>" for i in range(0, len(cells), columns)]

    notes = []
    if spectrogram:
        notes.append(f"log-mel spectrograms (0–{min(MEL_FMAX, sr / 2):.0f} Hz) share one colour "
                     f"scale: loudest bin = 0 dB, {DB_RANGE:.0f} dB range")
    if scale != 1.0:
        notes.append(f"all clips scaled by {scale:.3g} to avoid clipping")
    parts = [f"<b>{html.escape(title)}</b>"] if title else []
    parts.append("<table>" + "".join(rows) + "</table>")
    if notes:
        parts.append("<small>" + "; ".join(notes) + "</small>")
    from IPython.display import HTML

    return HTML("<div>" + "\n".join(parts) + "</div>")


# ---------------------------------------------------------------------------------------------
# Waveform + spectrogram plot with an alignment


def _segments_in_seconds(segments, sr: int) -> list[tuple[str, float, float]]:
    """``[(label, start_s, end_s)]`` from objects with ``.label/.start/.end`` in samples or tuples in s."""
    spans = []
    for seg in segments:
        if hasattr(seg, "label"):
            label, start, end = seg.label, seg.start / sr, seg.end / sr
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


def plot_waveform_and_spectrogram(audio: Any, sr: int = DEFAULT_SR, segments=None, ax=None, *, title=None):
    """Waveform above a log-mel spectrogram, with an optional phone alignment on both.

    ``segments``: objects with ``.label``, ``.start``, ``.end`` in samples (``ttslab.data``'s
    ``Segment``) or ``(label, start_s, end_s)`` tuples. ``ax``: None (new pyplot figure), a pair
    ``(wave_ax, spec_ax)``, or one Axes (spectrogram only). Returns ``(wave_ax, spec_ax)``;
    ``wave_ax`` is None when one Axes was given. The spectrogram is in dB relative to its loudest bin.
    """
    import librosa.display

    sr = _check_sr(sr)
    samples = as_mono_float(audio)
    if ax is None:
        import matplotlib.pyplot as plt

        _, (wave_ax, spec_ax) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True,
                                             height_ratios=(1, 2.2), layout="constrained")
    elif hasattr(ax, "plot"):
        wave_ax, spec_ax = None, ax
    else:
        wave_ax, spec_ax = ax

    duration = len(samples) / sr
    if wave_ax is not None:
        wave_ax.plot(np.arange(len(samples)) / sr, samples, lw=0.6, color="C0")
        wave_ax.set(xlim=(0, duration), ylabel="amplitude")
        if title:
            wave_ax.set_title(title)
    elif title:
        spec_ax.set_title(title)
    power = _mel_power(samples, sr)
    # Frame k is centred on sample k * hop; giving centres (not edges) puts each column where its
    # frame is, so phone boundaries line up with the waveform instead of half a hop late.
    frame_centres = np.arange(power.shape[1]) * HOP_LENGTH / sr
    librosa.display.specshow(_to_db(power, float(power.max())), sr=sr, hop_length=HOP_LENGTH,
                             x_coords=frame_centres, x_axis="time", y_axis="mel",
                             fmax=min(MEL_FMAX, sr / 2), ax=spec_ax, cmap=CMAP, vmin=-DB_RANGE, vmax=0.0)
    spec_ax.set(xlim=(0, duration), xlabel="time (s)")
    if segments is not None:
        _draw_alignment(_segments_in_seconds(segments, sr), wave_ax, spec_ax)
    return wave_ax, spec_ax


def _figure_png(samples: np.ndarray, sr: int) -> bytes:
    """A small waveform + spectrogram PNG, drawn without pyplot (no global state, no auto-display)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.8), dpi=72, layout="constrained")
    axes = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    plot_waveform_and_spectrogram(samples, sr, ax=tuple(axes))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Widgets


def _append_output(out, data: dict[str, str]) -> None:
    """Append one display_data output to an ``ipywidgets.Output`` (stored in its state)."""
    out.outputs += ({"output_type": "display_data", "data": data, "metadata": {}},)


def _message_html(text: str, *, error: bool = False) -> dict[str, str]:
    colour = "#b00020" if error else "#555"
    return {"text/html": f'<span style="color:{colour}">{html.escape(text)}</span>', "text/plain": text}


class _WidgetView:
    """Shows ``self.widget`` when displayed, with a short, deterministic text/plain fallback."""

    widget: Any
    plain_text = "(interactive widget: run the notebook to use it)"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.plain_text
        return bundle


class SynthesisPanel(_WidgetView):
    """Text box, speaker, rate and pitch controls, a *Synthesize* button and an output area.

    ``synthesize(text, speaker=, rate=, pitch=)`` must return ``(audio, sr)``; ``rate`` is a
    speaking-rate multiplier and ``pitch`` a shift in semitones. Its errors (and empty text)
    appear as a one-line message in the panel. Displaying the panel also displays, below it,
    a plain player of ``default_text`` (synthesized once) when ``fallback_audio`` is true, so a
    saved notebook has something to hear without a kernel.
    """

    def __init__(
        self,
        synthesize: Callable[..., tuple[Any, int]],
        speakers: Sequence[str] | Mapping[str, Any],
        *,
        default_text: str = DEFAULT_TEXT,
        rate_range: tuple[float, float] = (0.5, 2.0),
        pitch_range: tuple[float, float] = (-6, 6),
        fallback_audio: bool = True,
    ):
        import ipywidgets as w

        if not callable(synthesize):
            raise TypeError(f"synthesize must be callable, got {synthesize!r}")
        if len(speakers) == 0:
            raise ValueError("speakers is empty; give at least one speaker")
        for name, (lo, hi) in (("rate_range", rate_range), ("pitch_range", pitch_range)):
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high, got {(lo, hi)}")
        self.synthesize = synthesize
        self.default_text = default_text
        self.fallback_audio = fallback_audio
        self.last_error: Exception | None = None
        self._fallback: dict[str, str] | None = None

        # A mapping shows its keys and passes its values; a sequence passes the names themselves.
        options = dict(speakers) if isinstance(speakers, Mapping) else list(speakers)
        self._speaker_values = list(options.values()) if isinstance(options, dict) else options
        wide = {"description_width": "initial"}
        self.text = w.Textarea(value=default_text, description="Text", rows=3,
                               layout=w.Layout(width="95%"))
        self.speaker = w.Dropdown(options=options, description="Speaker")
        self.rate = w.FloatSlider(value=min(max(1.0, rate_range[0]), rate_range[1]), min=rate_range[0],
                                  max=rate_range[1], step=0.05, description="Rate ×", style=wide)
        self.pitch = w.FloatSlider(value=min(max(0.0, pitch_range[0]), pitch_range[1]), min=pitch_range[0],
                                   max=pitch_range[1], step=0.5, description="Pitch (st)", style=wide)
        self.button = w.Button(description="Synthesize", button_style="primary", icon="play")
        self.output = w.Output()
        self.button.on_click(lambda _button: self.run())
        controls = w.HBox([self.speaker, self.rate, self.pitch, self.button],
                          layout=w.Layout(flex_flow="row wrap"))
        self.widget = w.VBox([self.text, controls, self.output])
        self.plain_text = (f"SynthesisPanel (speakers: {', '.join(map(str, options))}; "
                           "interactive: run the notebook to use it)")

    # -- synthesis

    def _set_controls(self, text, speaker, rate, pitch) -> None:
        """Move the controls to the requested values so the panel shows what was synthesized."""
        if speaker is not None and speaker not in self._speaker_values:
            raise ValueError(f"unknown speaker {speaker!r}; choose from {self._speaker_values}")
        for slider, value in ((self.rate, rate), (self.pitch, pitch)):
            if value is not None and not slider.min <= value <= slider.max:
                raise ValueError(f"{slider.description} {value} is outside [{slider.min}, {slider.max}]")
        if text is not None:
            self.text.value = text
        if speaker is not None:
            self.speaker.value = speaker
        if rate is not None:
            self.rate.value = rate
        if pitch is not None:
            self.pitch.value = pitch

    def _synthesize(self, text: str) -> tuple[np.ndarray, int, float]:
        """Call the injected synthesizer and check what it returns: (samples, sr, gain applied)."""
        if not text.strip():
            raise ValueError("there is no text to synthesize; type something first")
        result = self.synthesize(text.strip(), speaker=self.speaker.value,
                                 rate=float(self.rate.value), pitch=float(self.pitch.value))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(f"synthesize must return (audio, sample_rate), got {type(result).__name__}")
        samples, sr = as_mono_float(result[0], name="synthesized audio"), _check_sr(result[1])
        scale = _shared_scale([samples])
        return samples * scale, sr, scale

    def run(self, text: str | None = None, *, speaker=None, rate: float | None = None,
            pitch: float | None = None) -> tuple[np.ndarray, int] | None:
        """Synthesize once (what the button does), optionally setting the controls first.

        Shows the player, a waveform + spectrogram picture and a summary line in the panel and
        returns ``(audio, sr)``. If synthesis fails, shows the error as a message, keeps it in
        ``last_error`` and returns None. Invalid control values raise ``ValueError`` here.
        """
        self._set_controls(text, speaker, rate, pitch)
        self.output.outputs = ()
        self.last_error = None
        self.button.disabled, self.button.description = True, "Synthesizing…"
        try:
            samples, sr, scale = self._synthesize(self.text.value)
            picture = _figure_png(samples, sr)
        except Exception as err:  # shown to the student instead of a traceback in the log
            self.last_error = err
            _append_output(self.output, _message_html(f"{type(err).__name__}: {err}", error=True))
            return None
        finally:
            self.button.disabled, self.button.description = False, "Synthesize"
        summary = (f"{len(samples) / sr:.2f} s at {sr} Hz · speaker {self.speaker.label} · "
                   f"rate {self.rate.value:g} · pitch {self.pitch.value:+g} st")
        if scale != 1.0:
            summary += f" · scaled by {scale:.3g} to avoid clipping"
        _append_output(self.output, _bundle_of(_make_audio(samples, sr)))
        _append_output(self.output, {"image/png": base64.b64encode(picture).decode("ascii"),
                                     "text/plain": "<waveform and log-mel spectrogram>"})
        self.output.append_stdout(summary + "\n")
        return samples, sr

    # -- display

    def fallback_bundle(self) -> dict[str, str]:
        """A labelled player of the default text, synthesized once with the default controls."""
        if self._fallback is None:
            try:
                samples, sr, _ = self._synthesize(self.default_text)
                label = f"Default text: “{self.default_text}”"
                self._fallback = _bundle_of(play(samples, sr, label=label))
            except Exception as err:  # a display must not raise; say why there is nothing to hear
                message = f"(no fallback audio: {type(err).__name__}: {err})"
                self._fallback = _message_html(message, error=True)
        return self._fallback

    def _ipython_display_(self):
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        if self.fallback_audio:
            display(self.fallback_bundle(), raw=True)


def synthesis_panel(
    synthesize: Callable[..., tuple[Any, int]],
    speakers: Sequence[str] | Mapping[str, Any],
    *,
    default_text: str = DEFAULT_TEXT,
    rate_range: tuple[float, float] = (0.5, 2.0),
    pitch_range: tuple[float, float] = (-6, 6),
    fallback_audio: bool = True,
) -> SynthesisPanel:
    """Build a :class:`SynthesisPanel`; make it the last expression of a cell (or ``display`` it).

    Displaying it shows the widget and, with ``fallback_audio``, a plain player of the default
    text below it. Call ``panel.run(...)`` to synthesize from code (CI, tests).
    """
    return SynthesisPanel(synthesize, speakers, default_text=default_text, rate_range=rate_range,
                          pitch_range=pitch_range, fallback_audio=fallback_audio)


# ---------------------------------------------------------------------------------------------
# Blind listening test


def _listening_items(clips) -> list[tuple[str, np.ndarray]]:
    """``[(system, samples)]``; a system may have one clip or a list of clips."""
    pairs = list(clips.items()) if isinstance(clips, Mapping) else list(clips)
    items = []
    for system, audio in pairs:
        many = isinstance(audio, (list, tuple))
        for k, clip in enumerate(audio if many else [audio]):
            items.append((str(system), as_mono_float(clip, name=f"clip {k} of {system!r}")))
    if not items:
        raise ValueError("clips is empty; give at least one (system, audio) pair")
    return items


class ListeningTest(_WidgetView):
    """A blind MOS test: clips in a seeded random order, each rated 1–5, then revealed.

    ``clips`` maps system names to a clip or a list of clips (or is a list of pairs), all at
    ``sr``. Loudness-match the clips beforehand: louder clips tend to be rated higher. Clips are
    only scaled (all by one factor) if one would clip.
    """

    def __init__(self, clips, sr: int = DEFAULT_SR, *, seed: int = 0,
                 question: str = "How natural does each clip sound? (1 = bad, 5 = excellent)"):
        import ipywidgets as w

        sr = _check_sr(sr)
        items = _listening_items(clips)
        order = np.random.default_rng(seed).permutation(len(items))
        self.systems = [items[i][0] for i in order]  # hidden answer key, in presentation order
        scale = _shared_scale([s for _, s in items])

        self.ratings = []  # one ToggleButtons per clip, value None until rated
        rows = [w.HTML(f"<b>{html.escape(question)}</b>")]
        for number, i in enumerate(order, start=1):
            player = w.Output()
            _append_output(player, _bundle_of(_make_audio(items[i][1] * scale, sr)))
            rating = w.ToggleButtons(options=[(str(k), k) for k in range(1, 6)], value=None,
                                     tooltips=list(MOS_LABELS),
                                     style=w.ToggleButtonsStyle(button_width="2.5em"))
            self.ratings.append(rating)
            rows.append(w.HBox([w.Label(f"Clip {number}", layout=w.Layout(width="4.5em")), player, rating],
                               layout=w.Layout(align_items="center")))
        self.button = w.Button(description="Show results", icon="eye")
        self.results_output = w.Output()
        self.button.on_click(lambda _button: self.show_results())
        self.widget = w.VBox(rows + [self.button, self.results_output])
        self.plain_text = f"ListeningTest with {len(items)} clips (interactive: run the notebook to rate)"

    def scores(self) -> dict[str, list[int]]:
        """The ratings given so far, per system (unrated clips are left out)."""
        by_system: dict[str, list[int]] = {system: [] for system in self.systems}
        for system, rating in zip(self.systems, self.ratings):
            if rating.value is not None:
                by_system[system].append(int(rating.value))
        return by_system

    def mean_scores(self) -> dict[str, float]:
        """Mean opinion score per system (NaN where no clip of it was rated)."""
        return {s: float(np.mean(v)) if v else float("nan") for s, v in self.scores().items()}

    def show_results(self) -> str:
        """Reveal which clip was which and the mean scores in the panel; return that HTML."""
        reveal = "".join(
            f"<tr><td>Clip {n}</td><td>{html.escape(system)}</td>"
            f"<td>{'–' if rating.value is None else rating.value}</td></tr>"
            for n, (system, rating) in enumerate(zip(self.systems, self.ratings), start=1)
        )
        means = "".join(
            f"<tr><td>{html.escape(system)}</td><td>{'–' if np.isnan(mos) else f'{mos:.2f}'}</td>"
            f"<td>{len(self.scores()[system])}</td></tr>"
            for system, mos in self.mean_scores().items()
        )
        report = ("<table><tr><th>clip</th><th>system</th><th>your score</th></tr>" + reveal + "</table>"
                  "<table><tr><th>system</th><th>MOS</th><th>rated clips</th></tr>" + means + "</table>")
        self.results_output.outputs = ()
        _append_output(self.results_output, {"text/html": report, "text/plain": str(self.mean_scores())})
        return report


def listening_test(clips, sr: int = DEFAULT_SR, *, seed: int = 0,
                   question: str | None = None) -> ListeningTest:
    """Build a blind MOS :class:`ListeningTest`; display it as the last expression of a cell."""
    kwargs = {} if question is None else {"question": question}
    return ListeningTest(clips, sr, seed=seed, **kwargs)
