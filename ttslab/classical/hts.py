"""An HTS-style HMM/HSMM speech synthesis system: small, but every stage of the real recipe.

Training (:func:`train_voice`), for one speaker::

    audio ──WORLD──> mcep + Δ + Δ²,  log-F0 (MSD) + Δ + Δ²,  band aperiodicity + Δ + Δ²     (5 ms frames)
    phone boundaries (segments) ──> frames of each phone
    monophone 5-state HMMs, Baum-Welch inside each phone ──Viterbi──> 5 state segments per phone
    per (phone instance, state): statistics of each stream; per phone instance: 5 state durations
    full context of each phone (ttslab.text.context) + 607 questions
    decision trees (ttslab.classical.tree), MDL stopping: one per state position and stream group,
    plus one for the 5-dim state durations
    GV statistics of the natural trajectories

Synthesis (:meth:`Voice.synthesize`)::

    text ──eSpeak NG front-end──> phones, words, stress (its timing is thrown away) ──> full contexts
    duration tree ──> frames per state (rate control)     stream trees ──> a Gaussian per frame
    MLPG per stream (GV compensation optional), V/UV from the MSD weight ──WORLD──> audio

Choices, and why:

* **Frames of 5 ms** (hop 110 at 22050 Hz), as in HTS, rather than the project's 256-sample hop
  (11.6 ms): a quarter of the corpus' phones are shorter than five 11.6 ms frames, so 5-state
  phone models would not fit them; at 5 ms only 5 % are. Phones shorter than 5 frames skip states
  (their frames sit at evenly spread states, :func:`spread_states`).
* **Log-F0 as a multi-space distribution (MSD)**, the HTS way: a voiced frame is a point of a 3-D
  space ``[lf0, Δlf0, Δ²lf0]``, an unvoiced frame a point of a 0-D space; each leaf has a Gaussian
  over voiced frames and a voiced weight ``w``. Simplification: the deltas are taken on the
  interpolated (continuous) log-F0 contour (:func:`ttslab.dsp.log_f0_and_vuv`), so every voiced
  frame has all three values; at synthesis frames with ``w > 0.5`` are voiced and MLPG runs on each
  voiced stretch separately.
* **State segmentation from given phone boundaries.** The built-in corpus knows its phone
  boundaries exactly (eSpeak), so only the split of a phone into its 5 states is estimated, by
  monophone HMMs trained with Baum-Welch restricted to the phone segments and a final Viterbi pass.
  A real corpus would first be phone-aligned by forced alignment (:mod:`ttslab.classical.align`);
  :func:`train_voice` takes ``segments`` from any source. HTS re-estimates the clustered models with
  embedded Baum-Welch afterwards; we keep the Viterbi state segmentation (hard occupancies).
* **Explicit state durations** (HSMM-style): a 5-dim Gaussian of the state durations of each phone
  instance, clustered by its own tree. Speaking rate ``r`` targets ``T = sum(mu) / r`` frames with
  HTS's ``d_i = mu_i + rho s2_i``, ``rho = (T - sum mu) / sum s2``, so the states that vary most in
  the data stretch most (Yoshimura et al. 1998; :func:`allocate_durations`).
* **Streams clustered separately** (HTS builds one tree per state and stream): spectrum (mcep),
  log-F0/voicing (MSD) and aperiodicity (bap), each with one tree per state position.
* **GV** (Toda & Tokuda 2007) per speaker from the training utterances: MLPG with GV on c1..cM of
  the mel-cepstrum. HTS also compensates log-F0; here that is off by default
  (``HTSConfig(lf0_gv=True)`` turns on a variance-scaling postfilter on voiced log-F0): the Harvest
  F0 of the eSpeak recordings has octave jumps at voicing onsets, which inflate the natural GV, and
  stretching towards it made F0 worse (oracle durations, 10 test sentences: 198 vs 158 cents for
  en_us_m full, 61 vs 53 Hz for en_us_f CI).

>>> cfg = HTSConfig()
>>> cfg.hop, cfg.frame_shift_ms, cfg.n_states
(110, 4.988662131519274, 5)
"""

from __future__ import annotations

import io
import json
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ttslab.classical import hmm
from ttslab.classical.mlpg import global_variance, mlpg, mlpg_gv, variance_scaling
from ttslab.classical.tree import ItemStatistics, Tree, grow_tree
from ttslab.dsp.deltas import delta_features
from ttslab.dsp.f0 import log_f0_and_vuv
from ttslab.dsp.spectral import SAMPLE_RATE, num_frames
from ttslab.dsp.world import all_pass_alpha, world_analysis, world_synthesis
from ttslab.io import atomic_write_bytes, sha256_bytes

__all__ = ["HTSConfig", "Voice", "VoiceFileError", "train_voice", "text_to_segments", "allocate_durations",
           "spread_states", "phone_frame_ranges", "STREAMS"]

#: Stream groups, each with its own trees: spectrum, log-F0 (MSD) and band aperiodicity.
STREAMS = ("mcep", "lf0", "bap")
FORMAT_VERSION = 1
SILENCE_PHONES = ("sil", "pau")


class VoiceFileError(ValueError):
    """A saved voice is missing, corrupt, truncated or from an incompatible version."""


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class HTSConfig:
    """Every setting of a voice; :meth:`feature_settings` key the feature cache.

    ``mdl_scale`` 0.5 rather than HTS's 1: the built-in corpus is synthetic and consistent, and
    larger trees measured better on held-out sentences (en_us_m, full mode, 8 sentences: MCD-DTW
    5.03 / 4.95 / 4.81 dB and F0 RMSE 13.3 / 12.8 / 10.6 Hz at scale 1 / 0.5 / 0.25, V/UV error
    8.8 / 9.5 / 10.5 %). Model training time hardly changes; the voice file grows.
    """

    # features
    hop: int = 110                      # 5 ms at 22050 Hz (see the module docstring)
    mcep_order: int = 34                # c0..c34, HTS's usual order at 16-48 kHz
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    f0_method: str = "harvest"          # "dio": faster F0, but worse voices (CI en_us_m: MCD +0.2 dB,
                                        # F0 RMSE 15.7 vs 11.9 Hz)
    # models
    n_states: int = 5
    bw_iterations: int = 3              # Baum-Welch passes of the monophone state aligner
    mdl_scale: float = 0.5              # MDL penalty factor of the stream trees (HTS -m; see below)
    min_occupancy: float = 10.0         # frames per leaf, at least (HTS RO)
    duration_mdl_scale: float = 0.5
    duration_min_occupancy: float = 5.0  # phone instances per duration leaf, at least
    floor_ratio: float = 0.01           # variance floor = ratio * global variance (HTS -v)
    # synthesis
    lf0_gv: bool = False                # GV postfilter on log-F0 too (see the module docstring)
    # data and running
    max_utterances: int | None = None   # train on the first N utterances (tests, quick looks)
    jobs: int = 2                       # processes for feature extraction (spawned: guard scripts
                                        # with ``if __name__ == "__main__":``)
    cache: bool = True                  # cache features with ttslab.dsp.FeatureCache
    cache_root: str | None = None       # None: ttslab.config.data_home() / "features"

    @property
    def frame_shift_ms(self) -> float:
        return 1000.0 * self.hop / SAMPLE_RATE

    def feature_settings(self) -> dict:
        """What the cached features depend on (the cache key)."""
        return {"kind": "hts-world", "sr": SAMPLE_RATE, "hop": self.hop, "mcep_order": self.mcep_order,
                "f0_floor": self.f0_floor, "f0_ceil": self.f0_ceil, "f0_method": self.f0_method}

    @classmethod
    def from_dict(cls, d: Mapping) -> HTSConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------- features


def analyse(x: np.ndarray, config: HTSConfig, sr: int = SAMPLE_RATE) -> np.ndarray:
    """WORLD analysis of one utterance into one float32 array ``(T, M+1 + 1 + B)``: ``[mcep | f0 Hz | bap]``."""
    feats = world_analysis(np.asarray(x), sr, hop=config.hop, mcep_order=config.mcep_order,
                           f0_floor=config.f0_floor, f0_ceil=config.f0_ceil, f0_method=config.f0_method)
    return np.concatenate([feats.mcep, feats.f0[:, None], feats.bap], axis=1).astype(np.float32)


def _analyse_utterance(args) -> np.ndarray:
    """Worker: cached analysis of one utterance (``args = (utt, config)``)."""
    utt, config = args
    if utt.sample_rate != SAMPLE_RATE:
        raise ValueError(f"utterance {utt.id} is {utt.sample_rate} Hz; the HTS system works at {SAMPLE_RATE} Hz")
    compute = lambda: analyse(utt.load_audio(), config)  # noqa: E731
    if not config.cache:
        return compute()
    from ttslab.dsp.cache import FeatureCache

    return FeatureCache(config.cache_root, "hts", config.feature_settings()).get_or_compute(utt.id, compute)


def extract_features(utterances: Sequence, config: HTSConfig, progress: bool = True) -> list[np.ndarray]:
    """:func:`analyse` every utterance (cached; ``config.jobs`` processes), in the given order."""
    from tqdm.auto import tqdm

    work = [(u, config) for u in utterances]
    bar = dict(total=len(work), desc="WORLD features", unit="utt", disable=not progress)
    if config.jobs > 1 and len(work) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(config.jobs) as pool:
            return list(tqdm(pool.imap(_analyse_utterance, work, chunksize=4), **bar))
    return [_analyse_utterance(w) for w in tqdm(work, **bar)]


@dataclass
class Observations:
    """The three observation streams of one utterance (or of many, stacked), frame by frame."""

    mcep: np.ndarray     # (T, 3(M+1))  [c | Δc | Δ²c]
    lf0: np.ndarray      # (T, 3)       [lf0 | Δlf0 | Δ²lf0], on the interpolated contour
    voiced: np.ndarray   # (T,)         bool: which frames lie in the voiced space of the MSD
    bap: np.ndarray      # (T, 3B)

    @classmethod
    def from_features(cls, features: np.ndarray, mcep_order: int) -> Observations:
        mcep, f0, bap = _split_features(features, mcep_order)
        lf0, voiced = log_f0_and_vuv(f0)
        return cls(delta_features(mcep), delta_features(lf0[:, None]), voiced, delta_features(bap))

    @classmethod
    def concatenate(cls, parts: Sequence[Observations]) -> Observations:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def stream(self, name: str) -> np.ndarray:
        return getattr(self, name)


def _split_features(features: np.ndarray, mcep_order: int):
    features = np.asarray(features, dtype=np.float64)
    return features[:, :mcep_order + 1], features[:, mcep_order + 1], features[:, mcep_order + 2:]


# ----------------------------------------------------------------------------- phones, frames and states


def phone_frame_ranges(segments: Sequence, n_frames: int, hop: int) -> np.ndarray:
    """``(P, 2)`` frame ranges ``[start, end)`` of the phones: frame ``m`` (centred at sample ``m*hop``)
    belongs to the segment that contains sample ``m*hop``; frames past the last segment go to it.

    >>> from types import SimpleNamespace as S
    >>> phone_frame_ranges([S(start=0, end=250), S(start=250, end=500)], n_frames=5, hop=110).tolist()
    [[0, 3], [3, 5]]
    """
    starts = np.array([s.start for s in segments])
    owner = np.clip(np.searchsorted(starts, np.arange(n_frames) * hop, side="right") - 1, 0, len(starts) - 1)
    counts = np.bincount(owner, minlength=len(starts))
    ends = np.cumsum(counts)
    return np.stack([ends - counts, ends], axis=1)


def spread_states(n_frames: int, n_states: int) -> np.ndarray:
    """State of each frame when a phone is split evenly: frame ``j`` -> ``floor((j + 1/2) S / n)``.

    For phones shorter than ``S`` frames this skips states symmetrically (HTS would need skip
    transitions for that); for longer ones it is the uniform segmentation that starts Baum-Welch.

    >>> spread_states(3, 5).tolist(), spread_states(7, 5).tolist()
    ([0, 2, 4], [0, 1, 1, 2, 3, 3, 4])
    """
    return np.floor((np.arange(n_frames) + 0.5) * n_states / max(n_frames, 1)).astype(np.int64)


def _phone_hmm(X_segments: list[np.ndarray], n_states: int, variance_floor: np.ndarray) -> hmm.HMM:
    """A left-to-right HMM started from the uniform segmentation of ``X_segments`` (HTK's HInit, one pass)."""
    X = np.concatenate(X_segments)
    states = np.concatenate([spread_states(len(x), n_states) for x in X_segments])
    counts = np.bincount(states, minlength=n_states)[:, None].astype(np.float64)
    means = np.stack([X[states == s].mean(axis=0) for s in range(n_states)])
    second = np.stack([(X[states == s] ** 2).sum(axis=0) for s in range(n_states)])
    covars = np.maximum(second / counts - means**2, variance_floor)
    emission = hmm.GaussianEmission(means, covars, variance_floor=variance_floor)
    end = np.zeros(n_states)
    end[-1] = 1.0  # every path ends in the last state: the phone is over at its boundary
    return hmm.HMM(n_states, emission, topology="left-to-right", params="tmc", endprob=end)


def _baum_welch_step(model: hmm.HMM, X_segments: list[np.ndarray]) -> float:
    """One Baum-Welch iteration over the segments of one phone; returns their total log-likelihood."""
    stats = model.expected_statistics(X_segments)
    model.m_step(stats)
    return stats.log_likelihood


def train_monophones(observations: np.ndarray, labels: Sequence[str], ranges: np.ndarray, config: HTSConfig,
                     progress: bool = True) -> dict[str, hmm.HMM]:
    """One left-to-right ``n_states`` HMM per phone, Baum-Welch on its segments (those of >= S frames).

    ``observations`` ``(F, D)`` stacks every frame of the corpus; phone instance ``i`` owns rows
    ``ranges[i, 0]:ranges[i, 1]`` and is a ``labels[i]``. Only the frames inside each phone's own
    boundaries are used, so no phone can drift into its neighbours.
    """
    from tqdm.auto import tqdm

    S = config.n_states
    variance_floor = config.floor_ratio * observations.var(axis=0)
    by_phone: dict[str, list[np.ndarray]] = {}
    for label, (a, b) in zip(labels, ranges):
        if b - a >= S:
            by_phone.setdefault(label, []).append(observations[a:b])
    models = {}
    for label in tqdm(sorted(by_phone), desc="monophone HMMs", unit="phone", disable=not progress):
        model = _phone_hmm(by_phone[label], S, variance_floor)
        for _ in range(config.bw_iterations):
            _baum_welch_step(model, by_phone[label])
        models[label] = model
    return models


def segment_states(observations: np.ndarray, labels: Sequence[str], ranges: np.ndarray,
                   models: Mapping[str, hmm.HMM], n_states: int) -> np.ndarray:
    """State of every frame ``(F,)``: Viterbi inside each phone with its monophone HMM, or
    :func:`spread_states` for phones that are too short or have no model."""
    states = np.zeros(len(observations), dtype=np.int64)
    for label, (a, b) in zip(labels, ranges):
        model = models.get(label)
        if model is not None and b - a >= n_states:
            states[a:b] = model.predict(observations[a:b])
        else:
            states[a:b] = spread_states(b - a, n_states)
    return states


# ----------------------------------------------------------------------------- statistics for clustering


def unit_sums(X: np.ndarray, units: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(count, sum x, sum x^2)`` per unit for frames whose (non-decreasing) ``units`` label them.

    Cumulative sums, read at the unit boundaries: ``sum_{t in u} x_t = C[end_u] - C[start_u]``.
    """
    X = np.asarray(X, dtype=np.float64)
    bounds = np.searchsorted(units, np.arange(n_units + 1))
    def window_sum(Y):
        C = np.concatenate([np.zeros((1, Y.shape[1])), np.cumsum(Y, axis=0)])
        return C[bounds[1:]] - C[bounds[:-1]]
    return np.diff(bounds).astype(np.float64), window_sum(X), window_sum(X**2)


def state_statistics(obs: Observations, units: np.ndarray, n_phones: int, n_states: int
                     ) -> dict[str, list[ItemStatistics]]:
    """Per stream, per state position ``s``: the :class:`ItemStatistics` of every phone instance's state ``s``.

    ``units[t] = phone_instance * n_states + state`` of frame ``t``. log-F0 is MSD: voiced frames
    only in ``occupancy``/``first``/``second``, all frames in ``total``.
    """
    n_units = n_phones * n_states
    out = {}
    for name in ("mcep", "bap"):
        n, f, g = unit_sums(obs.stream(name), units, n_units)
        out[name] = [ItemStatistics(n.reshape(n_phones, n_states)[:, s], f.reshape(n_phones, n_states, -1)[:, s],
                                    g.reshape(n_phones, n_states, -1)[:, s]) for s in range(n_states)]
    v = obs.voiced[:, None].astype(np.float64)
    total, nv, _ = unit_sums(v, units, n_units)  # frames, voiced frames
    _, f, g = unit_sums(obs.lf0 * v, units, n_units)  # zeroed unvoiced rows add nothing
    nv, total = nv[:, 0].reshape(n_phones, n_states), total.reshape(n_phones, n_states)
    f, g = f.reshape(n_phones, n_states, -1), g.reshape(n_phones, n_states, -1)
    out["lf0"] = [ItemStatistics(nv[:, s], f[:, s], g[:, s], total=total[:, s]) for s in range(n_states)]
    return out


# ----------------------------------------------------------------------------- front-end


def text_to_segments(text: str, frontend: Mapping | None = None) -> list:
    """Phones, words and stress of ``text`` from eSpeak NG, as segments (their timing is eSpeak's own).

    The same path built the corpus labels (:func:`ttslab.data.builtin.segments_from_events`: eSpeak's
    phone events mapped by :mod:`ttslab.text.espeak_phones`, ``sil`` at both ends, ``pau`` between
    clauses), so synthesis sees exactly the contexts training saw. ``frontend`` holds the eSpeak
    ``voice`` (accent) and optionally ``rate``, ``pitch``, ``pitch_range`` and ``language``.
    """
    from ttslab.data.builtin import segments_from_events
    from ttslab.text import espeak

    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty text: give at least one word to synthesize")
    fe = dict(frontend or {})
    syn = espeak.synthesize(text, fe.get("voice", "en-us"), rate=int(fe.get("rate", 175)),
                            pitch=int(fe.get("pitch", 50)), pitch_range=int(fe.get("pitch_range", 50)))
    return segments_from_events(syn.audio, syn.phones, fe.get("language", "en"))


def _frontend_for(speaker: str, language: str) -> dict:
    """eSpeak settings of a built-in speaker (so synthesis text gets that accent's phones), else en-us."""
    from ttslab.data import builtin

    try:
        spk = builtin.speaker(speaker)
    except KeyError:
        return {"voice": "en-us", "language": language}
    return {"voice": spk.voice, "rate": spk.rate, "pitch": spk.pitch, "pitch_range": spk.pitch_range,
            "language": spk.language}


@dataclass(frozen=True)
class _Label:
    """A phone without timing (what context building needs)."""

    label: str
    word: int = -1
    stress: int = 0


def _as_segments(item) -> list:
    """Segments (label, word, stress) from a list of Segments, or of phone strings like ``"ah1"``."""
    from ttslab.text.phoneset import split_stress, validate_phones

    items = list(item)
    if not items:
        raise ValueError("empty phone sequence: give at least one phone")
    if all(isinstance(p, str) for p in items):
        parsed = [split_stress(p) if p[-1:] in "012" and not p.isdigit() else (p, 0) for p in items]
        validate_phones([p for p, _ in parsed])  # names every unknown phone
        labels = [_Label(p, -1 if p in SILENCE_PHONES else 0, s) for p, s in parsed]
        if labels[0].label != "sil":
            labels.insert(0, _Label("sil"))
        if labels[-1].label != "sil":
            labels.append(_Label("sil"))
        return labels
    if not all(hasattr(s, "label") for s in items):
        raise TypeError("give text (str), a list of phone strings, or a list of Segments (label, word, stress)")
    validate_phones([s.label for s in items])
    return items


# ----------------------------------------------------------------------------- durations


def allocate_durations(means, variances, rate: float = 1.0) -> np.ndarray:
    """Whole frames per state ``(P, S)`` from the duration Gaussians, at speaking rate ``rate``.

    Target ``T = sum(mu) / rate`` frames; ``d = mu + rho * s2`` with ``rho = (T - sum mu) / sum s2``
    (the maximum-likelihood durations that add up to ``T``); states that would go below 0 stay at 0
    and ``rho`` is solved again over the others, so the total still comes out at ``T``. Rounding is
    done on the running sum, so the total is kept; a phone gets at least one frame.

    >>> allocate_durations([[2.0, 4.0]], [[1.0, 1.0]]).tolist()
    [[2, 4]]
    >>> allocate_durations([[2.0, 4.0]], [[0.1, 3.0]], rate=2.0).tolist()   # the variable state absorbs it
    [[2, 1]]
    """
    means = np.asarray(means, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if not rate > 0:
        raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
    target = means.sum() / rate
    free = np.ones(means.shape, dtype=bool)
    for _ in range(means.size):  # states pushed below 0 are fixed at 0 and rho re-solved for the others
        rho = (target - means[free].sum()) / variances[free].sum()
        d = np.where(free, means + rho * variances, 0.0)
        if d.min() >= 0.0:
            break
        free &= d > 0.0
    boundaries = np.round(np.cumsum(d.ravel()))
    frames = np.diff(np.concatenate([[0.0], boundaries])).astype(np.int64).reshape(d.shape)
    empty = frames.sum(axis=1) == 0
    frames[empty, frames.shape[1] // 2] = 1  # no phone vanishes
    return frames


# ----------------------------------------------------------------------------- the voice


class Voice:
    """A trained speaker: trees per stream and state, a duration tree, GV statistics and settings.

    ``trees[stream][s]`` clusters state ``s`` of stream ``stream`` (see :data:`STREAMS`);
    ``duration_tree`` maps a phone's context to a 5-dim Gaussian over its state durations (frames);
    ``gv[stream] = (mean, var)``; ``global_means[stream]``: the mean static features of the training
    data (the trivial "one Gaussian for everything" baseline). ``frontend`` is the eSpeak voice used to
    read text.
    """

    def __init__(self, speaker: str, config: HTSConfig, trees: dict[str, list[Tree]], duration_tree: Tree,
                 gv: dict[str, tuple[np.ndarray, np.ndarray]], global_means: dict[str, np.ndarray], frontend: dict,
                 phones: Sequence[str], info: dict | None = None):
        from ttslab.text.context import question_set

        self.speaker, self.config, self.trees, self.duration_tree = speaker, config, trees, duration_tree
        self.gv, self.global_means, self.frontend, self.phones = gv, global_means, dict(frontend), sorted(phones)
        self.info = dict(info or {})
        self.questions = question_set()
        self.sample_rate = SAMPLE_RATE

    def __repr__(self) -> str:
        leaves = {k: sum(t.n_leaves for t in v) for k, v in self.trees.items()}
        return (f"Voice({self.speaker!r}, leaves {leaves}, duration leaves {self.duration_tree.n_leaves}, "
                f"{self.config.frame_shift_ms:.1f} ms frames)")

    # -- from input to contexts

    def _segments(self, item) -> list:
        if isinstance(item, str):
            return text_to_segments(item, self.frontend)
        if hasattr(item, "segments"):  # an Utterance: its labels are what the front-end makes of its text
            return list(item.segments) if item.segments is not None else text_to_segments(item.text, self.frontend)
        return _as_segments(item)

    def _answers(self, segments: Sequence) -> np.ndarray:
        from ttslab.text.context import answer_matrix, contexts_from_segments

        unseen = sorted({s.label for s in segments} - set(self.phones))
        if unseen:
            warnings.warn(f"voice {self.speaker!r} never saw the phone(s) {unseen} in training; "
                          "their models come from the nearest contexts in the trees", RuntimeWarning, stacklevel=3)
        return answer_matrix(self.questions, contexts_from_segments(segments))

    # -- generation

    def state_durations(self, item, rate: float = 1.0) -> np.ndarray:
        """Predicted whole frames per state ``(P, S)`` for text / phones / segments."""
        A = self._answers(self._segments(item))
        leaves = self.duration_tree.predict(A)
        return allocate_durations(self.duration_tree.means[leaves], self.duration_tree.variances[leaves], rate)

    def generate_features(self, item, rate: float = 1.0, use_gv: bool = True, durations=None) -> dict:
        """Acoustic features for text, phones, segments or an utterance (see :meth:`synthesize`).

        ``durations``: optional frames per state ``(P, S)`` (e.g. oracle ones) instead of the
        duration model's. Returns a dict: ``mcep (T, M+1)``, ``f0 (T,)`` Hz (0 unvoiced), ``bap (T, B)``,
        ``lf0_mean``/``voiced_weight`` per frame, ``durations (P, S)``, ``phones``, ``frame_period`` (ms).
        """
        segments = self._segments(item)
        A = self._answers(segments)
        S = self.config.n_states
        if durations is None:
            leaves = self.duration_tree.predict(A)
            durations = allocate_durations(self.duration_tree.means[leaves], self.duration_tree.variances[leaves],
                                           rate)
        durations = np.asarray(durations, dtype=np.int64)
        if durations.shape != (len(segments), S) or np.any(durations < 0) or durations.sum() == 0:
            raise ValueError(f"durations must be non-negative whole frames of shape ({len(segments)}, {S})")
        phone_of_frame = np.repeat(np.arange(len(segments)), durations.sum(axis=1))
        state_of_frame = np.concatenate([np.repeat(np.arange(S), d) for d in durations])

        def frame_pdfs(stream):
            # leaf of (phone, state) for every state position, then gathered frame by frame
            trees = self.trees[stream]
            leaf = np.stack([tree.predict(A) for tree in trees], axis=1)      # (P, S)
            chosen = leaf[phone_of_frame, state_of_frame]
            means = np.empty((len(chosen), trees[0].dim))
            variances = np.empty_like(means)
            weights = np.ones(len(chosen))
            for s, tree in enumerate(trees):
                at = state_of_frame == s
                means[at], variances[at] = tree.means[chosen[at]], tree.variances[chosen[at]]
                if tree.weights is not None:
                    weights[at] = tree.weights[chosen[at]]
            return means, variances, weights

        mcep_mu, mcep_var, _ = frame_pdfs("mcep")
        lf0_mu, lf0_var, voiced_weight = frame_pdfs("lf0")
        bap_mu, bap_var, _ = frame_pdfs("bap")

        mcep = self._generate_mcep(mcep_mu, mcep_var, use_gv)
        bap = np.minimum(mlpg(bap_mu, bap_var), 0.0)  # aperiodicity in dB cannot exceed 0
        voiced = voiced_weight > 0.5
        lf0 = np.zeros(len(voiced))
        for a, b in _runs(voiced):  # MSD: a trajectory per voiced stretch
            lf0[a:b] = mlpg(lf0_mu[a:b], lf0_var[a:b])[:, 0]
        if use_gv and self.config.lf0_gv and voiced.sum() > 1:
            lf0[voiced] = variance_scaling(lf0[voiced][:, None], self.gv["lf0"][0])[:, 0]
        f0 = np.where(voiced, np.exp(lf0), 0.0)
        return {"mcep": mcep, "f0": f0, "bap": bap, "voiced_weight": voiced_weight, "lf0_mean": lf0_mu[:, 0],
                "durations": durations, "phones": [s.label for s in segments],
                "frame_period": self.config.frame_shift_ms}

    def _generate_mcep(self, means, variances, use_gv: bool) -> np.ndarray:
        """MLPG of the mel-cepstrum; with GV, c1..cM by MLPG-GV (c0, the loudness, by plain MLPG)."""
        c = mlpg(means, variances)
        if not use_gv or len(c) < 3:
            return c
        T, D = c.shape
        higher = np.arange(3 * D).reshape(3, D)[:, 1:].ravel()   # columns of c1..cM, their deltas, delta-deltas
        gv_mean, gv_var = self.gv["mcep"]
        c[:, 1:] = mlpg_gv(means[:, higher], variances[:, higher], gv_mean[1:], gv_var[1:], n_iter=20)
        return c

    def vocode(self, feats: dict, n_samples: int | None = None) -> np.ndarray:
        """Audio from :meth:`generate_features` output (WORLD synthesis); ``n_samples`` cuts / pads it.

        Generated spectra can overshoot a little (GV sharpens them), so audio peaking above 0.99 is
        scaled down to 0.99 rather than clipped when played or written.
        """
        audio = world_synthesis(feats["f0"], feats["mcep"], feats["bap"], sr=self.sample_rate,
                                frame_period=feats["frame_period"], alpha=all_pass_alpha(self.sample_rate),
                                n_samples=n_samples)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return audio * np.float32(0.99 / peak) if peak > 0.99 else audio

    def synthesize(self, item, rate: float = 1.0, use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for ``item``: text (read by eSpeak NG for phones, words and stress), a list of phones
        (``["hh", "ah0", "l", "ow1"]``: stress digits optional, ``sil`` added at the ends, and every
        phrase read as one word, since a flat list has no word boundaries), or segments with
        ``label``, ``word`` and ``stress``. ``rate > 1`` is faster; ``use_gv`` generates the spectrum
        with global-variance compensation (and log-F0 too if ``config.lf0_gv``).
        Returns ``(audio float32, sample_rate)``."""
        return self.vocode(self.generate_features(item, rate=rate, use_gv=use_gv)), self.sample_rate

    def oracle_durations(self, utterance) -> np.ndarray:
        """Frames per state ``(P, S)`` with the true phone durations of ``utterance`` (cut as in
        training) split between states in proportion to the duration model's means."""
        if utterance.segments is None:
            raise ValueError(f"utterance {utterance.id} has no segments: no true durations to use")
        segments = list(utterance.segments)
        n_frames = num_frames(utterance.num_samples or len(utterance.load_audio()), self.config.hop)
        ranges = phone_frame_ranges(segments, n_frames, self.config.hop)
        phone_frames = ranges[:, 1] - ranges[:, 0]
        A = self._answers(segments)
        means = np.maximum(self.duration_tree.means[self.duration_tree.predict(A)], 1e-3)
        shares = np.cumsum(means, axis=1) / means.sum(axis=1, keepdims=True) * phone_frames[:, None]
        return np.diff(np.concatenate([np.zeros((len(means), 1)), np.round(shares)], axis=1), axis=1).astype(np.int64)

    def synthesize_utterance(self, utterance, oracle_durations: bool = False, rate: float = 1.0,
                             use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for a corpus utterance's sentence. Its phone labels are used when it has them (they
        are what the eSpeak front-end makes of its text, so no eSpeak call is needed), else its text.
        With ``oracle_durations`` (labels with timings needed) the audio has exactly the original's
        length, so frames can be compared one to one."""
        if oracle_durations:
            feats = self.generate_features(utterance, use_gv=use_gv, durations=self.oracle_durations(utterance))
            return self.vocode(feats, n_samples=utterance.num_samples), self.sample_rate
        return self.vocode(self.generate_features(utterance, rate=rate, use_gv=use_gv)), self.sample_rate

    # -- storage

    def _arrays(self) -> dict[str, np.ndarray]:
        meta = {"format_version": FORMAT_VERSION, "speaker": self.speaker, "config": asdict(self.config),
                "frontend": self.frontend, "phones": self.phones, "info": self.info, "streams": list(STREAMS)}
        arrays = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)}
        for stream, trees in self.trees.items():
            for s, tree in enumerate(trees):
                arrays.update({f"{stream}.{s}.{k}": v for k, v in tree.to_arrays().items()})
        arrays.update({f"dur.{k}": v for k, v in self.duration_tree.to_arrays().items()})
        for stream, (mean, var) in self.gv.items():
            arrays[f"gv.{stream}.mean"], arrays[f"gv.{stream}.var"] = mean, var
        arrays.update({f"global_mean.{stream}": mean for stream, mean in self.global_means.items()})
        return arrays

    def save(self, path) -> Path:
        """Write the voice to ``path`` (.npz, no pickle) atomically, with a SHA-256 of its contents."""
        arrays = self._arrays()
        arrays["checksum"] = np.array(_checksum(arrays))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path, sha256: str | None = None, *, verify: bool = True) -> Voice:
        """Read a voice written by :meth:`save`; a damaged file raises :class:`VoiceFileError`.

        The file holds its own checksum, so it needs no sidecar; ``sha256`` (or a ``.sha256`` sidecar)
        also checks the file's bytes, and ``verify=False`` skips every check (see
        :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import verify_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trained voice at {path}; train one with "
                                    "ttslab.classical.hts.train_voice(corpus, speaker) and Voice.save(path)")
        verify_file(path, sha256, verify=verify, self_checked=True, what="voice", error=VoiceFileError)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
            raise VoiceFileError(f"{path} is not a readable voice file (corrupt or truncated?): {exc}") from None
        stored = str(arrays.pop("checksum", ""))
        if verify and stored != _checksum(arrays):
            raise VoiceFileError(f"{path} fails its checksum: the file is corrupt; train or copy it again")
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if meta["format_version"] != FORMAT_VERSION:
            raise VoiceFileError(f"{path} has voice format {meta['format_version']}; "
                                 f"this ttslab reads format {FORMAT_VERSION}")
        from ttslab.text.context import question_set

        names = [q.name for q in question_set()]
        config = HTSConfig.from_dict(meta["config"])

        def tree(prefix):
            return Tree.from_arrays({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}, names)

        trees = {stream: [tree(f"{stream}.{s}.") for s in range(config.n_states)] for stream in meta["streams"]}
        gv = {k.split(".")[1]: (arrays[k], arrays[k[:-4] + "var"]) for k in arrays if k.startswith("gv.")
              and k.endswith(".mean")}
        global_means = {k.split(".")[1]: v for k, v in arrays.items() if k.startswith("global_mean.")}
        return cls(meta["speaker"], config, trees, tree("dur."), gv, global_means, meta["frontend"], meta["phones"],
                   meta["info"])


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    parts = []
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        parts += [key.encode(), str(a.dtype).encode(), str(a.shape).encode(), a.tobytes()]
    return sha256_bytes(b"\0".join(parts))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of True.

    >>> _runs(np.array([0, 1, 1, 0, 1], dtype=bool))
    [(1, 3), (4, 5)]
    """
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


# ----------------------------------------------------------------------------- training


def _training_utterances(corpus, speaker: str, config: HTSConfig, segments: Mapping | None):
    if speaker not in corpus.speakers:
        raise KeyError(f"speaker {speaker!r} is not in this corpus; it has {corpus.speakers}")
    utts = [u for u in corpus if u.speaker == speaker and u.split == "train"]
    if config.max_utterances is not None:
        utts = utts[: config.max_utterances]
    if not utts:
        raise ValueError(f"speaker {speaker!r} has no training utterances (split 'train')")
    labelled = []
    for u in utts:
        segs = segments.get(u.id) if segments is not None else u.segments
        if segs is None:
            raise ValueError(f"utterance {u.id} has no phone segments; align the corpus first "
                             "(ttslab.classical.align) and pass segments={utt_id: segments}")
        labelled.append((u, list(segs)))
    return labelled


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (feature workers): unlike wall-clock time,
    it does not grow when other programs share the cores."""
    try:
        import resource
    except ImportError:  # not on Windows
        return float("nan")
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def train_voice(corpus, speaker: str, config: HTSConfig | None = None, *, segments: Mapping | None = None,
                progress: bool = True) -> Voice:
    """Train an HTS-style voice on the ``train`` split of ``speaker`` in ``corpus`` (see the module docstring).

    ``segments`` (optional) maps utterance ids to phone segments (label, start, end in samples, word,
    stress) from any source, e.g. a forced aligner; by default each utterance's own ``segments``.
    Deterministic: the same corpus and config give the same voice.
    """
    from tqdm.auto import tqdm

    from ttslab.text.context import answer_matrix, contexts_from_segments, question_set

    config = config or HTSConfig()
    t_start, cpu_start = time.perf_counter(), _cpu_seconds()
    labelled = _training_utterances(corpus, speaker, config, segments)
    features = extract_features([u for u, _ in labelled], config, progress)
    t_features, cpu_features = time.perf_counter() - t_start, _cpu_seconds() - cpu_start

    # frames of every phone, all utterances stacked
    obs_parts, ranges, labels, contexts, offset = [], [], [], [], 0
    for (utt, segs), feats in zip(labelled, features):
        obs_parts.append(Observations.from_features(feats, config.mcep_order))
        ranges.append(phone_frame_ranges(segs, len(feats), config.hop) + offset)
        labels += [s.label for s in segs]
        contexts += contexts_from_segments(segs)
        offset += len(feats)
    obs = Observations.concatenate(obs_parts)
    ranges = np.concatenate(ranges)
    S, P = config.n_states, len(labels)

    # states: monophone HMMs on the spectrum inside each phone, then Viterbi
    models = train_monophones(obs.mcep, labels, ranges, config, progress)
    states = segment_states(obs.mcep, labels, ranges, models, S)
    phone_of_frame = np.repeat(np.arange(P), ranges[:, 1] - ranges[:, 0])
    units = phone_of_frame * S + states
    durations = np.bincount(units, minlength=P * S).reshape(P, S).astype(np.float64)

    # clustering: one tree per stream and state position, one for durations
    questions = question_set()
    names = [q.name for q in questions]
    answers = answer_matrix(questions, contexts)
    stats = state_statistics(obs, units, P, S)
    trees: dict[str, list[Tree]] = {stream: [] for stream in STREAMS}
    jobs = [(stream, s) for s in range(S) for stream in STREAMS]
    for stream, s in tqdm(jobs, desc="clustering", unit="tree", disable=not progress):
        trees[stream].append(grow_tree(stats[stream][s], answers, names, mdl_scale=config.mdl_scale,
                                       min_occupancy=config.min_occupancy, floor_ratio=config.floor_ratio))
    duration_stats = ItemStatistics(np.ones(P), durations, durations**2)
    duration_tree = grow_tree(duration_stats, answers, names, mdl_scale=config.duration_mdl_scale,
                              min_occupancy=config.duration_min_occupancy, floor_ratio=config.floor_ratio)

    # global variance of natural trajectories, one value per utterance; global means for baselines
    mceps, f0s, baps = zip(*(_split_features(f, config.mcep_order) for f in features))
    voiced_lf0 = [np.log(f0[f0 > 0])[:, None] for f0 in f0s if (f0 > 0).sum() > 1]
    gv = {"mcep": global_variance(mceps),
          "lf0": global_variance(voiced_lf0) if voiced_lf0 else (np.zeros(1), np.ones(1))}
    global_means = {"mcep": np.concatenate(mceps).mean(axis=0), "bap": np.concatenate(baps).mean(axis=0),
                    "lf0": np.concatenate(voiced_lf0).mean(axis=0) if voiced_lf0 else np.zeros(1)}

    info = {"n_utterances": len(labelled), "n_frames": int(len(obs.voiced)), "n_phones": P,
            "feature_seconds": round(t_features, 2), "training_seconds": round(time.perf_counter() - t_start, 2),
            "model_seconds": round(time.perf_counter() - t_start - t_features, 2),
            "feature_cpu_seconds": round(cpu_features, 2),
            "model_cpu_seconds": round(_cpu_seconds() - cpu_start - cpu_features, 2),
            "leaves": {stream: [t.n_leaves for t in ts] for stream, ts in trees.items()},
            "duration_leaves": duration_tree.n_leaves}
    frontend = _frontend_for(speaker, labelled[0][0].language)
    return Voice(speaker, config, trees, duration_tree, gv, global_means, frontend, set(labels), info)
