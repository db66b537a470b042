"""Fundamental frequency (F0): extraction on the STFT frame grid and the SPSS log-F0 representation.

Every extractor returns one value per frame of a centred STFT with the same hop, i.e.
``num_frames(len(x), hop) = 1 + len(x) // hop`` values, frame ``m`` at time ``m * hop / sample_rate``,
with **0 Hz meaning unvoiced**. So ``f0[m]`` lines up with ``log_mel(x)[:, m]`` exactly.
"""

from __future__ import annotations

import warnings

import numpy as np

from ttslab.dsp.spectral import HOP, SAMPLE_RATE, num_frames


def import_pyworld():
    """``pyworld``, without its harmless ``pkg_resources is deprecated`` import warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import pyworld
    return pyworld


def check_audio(x, sample_rate: int, name: str = "x") -> np.ndarray:
    """``x`` as a contiguous float64 1-D array (what pyworld needs), or a clear error."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be float audio in [-1, 1], got dtype {x.dtype}; "
                        f"convert 16-bit PCM with x.astype(np.float32) / 32768")
    if x.ndim != 1:
        raise ValueError(f"{name} must be mono 1-D audio, got shape {x.shape}; pass one utterance at a time")
    if x.size == 0:
        raise ValueError(f"{name} is empty; pass at least some audio samples")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite samples; clean the audio before analysis")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample rate must be a positive integer in Hz, got {sample_rate!r}")
    return np.ascontiguousarray(x, dtype=np.float64)


def frame_period_ms(sample_rate: int = SAMPLE_RATE, hop: int = HOP) -> float:
    """WORLD frame period matching an STFT hop: ``1000 * hop / sample_rate`` ms.

    >>> round(frame_period_ms(22050, 256), 6)
    11.609977
    """
    return 1000.0 * hop / sample_rate


def fit_length(frames: np.ndarray, n: int) -> np.ndarray:
    """Cut ``frames`` (along axis 0) to ``n`` rows, or extend it by repeating the last row.

    pyworld makes ``1 + floor(len(x) / sample_rate * 1000 / frame_period)`` frames: ``num_frames`` up to
    float rounding, so at most one frame has to be dropped or repeated.

    >>> fit_length(np.array([1., 2., 3.]), 4).tolist()
    [1.0, 2.0, 3.0, 3.0]
    """
    if len(frames) >= n:
        return frames[:n]
    pad = np.repeat(frames[-1:], n - len(frames), axis=0)
    return np.concatenate([frames, pad], axis=0)


def f0_pyworld(x, sample_rate: int = SAMPLE_RATE, hop: int = HOP, f0_floor: float = 60.0, f0_ceil: float = 500.0,
               method: str = "harvest") -> np.ndarray:
    """F0 in Hz per frame (0 = unvoiced) with WORLD's Harvest (robust, slower) or DIO + StoneMask (fast).

    The frame period is ``1000 * hop / sample_rate`` ms, and the result has exactly
    ``num_frames(len(x), hop)`` values (see :func:`fit_length`).
    """
    pw = import_pyworld()
    x = check_audio(x, sample_rate)
    if not 0 < f0_floor < f0_ceil < sample_rate / 2:
        raise ValueError(f"need 0 < f0_floor < f0_ceil < sample_rate/2, got f0_floor={f0_floor}, "
                         f"f0_ceil={f0_ceil}, sample_rate={sample_rate}")
    period = frame_period_ms(sample_rate, hop)
    if method == "harvest":
        f0, _ = pw.harvest(x, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=period)
    elif method == "dio":
        f0, t = pw.dio(x, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil, frame_period=period)
        f0 = pw.stonemask(x, f0, t, sample_rate)  # refines DIO's coarse estimate
    else:
        raise ValueError(f"unknown F0 method {method!r}; use 'harvest' or 'dio'")
    return fit_length(f0, num_frames(len(x), hop))


def f0_pyin(x, sample_rate: int = SAMPLE_RATE, hop: int = HOP, fmin: float = 60.0, fmax: float = 500.0,
            frame_length: int = 2048) -> np.ndarray:
    """F0 in Hz per frame (0 = unvoiced) with probabilistic YIN (librosa.pyin, Mauch & Dixon 2014).

    pyin marks unvoiced frames NaN; we write 0 there, the convention of the rest of ttslab.
    Frames are centred (``center=True``), so there are ``num_frames(len(x), hop)`` of them.
    """
    import librosa

    x = check_audio(x, sample_rate)
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate/2, got fmin={fmin}, fmax={fmax}, "
                         f"sample_rate={sample_rate}")
    f0, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame_length,
                                 hop_length=hop, center=True)
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0)
    return fit_length(f0, num_frames(len(x), hop))


def log_f0_and_vuv(f0) -> tuple[np.ndarray, np.ndarray]:
    """Continuous log-F0 and the voicing mask: the standard SPSS F0 representation (Yu & Young 2011).

    ``vuv[m] = f0[m] > 0``; ``lf0[m] = log(f0[m])`` where voiced, linearly interpolated across
    unvoiced gaps and held constant before the first / after the last voiced frame. A model then
    predicts a smooth ``lf0`` and a separate ``vuv`` (``f0 = exp(lf0) * vuv``). With no voiced
    frame at all, ``lf0`` is all zeros.

    >>> lf0, vuv = log_f0_and_vuv(np.array([0., 100., 0., 400., 0.]))
    >>> np.round(np.exp(lf0), 1).tolist(), vuv.tolist()
    ([100.0, 100.0, 200.0, 400.0, 400.0], [False, True, False, True, False])
    """
    f0 = np.asarray(f0, dtype=np.float64)
    if f0.ndim != 1 or f0.size == 0:
        raise ValueError(f"f0 must be a non-empty 1-D array (one value per frame), got shape {f0.shape}")
    if not np.all(np.isfinite(f0)):
        raise ValueError("f0 contains NaN or infinite values; use 0 for unvoiced frames (pyin gives NaN: see f0_pyin)")
    if np.any(f0 < 0):
        raise ValueError("f0 contains negative values; F0 is in Hz with 0 meaning unvoiced")
    vuv = f0 > 0
    if not vuv.any():
        return np.zeros_like(f0), vuv
    frames = np.arange(len(f0))
    # np.interp holds the end values outside the voiced range, which is exactly "edges held".
    lf0 = np.interp(frames, frames[vuv], np.log(f0[vuv]))
    return lf0, vuv
