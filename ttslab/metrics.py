"""Objective measures of synthetic speech: spectral distance, F0 error, voicing error, speed.

All take a reference first and the synthetic second, work frame by frame, and raise early on
empty, NaN or mis-shaped input. None replaces listening: they catch regressions and rank systems
that differ a lot, nothing finer.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

import numpy as np

MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)  # 6.1419 dB per unit of cepstral distance


def _array(a, name: str, ndim: int | None = None) -> np.ndarray:
    """``a`` as float64, non-empty and finite, optionally with ``ndim`` dimensions; else a clear error."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        raise ValueError(f"{name} is empty; metrics need at least one frame")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN; fix the features first (pyin marks unvoiced F0 as NaN: use 0)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains infinite values; clamp before taking logs")
    return a


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: shapes differ, {a.shape} vs {b.shape}; compute both on the same frame grid "
                         f"(same hop and audio length) or cut both to the shorter first")


def _mcep_pair(mc_ref, mc_syn) -> tuple[np.ndarray, np.ndarray]:
    ref, syn = _array(mc_ref, "mc_ref", 2), _array(mc_syn, "mc_syn", 2)
    if ref.shape[1] != syn.shape[1]:
        raise ValueError(f"mel-cepstra have different orders: {ref.shape[1]} vs {syn.shape[1]} coefficients")
    return ref, syn


def mcd_per_frame(mc_ref, mc_syn, exclude_c0: bool = True) -> np.ndarray:
    """``MCD[t] = (10 / ln 10) * sqrt(2 * sum_d (c_d[t] - c'_d[t])^2)`` dB, ``d`` from 1 (or 0) to M.

    Both ``(T, M+1)``, already frame-aligned and of equal length.
    """
    ref, syn = _mcep_pair(mc_ref, mc_syn)
    _same_shape(ref, syn, "mcd_per_frame")
    start = 1 if exclude_c0 else 0  # c0 is overall loudness, not timbre
    return MCD_CONST * np.sqrt(np.sum((ref[:, start:] - syn[:, start:]) ** 2, axis=1))


def mel_cepstral_distortion(mc_ref, mc_syn, exclude_c0: bool = True) -> float:
    """Mel-cepstral distortion in dB (Kubichek 1993), frame by frame, averaged over frames.

    ``MCD = (1/T) sum_t (10 / ln 10) * sqrt(2 * sum_{d>=1} (c_d[t] - c'_d[t])^2)``.

    Frames are compared index by index; when the lengths differ both are cut to the shorter
    (fine for a vocoder's resynthesis of the same audio, off by at most a frame; for sequences
    with different timing use :func:`mcd_dtw`).

    >>> round(mel_cepstral_distortion([[0., 1., 0.]], [[5., 0., 0.]]), 4)   # c0 ignored; one unit off
    6.1419
    """
    ref, syn = _mcep_pair(mc_ref, mc_syn)
    T = min(len(ref), len(syn))
    return float(np.mean(mcd_per_frame(ref[:T], syn[:T], exclude_c0)))


def mcd_dtw(mc_ref, mc_syn, exclude_c0: bool = True) -> float:
    """MCD in dB averaged along a dynamic-time-warping path (for audio with different timing).

    The path ``(i_k, j_k)`` minimises ``sum_k ||c[i_k] - c'[j_k]||`` (Euclidean distance of c1..cM,
    librosa.sequence.dtw with steps (1,1), (1,0), (0,1)); then
    ``MCD_dtw = (1/K) sum_k (10/ln 10) sqrt(2 sum_{d>=1} (c_d[i_k] - c'_d[j_k])^2)``.
    """
    import librosa
    from scipy.spatial.distance import cdist

    ref, syn = _mcep_pair(mc_ref, mc_syn)
    start = 1 if exclude_c0 else 0
    cost = cdist(ref[:, start:], syn[:, start:], metric="euclidean")  # (T_ref, T_syn)
    _, path = librosa.sequence.dtw(C=cost)
    return float(MCD_CONST * np.mean(cost[path[:, 0], path[:, 1]]))


def mcd_from_audio(ref, syn, sample_rate: int, dtw: bool = True, **world_kwargs) -> float:
    """MCD in dB between two waveforms via WORLD mel-cepstra (:func:`ttslab.dsp.world_analysis`)."""
    from ttslab.dsp.world import world_analysis

    mc_ref = world_analysis(ref, sample_rate, **world_kwargs).mcep
    mc_syn = world_analysis(syn, sample_rate, **world_kwargs).mcep
    return mcd_dtw(mc_ref, mc_syn) if dtw else mel_cepstral_distortion(mc_ref, mc_syn)


def _f0_pair(f0_ref, f0_syn) -> tuple[np.ndarray, np.ndarray]:
    ref, syn = _array(f0_ref, "f0_ref", 1), _array(f0_syn, "f0_syn", 1)
    _same_shape(ref, syn, "F0 tracks")
    if (ref < 0).any() or (syn < 0).any():
        raise ValueError("F0 contains negative values; F0 is in Hz with 0 meaning unvoiced")
    return ref, syn


def f0_rmse(f0_ref, f0_syn, unit: str = "hz") -> float:
    """Root-mean-square F0 error on frames voiced in both tracks (F0 > 0).

    ``hz``:    ``sqrt(mean((f - f')^2))``
    ``cents``: ``sqrt(mean((1200 * log2(f' / f))^2))`` (100 cents = a semitone, 1200 = an octave)

    Returns NaN (with a warning) when no frame is voiced in both.

    >>> f0_rmse([0., 100., 200.], [50., 200., 400.], unit="cents")   # octave errors; frame 0 unvoiced in ref
    1200.0
    """
    ref, syn = _f0_pair(f0_ref, f0_syn)
    both = (ref > 0) & (syn > 0)
    if not both.any():
        warnings.warn("no frame is voiced in both F0 tracks; F0 RMSE is undefined (NaN)", RuntimeWarning, stacklevel=2)
        return float("nan")
    r, s = ref[both], syn[both]
    if unit == "hz":
        err = s - r
    elif unit == "cents":
        err = 1200.0 * np.log2(s / r)
    else:
        raise ValueError(f"unknown unit {unit!r}; use 'hz' or 'cents'")
    return float(np.sqrt(np.mean(err ** 2)))


def vuv_error(f0_ref, f0_syn) -> float:
    """Fraction of frames whose voicing decision (F0 > 0) differs: ``mean([f > 0] != [f' > 0])``.

    >>> vuv_error([0., 100., 100., 0.], [0., 100., 0., 120.])
    0.5
    """
    ref, syn = _f0_pair(f0_ref, f0_syn)
    return float(np.mean((ref > 0) != (syn > 0)))


def log_spectral_distance(S_ref, S_syn, eps: float = 1e-10) -> float:
    """Log-spectral distance in dB between magnitude spectrograms shaped ``(freq, frames)``.

    ``LSD = (1/T) sum_t sqrt( (1/F) sum_f (20 log10((S[f,t] + eps) / (S'[f,t] + eps)))^2 )``

    >>> round(log_spectral_distance(np.ones((4, 2)), 10 * np.ones((4, 2))), 6)   # x10 in magnitude = 20 dB
    20.0
    """
    ref, syn = _array(S_ref, "S_ref", 2), _array(S_syn, "S_syn", 2)
    _same_shape(ref, syn, "log_spectral_distance")
    if (ref < 0).any() or (syn < 0).any():
        raise ValueError("spectrograms must be magnitudes (>= 0), e.g. magnitude(stft(x)); not log or complex values")
    diff_db = 20.0 * np.log10((ref + eps) / (syn + eps))
    return float(np.mean(np.sqrt(np.mean(diff_db ** 2, axis=0))))


def spectral_convergence(S_ref, S_syn) -> float:
    """``||S - S'||_F / ||S||_F`` for magnitude spectrograms (Griffin-Lim's progress measure).

    >>> spectral_convergence([[3., 4.]], [[3., 4.]])
    0.0
    """
    ref, syn = _array(S_ref, "S_ref"), _array(S_syn, "S_syn")
    _same_shape(ref, syn, "spectral_convergence")
    norm = np.linalg.norm(ref)
    if norm == 0:
        raise ValueError("S_ref is all zeros (silence); spectral convergence is undefined")
    return float(np.linalg.norm(ref - syn) / norm)


def real_time_factor(processing_seconds: float, audio_seconds: float) -> float:
    """``RTF = processing time / audio duration``; below 1 is faster than real time.

    >>> real_time_factor(0.5, 2.0)
    0.25
    """
    if not audio_seconds > 0:
        raise ValueError(f"audio_seconds must be > 0, got {audio_seconds}")
    if not processing_seconds >= 0:
        raise ValueError(f"processing_seconds must be >= 0, got {processing_seconds}")
    return float(processing_seconds) / float(audio_seconds)


class Timer:
    """Wall-clock stopwatch (``time.perf_counter``); ``seconds`` is set when the block ends."""

    seconds: float = float("nan")


@contextmanager
def timer():
    """``with timer() as t: ...`` then ``t.seconds`` holds the elapsed wall-clock time."""
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def measure_rtf(fn, audio_seconds: float, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` once; return ``(result, real_time_factor)``.

    >>> result, rtf = measure_rtf(sum, 1.0, [1, 2])
    >>> result, 0 <= rtf < 1
    (3, True)
    """
    real_time_factor(0.0, audio_seconds)  # validate before spending the time
    with timer() as t:
        result = fn(*args, **kwargs)
    return result, real_time_factor(t.seconds, audio_seconds)


# --- Phone error rate (intelligibility) -------------------------------------------------------
#: Labels PER skips by default: pauses and silences are not phones a listener has to recognise.
PER_IGNORED: tuple[str, ...] = ("pau", "sil")


def _label_sequence(seq, name: str, ignore) -> list:
    """``seq`` as a list of labels with ``ignore`` removed; a bare string is an error (ambiguous)."""
    if isinstance(seq, str):
        raise TypeError(f"{name} must be a sequence of phone labels, not the string {seq[:40]!r}; "
                        f"split it first, e.g. {name}.split()")
    skip = set(ignore)
    return [p for p in seq if p not in skip]


def edit_operations(ref, hyp) -> tuple[int, int, int]:
    """``(S, D, I)``: substitutions, deletions and insertions of a minimum-cost alignment of ``hyp`` to ``ref``.

    Levenshtein dynamic programme (every operation costs 1), ``d[i][j]`` = edits turning
    ``ref[:i]`` into ``hyp[:j]``::

        d[i][0] = i,  d[0][j] = j
        d[i][j] = min(d[i-1][j-1] + [ref[i-1] != hyp[j-1]],   # match / substitution
                      d[i-1][j] + 1,                          # deletion  (ref phone missing)
                      d[i][j-1] + 1)                          # insertion (extra hyp phone)

    then a backtrace from ``d[N][M]`` counts each kind (ties prefer match/substitution, then
    deletion). O(N*M) time; fine for utterances of a few hundred phones.

    >>> edit_operations(["k", "ae", "t"], ["k", "ah", "t", "s"])   # one substitution, one insertion
    (1, 0, 1)
    """
    ref, hyp = list(ref), list(hyp)
    n, m = len(ref), len(hyp)
    d = [[i + j if i == 0 or j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]  # lists: fast scalars
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1][j] + 1, d[i][j - 1] + 1)
    s = dl = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            s += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            dl, i = dl + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return s, dl, ins


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance ``S + D + I`` between two label sequences (see :func:`edit_operations`).

    >>> edit_distance("kitten", "sitting")   # the textbook example, on characters
    3
    >>> edit_distance([], ["a", "b"])
    2
    """
    return sum(edit_operations(ref, hyp))


def phone_error_rate(ref_phones, hyp_phones, ignore=PER_IGNORED) -> float:
    """Phone error rate of one utterance: ``PER = (S + D + I) / N``, ``N = len(ref_phones)``.

    ``S, D, I`` come from the Levenshtein alignment (:func:`edit_operations`). Labels in
    ``ignore`` (default ``pau``/``sil``: silences are not scored) are dropped from both sides
    first; pass ``ignore=()`` to score every label. PER can exceed 1 when ``hyp`` has many
    insertions; an empty ``hyp`` gives 1. To report a system, sum edits and phones over the
    whole test set with :func:`corpus_phone_error_rate` instead of averaging per-utterance PERs.

    >>> phone_error_rate(["sil", "k", "ae", "t", "sil"], ["k", "ah", "t"])   # 1 substitution / 3 phones
    0.3333333333333333
    >>> phone_error_rate(["k", "ae", "t"], [])
    1.0
    """
    ref = _label_sequence(ref_phones, "ref_phones", ignore)
    hyp = _label_sequence(hyp_phones, "hyp_phones", ignore)
    if not ref:
        raise ValueError("ref_phones is empty (after removing silences); PER = edits / N needs N > 0 "
                         "reference phones")
    return edit_distance(ref, hyp) / len(ref)


def corpus_phone_error_rate(refs, hyps, ignore=PER_IGNORED) -> float:
    """Corpus-level PER, as systems are reported: ``sum_u (S_u + D_u + I_u) / sum_u N_u``.

    Long utterances weigh more than short ones (each phone counts once), unlike a mean of
    per-utterance :func:`phone_error_rate` values.

    >>> corpus_phone_error_rate([["a", "b", "c"], ["d"]], [["a", "b", "c"], ["e"]])   # 1 edit / 4 phones
    0.25
    """
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references but {len(hyps)} hypotheses; pass one per utterance")
    if not refs:
        raise ValueError("no utterances to score; pass at least one (reference, hypothesis) pair")
    edits = total = 0
    for k, (r, h) in enumerate(zip(refs, hyps)):
        ref = _label_sequence(r, f"refs[{k}]", ignore)
        edits += edit_distance(ref, _label_sequence(h, f"hyps[{k}]", ignore))
        total += len(ref)
    if total == 0:
        raise ValueError("every reference is empty (after removing silences); PER needs reference phones")
    return edits / total
