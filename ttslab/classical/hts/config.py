"""Settings of an HTS-style voice (:class:`HTSConfig`) and its file format."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping

from ttslab.checkpoint import CheckpointError
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.dsp.streams import WorldFeatureConfig

#: Stream groups, each with its own trees: spectrum, log-F0 (MSD) and band aperiodicity.
STREAMS = ("mcep", "lf0", "bap")
FORMAT_VERSION = 1


class VoiceFileError(CheckpointError):
    """A saved voice is missing, corrupt, truncated or from an incompatible version (a
    :class:`~ttslab.checkpoint.CheckpointError`, like every other file a model is loaded from)."""


class VoiceNotFoundError(VoiceFileError, FileNotFoundError):
    """No voice file at the path: both a :class:`VoiceFileError` and a ``FileNotFoundError``."""


@dataclass(frozen=True)
class HTSConfig:
    """Every setting of a voice; :meth:`feature_config` keys the feature cache.

    ``mdl_scale`` 0.5 rather than HTS's 1: the built-in corpus is synthetic and consistent, and
    larger trees measured better on held-out sentences (en_us_m, full mode, 8 sentences: MCD-DTW
    5.03 / 4.95 / 4.81 dB and F0 RMSE 13.3 / 12.8 / 10.6 Hz at scale 1 / 0.5 / 0.25, V/UV error
    8.8 / 9.5 / 10.5 %). Model training time hardly changes; the voice file grows.
    """

    # features (ttslab.dsp.streams.WorldFeatureConfig: the same fields, the same cache)
    hop: int = 110                      # 5 ms at 22050 Hz (see the module docstring)
    mcep_order: int = 34                # c0..c34, HTS's usual order at 16-48 kHz
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    f0_method: str = "harvest"          # "dio": faster F0, but worse voices (CI en_us_m: MCD +0.2 dB,
                                        # F0 RMSE 15.7 vs 11.9 Hz)
    sample_rate: int = SAMPLE_RATE
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
        return 1000.0 * self.hop / self.sample_rate

    def feature_config(self) -> WorldFeatureConfig:
        """The WORLD analysis these voices model; it alone keys the feature cache."""
        return WorldFeatureConfig.of(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> HTSConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
