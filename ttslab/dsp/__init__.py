"""Signal processing for speech synthesis: spectrograms, F0, WORLD features, deltas, normalisation, caching.

* :mod:`~ttslab.dsp.spectral`  STFT and log-mel (LJSpeech / HiFi-GAN convention), numpy or torch.
* :mod:`~ttslab.dsp.f0`        F0 per frame (WORLD Harvest/DIO, pyin) and continuous log-F0 + V/UV.
* :mod:`~ttslab.dsp.world`     WORLD analysis / synthesis with mel-cepstra and band aperiodicity.
* :mod:`~ttslab.dsp.deltas`    delta features and the MLPG window matrix.
* :mod:`~ttslab.dsp.normalize` z-score and min-max normalisers that save to a dict.
* :mod:`~ttslab.dsp.cache`     per-utterance feature cache keyed by the settings.

All frame-level features share one grid: ``num_frames(len(x), HOP)`` frames, frame ``m`` at
``m * HOP / SAMPLE_RATE`` seconds.
"""

from ttslab.dsp.cache import FeatureCache
from ttslab.dsp.deltas import DELTA_WINDOWS, delta_features, delta_window_matrix
from ttslab.dsp.f0 import f0_pyin, f0_pyworld, frame_period_ms, log_f0_and_vuv
from ttslab.dsp.normalize import MinMaxNormalizer, Normalizer
from ttslab.dsp.spectral import (FMAX, FMIN, HOP, N_FFT, N_MELS, SAMPLE_RATE, WIN, LogMel, hann_window, log_mel,
                                 magnitude, mel_filterbank, num_frames, stft)
from ttslab.dsp.world import MCEP_ORDER, WorldFeatures, all_pass_alpha, world_analysis, world_synthesis

__all__ = [
    "SAMPLE_RATE", "N_FFT", "HOP", "WIN", "N_MELS", "FMIN", "FMAX", "MCEP_ORDER",
    "stft", "magnitude", "hann_window", "mel_filterbank", "log_mel", "num_frames", "LogMel",
    "f0_pyworld", "f0_pyin", "log_f0_and_vuv", "frame_period_ms",
    "WorldFeatures", "world_analysis", "world_synthesis", "all_pass_alpha",
    "DELTA_WINDOWS", "delta_features", "delta_window_matrix",
    "Normalizer", "MinMaxNormalizer", "FeatureCache",
]
