"""Scoring an adapted voice on held-out sentences: MCD-DTW, F0 RMSE and the judge's phone error rate.

For each test utterance of the speaker the model predicts a log-mel with its own durations, the
neural vocoder turns it into audio, and the audio is compared with the recording as
``benchmarks/deep_tts.py`` does: WORLD analyses of both, MCD-DTW on c1..c39, F0 RMSE along the DTW
path (:func:`ttslab.vocoders.evaluate.compare_analyses`), and the CTC judge's corpus-level PER.

F0 comes from pYIN tracks of both signals by default (``pitch_tracker="pyin"``), the measure of
``benchmarks/deep_tts.py``: on this corpus WORLD's Harvest mis-tracks 6-12 % of the voiced frames of
its own resynthesis, which puts a ~20 Hz floor under its F0 RMSE (the benchmark's docstring has the
numbers). ``pitch_tracker="world"`` scores the WORLD analyses' own F0 (``f0_method``) instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ttslab.dsp.f0 import f0_pyin
from ttslab.dsp.world import world_analysis
from ttslab.metrics import corpus_phone_error_rate
from ttslab.vocoders.evaluate import compare_analyses


def synthesize_utterance(model, utt, speaker: str, vocoder) -> np.ndarray:
    """Audio of ``model`` reading ``utt``'s phones as ``speaker`` (own durations), through ``vocoder``."""
    from ttslab.models.fastspeech import utterance_inputs

    mel = model.infer(utterance_inputs(utt), speaker)["mel"].T.numpy()
    return np.asarray(vocoder.vocode(mel), dtype=np.float32)


def evaluate_voice(model, speaker: str, utterances: Sequence, vocoder, judge, *, f0_method: str = "harvest",
                   pitch_tracker: str = "pyin", reference_cache: dict | None = None) -> dict:
    """Mean MCD-DTW (dB), F0 RMSE (Hz) and PER of ``model`` speaking as ``speaker`` on ``utterances``.

    ``f0_method`` is the WORLD analysis' F0 (it shapes the spectral envelope MCD reads); ``pitch_tracker``
    ``"pyin"`` or ``"world"`` says which F0 tracks F0 RMSE compares. ``reference_cache`` (a dict kept
    by the caller) saves the recordings' analyses between calls.
    """
    if not utterances:
        raise ValueError("no test utterances to evaluate on")
    if pitch_tracker not in ("pyin", "world"):
        raise ValueError(f"unknown pitch_tracker {pitch_tracker!r}; use 'pyin' or 'world'")
    cache = {} if reference_cache is None else reference_cache
    rows, refs, hyps = [], [], []
    for utt in utterances:
        key = (utt.id, f0_method)
        if key not in cache:
            cache[key] = world_analysis(utt.load_audio(), utt.sample_rate, f0_method=f0_method)
        y = synthesize_utterance(model, utt, speaker, vocoder)
        syn = world_analysis(y, utt.sample_rate, f0_method=f0_method)
        tracks = None
        if pitch_tracker == "pyin":
            if (utt.id, "pyin") not in cache:
                cache[(utt.id, "pyin")] = f0_pyin(utt.load_audio(), utt.sample_rate)
            tracks = {"pyin": (cache[(utt.id, "pyin")], f0_pyin(y, utt.sample_rate))}
        row = compare_analyses(cache[key], syn, same_timing=False, f0_tracks=tracks)
        if tracks:
            row["f0_rmse_hz"] = row["f0_rmse_hz_pyin"]
        rows.append(row)
        refs.append(list(utt.phones))
        hyps.append(judge.transcribe(y))
    mean = lambda k: float(np.nanmean([r[k] for r in rows]))
    return {"mcd_dtw_db": mean("mcd_dtw_db"), "f0_rmse_hz": mean("f0_rmse_hz"),
            "per": float(corpus_phone_error_rate(refs, hyps)), "n": len(rows)}
