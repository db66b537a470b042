"""STFT and log-mel spectrograms in the LJSpeech / HiFi-GAN convention, in torch.

The acoustic features of every neural model in ttslab are computed here, so that a model trained
on them can be vocoded by any HiFi-GAN-style vocoder::

    X[f, m]   = sum_n x[n + m*HOP - N_FFT/2] * w[n] * exp(-2j*pi*f*n / N_FFT)   (reflect-padded)
    mel[k, m] = sum_f M[k, f] * |X[f, m]|                                      (Slaney mel filters)
    logmel    = log(max(mel, 1e-5))                                            (natural log)

``w`` is a periodic Hann window of length ``WIN``; frame ``m`` is centred on sample ``m*HOP``
(``center=True``), so a signal of ``n`` samples has ``1 + n // HOP`` frames (:func:`num_frames`).
Every function takes a 1-D signal or a ``(B, T)`` batch, numpy or torch; the log-mel functions
return the same kind they were given.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SAMPLE_RATE = 22050  # Hz, LJSpeech
N_FFT = 1024         # FFT size: 46 ms at 22050 Hz, 513 frequency bins
HOP = 256            # frame shift: 11.6 ms, i.e. ~86 frames per second
WIN = 1024           # analysis window length (Hann)
N_MELS = 80
FMIN = 0.0           # Hz
FMAX = 8000.0        # Hz; HiFi-GAN's "V1" LJSpeech config
LOG_FLOOR = 1e-5     # mel magnitudes are clamped here before the log (HiFi-GAN)


def num_frames(n_samples: int, hop: int = HOP) -> int:
    """Frames of a centred STFT: ``1 + n_samples // hop``.

    >>> num_frames(22050, 256)
    87
    >>> num_frames(0, 256)
    1
    """
    if n_samples < 0 or hop <= 0:
        raise ValueError(f"need n_samples >= 0 and hop > 0, got n_samples={n_samples}, hop={hop}")
    return 1 + int(n_samples) // int(hop)


def _as_batched_tensor(x, name: str = "x", min_samples: int = 1) -> tuple[torch.Tensor, bool]:
    """``x`` as a float32 ``(B, T)`` tensor and whether it was 1-D; validates early."""
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            raise TypeError(f"{name} must be float audio in [-1, 1], got dtype {x.dtype}; "
                            f"convert 16-bit PCM with x.astype(np.float32) / 32768")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    elif not x.is_floating_point():
        raise TypeError(f"{name} must be float audio in [-1, 1], got {x.dtype}; convert PCM with x.float() / 32768")
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (T,) or batched (B, T); got shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); pass at least some audio samples")
    if x.shape[-1] < min_samples:
        raise ValueError(
            f"{name} has {x.shape[-1]} samples but needs more than {min_samples - 1} for reflect padding "
            f"(n_fft // 2); pad the signal or use a smaller n_fft"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite samples; clean the audio before analysis")
    squeeze = x.ndim == 1
    return (x.unsqueeze(0) if squeeze else x).float(), squeeze


def hann_window(win: int = WIN, device=None) -> torch.Tensor:
    """Periodic Hann window ``w[n] = 0.5 - 0.5*cos(2*pi*n/win)`` (as librosa/scipy ``fftbins=True``).

    >>> hann_window(4).tolist()
    [0.0, 0.5, 1.0, 0.5]
    """
    return torch.hann_window(win, periodic=True, dtype=torch.float32, device=device)


def stft(x, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN, window: torch.Tensor | None = None) -> torch.Tensor:
    """Complex STFT ``X[..., f, m]`` of shape ``(n_fft//2 + 1, frames)`` or ``(B, n_fft//2 + 1, frames)``.

    ``X[f, m] = sum_n xpad[m*hop + n] * w[n] * exp(-2j*pi*f*n/n_fft)`` where ``xpad`` is ``x``
    reflect-padded by ``n_fft//2`` on both sides (``center=True``) and ``w`` is a Hann window of
    length ``win`` zero-padded to ``n_fft`` in the middle. Always returns a torch tensor.
    """
    if win > n_fft:
        raise ValueError(f"window length win={win} cannot exceed n_fft={n_fft}")
    xb, squeeze = _as_batched_tensor(x, min_samples=n_fft // 2 + 1)
    if window is None:
        window = hann_window(win, device=xb.device)
    spec = torch.stft(xb, n_fft=n_fft, hop_length=hop, win_length=win, window=window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    return spec[0] if squeeze else spec


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``|X| = sqrt(Re(X)^2 + Im(X)^2)`` of a complex spectrogram (HiFi-GAN calls this the linear spectrogram)."""
    if not torch.is_complex(spec):
        raise TypeError("magnitude() expects the complex output of stft(); got a real tensor")
    return spec.abs()


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS,
                   fmin: float = FMIN, fmax: float = FMAX) -> torch.Tensor:
    """Slaney-style triangular mel filters ``M`` of shape ``(n_mels, n_fft//2 + 1)`` (librosa, as HiFi-GAN).

    Mel scale (Slaney): linear below 1 kHz, logarithmic above; each triangle is area-normalised
    (``norm="slaney"``), so ``M @ |X|`` is an average magnitude per band.

    >>> tuple(mel_filterbank().shape)
    (80, 513)
    """
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2 = {sample_rate / 2}; got fmin={fmin}, fmax={fmax} "
                         f"(is sample_rate={sample_rate} right?)")
    return _mel_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), float(fmax)).clone()


@functools.lru_cache(maxsize=16)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    # cached: librosa builds the filters in ~0.1 s, far longer than the log-mel of a sentence itself
    import librosa

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    return torch.from_numpy(fb.astype(np.float32))


def _log_mel_tensor(xb: torch.Tensor, window: torch.Tensor, fbank: torch.Tensor,
                    n_fft: int, hop: int, win: int) -> torch.Tensor:
    """``log(max(M @ |STFT(x)|, 1e-5))`` for a validated ``(B, T)`` tensor."""
    spec = torch.stft(xb, n_fft=n_fft, hop_length=hop, win_length=win, window=window,
                      center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    mel = torch.matmul(fbank, spec.abs())  # (n_mels, F) @ (B, F, frames) -> (B, n_mels, frames)
    return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def log_mel(x, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN,
            n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX):
    """Log-mel spectrogram ``log(max(M @ |STFT(x)|, 1e-5))``: ``(n_mels, frames)`` or ``(B, n_mels, frames)``.

    numpy in -> numpy (float32) out; torch in -> torch out. ``frames = num_frames(T, hop)``.

    >>> log_mel(np.zeros(22050, dtype=np.float32)).shape   # silence sits at the floor log(1e-5)
    (80, 87)
    """
    was_numpy = not isinstance(x, torch.Tensor)
    xb, squeeze = _as_batched_tensor(x, min_samples=n_fft // 2 + 1)
    fbank = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).to(xb.device)
    out = _log_mel_tensor(xb, hann_window(win, device=xb.device), fbank, n_fft, hop, win)
    out = out[0] if squeeze else out
    return out.cpu().numpy() if was_numpy else out


class LogMel(torch.nn.Module):
    """:func:`log_mel` as a module, with the window and filterbank as (non-trained) buffers.

    Buffers move with ``.to(device)`` and are saved in the ``state_dict``, so a model checkpoint
    records exactly which features it was trained on.

    >>> LogMel()(torch.zeros(2, 4096)).shape
    torch.Size([2, 80, 17])
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop: int = HOP, win: int = WIN,
                 n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX):
        super().__init__()
        if win > n_fft:
            raise ValueError(f"window length win={win} cannot exceed n_fft={n_fft}")
        self.sample_rate, self.n_fft, self.hop, self.win, self.n_mels = sample_rate, n_fft, hop, win, n_mels
        self.fmin, self.fmax = fmin, fmax
        self.register_buffer("window", hann_window(win))
        self.register_buffer("fbank", mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb, squeeze = _as_batched_tensor(x, min_samples=self.n_fft // 2 + 1)
        out = _log_mel_tensor(xb.to(self.window.device), self.window, self.fbank, self.n_fft, self.hop, self.win)
        return out[0] if squeeze else out

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop={self.hop}, win={self.win}, "
                f"n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}")
