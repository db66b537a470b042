"""Log-mel pictures shared by the grid and the plots: fixed settings, dB scale, palette PNG thumbnails.

The settings are fixed here so that the pictures do not depend on :mod:`ttslab.dsp`'s feature settings.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence

import numpy as np

# Log-mel settings, fixed here so the pictures do not depend on ttslab.dsp.
N_FFT, HOP_LENGTH, N_MELS, MEL_FMAX = 1024, 256, 80, 8000.0
DB_RANGE = 80.0  # colour scale spans [loudest - 80 dB, loudest]
CMAP = "magma"
THUMB_WIDTH, THUMB_HEIGHT = 300, 120  # px, for the longest clip of a grid
THUMB_LEVELS = 64  # colours in a thumbnail


def mel_power(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mel power spectrogram, shape (80, frames), with the fixed settings above."""
    import librosa

    with warnings.catch_warnings():  # "n_fft too large" for clips shorter than 1024 samples
        warnings.simplefilter("ignore", UserWarning)
        return librosa.feature.melspectrogram(
            y=samples.astype(np.float32), sr=sample_rate, n_fft=N_FFT, hop_length=HOP_LENGTH,
            n_mels=N_MELS, fmax=min(MEL_FMAX, sample_rate / 2),
        )


def power_to_db(power: np.ndarray, loudest: float) -> np.ndarray:
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


def spectrogram_thumbnails(clips: Sequence[np.ndarray], sample_rate: int) -> list[tuple[bytes, int]]:
    """(PNG, width px) per clip, on one colour scale and one time scale (longest = 300 px)."""
    powers = [mel_power(c, sample_rate) for c in clips]
    loudest = max(float(p.max()) for p in powers)
    longest = max(len(c) for c in clips)
    thumbs = []
    for clip, power in zip(clips, powers):
        width = max(8, round(THUMB_WIDTH * len(clip) / longest))
        thumbs.append((_thumbnail_png(power_to_db(power, loudest), width), width))
    return thumbs
