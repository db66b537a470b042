"""WORLD feature streams shared by the statistical parametric systems (HMM and DNN).

Both systems model the same three streams, frame by frame::

    audio ──WORLD──> [mcep c0..cM | F0 Hz | bap]      one float32 row per frame  (:func:`analyse`)
          ──>  mcep + Δ + Δ²,  log-F0 (continuous) + Δ + Δ² with a V/UV flag,  bap + Δ + Δ²  (:class:`Observations`)

One :class:`WorldFeatureConfig` defines the analysis, and it alone keys the feature cache, so
the HMM voices (:class:`ttslab.classical.hts.HTSConfig`) and the DNN voices
(:class:`ttslab.models.dnn_spss.DNNConfig`) read the same cached files whenever their analysis
settings agree, and can never split the cache by keying it differently.

>>> WorldFeatureConfig().frame_shift_ms
4.988662131519274
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np

from ttslab.dsp.deltas import delta_features
from ttslab.dsp.f0 import log_f0_and_vuv
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.dsp.world import world_analysis

#: Name of the feature cache folder (``data_home()/features/world-streams/<key>``).
CACHE_NAME = "world-streams"


@dataclass(frozen=True)
class WorldFeatureConfig:
    """The WORLD analysis of the parametric systems; its :meth:`cache_settings` key the cache.

    Frames of 5 ms (hop 110 at 22050 Hz), as in HTS, rather than the project's 256-sample hop:
    a quarter of the corpus' phones are shorter than five 11.6 ms frames, so 5-state phone models
    would not fit them.
    """

    hop: int = 110                      # 5 ms at 22050 Hz
    mcep_order: int = 34                # c0..c34, HTS's usual order at 16-48 kHz
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    f0_method: str = "harvest"          # "dio": faster F0, but worse voices (CI en_us_m: MCD +0.2 dB,
                                        # F0 RMSE 15.7 vs 11.9 Hz)
    sample_rate: int = SAMPLE_RATE

    @property
    def frame_shift_ms(self) -> float:
        return 1000.0 * self.hop / self.sample_rate

    def cache_settings(self) -> dict:
        """What the cached features depend on (the cache key)."""
        return {"kind": CACHE_NAME, **asdict(self)}

    @classmethod
    def of(cls, config) -> "WorldFeatureConfig":
        """The feature config of any object with the same fields (an HTSConfig, a DNNConfig)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)})


def analyse(x: np.ndarray, config: WorldFeatureConfig) -> np.ndarray:
    """WORLD analysis of one utterance into one float32 array ``(T, M+1 + 1 + B)``: ``[mcep | f0 Hz | bap]``."""
    feats = world_analysis(np.asarray(x), config.sample_rate, hop=config.hop, mcep_order=config.mcep_order,
                           f0_floor=config.f0_floor, f0_ceil=config.f0_ceil, f0_method=config.f0_method)
    return np.concatenate([feats.mcep, feats.f0[:, None], feats.bap], axis=1).astype(np.float32)


def _analyse_utterance(args) -> np.ndarray:
    """Worker: (cached) analysis of one utterance (``args = (utt, config, cache, cache_root)``)."""
    utt, config, cache, cache_root = args
    if utt.sample_rate != config.sample_rate:
        raise ValueError(f"utterance {utt.id} is {utt.sample_rate} Hz but the features are analysed at "
                         f"{config.sample_rate} Hz; resample it (librosa.resample) or set sample_rate")
    compute = lambda: analyse(utt.load_audio(), config)  # noqa: E731
    if not cache:
        return compute()
    from ttslab.dsp.cache import FeatureCache

    return FeatureCache(cache_root, CACHE_NAME, config.cache_settings()).get_or_compute(utt.id, compute)


def extract_features(utterances: Sequence, config: WorldFeatureConfig, *, jobs: int = 1, cache: bool = True,
                     cache_root=None, progress: bool = True) -> list[np.ndarray]:
    """:func:`analyse` every utterance (cached with :class:`~ttslab.dsp.cache.FeatureCache` unless
    ``cache=False``; ``jobs`` spawned processes), in the given order."""
    from tqdm.auto import tqdm

    work = [(u, config, cache, cache_root) for u in utterances]
    bar = dict(total=len(work), desc="WORLD features", unit="utt", disable=not progress)
    if jobs > 1 and len(work) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            return list(tqdm(pool.imap(_analyse_utterance, work, chunksize=4), **bar))
    return [_analyse_utterance(w) for w in tqdm(work, **bar)]


def split_features(features: np.ndarray, mcep_order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mcep (T, M+1), f0 (T,), bap (T, B))`` of an :func:`analyse` array, as float64."""
    features = np.asarray(features, dtype=np.float64)
    return features[:, :mcep_order + 1], features[:, mcep_order + 1], features[:, mcep_order + 2:]


@dataclass
class Observations:
    """The three observation streams of one utterance (or of many, stacked), frame by frame."""

    mcep: np.ndarray     # (T, 3(M+1))  [c | Δc | Δ²c]
    lf0: np.ndarray      # (T, 3)       [lf0 | Δlf0 | Δ²lf0], on the interpolated contour
    voiced: np.ndarray   # (T,)         bool: which frames are voiced (the voiced space of the MSD)
    bap: np.ndarray      # (T, 3B)

    @classmethod
    def from_features(cls, features: np.ndarray, mcep_order: int) -> "Observations":
        mcep, f0, bap = split_features(features, mcep_order)
        lf0, voiced = log_f0_and_vuv(f0)
        return cls(delta_features(mcep), delta_features(lf0[:, None]), voiced, delta_features(bap))

    @classmethod
    def concatenate(cls, parts: Sequence["Observations"]) -> "Observations":
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def stream(self, name: str) -> np.ndarray:
        return getattr(self, name)


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
