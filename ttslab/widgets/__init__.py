"""Listening to and looking at speech in notebooks.

* :func:`play` – one clip as an ``IPython.display.Audio`` (base64 Ogg Vorbis, plays in saved notebooks).
* :func:`compare` – an A/B grid: name, player, log-mel thumbnail and metrics per system.
* :func:`synthesis_panel` – text box, speaker, rate, pitch and a *Synthesize* button around an
  injected ``synthesize(text, speaker=, rate=, pitch=) -> (audio, sample_rate)`` callable.
* :func:`listening_test` – a blind, seeded MOS test (rate 1–5, then reveal the systems).
* :func:`plot_waveform_and_spectrogram` – waveform + log-mel with a phone alignment on top.

The modules, from the bottom up:

* :mod:`~ttslab.widgets.audio`        checking clips, Ogg Vorbis encoding, :func:`play`;
* :mod:`~ttslab.widgets.spectrogram`  the fixed log-mel settings and thumbnail PNGs;
* :mod:`~ttslab.widgets.compare`      the A/B grid;
* :mod:`~ttslab.widgets.plots`        the waveform + spectrogram plot;
* :mod:`~ttslab.widgets.interactive`  the ipywidgets panels (synthesis panel, listening test).

Heavy libraries (IPython, ipywidgets, matplotlib, librosa) are imported inside the functions
that need them, so ``import ttslab.widgets`` skips them and works without a display.
"""

from ttslab.widgets.audio import AUDIO_MIME, VORBIS_COMPRESSION_LEVEL, as_mono_float, encode_audio, play
from ttslab.widgets.compare import compare
from ttslab.widgets.interactive import (DEFAULT_TEXT, MOS_LABELS, ListeningTest, SynthesisPanel, listening_test,
                                        synthesis_panel)
from ttslab.widgets.plots import plot_waveform_and_spectrogram

__all__ = [
    "play", "encode_audio", "as_mono_float", "compare", "plot_waveform_and_spectrogram",
    "synthesis_panel", "SynthesisPanel", "listening_test", "ListeningTest",
    "DEFAULT_TEXT", "AUDIO_MIME", "VORBIS_COMPRESSION_LEVEL", "MOS_LABELS",
]
