"""GMM voice conversion (Toda, Black & Tokuda 2007): make a source speaker sound like a target speaker.

The recipe, one small function per step:

1. **Parallel data** (:func:`parallel_pairs`): both speakers read the same prompts.
2. **Features** (:func:`analyse`): WORLD analysis, mel-cepstrum ``c_0..c_M`` (``M = 24``), F0 and band
   aperiodicity. Only ``c_1..c_M`` (the spectral *shape*) is converted: ``c_0`` (loudness) and the
   aperiodicity are kept from the source, F0 gets a separate linear transform of log-F0.
3. **Alignment** (:func:`dtw_align`): the two speakers say a sentence at different speeds, so frames are
   paired by dynamic time warping on ``c_1..c_M`` (``librosa.sequence.dtw``); pairs where either frame is
   silence (:func:`speech_frames`) are dropped. The classic recipe aligns twice: once source-to-target,
   then once more *converted*-to-target with the first model, which is already in the target's space
   and so aligns better (``VCConfig.alignment_passes = 2``).
4. **Joint-density GMM** (:func:`fit_joint_gmm`) over ``z_t = [x_t, dx_t, y_t, dy_t]`` (source and target
   statics and deltas, full covariances): ``p(z) = sum_k w_k N(z; mu_k, Sigma_k)``.
5. **Conversion** (:meth:`VoiceConverter.convert_mcep`): condition on the source,
   ``p(Y_t | X_t) = sum_k P(k | X_t) N(Y_t; A_k X_t + b_k, S_k)`` with ``Y_t = [y_t, dy_t]``, ``X_t = [x_t, dx_t]``
   (:func:`ttslab.classical.gmm.conditional`), pick one component per frame (or average them with the
   posteriors), and generate the most likely *static* trajectory with MLPG, whose deltas agree with the
   predicted ``dy`` (:func:`ttslab.classical.mlpg.mlpg`). Optionally restore the target's global variance.
6. **Synthesis**: WORLD, with converted ``c_1..c_M``, the source's ``c_0`` and aperiodicity, converted F0.

Toda et al. use the full ``2D x 2D`` conditional covariance in MLPG, which couples the dimensions; this
module passes its diagonal, so every cepstral dimension is generated on its own (as nnmnkwii does) by the
banded solve of :func:`~ttslab.classical.mlpg.mlpg`.

On the built-in corpus (``benchmarks/voice_conversion.py``, 330 training prompts, 16 components) the
mel-cepstral distortion to the target on held-out prompts falls from 9.2-12.6 dB to 4.2-4.6 dB.

>>> from ttslab.data import load_builtin                                 # doctest: +SKIP
>>> corpus = load_builtin("ci")                                          # doctest: +SKIP
>>> vc = train_vc(corpus, "en_us_m", "en_us_f", VCConfig.for_mode("ci"))  # doctest: +SKIP
>>> converted = vc.convert(corpus["en_us_m-en_test_0001"].load_audio(), 22050)  # doctest: +SKIP
>>> evaluate_vc(vc, corpus, "en_us_m", "en_us_f")["mean"]               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ttslab.classical.gmm import GaussianMixture, conditional
from ttslab.classical.mlpg import global_variance, mlpg, mlpg_gv, variance_scaling
from ttslab.dsp.deltas import DELTA_WINDOWS, delta_features
from ttslab.dsp.world import WorldFeatures, world_analysis, world_synthesis

__all__ = [
    "VCConfig", "VoiceConverter", "train_vc", "evaluate_vc", "parallel_pairs", "analyse", "speech_frames",
    "dtw_align", "aligned_joint_frames", "fit_joint_gmm", "log_f0_stats", "convert_log_f0",
]

#: Static and delta windows: the joint vectors and MLPG use ``[c | dc]`` (no delta-delta, as Toda et al.).
VC_WINDOWS = DELTA_WINDOWS[:2]
#: ``20 / ln 10``: dB per unit of ``c_0`` (``c_0`` of ``pysptk.sp2mc`` is the mean natural-log amplitude).
DB_PER_C0 = 20.0 / np.log(10.0)
FORMAT_VERSION = 1
GV_METHODS = ("none", "scaling", "mlpg_gv")
MIXTURE_METHODS = ("map", "posterior")


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class VCConfig:
    """Settings of one voice-conversion model (saved with it).

    * ``n_components``: mixture components of the joint GMM (Toda et al.: 32-128 with 50 sentence pairs).
    * ``mcep_order``: analyse ``c_0..c_mcep_order``; the joint vector has ``4 * mcep_order`` dimensions.
    * ``f0_method``: ``"dio"`` (fast) or ``"harvest"`` (more robust, ~20x slower).
    * ``silence_db``: a frame is silence when its ``c_0`` is this far below the utterance's loudest frame.
    * ``alignment_passes``: 1 = DTW on the source's cepstra only; 2 = the classic re-alignment with
      converted cepstra and a refit of the GMM.
    * ``max_frames``: train on at most this many aligned frames, drawn at random (``None`` = all); the
      EM cost is ``O(frames * K * D^2)`` per iteration.
    * ``max_iter``, ``tol``, ``reg_covar``: EM (see :class:`~ttslab.classical.gmm.GaussianMixture`).
    * ``mixture``: ``"map"`` (the most likely component per frame, Toda et al.'s suboptimal mixture
      sequence) or ``"posterior"`` (posterior-weighted means and variances).
    * ``gv``: global-variance compensation: ``"none"``, ``"scaling"`` (postfilter,
      :func:`~ttslab.classical.mlpg.variance_scaling`, on speech frames) or ``"mlpg_gv"``
      (:func:`~ttslab.classical.mlpg.mlpg_gv`, over the whole utterance, silence included). GV makes speech
      less muffled but raises MCD by a few tenths of a dB: MCD rewards the over-smoothed mean.
    * ``seed``: k-means++ seeding and frame subsampling.
    """

    n_components: int = 16
    mcep_order: int = 24
    f0_method: str = "dio"
    silence_db: float = 40.0
    alignment_passes: int = 2
    max_frames: int | None = 30000
    max_iter: int = 40
    tol: float = 1e-3
    reg_covar: float = 1e-4
    mixture: str = "map"
    gv: str = "scaling"
    seed: int = 0

    def __post_init__(self):
        if self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")
        if self.mcep_order < 1:
            raise ValueError(f"mcep_order must be >= 1, got {self.mcep_order}")
        if self.f0_method not in ("dio", "harvest"):
            raise ValueError(f"f0_method must be 'dio' or 'harvest', got {self.f0_method!r}")
        if not self.silence_db > 0:
            raise ValueError(f"silence_db must be > 0, got {self.silence_db}")
        if self.alignment_passes not in (1, 2, 3):
            raise ValueError(f"alignment_passes must be 1, 2 or 3, got {self.alignment_passes}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be None or >= 1, got {self.max_frames}")
        if self.mixture not in MIXTURE_METHODS:
            raise ValueError(f"mixture must be one of {MIXTURE_METHODS}, got {self.mixture!r}")
        if self.gv not in GV_METHODS:
            raise ValueError(f"gv must be one of {GV_METHODS}, got {self.gv!r}")

    @classmethod
    def for_mode(cls, mode: str, **overrides) -> VCConfig:
        """Defaults for ``"ci"`` (4 components, 15 EM iterations: seconds) or ``"full"`` (16 components)."""
        if mode not in ("ci", "full"):
            raise ValueError(f"mode must be 'ci' or 'full', got {mode!r}")
        base = {"n_components": 4, "max_iter": 15, "max_frames": 10000} if mode == "ci" else {}
        return cls(**{**base, **overrides})

    @property
    def joint_dim(self) -> int:
        """``[x, dx, y, dy]``: 4 blocks of ``c_1..c_M``."""
        return 4 * self.mcep_order


# ----------------------------------------------------------------------------- parallel data and features


def _prompt_key(utt) -> str:
    """What makes two speakers' utterances "the same prompt": the id without the ``<speaker>-`` prefix
    (the built-in corpus), else the text with case and punctuation dropped."""
    prefix = f"{utt.speaker}-"
    if utt.id.startswith(prefix):
        return utt.id[len(prefix):]
    return "text:" + _normalised_text(utt.text)


def _normalised_text(text: str | None) -> str:
    return re.sub(r"[^\w]+", " ", (text or "").lower()).strip()


def parallel_pairs(corpus, source: str, target: str, split: str | None = "train") -> list[tuple]:
    """``[(source utterance, target utterance), ...]`` reading the same prompts, in corpus order.

    Raises ``KeyError`` for an unknown speaker, ``ValueError`` for source == target, for no shared prompt,
    or for a pair whose texts differ (the corpus is not parallel where it claims to be).
    """
    if source == target:
        raise ValueError(f"source and target are the same speaker ({source!r}); conversion needs two speakers")
    for who, spk in (("source", source), ("target", target)):
        if spk not in corpus.speakers:
            raise KeyError(f"unknown {who} speaker {spk!r}; this corpus has {corpus.speakers}")
    src = [u for u in corpus if u.speaker == source and (split is None or u.split == split)]
    tgt = {_prompt_key(u): u for u in corpus if u.speaker == target and (split is None or u.split == split)}
    pairs = [(u, tgt[_prompt_key(u)]) for u in src if _prompt_key(u) in tgt]
    if not pairs:
        raise ValueError(f"{source!r} and {target!r} share no prompt in split {split!r}: the data are not parallel "
                         f"({len(src)} and {len(tgt)} utterances); GMM voice conversion needs the same sentences "
                         "from both speakers")
    for u, v in pairs:
        if u.text and v.text and _normalised_text(u.text) != _normalised_text(v.text):
            raise ValueError(f"non-parallel pair: {u.id} says {u.text!r} but {v.id} says {v.text!r}")
    return pairs


def analyse(audio, sample_rate: int, config: VCConfig) -> WorldFeatures:
    """WORLD features with the config's mel-cepstral order and F0 method."""
    return world_analysis(audio, sample_rate, mcep_order=config.mcep_order, f0_method=config.f0_method)


def _analyse_utterance(args) -> tuple[np.ndarray, np.ndarray]:
    """``(f0, mcep)`` of one utterance (module level, so a process pool can run it)."""
    utt, config = args
    feats = analyse(utt.load_audio(), utt.sample_rate, config)
    return feats.f0, feats.mcep


def _feature_cache(config: VCConfig):
    """Disk cache of ``[f0 | mcep]`` per utterance, keyed by the analysis settings (:mod:`ttslab.dsp.cache`)."""
    from ttslab.dsp.cache import FeatureCache
    from ttslab.dsp.spectral import HOP

    return FeatureCache(None, "vc-world", {"mcep_order": config.mcep_order, "f0_method": config.f0_method, "hop": HOP})


def _cache_id(utt) -> str:
    # the audio checksum (when the corpus has one) keeps two corpora's "same" ids apart
    return f"{utt.id}-{utt.sha256[:12]}" if utt.sha256 else utt.id


def _features_of(utterances: Sequence, config: VCConfig, jobs: int, progress: bool, desc: str,
                 cache: bool = False) -> list:
    """``[(f0, mcep), ...]`` for every utterance, in order; ``jobs > 1`` uses one-thread worker processes.

    ``cache``: reuse / store the analyses on disk (``data_home()/features/vc-world``).
    """
    from tqdm.auto import tqdm

    store = _feature_cache(config) if cache else None
    feats = [None] * len(utterances)
    if store is not None:
        for n, u in enumerate(utterances):
            if _cache_id(u) in store:
                stacked = store.load(_cache_id(u))
                feats[n] = (stacked[:, 0], stacked[:, 1:])
    todo = [n for n, f in enumerate(feats) if f is None]
    work = [(utterances[n], config) for n in todo]
    if jobs > 1 and len(work) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = list(tqdm(pool.imap(_analyse_utterance, work), total=len(work), desc=desc, disable=not progress))
    else:
        results = [_analyse_utterance(w) for w in tqdm(work, desc=desc, disable=not progress)]
    for n, (f0, mcep) in zip(todo, results):
        feats[n] = (f0, mcep)
        if store is not None:
            store.save(_cache_id(utterances[n]), np.concatenate([f0[:, None], mcep], axis=1))
    return feats


def speech_frames(mcep: np.ndarray, silence_db: float = 40.0) -> np.ndarray:
    """Boolean mask of non-silent frames: ``c_0[t] > max_t c_0 - silence_db / (20 / ln 10)``.

    ``c_0`` is the mean log amplitude of the frame, so ``20 / ln 10 * c_0`` is its level in dB.
    Silence carries no speaker identity, and a GMM that learns it wastes components on it.
    """
    c0 = np.asarray(mcep, dtype=np.float64)[:, 0]
    return c0 > c0.max() - silence_db / DB_PER_C0


# ----------------------------------------------------------------------------- alignment


def dtw_align(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Frame pairs ``(i_k, j_k)``, shape ``(K, 2)``, from first to last, of the DTW path between ``x`` and ``y``.

    Minimises ``sum_k ||x[i_k] - y[j_k]||`` over monotone paths from ``(0, 0)`` to ``(Tx-1, Ty-1)`` with steps
    ``(1, 1)``, ``(1, 0)``, ``(0, 1)`` (``librosa.sequence.dtw``, which returns the path backwards).
    """
    import librosa
    from scipy.spatial.distance import cdist

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) == 0 or len(y) == 0:
        raise ValueError(f"dtw_align needs two non-empty (T, D) arrays with the same D, got {x.shape} and {y.shape}")
    _, path = librosa.sequence.dtw(C=cdist(x, y, metric="euclidean"))
    return np.ascontiguousarray(path[::-1])


def aligned_joint_frames(x_static, y_static, path, keep_x, keep_y) -> np.ndarray:
    """Joint training vectors ``z = [x, dx, y, dy]`` along ``path``, keeping pairs where both frames are speech.

    Deltas are taken on each speaker's own time axis *before* alignment: DTW repeats frames, and a delta
    across a repeated frame would be half the real one; at conversion time the source deltas are also
    the natural ones.
    """
    X = delta_features(x_static, VC_WINDOWS)
    Y = delta_features(y_static, VC_WINDOWS)
    i, j = path[:, 0], path[:, 1]
    both = keep_x[i] & keep_y[j]
    return np.concatenate([X[i[both]], Y[j[both]]], axis=1)


# ----------------------------------------------------------------------------- training


def fit_joint_gmm(Z: np.ndarray, config: VCConfig, init: GaussianMixture | None = None,
                  progress: bool = True, desc: str = "EM") -> GaussianMixture:
    """Full-covariance GMM over the joint vectors by EM, one progress-bar step per iteration.

    ``init``: start from this model's parameters (the re-alignment pass refines the first model).
    """
    from tqdm.auto import tqdm

    kwargs = dict(n_components=config.n_components, covariance_type="full", max_iter=config.max_iter,
                  tol=config.tol, reg_covar=config.reg_covar, random_state=config.seed)
    if init is not None:
        kwargs.update(init="params", weights_init=init.weights_, means_init=init.means_,
                      covariances_init=init.covariances_)
    gmm = GaussianMixture(**kwargs).initialize(Z)
    previous = -np.inf
    with tqdm(range(config.max_iter), desc=desc, disable=not progress, leave=False) as bar:
        for _ in bar:
            current = gmm.em_step(Z)  # mean log-likelihood per frame before this step's update
            bar.set_postfix(loglik=f"{current:.3f}")
            if abs(current - previous) < config.tol:
                gmm.converged_ = True
                break
            previous = current
    return gmm


def _check_enough_frames(n_frames: int, config: VCConfig) -> None:
    """A full covariance in ``D`` dimensions needs well over ``D`` frames per component to be estimated."""
    needed = 2 * config.joint_dim * config.n_components
    if n_frames < needed:
        raise ValueError(f"too little data: {n_frames} aligned speech frames for {config.n_components} full-covariance "
                         f"components in {config.joint_dim} dimensions (need at least {needed}, 2 x dim per "
                         "component); use fewer components, a lower mcep_order, or more utterances")
    if config.max_frames is not None and config.max_frames < needed:
        raise ValueError(f"max_frames={config.max_frames} is too few for {config.n_components} full-covariance "
                         f"components in {config.joint_dim} dimensions (need at least {needed}); raise it")


def log_f0_stats(f0_tracks: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean and standard deviation of ``log F0`` over the voiced frames (F0 > 0) of all tracks."""
    voiced = np.concatenate([np.asarray(f, dtype=np.float64) for f in f0_tracks])
    voiced = voiced[voiced > 0]
    if voiced.size < 2:
        raise ValueError("fewer than 2 voiced frames: cannot estimate log-F0 statistics")
    lf0 = np.log(voiced)
    return float(lf0.mean()), float(lf0.std())


def convert_log_f0(f0: np.ndarray, source_stats, target_stats) -> np.ndarray:
    """Linear transform of log-F0 on voiced frames, unvoiced (0) stay 0:

        log f0' = mu_y + (sigma_y / sigma_x) (log f0 - mu_x)

    >>> convert_log_f0(np.array([0.0, 100.0]), (np.log(100.0), 0.2), (np.log(200.0), 0.2)).round(6).tolist()
    [0.0, 200.0]
    """
    f0 = np.asarray(f0, dtype=np.float64)
    (mu_x, sd_x), (mu_y, sd_y) = source_stats, target_stats
    out = np.zeros_like(f0)
    voiced = f0 > 0
    out[voiced] = np.exp(mu_y + sd_y / sd_x * (np.log(f0[voiced]) - mu_x))
    return out


def train_vc(corpus, source: str, target: str, config: VCConfig | None = None, *, jobs: int = 1,
             progress: bool = True, utterance_limit: int | None = None, cache: bool = False) -> VoiceConverter:
    """Train a GMM voice converter from ``source`` to ``target`` on the corpus's parallel training prompts.

    ``utterance_limit``: use only the first N pairs (quick experiments). ``jobs``: processes for WORLD
    analysis, the slowest part; ``cache=True`` keeps those analyses on disk for the next run.
    ``converter.info`` records frame counts, EM iterations and timings.
    """
    config = config or VCConfig()
    pairs = parallel_pairs(corpus, source, target, split="train")[:utterance_limit]
    rates = {u.sample_rate for pair in pairs for u in pair}
    if len(rates) != 1:
        raise ValueError(f"source and target audio have different sample rates {sorted(rates)}; resample first")
    sample_rate = rates.pop()
    t_start = time.perf_counter()
    feats = _features_of([u for pair in pairs for u in pair], config, jobs, progress, f"WORLD {source}+{target}",
                        cache)
    src, tgt = feats[0::2], feats[1::2]
    t_features = time.perf_counter() - t_start

    x_static = [mcep[:, 1:] for _, mcep in src]
    y_static = [mcep[:, 1:] for _, mcep in tgt]
    keep_x = [speech_frames(mcep, config.silence_db) for _, mcep in src]
    keep_y = [speech_frames(mcep, config.silence_db) for _, mcep in tgt]
    f0_stats = log_f0_stats([f for f, _ in src]), log_f0_stats([f for f, _ in tgt])
    gv_stats = global_variance([y[k] for y, k in zip(y_static, keep_y)])  # the target's GV, on speech frames
    rng = np.random.default_rng(config.seed)

    converter, gmm, history = None, None, []
    for p in range(config.alignment_passes):
        # the first pass aligns the source itself; later ones its conversion, which lives in the target's space
        queries = x_static if converter is None else [converter.convert_mcep(m)[:, 1:] for _, m in src]
        Z = np.concatenate([aligned_joint_frames(x, y, dtw_align(q, y), kx, ky)
                            for x, y, q, kx, ky in zip(x_static, y_static, queries, keep_x, keep_y)])
        n_aligned = len(Z)
        _check_enough_frames(n_aligned, config)
        if config.max_frames is not None and n_aligned > config.max_frames:
            Z = Z[np.sort(rng.choice(n_aligned, config.max_frames, replace=False))]
        gmm = fit_joint_gmm(Z, config, init=gmm, progress=progress, desc=f"EM pass {p + 1}/{config.alignment_passes}")
        history.append({"pass": p + 1, "aligned_frames": int(n_aligned), "training_frames": int(len(Z)),
                        "em_iterations": int(gmm.n_iter_), "converged": bool(gmm.converged_),
                        "loglik_per_frame": float(gmm.lower_bound_)})
        converter = VoiceConverter(config, source, target, sample_rate, gmm.weights_, gmm.means_,
                                   gmm.covariances_, *f0_stats, *gv_stats)
    converter.info = {"n_utterances": len(pairs), "passes": history, "features_seconds": round(t_features, 3),
                      "training_seconds": round(time.perf_counter() - t_start - t_features, 3)}
    return converter


# ----------------------------------------------------------------------------- the converter


class VoiceConverter:
    """A trained GMM voice converter: the joint GMM, log-F0 statistics and the target's global variance.

    ``gv_mean``/``gv_var``: mean and variance over the target's training utterances of the per-utterance
    variance of each ``c_1..c_M`` on speech frames (:func:`~ttslab.classical.mlpg.global_variance`).
    """

    def __init__(self, config: VCConfig, source: str, target: str, sample_rate: int, weights, means, covariances,
                 source_f0_stats, target_f0_stats, gv_mean, gv_var, info: dict | None = None):
        self.config, self.source, self.target, self.sample_rate = config, source, target, int(sample_rate)
        self.gmm = GaussianMixture.from_params(weights, means, covariances, "full")
        if self.gmm.means_.shape[1] != config.joint_dim:
            raise ValueError(f"GMM has {self.gmm.means_.shape[1]} dimensions but the config says {config.joint_dim}")
        D = config.mcep_order
        # p([y, dy] | [x, dx]) per component: A_k, b_k and the conditional covariance S_k
        self.conditional = conditional(self.gmm, slice(0, 2 * D), slice(2 * D, 4 * D))
        self.source_f0_stats = tuple(float(v) for v in source_f0_stats)
        self.target_f0_stats = tuple(float(v) for v in target_f0_stats)
        self.gv_mean, self.gv_var = np.asarray(gv_mean, dtype=np.float64), np.asarray(gv_var, dtype=np.float64)
        self.info = dict(info or {})

    def __repr__(self) -> str:
        return (f"VoiceConverter({self.source!r} -> {self.target!r}, {self.config.n_components} components, "
                f"mcep_order={self.config.mcep_order}, gv={self.config.gv!r})")

    def replace(self, **changes) -> VoiceConverter:
        """The same model with conversion-time settings changed, e.g. ``vc.replace(gv="none")``."""
        allowed = {"mixture", "gv", "silence_db"}
        if not set(changes) <= allowed:
            raise ValueError(f"only {sorted(allowed)} can change after training, got {sorted(changes)}")
        return VoiceConverter(dataclasses.replace(self.config, **changes), self.source, self.target,
                              self.sample_rate, self.gmm.weights_, self.gmm.means_, self.gmm.covariances_,
                              self.source_f0_stats, self.target_f0_stats, self.gv_mean, self.gv_var, self.info)

    # -- conversion

    def predict_static_delta(self, x_static: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame Gaussian over ``Y_t = [y_t, dy_t]``: means and (diagonal) variances, both ``(T, 2D)``.

        ``map``:        k_t = argmax_k P(k | X_t);   E_t = A_k X_t + b_k,   V_t = diag(S_k)
        ``posterior``:  E_t = sum_k P(k | X_t) (A_k X_t + b_k),   V_t = sum_k P(k | X_t) diag(S_k)
        """
        cond = self.conditional
        X = delta_features(x_static, VC_WINDOWS)
        posterior = cond.posterior(X)                                         # (T, K)
        variances = np.diagonal(cond.covariances, axis1=1, axis2=2)          # (K, 2D)
        if self.config.mixture == "map":
            k = np.argmax(posterior, axis=1)
            means = np.einsum("tyx,tx->ty", cond.A[k], X) + cond.b[k]
            return means, variances[k]
        return np.einsum("tk,tky->ty", posterior, cond.component_means(X)), posterior @ variances

    def convert_mcep(self, mcep: np.ndarray) -> np.ndarray:
        """Convert ``c_1..c_M`` by MLPG over ``[y | dy]`` (then global variance); ``c_0`` stays the source's.

        MLPG:  y* = argmax_y N(W y; E, V) = (W' V^-1 W)^-1 W' V^-1 E  with ``W`` the static + delta windows.
        """
        mcep = np.asarray(mcep, dtype=np.float64)
        if mcep.ndim != 2 or mcep.shape[1] != self.config.mcep_order + 1:
            raise ValueError(f"mcep must have shape (T, {self.config.mcep_order + 1}) (c0..c{self.config.mcep_order}), "
                             f"got {mcep.shape}; analyse with mcep_order={self.config.mcep_order}")
        means, variances = self.predict_static_delta(mcep[:, 1:])
        if self.config.gv == "mlpg_gv":
            y = mlpg_gv(means, variances, self.gv_mean, self.gv_var, windows=VC_WINDOWS)
        else:
            y = mlpg(means, variances, windows=VC_WINDOWS)
        if self.config.gv == "scaling":
            # stretch speech frames only: the target's GV was measured on speech, and silence has no shape
            speech = speech_frames(mcep, self.config.silence_db)
            y[speech] = variance_scaling(y[speech], self.gv_mean)
        return np.concatenate([mcep[:, :1], y], axis=1)

    def convert_f0(self, f0: np.ndarray) -> np.ndarray:
        return convert_log_f0(f0, self.source_f0_stats, self.target_f0_stats)

    def convert_features(self, feats: WorldFeatures) -> WorldFeatures:
        """Converted WORLD features: new ``mcep`` (and ``sp`` from it), new ``f0``; ``ap``/``bap`` from the source."""
        from ttslab.dsp.world import import_pysptk

        if feats.sample_rate != self.sample_rate:
            raise ValueError(f"features are at {feats.sample_rate} Hz but the converter was trained at "
                             f"{self.sample_rate} Hz")
        mcep = self.convert_mcep(feats.mcep)
        sp = import_pysptk().mc2sp(np.ascontiguousarray(mcep), alpha=feats.alpha, fftlen=feats.fft_size)
        return dataclasses.replace(feats, f0=self.convert_f0(feats.f0), mcep=mcep, sp=sp,
                                   ap=feats.ap.copy(), bap=feats.bap.copy())

    def convert(self, audio, sample_rate: int) -> np.ndarray:
        """Convert a source-speaker waveform: WORLD analysis, :meth:`convert_features`, WORLD synthesis.

        The result is float32 and has exactly ``len(audio)`` samples.
        """
        if int(sample_rate) != self.sample_rate:
            raise ValueError(f"audio is at {sample_rate} Hz but the converter was trained at {self.sample_rate} Hz; "
                             "resample it first (librosa.resample)")
        audio = np.asarray(audio)
        out = self.convert_features(analyse(audio, sample_rate, self.config))
        return world_synthesis(out.f0, out.mcep, out.bap, sample_rate, frame_period=out.frame_period, alpha=out.alpha,
                               fft_size=out.fft_size, n_samples=len(audio))

    # -- saving

    def _arrays(self) -> dict[str, np.ndarray]:
        meta = {"format_version": FORMAT_VERSION, "config": dataclasses.asdict(self.config), "source": self.source,
                "target": self.target, "sample_rate": self.sample_rate, "info": self.info}
        return {"meta_json": np.array(json.dumps(meta, sort_keys=True)), "weights": self.gmm.weights_,
                "means": self.gmm.means_, "covariances": self.gmm.covariances_,
                "f0_stats": np.array([*self.source_f0_stats, *self.target_f0_stats]),
                "gv_mean": self.gv_mean, "gv_var": self.gv_var}

    def save(self, path) -> Path:
        """Write an ``.npz`` (no pickles) atomically, with a SHA-256 of its contents that :meth:`load` checks."""
        from ttslab.io import atomic_write_bytes

        arrays = self._arrays()
        buf = io.BytesIO()
        np.savez(buf, sha256=np.array(_digest(arrays)), **arrays)
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path, sha256: str | None = None, *, verify: bool = True) -> VoiceConverter:
        """Read a model written by :meth:`save`; ``ValueError`` if the file is corrupt or was changed.

        The file holds its own checksum, so it needs no sidecar; ``sha256`` (or a ``.sha256`` sidecar)
        also checks the file's bytes, and ``verify=False`` skips every check (see
        :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import verify_file

        if Path(path).is_file():  # a missing file keeps raising FileNotFoundError from np.load below
            verify_file(path, sha256, verify=verify, self_checked=True, what="voice-conversion model", error=ValueError)
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise ValueError(f"{path} is not a readable voice-conversion model ({exc})") from None
        stored = str(arrays.pop("sha256", ""))
        if verify and stored != _digest(arrays):
            raise ValueError(f"checksum mismatch in {path}: the file is corrupt or was modified; retrain or re-copy it")
        meta = json.loads(str(arrays["meta_json"]))
        if meta["format_version"] != FORMAT_VERSION:
            raise ValueError(f"{path} has format version {meta['format_version']}, this ttslab reads {FORMAT_VERSION}")
        f0 = arrays["f0_stats"]
        return cls(VCConfig(**meta["config"]), meta["source"], meta["target"], meta["sample_rate"],
                   arrays["weights"], arrays["means"], arrays["covariances"], f0[:2], f0[2:],
                   arrays["gv_mean"], arrays["gv_var"], meta["info"])


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- evaluation


def _aligned_f0_rmse(ref_mcep, ref_f0, syn_mcep, syn_f0) -> float:
    """F0 RMSE in cents along the DTW path of the cepstra (the two tracks have different timing)."""
    from ttslab.metrics import f0_rmse

    path = dtw_align(ref_mcep[:, 1:], syn_mcep[:, 1:])
    return f0_rmse(ref_f0[path[:, 0]], syn_f0[path[:, 1]], unit="cents")


def _median_f0(f0) -> float:
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else float("nan")


def evaluate_vc(converter: VoiceConverter, corpus, source: str | None = None, target: str | None = None,
                split: str = "test", *, jobs: int = 1, progress: bool = True, utterance_limit: int | None = None,
                cache: bool = False) -> dict:
    """Objective scores on held-out parallel prompts, before (source vs target) and after conversion.

    Per utterance pair, on speech frames only (:func:`speech_frames`; silence would flatter both):

    * ``mcd_before`` = MCD-DTW(target, source), ``mcd_after`` = MCD-DTW(target, converted), dB, ``c_0`` excluded
      (:func:`ttslab.metrics.mcd_dtw` on the converted *features*, no resynthesis);
    * ``f0_rmse_before`` / ``f0_rmse_after`` in cents on frames voiced in both, along the DTW path;
    * ``median_f0`` of source, target and converted (Hz).

    Returns ``{"rows": [...], "mean": {...}, "source", "target", "split"}`` (plain JSON types).
    """
    from ttslab.metrics import mcd_dtw

    source, target = source or converter.source, target or converter.target
    pairs = parallel_pairs(corpus, source, target, split=split)[:utterance_limit]
    feats = _features_of([u for pair in pairs for u in pair], converter.config, jobs, progress, f"WORLD {split}",
                        cache)
    rows = []
    for (u, v), (f0_x, mc_x), (f0_y, mc_y) in zip(pairs, feats[0::2], feats[1::2]):
        mc_c, f0_c = converter.convert_mcep(mc_x), converter.convert_f0(f0_x)
        sx, sy = speech_frames(mc_x, converter.config.silence_db), speech_frames(mc_y, converter.config.silence_db)
        rows.append({
            "source_id": u.id, "target_id": v.id,
            "mcd_before": mcd_dtw(mc_y[sy], mc_x[sx]), "mcd_after": mcd_dtw(mc_y[sy], mc_c[sx]),
            "f0_rmse_before": _aligned_f0_rmse(mc_y[sy], f0_y[sy], mc_x[sx], f0_x[sx]),
            "f0_rmse_after": _aligned_f0_rmse(mc_y[sy], f0_y[sy], mc_c[sx], f0_c[sx]),
            "median_f0_source": _median_f0(f0_x), "median_f0_target": _median_f0(f0_y),
            "median_f0_converted": _median_f0(f0_c),
        })
    keys = [k for k in rows[0] if k not in ("source_id", "target_id")]
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    return {"source": source, "target": target, "split": split, "rows": rows, "mean": mean}
