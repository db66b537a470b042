"""Text to speech with a trained model: the front-end's phones, the model, a vocoder."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ttslab.data.speakers import espeak_voice_for, is_builtin
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.models.fastspeech.model import FastSpeech
from ttslab.text.frontend import EspeakVoice, analyze, model_inputs


# ---------------------------------------------------------------------------------------------
# Text front end and synthesis


def utterance_inputs(utterance) -> dict:
    """Model inputs of a labelled corpus utterance (no audio read): the front-end's
    :func:`~ttslab.text.frontend.model_inputs` of its segments, the same sequence its features have."""
    if utterance.segments is None:
        raise ValueError(f"utterance {utterance.id} has no phone labels; use text_to_inputs(utterance.text, ...)")
    return model_inputs(utterance.segments)


def front_end_voice(speaker: str, voice: str | EspeakVoice | None = None) -> EspeakVoice:
    """How text is read for ``speaker``: its own eSpeak settings when it is a built-in speaker, else
    ``voice`` (an eSpeak voice name or :class:`~ttslab.text.frontend.EspeakVoice`)."""
    if voice is not None:
        return voice if isinstance(voice, EspeakVoice) else EspeakVoice(voice, voice.split("-")[0][:2])
    if not is_builtin(speaker):
        raise ValueError(f"unknown speaker {speaker!r} for the front-end: it is not a built-in speaker, so its accent "
                         "is unknown; pass voice='en-us' (or another eSpeak voice) to read the text with")
    return espeak_voice_for(speaker)


def text_to_inputs(text: str, speaker: str = "en_us_m", *, voice: str | EspeakVoice | None = None) -> dict:
    """Model inputs for ``text`` as ``speaker`` reads it: :func:`ttslab.text.frontend.analyze` (normalization,
    eSpeak NG in the speaker's accent, the corpus' labelling) and its :meth:`~ttslab.text.frontend.Analysis.inputs`:
    ``{"phone_ids", "stress", "word_position"}`` (N,) int64 and ``"phones"``. ``voice`` overrides the
    eSpeak voice (for speakers that are not built in)."""
    return analyze(text, front_end_voice(speaker, voice)).inputs()


def text_to_phone_ids(text: str, speaker: str = "en_us_m", *, voice: str | EspeakVoice | None = None) -> np.ndarray:
    """Phone ids (N,) of ``text`` (see :func:`text_to_inputs`, which adds stress and word positions)."""
    return text_to_inputs(text, speaker, voice=voice)["phone_ids"]


def synthesize(model: FastSpeech, text: str, speaker: str, vocoder: Callable | None = None, *,
               rate: float = 1.0, pitch_shift_semitones: float = 0.0, energy_scale: float = 1.0,
               voice: str | EspeakVoice | None = None) -> tuple[np.ndarray, int]:
    """Text -> ``(audio float32, sample_rate)``: the front-end, the model, then ``vocoder(log_mel (80, T))``
    (default: Griffin-Lim, :func:`ttslab.vocoders.griffin_lim`). The front-end uses ``speaker``'s
    accent when it is a built-in speaker, else ``voice`` (default ``"en-us"``)."""
    model.speaker_index(speaker)  # unknown speaker: fail before running eSpeak
    fe_voice = front_end_voice(speaker, voice if (voice or is_builtin(speaker)) else "en-us")
    inputs = analyze(text, fe_voice).inputs()
    out = model.infer(inputs, speaker, rate=rate, pitch_shift_semitones=pitch_shift_semitones, energy_scale=energy_scale)
    log_mel = out["mel"].T.numpy()
    if vocoder is None:
        from ttslab.vocoders import griffin_lim as vocoder
    audio = np.asarray(vocoder(log_mel), dtype=np.float32)
    return audio, SAMPLE_RATE
