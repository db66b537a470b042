"""Vocoders: turn acoustic features back into audio.

* :mod:`~ttslab.vocoders.griffin_lim`  log-mel -> audio by mel inversion + fast Griffin-Lim (torch).
* :mod:`~ttslab.vocoders.world`        WORLD synthesis from F0, mel-cepstrum and band aperiodicity.
* :mod:`~ttslab.vocoders.neural`       log-mel -> audio by a small ConvNeXt + iSTFT network (Vocos-style).

``*_resynthesize(x, sample_rate)`` runs analysis then synthesis on real audio: the quality floor each
vocoder sets for every model that feeds it (see ``benchmarks/vocoder_floor.py``).
"""

from ttslab.vocoders.griffin_lim import griffin_lim, griffin_lim_from_magnitude, mel_resynthesize, mel_to_linear
from ttslab.vocoders.world import world_synthesis, world_vocoder_resynthesize
from ttslab.vocoders.neural import NeuralVocoder, VocoderConfig

__all__ = ["griffin_lim", "griffin_lim_from_magnitude", "mel_to_linear", "mel_resynthesize",
           "world_synthesis", "world_vocoder_resynthesize", "NeuralVocoder", "VocoderConfig"]
