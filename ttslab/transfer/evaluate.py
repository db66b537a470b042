"""Scoring an adapted voice on held-out sentences: MCD-DTW, F0 RMSE and the judge's phone error rate.

For each test utterance of the speaker the model predicts a log-mel with its own durations, the
neural vocoder turns it into audio, and the audio is compared with the recording as
``benchmarks/deep_tts.py`` does: WORLD analyses of both, MCD-DTW on c1..c39, F0 RMSE along the DTW
path (:func:`ttslab.vocoders.evaluate.compare_analyses`), and the CTC judge's corpus-level PER.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ttslab.dsp.world import world_analysis
from ttslab.metrics import corpus_phone_error_rate
from ttslab.vocoders.evaluate import compare_analyses


def synthesize_utterance(model, utt, speaker: str, vocoder) -> np.ndarray:
    """Audio of ``model`` reading ``utt``'s phones as ``speaker`` (own durations), through ``vocoder``."""
    from ttslab.models.fastspeech import utterance_inputs

    mel = model.infer(utterance_inputs(utt), speaker)["mel"].T.numpy()
    return np.asarray(vocoder.vocode(mel), dtype=np.float32)


def evaluate_voice(model, speaker: str, utterances: Sequence, vocoder, judge, *, f0_method: str = "harvest",
                   reference_cache: dict | None = None) -> dict:
    """Mean MCD-DTW (dB), F0 RMSE (Hz) and PER of ``model`` speaking as ``speaker`` on ``utterances``.

    ``reference_cache`` (a dict kept by the caller) saves the recordings' WORLD analyses between calls.
    """
    if not utterances:
        raise ValueError("no test utterances to evaluate on")
    cache = {} if reference_cache is None else reference_cache
    rows, refs, hyps = [], [], []
    for utt in utterances:
        key = (utt.id, f0_method)
        if key not in cache:
            cache[key] = world_analysis(utt.load_audio(), utt.sample_rate, f0_method=f0_method)
        y = synthesize_utterance(model, utt, speaker, vocoder)
        rows.append(compare_analyses(cache[key], world_analysis(y, utt.sample_rate, f0_method=f0_method),
                                     same_timing=False))
        refs.append(list(utt.phones))
        hyps.append(judge.transcribe(y))
    mean = lambda k: float(np.nanmean([r[k] for r in rows]))
    return {"mcd_dtw_db": mean("mcd_dtw_db"), "f0_rmse_hz": mean("f0_rmse_hz"),
            "per": float(corpus_phone_error_rate(refs, hyps)), "n": len(rows)}
