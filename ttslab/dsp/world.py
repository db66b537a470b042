"""WORLD vocoder features (Morise et al. 2016) on the STFT frame grid, with mel-cepstra (pysptk).

WORLD splits speech into three streams, one row per frame:

* ``f0``   (T,)          fundamental frequency in Hz, 0 = unvoiced (Harvest or DIO),
* ``sp``   (T, F)        smooth spectral envelope, power, ``F = fft_size//2 + 1`` (CheapTrick),
* ``ap``   (T, F)        aperiodicity in [0, 1], how noisy each band is (D4C).

SPSS models predict compact versions of ``sp`` and ``ap``:

* ``mcep`` (T, M+1)      mel-cepstrum ``c_0..c_M`` of ``sp`` on the warped frequency axis of the
  all-pass filter ``z^-1 -> (z^-1 - alpha) / (1 - alpha z^-1)`` (``pysptk.sp2mc``),
* ``bap``  (T, B)        band aperiodicity in dB (``pyworld.code_aperiodicity``; B = 2 at 22050 Hz).

Frames: the frame period is ``1000 * hop / sample_rate`` ms (11.6099 ms for hop 256 at 22050 Hz) and frame
``m`` sits at ``m * hop / sample_rate`` seconds, so there are exactly ``num_frames(len(x), hop)`` frames,
the same count as :func:`ttslab.dsp.log_mel` gives. (pyworld itself returns
``1 + floor(len(x)*1000 / (sample_rate*frame_period))`` frames, equal up to float rounding; we cut or repeat
the last frame to make the counts match exactly, see :func:`ttslab.dsp.f0.fit_length`.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ttslab.dsp.f0 import check_audio, f0_pyworld, frame_period_ms, import_pyworld
from ttslab.dsp.spectral import HOP, SAMPLE_RATE

MCEP_ORDER = 39  # 40 coefficients c0..c39, the usual choice at 16-22 kHz (Merlin uses 59 at 48 kHz)


def import_pysptk():
    """``pysptk``, without its harmless ``pkg_resources is deprecated`` import warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import pysptk
    return pysptk


def all_pass_alpha(sample_rate: int) -> float:
    """Frequency-warping constant ``alpha`` that best approximates the mel scale at ``sample_rate`` Hz.

    >>> all_pass_alpha(22050)
    0.455
    >>> round(all_pass_alpha(16000), 3)   # the classic 16 kHz value
    0.41
    """
    return float(import_pysptk().util.mcepalpha(sample_rate))


@dataclass
class WorldFeatures:
    """WORLD analysis of one utterance; every array has one row per frame (see module docstring)."""

    f0: np.ndarray           # (T,) Hz, 0 = unvoiced
    sp: np.ndarray           # (T, fft_size//2 + 1) power spectral envelope
    ap: np.ndarray           # (T, fft_size//2 + 1) aperiodicity in [0, 1]
    mcep: np.ndarray         # (T, order + 1) mel-cepstrum, c0 first
    bap: np.ndarray          # (T, bands) band aperiodicity in dB
    sample_rate: int         # Hz
    frame_period: float      # ms
    alpha: float             # all-pass constant used for mcep
    fft_size: int            # CheapTrick FFT size; needed to decode mcep/bap again

    @property
    def num_frames(self) -> int:
        return len(self.f0)


def world_analysis(x, sample_rate: int = SAMPLE_RATE, hop: int = HOP, mcep_order: int = MCEP_ORDER,
                   alpha: float | None = None, f0_floor: float = 60.0, f0_ceil: float = 500.0,
                   f0_method: str = "harvest", fft_size: int | None = None) -> WorldFeatures:
    """Analyse mono audio into :class:`WorldFeatures` (F0, envelope, aperiodicity, mcep, bap).

    ``alpha`` defaults to :func:`all_pass_alpha` of ``sample_rate``; ``fft_size`` to
    ``pyworld.get_cheaptrick_fft_size(sample_rate, f0_floor)`` (2048 at 22050 Hz with a 60 Hz floor: the
    window must hold three periods of the lowest F0).
    """
    pw, sptk = import_pyworld(), import_pysptk()
    x = check_audio(x, sample_rate)
    if mcep_order < 1:
        raise ValueError(f"mcep_order must be >= 1, got {mcep_order}")
    alpha = all_pass_alpha(sample_rate) if alpha is None else float(alpha)
    if not -1 < alpha < 1:
        raise ValueError(f"all-pass constant alpha must lie in (-1, 1), got {alpha}")
    fft_size = pw.get_cheaptrick_fft_size(sample_rate, f0_floor) if fft_size is None else int(fft_size)
    period = frame_period_ms(sample_rate, hop)

    f0 = np.ascontiguousarray(f0_pyworld(x, sample_rate, hop, f0_floor, f0_ceil, method=f0_method), dtype=np.float64)
    t = np.arange(len(f0), dtype=np.float64) * period / 1000.0  # frame m at m*hop/sample_rate seconds
    sp = pw.cheaptrick(x, f0, t, sample_rate, f0_floor=f0_floor, fft_size=fft_size)
    ap = pw.d4c(x, f0, t, sample_rate, fft_size=fft_size)
    mcep = sptk.sp2mc(sp, order=mcep_order, alpha=alpha)
    bap = pw.code_aperiodicity(ap, sample_rate)
    return WorldFeatures(f0=f0, sp=sp, ap=ap, mcep=mcep, bap=bap, sample_rate=int(sample_rate), frame_period=period,
                         alpha=alpha, fft_size=int(fft_size))


def _frames(a, name: str, ndim: int) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim or a.shape[0] == 0:
        want = "(T,)" if ndim == 1 else "(T, D)"
        raise ValueError(f"{name} must have shape {want} with T > 0 frames, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values; check the model output / denormalisation")
    return np.ascontiguousarray(a, dtype=np.float64)


def world_synthesis(f0, mcep, bap, sample_rate: int = SAMPLE_RATE, frame_period: float | None = None,
                    alpha: float | None = None, fft_size: int | None = None,
                    n_samples: int | None = None) -> np.ndarray:
    """Audio (float32) from F0, mel-cepstrum and band aperiodicity: decode, then ``pyworld.synthesize``.

    ``sp = mc2sp(mcep, alpha, fft_size)``, ``ap = decode_aperiodicity(bap, sample_rate, fft_size)``.
    Defaults: ``frame_period`` for hop 256, ``alpha = all_pass_alpha(sample_rate)``, ``fft_size`` as in
    :func:`world_analysis` with a 60 Hz floor. Give ``n_samples`` to cut / zero-pad the output to
    the original length (WORLD makes ``(T-1) * frame_period * sample_rate / 1000 + 1`` samples).
    """
    pw, sptk = import_pyworld(), import_pysptk()
    f0, mcep, bap = _frames(f0, "f0", 1), _frames(mcep, "mcep", 2), _frames(bap, "bap", 2)
    if not len(f0) == len(mcep) == len(bap):
        raise ValueError(f"f0, mcep and bap need the same number of frames; got {len(f0)}, {len(mcep)}, {len(bap)}")
    if np.any(f0 < 0):
        raise ValueError("f0 contains negative values; F0 is in Hz with 0 meaning unvoiced")
    if bap.shape[1] != pw.get_num_aperiodicities(sample_rate):
        raise ValueError(f"bap has {bap.shape[1]} bands but WORLD codes {pw.get_num_aperiodicities(sample_rate)} at "
                         f"{sample_rate} Hz; was it analysed at another sample rate?")
    frame_period = frame_period_ms(sample_rate, HOP) if frame_period is None else float(frame_period)
    alpha = all_pass_alpha(sample_rate) if alpha is None else float(alpha)
    fft_size = pw.get_cheaptrick_fft_size(sample_rate, 60.0) if fft_size is None else int(fft_size)

    sp = np.ascontiguousarray(sptk.mc2sp(mcep, alpha=alpha, fftlen=fft_size), dtype=np.float64)
    ap = np.ascontiguousarray(pw.decode_aperiodicity(bap, sample_rate, fft_size), dtype=np.float64)
    y = pw.synthesize(f0, sp, ap, sample_rate, frame_period=frame_period)
    if n_samples is not None:
        y = y[:n_samples] if len(y) >= n_samples else np.pad(y, (0, n_samples - len(y)))
    return y.astype(np.float32)
