"""The WORLD vocoder as a resynthesiser: analysis then synthesis, the floor of any WORLD-based system.

An acoustic model that predicted WORLD features perfectly would sound exactly like
:func:`world_vocoder_resynthesize`; whatever is lost here (a slightly buzzy, "vocoded" timbre from
the 40-coefficient mel-cepstrum and 2-band aperiodicity) no SPSS model can win back.
"""

from __future__ import annotations

import numpy as np

from ttslab.dsp.spectral import HOP, SAMPLE_RATE
from ttslab.dsp.world import MCEP_ORDER, world_analysis, world_synthesis

__all__ = ["world_vocoder_resynthesize", "world_synthesis"]


def world_vocoder_resynthesize(x, sample_rate: int = SAMPLE_RATE, hop: int = HOP, mcep_order: int = MCEP_ORDER,
                               **analysis_kwargs) -> np.ndarray:
    """``world_synthesis(world_analysis(x))`` through mcep and bap, cut to ``len(x)``; float32."""
    feats = world_analysis(x, sample_rate, hop=hop, mcep_order=mcep_order, **analysis_kwargs)
    return world_synthesis(feats.f0, feats.mcep, feats.bap, sample_rate=sample_rate, frame_period=feats.frame_period,
                           alpha=feats.alpha, fft_size=feats.fft_size, n_samples=len(np.asarray(x)))
