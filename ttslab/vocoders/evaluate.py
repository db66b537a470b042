"""Judge vocoders by analysis-resynthesis: the quality floor every later model is compared with.

A TTS system is an acoustic model plus a vocoder; even a perfect acoustic model cannot beat the
vocoder fed with the features of the real recording. For an utterance and each vocoder this
measures, against the original recording:

* MCD (dB)               WORLD mel-cepstra (c1..c39) of original vs resynthesis, frame by frame
* MCD-DTW (dB)           the same after DTW alignment, full band (0-11 kHz)
* MCD-DTW 0-8 kHz (dB)   the same after resampling both to 16 kHz (alpha 0.42): the band log-mel
                         features describe, so mel-based vocoders are judged on what they get
* mel LSD (dB)           log-spectral distance of the 80-band log-mels (0-8 kHz), frame by frame
* F0 RMSE (Hz, cents)    Harvest F0 of both, on frames voiced in both
* V/UV error             fraction of frames whose voicing decision flips
* RTF                    vocoder time / audio time (analysis + synthesis)

Why two kinds of spectral measure: the log-mel features stop at 8 kHz, so Griffin-Lim from log-mel
cannot bring back 8-11 kHz; WORLD's full-band mel-cepstrum punishes that emptiness hard (low-passing
an eSpeak utterance at 7.8 kHz alone costs ~22 dB MCD). ``benchmarks/vocoder_floor.py`` runs this on
the held-out set; notebook 01 on a few utterances.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterable, Mapping

import numpy as np

from ttslab.dsp.spectral import HOP, SAMPLE_RATE, log_mel
from ttslab.dsp.world import world_analysis
from ttslab.io import SampleRateError
from ttslab.metrics import f0_rmse, log_spectral_distance, mcd_dtw, measure_rtf, mel_cepstral_distortion, vuv_error
from ttslab.vocoders.griffin_lim import mel_resynthesize
from ttslab.vocoders.world import world_vocoder_resynthesize

Vocoder = Callable[[np.ndarray, int], np.ndarray]  # (audio, sample_rate) -> resynthesised audio, same length

DEFAULT_VOCODERS: dict[str, Vocoder] = {
    "world": world_vocoder_resynthesize,
    "griffin_lim_32": partial(mel_resynthesize, n_iter=32),
    "griffin_lim_100": partial(mel_resynthesize, n_iter=100),
}
METRICS = ("mcd_db", "mcd_dtw_db", "mcd8k_dtw_db", "mel_lsd_db", "f0_rmse_hz", "f0_rmse_cents", "vuv_error")
#: Rate for the band-limited MCD: Nyquist 8 kHz, the log-mel's upper edge.
BAND_LIMITED_SR = 16000


def band_limited_mcep(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """WORLD mel-cepstrum of the 0-8 kHz band: ``x`` resampled to 16 kHz, frame period kept."""
    import librosa

    y = librosa.resample(np.asarray(x, dtype=np.float32), orig_sr=sample_rate, target_sr=BAND_LIMITED_SR)
    return world_analysis(y, BAND_LIMITED_SR, hop=round(HOP * BAND_LIMITED_SR / SAMPLE_RATE)).mcep


def evaluate_utterance(x: np.ndarray, sample_rate: int, vocoders: Mapping[str, Vocoder], *,
                       keep_audio: bool = False) -> dict[str, dict]:
    """Metrics of every vocoder on one utterance: ``{vocoder: {metric: value}}``.

    With ``keep_audio`` each entry also holds the resynthesis under ``"audio"``.
    """
    seconds = len(x) / sample_rate
    ref = world_analysis(x, sample_rate)
    ref_mcep8k = band_limited_mcep(x, sample_rate)
    ref_mel = np.exp(log_mel(x, sample_rate=sample_rate))
    out = {}
    for name, vocode in vocoders.items():
        y, rtf = measure_rtf(vocode, seconds, x, sample_rate)
        if len(y) != len(x):
            raise ValueError(f"vocoder {name!r} returned {len(y)} samples for {len(x)}; it must keep the length")
        syn = world_analysis(y, sample_rate)
        out[name] = {
            "mcd_db": mel_cepstral_distortion(ref.mcep, syn.mcep),
            "mcd_dtw_db": mcd_dtw(ref.mcep, syn.mcep),
            "mcd8k_dtw_db": mcd_dtw(ref_mcep8k, band_limited_mcep(y, sample_rate)),
            "mel_lsd_db": log_spectral_distance(ref_mel, np.exp(log_mel(y, sample_rate=sample_rate))),
            "f0_rmse_hz": f0_rmse(ref.f0, syn.f0, unit="hz"),  # NaN if nothing is voiced in both
            "f0_rmse_cents": f0_rmse(ref.f0, syn.f0, unit="cents"),
            "vuv_error": vuv_error(ref.f0, syn.f0),
            "processing_seconds": rtf * seconds,
        }
        if keep_audio:
            out[name]["audio"] = y
    return out


def _means(rows: list[dict]) -> dict:
    """Mean of each metric over utterances (skipping undefined ones), plus RTF as total time / total audio."""
    summary = {}
    for m in METRICS:
        values = [r[m] for r in rows if r[m] is not None and np.isfinite(r[m])]
        summary[m] = float(np.mean(values)) if values else None
    summary["rtf"] = sum(r["processing_seconds"] for r in rows) / sum(r["seconds"] for r in rows)
    summary["n_utterances"] = len(rows)
    return summary


def _rows_of(utt, vocoders: Mapping[str, Vocoder], sample_rate: int) -> list[dict]:
    if getattr(utt, "sample_rate", sample_rate) != sample_rate:
        raise SampleRateError(f"utterance {utt.id} is {utt.sample_rate} Hz; the vocoders here expect {sample_rate} Hz")
    x = np.asarray(utt.load_audio(), dtype=np.float32)
    rows = []
    for name, metrics in evaluate_utterance(x, sample_rate, vocoders).items():  # metrics only: no audio kept
        metrics = {k: (None if np.isnan(v) else v) for k, v in metrics.items()}  # JSON has no NaN
        rows.append({"utterance": utt.id, "speaker": utt.speaker, "vocoder": name, "seconds": len(x) / sample_rate,
                     **metrics})
    return rows


def _rows_of_default(utt) -> list[dict]:
    """Worker entry for ``jobs > 1``: one thread per process, so each RTF is a one-thread RTF."""
    import torch

    torch.set_num_threads(1)
    return _rows_of(utt, DEFAULT_VOCODERS, SAMPLE_RATE)


def evaluate_vocoders(utterances: Iterable, vocoders: Mapping[str, Vocoder] | None = None,
                      sample_rate: int = SAMPLE_RATE, progress: bool = True, jobs: int = 1) -> dict:
    """Run every vocoder on every utterance (objects with ``.id``, ``.speaker``, ``.load_audio()``).

    Returns ``{"rows": [per utterance and vocoder], "summary": {vocoder: {"mean": ..., "per_speaker": ...}}}``.
    """
    from tqdm.auto import tqdm

    vocoders = DEFAULT_VOCODERS if vocoders is None else vocoders
    utterances = list(utterances)
    if not utterances:
        raise ValueError("no utterances to evaluate; is the test split of the corpus empty?")
    rows = []
    if jobs > 1:  # separate one-thread processes (default vocoders only: they must be picklable by name)
        import multiprocessing

        if vocoders is not DEFAULT_VOCODERS or sample_rate != SAMPLE_RATE:
            raise ValueError("jobs > 1 runs the default vocoders at 22050 Hz only")
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for r in tqdm(pool.imap(_rows_of_default, utterances), total=len(utterances), desc="vocoders",
                          disable=not progress):
                rows.extend(r)
    else:
        for utt in tqdm(utterances, desc="vocoders", disable=not progress):
            rows.extend(_rows_of(utt, vocoders, sample_rate))
    summary = {}
    for name in vocoders:
        mine = [r for r in rows if r["vocoder"] == name]
        speakers = list(dict.fromkeys(r["speaker"] for r in mine))
        summary[name] = {"mean": _means(mine),
                         "per_speaker": {s: _means([r for r in mine if r["speaker"] == s]) for s in speakers}}
    return {"rows": rows, "summary": summary}


def _fmt(v, digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def to_markdown(results: dict, per_speaker: bool = True) -> str:
    """The summary as Markdown tables: overall means, then (optionally) per speaker."""
    head = ("| vocoder | MCD (dB) | MCD-DTW (dB) | MCD-DTW 0-8 kHz (dB) | mel LSD (dB) | F0 RMSE (Hz) | F0 RMSE (cents) "
            "| V/UV error (%) | RTF |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")

    def line(label: str, m: dict) -> str:
        vuv = None if m["vuv_error"] is None else 100 * m["vuv_error"]
        return (f"| {label} | {_fmt(m.get('mcd_db'), 2)} | {_fmt(m['mcd_dtw_db'], 2)} | {_fmt(m['mcd8k_dtw_db'], 2)} | {_fmt(m['mel_lsd_db'], 2)} | {_fmt(m['f0_rmse_hz'], 1)} | "
                f"{_fmt(m['f0_rmse_cents'], 0)} | {_fmt(vuv, 1)} | {_fmt(m['rtf'], 3)} |\n")

    meta = results.get("meta", {})
    text = "# Vocoder floor: analysis-resynthesis of held-out utterances\n\n"
    if meta:
        text += (f"Corpus mode `{meta.get('mode')}`, {meta.get('n_utterances')} utterances "
                 f"({meta.get('audio_seconds', 0):.1f} s), {meta.get('sample_rate')} Hz. "
                 "MCD (full band, DTW), F0 and V/UV compare WORLD analyses of the original and the "
                 "resynthesis; mel LSD compares their 0-8 kHz log-mels. Log-mel + Griffin-Lim has nothing "
                 "above 8 kHz, which inflates its MCD; see the script's docstring.\n\n")
    text += "## Mean over utterances\n\n" + head
    for name, s in results["summary"].items():
        text += line(name, s["mean"])
    if per_speaker:
        text += "\n## Per speaker\n\n" + head.replace("| vocoder |", "| vocoder / speaker |")
        for name, s in results["summary"].items():
            for spk, m in s["per_speaker"].items():
                text += line(f"{name} / {spk}", m)
    return text


# ----------------------------------------------------------------------------- systems with their own timing


def dtw_path(mc_ref: np.ndarray, mc_syn: np.ndarray) -> np.ndarray:
    """``(L, 2)`` frame pairs of the DTW alignment :func:`ttslab.metrics.mcd_dtw` uses
    (Euclidean distance of c1..cM, librosa's standard steps), from the first frames to the last."""
    import librosa
    from scipy.spatial.distance import cdist

    _, path = librosa.sequence.dtw(C=cdist(mc_ref[:, 1:], mc_syn[:, 1:]))
    return path[::-1]


def compare_analyses(ref, syn, same_timing: bool, f0_tracks: Mapping[str, tuple] | None = None) -> dict:
    """MCD-DTW, F0 RMSE (Hz, cents) and V/UV error of two WORLD analyses (:func:`world_analysis`).

    ``same_timing`` (a vocoder floor, or oracle durations): F0 and voicing are compared frame by frame
    and the frame-by-frame MCD is added. Otherwise (a system that chose its own durations) F0 and
    voicing are compared along the DTW path of the mel-cepstra, the usual practice for TTS output.

    ``f0_tracks`` ``{label: (f0_ref, f0_syn)}``: F0 tracks of the same two signals from another pitch
    tracker (same hop, e.g. :func:`ttslab.dsp.f0.f0_pyin`), compared frame by frame or along the same
    DTW path; they add ``f0_rmse_hz_<label>``, ``f0_rmse_cents_<label>`` and ``vuv_error_<label>``.
    """
    import warnings

    out = {"mcd_dtw_db": mcd_dtw(ref.mcep, syn.mcep)}
    same = same_timing and len(ref.f0) == len(syn.f0)
    if same:
        out["mcd_db"] = mel_cepstral_distortion(ref.mcep, syn.mcep)
        pick_ref = pick_syn = slice(None)
    else:
        path = dtw_path(ref.mcep, syn.mcep)
        pick_ref, pick_syn = path[:, 0], path[:, 1]
    tracks = {"": (ref.f0, syn.f0), **{f"_{k}": v for k, v in (f0_tracks or {}).items()}}
    for suffix, (a, b) in tracks.items():
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if (len(a), len(b)) != (len(ref.f0), len(syn.f0)):
            raise ValueError(f"F0 tracks{suffix or ''} have {len(a)} and {len(b)} frames; the analyses have "
                             f"{len(ref.f0)} and {len(syn.f0)}: compute them with the same hop on the same signals")
        f_ref, f_syn = a[pick_ref], b[pick_syn]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nothing voiced in both: NaN, reported as n/a
            out[f"f0_rmse_hz{suffix}"] = f0_rmse(f_ref, f_syn, "hz")
            out[f"f0_rmse_cents{suffix}"] = f0_rmse(f_ref, f_syn, "cents")
        out[f"vuv_error{suffix}"] = vuv_error(f_ref, f_syn)
    return out


def compare_synthesis(ref, syn, same_timing: bool) -> dict:
    """:func:`compare_analyses` plus ``median_f0_hz``, the median F0 of ``syn``'s voiced frames (``None``
    when nothing is voiced): the per-system measures of the HMM and DNN-SPSS benchmarks."""
    out = compare_analyses(ref, syn, same_timing=same_timing)
    voiced = syn.f0[syn.f0 > 0]
    out["median_f0_hz"] = float(np.median(voiced)) if voiced.size else None
    return out
