"""Checking clips and embedding them in notebooks: :func:`play`, :func:`encode_audio`.

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
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Iterable
from typing import Any

import numpy as np

from ttslab.dsp.spectral import SAMPLE_RATE


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


def check_sample_rate(sample_rate: Any) -> int:
    """A positive integer sample rate, or ``ValueError``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if not (sample_rate > 0 and float(sample_rate).is_integer()):
        raise ValueError(f"sample rate must be a positive integer, got {sample_rate!r}")
    return int(sample_rate)


def _peak(samples: np.ndarray) -> float:
    return float(np.max(np.abs(samples)))


def shared_scale(clips: Iterable[np.ndarray]) -> float:
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


def encode_audio(samples: np.ndarray, sample_rate: int) -> tuple[bytes, str]:
    """``(file bytes, MIME type)`` of a clip in [-1, 1]: Ogg Vorbis, or 16-bit WAV where libsndfile
    has no Vorbis encoder (old builds).

    >>> data, mime = encode_audio(np.zeros(100), 22050)
    >>> mime, data[:4]
    ('audio/ogg', b'OggS')
    """
    import soundfile

    buffer = io.BytesIO()
    try:
        soundfile.write(buffer, np.asarray(samples, dtype=np.float32), sample_rate, format="OGG", subtype="VORBIS",
                        compression_level=VORBIS_COMPRESSION_LEVEL)
        return _with_fixed_serial(buffer.getvalue()), AUDIO_MIME
    except (soundfile.LibsndfileError, TypeError, ValueError):  # no Vorbis in this libsndfile
        buffer = io.BytesIO()
        soundfile.write(buffer, np.asarray(samples, dtype=np.float64), sample_rate, format="WAV", subtype="PCM_16")
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


def embedded_audio(samples: np.ndarray, sample_rate: int):
    """An ``EmbeddedAudio`` of ``samples`` (already in [-1, 1])."""
    return _embedded_audio_class()(samples, sample_rate)


def _audio_tag(data: bytes, mimetype: str = AUDIO_MIME) -> str:
    """An ``<audio>`` element that carries its clip as a data URI on the element itself."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<audio controls="controls" src="data:{mimetype};base64,{b64}"></audio>'


def mime_bundle(display_object) -> dict[str, str]:
    """Mime bundle (text/html + text/plain) of an HTML display object, without an IPython shell."""
    return {"text/html": display_object._repr_html_(), "text/plain": repr(display_object)}


def play(audio: Any, sample_rate: int = SAMPLE_RATE, *, normalize: bool = False, label: str | None = None):
    """A player for one clip that keeps working in a saved notebook.

    ``audio`` is 1-D float in [-1, 1], int16, or a torch tensor. With ``normalize=True`` the clip
    is scaled so its peak is 1; otherwise a peak above 1 is an error (it would clip). Returns an
    ``IPython.display.Audio`` (Ogg Vorbis in ``.data``), or with ``label`` an ``IPython.display.HTML``
    showing the label in bold above the player.
    """
    sample_rate = check_sample_rate(sample_rate)
    samples = as_mono_float(audio)
    peak = _peak(samples)
    if normalize and peak > 0:
        samples = samples / peak
    elif peak > 1.0:
        raise ValueError(
            f"audio peaks at {peak:.3g}, outside [-1, 1]; pass normalize=True or divide it by its peak"
        )
    player = embedded_audio(samples, sample_rate)
    if label is None:
        return player
    from IPython.display import HTML

    return HTML(f"<b>{html.escape(str(label))}</b><br>{player._repr_html_()}")
