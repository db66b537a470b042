"""DNN statistical parametric speech synthesis (Zen, Senior & Schuster 2013), with an LSTM variant.

The HMM system (:mod:`ttslab.classical.hts`) maps a phone's context to Gaussians by decision
trees: every frame of one tree leaf gets the same mean. Here neural networks replace the trees,
fed with the same contexts as numbers (:func:`ttslab.text.context.linguistic_features`) and
predicting the same WORLD features::

    text ──eSpeak NG──> phones, words, stress ──> 498 linguistic features per phone
    DurationModel (feed-forward, per phone) ──> frames per phone (rounded on the running sum)
    repeat each phone's features for its frames + 3 position-in-phone features (frame_features)
    AcousticModel ("ff": 3 x 256 ReLU, or "lstm": 1 x 192 ReLU + BLSTM), per frame:
        [mcep c0..c34 | lf0 | band aperiodicity], each with Δ and Δ² (z-scored), + a V/UV logit
    MLPG per stream with the per-dimension variances of the training targets ──WORLD──> audio

Choices, and why:

* **Phone durations, not state durations.** The network predicts frames per phone (z-scored,
  MSE); the HMM's 5-state split is a property of the HMM. Durations are made whole on the running
  sum (:func:`durations_to_frames`), so the total is kept and every phone gets a frame.
* **The same frames as the HMM system** (5 ms hop 110, mcep order 34, Harvest F0, the same feature
  cache: :func:`ttslab.dsp.streams.extract_features`), so both are measured on equal terms.
* **Continuous log-F0 + a separate V/UV output** (Yu & Young 2011), the usual DNN choice: the
  network predicts the interpolated log-F0 contour everywhere and a voicing logit (binary
  cross-entropy; every other output is MSE on z-scored values, each output dimension weighted alike).
* **MLPG with the global variances.** A network gives one mean per frame and no variance; as in
  Zen et al. (2013) the variances in ``c* = (W' P W)^-1 W' P mu`` are the per-dimension variances of
  the training targets (``Normalizer.std ** 2``), the same for every frame. With ``use_gv`` the
  mel-cepstrum (c1..cM) is generated with global-variance compensation, as the HMM voice does.
* **Inputs left as they are**: the linguistic and position features already lie in [0, 1]; z-scoring
  binary columns that are rare (or never seen in training) would blow them up at test time.
* **One voice per speaker**, like the HMM voices, so the comparison is fair: each system sees
  exactly one speaker's 330 (full) or 40 (CI) training sentences. A :class:`DNNVoice` holds the
  duration model and one acoustic model per kind (``"ff"``, ``"lstm"``), so they share durations.

Training lives in :mod:`ttslab.train.dnn_spss`; this module only defines the networks, their pure
loss functions and the voice.

>>> cfg = DNNConfig.full()
>>> cfg.in_dim, cfg.out_dim, cfg.n_static
(501, 115, 114)
>>> durations_to_frames([2.4, 0.2, 3.5]).tolist()   # whole frames, >= 1 each, summing to round(2.4 + 1 + 3.5)
[2, 1, 4]
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttslab.classical.mlpg import mlpg, mlpg_gv
from ttslab.dsp.normalize import Normalizer
from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.dsp.streams import WorldFeatureConfig
from ttslab.text.frontend import EspeakVoice, segments_for

__all__ = ["DNNConfig", "DurationModel", "AcousticModel", "DNNVoice", "duration_loss", "acoustic_loss",
           "durations_to_frames", "KINDS", "LINGUISTIC_DIM", "FORMAT_VERSION"]

KINDS = ("ff", "lstm")
#: Columns of :func:`ttslab.text.context.linguistic_features` (checked against it in the tests).
LINGUISTIC_DIM = 498
#: Position-in-phone columns that :func:`ttslab.text.context.frame_features` appends.
POSITION_DIM = 3
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DNNConfig:
    """Sizes of the networks and the acoustic features they predict.

    ``kind`` chooses the acoustic model: ``"ff"`` is ``ff_layers`` x ``ff_hidden`` (Zen 2013 used
    up to 5 x 2048 on 33 hours; we have 30 minutes a speaker), ``"lstm"`` is ``lstm_ff_layers``
    feed-forward layers of ``lstm_ff_hidden`` under ``lstm_layers`` (B)LSTM layers of ``lstm_hidden``
    units a direction (Zen & Sak 2015 put feed-forward layers under the LSTM too). The feature
    settings (hop, mcep order, F0) must equal the HMM system's: they key the shared feature cache.
    """

    kind: str = "ff"
    activation: str = "relu"           # "relu" | "tanh"
    ff_hidden: int = 256
    ff_layers: int = 3
    lstm_ff_hidden: int = 192
    lstm_ff_layers: int = 1
    lstm_hidden: int = 96
    lstm_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0
    duration_hidden: int = 64
    duration_layers: int = 2
    duration_scale: float = 50.0       # frames that map to 1.0 in the position features (250 ms)
    lf0_weight: float = 1.0            # loss weight of the 3 log-F0 outputs (1: every output alike)
    # features (ttslab.dsp.streams.WorldFeatureConfig, as the HMM voices: the same cache)
    hop: int = 110
    mcep_order: int = 34
    bap_dim: int = 2                   # WORLD's coded aperiodicity bands at 22050 Hz
    f0_floor: float = 60.0
    f0_ceil: float = 500.0
    f0_method: str = "harvest"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown DNN kind {self.kind!r}; use one of {KINDS}")
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', got {self.activation!r}")
        sizes = {k: getattr(self, k) for k in ("ff_hidden", "ff_layers", "lstm_ff_hidden", "lstm_hidden",
                                               "lstm_layers", "duration_hidden", "duration_layers", "hop",
                                               "mcep_order", "bap_dim")}
        bad = {k: v for k, v in sizes.items() if v < 1}
        if bad or self.lstm_ff_layers < 0:
            raise ValueError(f"sizes must be >= 1 (lstm_ff_layers >= 0), got {bad or self.lstm_ff_layers}")
        if not self.lf0_weight > 0:
            raise ValueError(f"lf0_weight must be > 0, got {self.lf0_weight}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def full(cls, kind: str = "ff", **overrides) -> DNNConfig:
        """The shipped sizes: FF 3 x 256 (289k weights), LSTM 192 + BLSTM 2 x 96 (341k), duration 2 x 64 (36k)."""
        return cls(kind=kind, **overrides)

    @classmethod
    def tiny(cls, kind: str = "ff", **overrides) -> DNNConfig:
        """Small nets for tests and CI notebooks (a few thousand weights each)."""
        sizes = dict(ff_hidden=32, ff_layers=2, lstm_ff_hidden=32, lstm_hidden=16, duration_hidden=16)
        return cls(kind=kind, **{**sizes, **overrides})

    @classmethod
    def from_dict(cls, d: Mapping) -> DNNConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_kind(self, kind: str) -> DNNConfig:
        return dataclasses.replace(self, kind=kind)

    @property
    def in_dim(self) -> int:
        """Frame-level input: linguistic features + position in the phone."""
        return LINGUISTIC_DIM + POSITION_DIM

    @property
    def stream_dims(self) -> dict[str, int]:
        """Static dimensions of each stream (each is predicted with Δ and Δ², so x 3)."""
        return {"mcep": self.mcep_order + 1, "lf0": 1, "bap": self.bap_dim}

    @property
    def n_static(self) -> int:
        """Continuous (z-scored, MSE) outputs: every stream with its Δ and Δ²."""
        return 3 * sum(self.stream_dims.values())

    @property
    def out_dim(self) -> int:
        """Continuous outputs + one V/UV logit (the last column)."""
        return self.n_static + 1

    @property
    def frame_shift_ms(self) -> float:
        return 1000.0 * self.hop / SAMPLE_RATE

    def feature_config(self) -> WorldFeatureConfig:
        """The WORLD analysis these nets predict; it alone keys the feature cache (shared with the HMM voices)."""
        return WorldFeatureConfig.of(self)

    def stream_slices(self) -> dict[str, slice]:
        """Columns of each stream ``[static | Δ | Δ²]`` in the continuous outputs.

        >>> {k: (s.start, s.stop) for k, s in DNNConfig().stream_slices().items()}
        {'mcep': (0, 105), 'lf0': (105, 108), 'bap': (108, 114)}
        """
        out, start = {}, 0
        for name, d in self.stream_dims.items():
            out[name] = slice(start, start + 3 * d)
            start += 3 * d
        return out


# ----------------------------------------------------------------------------- networks


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Tanh()


def _mlp(in_dim: int, hidden: int, layers: int, activation: str, dropout: float) -> tuple[nn.Sequential, int]:
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), _activation(activation)]
        if dropout > 0:
            mods.append(nn.Dropout(dropout))
        d = hidden
    return nn.Sequential(*mods), d


def _check_input(x: torch.Tensor, dim: int, what: str) -> None:
    if x.ndim != 3 or x.shape[-1] != dim:
        raise ValueError(f"{what} input must have shape (batch, time, {dim}), got {tuple(x.shape)}")


class DurationModel(nn.Module):
    """Phone-level feed-forward net: 498 linguistic features -> z-scored duration (frames) of the phone.

    ``forward(x)`` with ``x`` of shape ``(B, P, 498)`` returns ``(B, P)``.
    """

    def __init__(self, config: DNNConfig):
        super().__init__()
        self.config = config
        self.body, d = _mlp(LINGUISTIC_DIM, config.duration_hidden, config.duration_layers, config.activation,
                            config.dropout)
        self.out = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, LINGUISTIC_DIM, "DurationModel")
        return self.out(self.body(x)).squeeze(-1)


class AcousticModel(nn.Module):
    """Frame-level net: ``(B, T, 501)`` inputs -> ``(B, T, out_dim)``: z-scored streams + V/UV logit.

    ``"ff"`` treats every frame on its own (Zen et al. 2013); ``"lstm"`` runs a (bidirectional)
    LSTM over the frames of the utterance, so each frame sees its neighbours (Fan et al. 2014,
    Zen & Sak 2015). ``lengths`` (B,) marks the real frames of padded batches for the LSTM.
    """

    def __init__(self, config: DNNConfig):
        super().__init__()
        self.config = config
        if config.kind == "ff":
            self.body, d = _mlp(config.in_dim, config.ff_hidden, config.ff_layers, config.activation, config.dropout)
            self.lstm = None
        else:
            self.body, d = _mlp(config.in_dim, config.lstm_ff_hidden, config.lstm_ff_layers, config.activation,
                                config.dropout)
            self.lstm = nn.LSTM(d, config.lstm_hidden, num_layers=config.lstm_layers, batch_first=True,
                                bidirectional=config.bidirectional)
            d = config.lstm_hidden * (2 if config.bidirectional else 1)
        self.out = nn.Linear(d, config.out_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        _check_input(x, self.config.in_dim, "AcousticModel")
        return self._after_body(self.body(x), lengths)

    def forward_phones(self, ling: torch.Tensor, phone_index: torch.Tensor, positions: torch.Tensor,
                       lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The same function as :meth:`forward` on ``frame_features(ling, durations)``, computed faster.

        A frame's input is its phone's 498 features (the same for every frame of the phone) and 3
        position features, so the first layer splits: ``W x_t + b = W_l ling[phone(t)] + W_p pos_t + b``.
        ``W_l ling`` is computed once per phone and gathered for the frames (a phone lasts ~16 frames),
        which halves the feed-forward model's work. ``ling`` (B, P, 498), ``phone_index`` (B, T) the
        phone of each frame (0 at padding), ``positions`` (B, T, 3).
        """
        _check_input(ling, LINGUISTIC_DIM, "AcousticModel.forward_phones")
        if len(self.body) == 0:
            return self.forward(torch.cat([torch.gather(ling, 1, phone_index[..., None].expand(-1, -1, ling.shape[-1])),
                                           positions], -1), lengths)
        first: nn.Linear = self.body[0]
        per_phone = ling @ first.weight[:, :LINGUISTIC_DIM].T                           # (B, P, H)
        h = torch.gather(per_phone, 1, phone_index[..., None].expand(-1, -1, per_phone.shape[-1]))
        h = h + positions @ first.weight[:, LINGUISTIC_DIM:].T + first.bias
        return self._after_body(self.body[1:](h), lengths)

    def _after_body(self, h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if self.lstm is not None:
            T = h.shape[1]
            if lengths is not None and bool((lengths < T).any()):
                packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
                h, _ = self.lstm(packed)
                h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=T)
            else:
                h, _ = self.lstm(h)
        return self.out(h)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- losses (pure)


def _mask(batch: Mapping, like: torch.Tensor) -> torch.Tensor:
    mask = batch.get("mask")
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype)
    if tuple(mask.shape) != tuple(like.shape[:2]):
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the outputs are {tuple(like.shape[:2])}")
    return mask.to(like.dtype)


def duration_loss(model: DurationModel, batch: Mapping) -> tuple[torch.Tensor, dict]:
    """MSE of the z-scored phone durations over real phones: ``sum m (d - d')^2 / sum m``.

    ``batch``: ``x`` (B, P, 498), ``y`` (B, P) z-scored frames, optional ``mask`` (B, P).
    """
    pred = model(batch["x"])
    if pred.shape != batch["y"].shape:
        raise ValueError(f"duration targets have shape {tuple(batch['y'].shape)}, predictions {tuple(pred.shape)}")
    m = _mask(batch, pred.unsqueeze(-1))
    loss = ((pred - batch["y"]) ** 2 * m).sum() / m.sum().clamp_min(1.0)
    return loss, {"mse": float(loss.detach())}


def acoustic_loss(model: AcousticModel, batch: Mapping) -> tuple[torch.Tensor, dict]:
    """Weighted per output dimension, averaged over real frames: squared error of the z-scored
    streams, binary cross-entropy of the V/UV logit::

        L = sum_t m_t [ sum_{d<D-1} w_d (y_td - y'_td)^2 + BCE(v_t, sigmoid(y'_t,D-1)) ] / ((1 + sum w) sum_t m_t)

    with ``w_d = 1`` except ``model.config.lf0_weight`` on the log-F0 columns. ``batch``: ``x``
    (B, T, 501) (or the phone-level ``ling``, ``phone_index``, ``positions`` of
    :meth:`AcousticModel.forward_phones`), ``y`` (B, T, D-1) z-scored, ``vuv`` (B, T) 0/1, optional
    ``mask`` (B, T) and ``lengths`` (B,).
    """
    if "x" in batch:
        pred = model(batch["x"], batch.get("lengths"))
    else:
        pred = model.forward_phones(batch["ling"], batch["phone_index"], batch["positions"], batch.get("lengths"))
    C = pred.shape[-1] - 1
    if batch["y"].shape != pred[..., :C].shape or batch["vuv"].shape != pred.shape[:2]:
        raise ValueError(f"targets y {tuple(batch['y'].shape)} / vuv {tuple(batch['vuv'].shape)} do not match "
                         f"predictions {tuple(pred.shape)} (y has one column fewer: the V/UV logit)")
    m = _mask(batch, pred)
    n = m.sum().clamp_min(1.0)
    per_dim = (((pred[..., :C] - batch["y"]) ** 2) * m[..., None]).sum(dim=(0, 1))        # (C,)
    weights = torch.ones(C, dtype=per_dim.dtype)
    lf0 = model.config.stream_slices()["lf0"]
    weights[lf0] = model.config.lf0_weight
    bce = (F.binary_cross_entropy_with_logits(pred[..., C], batch["vuv"], reduction="none") * m).sum()
    loss = ((weights * per_dim).sum() + bce) / (n * (1.0 + weights.sum()))
    with torch.no_grad():
        vuv_err = ((((pred[..., C] > 0).to(m.dtype) - batch["vuv"]).abs()) * m).sum() / n
    return loss, {"mse": float(per_dim.sum().detach() / (n * C)), "lf0_mse": float(per_dim[lf0].mean().detach() / n),
                  "vuv_bce": float(bce.detach() / n), "vuv_error": float(vuv_err)}


# ----------------------------------------------------------------------------- durations


def durations_to_frames(predicted, rate: float = 1.0, min_frames: int = 1) -> np.ndarray:
    """Whole frames per phone from real-valued predictions, at speaking rate ``rate`` (> 1: faster).

    ``d = max(pred / rate, min_frames)``; boundaries ``b_k = floor(sum_{i<=k} d_i + 1/2)``; frames
    ``b_k - b_{k-1}``. Rounding the running sum keeps the total at ``floor(sum d + 1/2)``, and since
    every ``d_i >= min_frames`` every phone gets at least ``min_frames`` frames.

    >>> durations_to_frames([1.5, 1.0, 0.2]).tolist()
    [2, 1, 1]
    >>> durations_to_frames([10.0, 20.0], rate=2.0).tolist()
    [5, 10]
    """
    d = np.asarray(predicted, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"predicted durations must be a non-empty 1-D array (one per phone), got shape {d.shape}")
    if not np.all(np.isfinite(d)):
        raise ValueError("predicted durations contain NaN or infinite values")
    if not rate > 0:
        raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
    if min_frames < 1:
        raise ValueError(f"min_frames must be >= 1, got {min_frames}")
    d = np.maximum(d / rate, float(min_frames))
    bounds = np.floor(np.cumsum(d) + 0.5)
    return np.diff(np.concatenate([[0.0], bounds])).astype(np.int64)


# ----------------------------------------------------------------------------- the voice


class DNNVoice(nn.Module):
    """A trained DNN voice: duration model, acoustic model(s), normalizers and front-end settings.

    ``acoustic`` maps a kind (``"ff"``, ``"lstm"``) to its :class:`AcousticModel`; ``default_kind``
    is used when a method is not told which. ``normalizers``: ``"duration"`` (1-dim, frames) and
    ``"acoustic"`` (the continuous outputs); ``gv = (mean, var)`` of the natural mel-cepstra's
    per-utterance variance (for ``use_gv``). Mirrors :class:`ttslab.classical.hts.Voice`.
    """

    def __init__(self, speaker: str, config: DNNConfig, duration: DurationModel,
                 acoustic: Mapping[str, AcousticModel], normalizers: Mapping[str, Normalizer],
                 gv: tuple[np.ndarray, np.ndarray] | None = None, frontend: Mapping | None = None,
                 phones: Sequence[str] = (), info: Mapping | None = None):
        super().__init__()
        if not acoustic:
            raise ValueError("a DNNVoice needs at least one acoustic model")
        unknown = set(acoustic) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown acoustic model kind(s) {sorted(unknown)}; use {KINDS}")
        for key in ("duration", "acoustic"):
            if key not in normalizers:
                raise ValueError(f"normalizers must have a {key!r} entry")
        if len(normalizers["acoustic"].mean) != config.n_static:
            raise ValueError(f"the acoustic normalizer has {len(normalizers['acoustic'].mean)} dimensions; "
                             f"the config predicts {config.n_static}")
        self.speaker, self.config = speaker, config
        self.duration = duration
        self.acoustic = nn.ModuleDict(dict(acoustic))
        self.normalizers = dict(normalizers)
        self.gv = None if gv is None else (np.asarray(gv[0], dtype=np.float64), np.asarray(gv[1], dtype=np.float64))
        self.frontend = dict(frontend or {"voice": "en-us", "language": "en"})
        self.phones = sorted(phones)
        self.info = dict(info or {})
        self.sample_rate = SAMPLE_RATE
        self.eval()

    @property
    def kinds(self) -> list[str]:
        return list(self.acoustic)

    @property
    def default_kind(self) -> str:
        return self.config.kind if self.config.kind in self.acoustic else self.kinds[0]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k} {num_parameters(m):,}" for k, m in self.acoustic.items())
        return (f"DNNVoice({self.speaker!r}, acoustic: {sizes}; duration {num_parameters(self.duration):,} weights; "
                f"{self.config.frame_shift_ms:.1f} ms frames)")

    def _model(self, kind: str | None) -> AcousticModel:
        kind = kind or self.default_kind
        if kind not in self.acoustic:
            raise ValueError(f"this voice has no {kind!r} acoustic model; it has {self.kinds}")
        return self.acoustic[kind]

    # -- from input to features

    def _segments(self, item) -> list:
        return segments_for(item, EspeakVoice.from_dict(self.frontend))

    def linguistic(self, segments: Sequence) -> np.ndarray:
        """``(P, 498)`` linguistic features of the segments (warns about phones never seen in training)."""
        from ttslab.text.context import contexts_from_segments, linguistic_features

        unseen = sorted({s.label for s in segments} - set(self.phones)) if self.phones else []
        if unseen:
            warnings.warn(f"voice {self.speaker!r} never saw the phone(s) {unseen} in training; their input "
                          "weights were never trained", RuntimeWarning, stacklevel=3)
        return linguistic_features(contexts_from_segments(segments))

    @torch.no_grad()
    def predict_durations(self, ling: np.ndarray, rate: float = 1.0) -> np.ndarray:
        """Whole frames per phone ``(P,)`` for ``(P, 498)`` linguistic features (see :func:`durations_to_frames`)."""
        z = self.duration(torch.from_numpy(np.ascontiguousarray(ling, dtype=np.float32))[None])[0].numpy()
        frames = self.normalizers["duration"].inverse_transform(z[:, None])[:, 0]
        return durations_to_frames(frames, rate)

    def durations(self, item, rate: float = 1.0) -> np.ndarray:
        """Predicted frames per phone for text / phones / segments / an utterance."""
        return self.predict_durations(self.linguistic(self._segments(item)), rate)

    def oracle_durations(self, utterance) -> np.ndarray:
        """Frames per phone ``(P,)`` of a corpus utterance, cut exactly as in training (they sum to its frames)."""
        from ttslab.dsp.streams import phone_frame_ranges
        from ttslab.dsp.spectral import num_frames

        if utterance.segments is None:
            raise ValueError(f"utterance {utterance.id} has no segments: no true durations to use")
        n = num_frames(utterance.num_samples or len(utterance.load_audio()), self.config.hop)
        ranges = phone_frame_ranges(list(utterance.segments), n, self.config.hop)
        return (ranges[:, 1] - ranges[:, 0]).astype(np.int64)

    @torch.no_grad()
    def predict_frames(self, ling: np.ndarray, durations, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Denormalised continuous outputs ``(T, n_static)`` and V/UV probabilities ``(T,)``."""
        from ttslab.text.context import frame_features

        x = frame_features(ling, durations, self.config.duration_scale)
        out = self._model(kind)(torch.from_numpy(x)[None])[0].numpy().astype(np.float64)
        means = self.normalizers["acoustic"].inverse_transform(out[:, :-1]).astype(np.float64)
        return means, 1.0 / (1.0 + np.exp(-out[:, -1]))

    def generate_features(self, item, durations=None, *, kind: str | None = None, rate: float = 1.0,
                          use_gv: bool = True) -> dict:
        """WORLD features for text, phones, segments or an utterance (see :meth:`synthesize`).

        ``durations``: optional whole frames per phone ``(P,)`` (e.g. :meth:`oracle_durations`)
        instead of the duration model's. Returns a dict like :meth:`ttslab.classical.hts.Voice.generate_features`:
        ``mcep (T, M+1)``, ``f0 (T,)`` Hz (0 unvoiced), ``bap (T, B)``, ``vuv_prob (T,)``,
        ``durations (P,)``, ``phones``, ``frame_period`` (ms).
        """
        segments = self._segments(item)
        ling = self.linguistic(segments)
        if durations is None:
            durations = self.predict_durations(ling, rate)
        durations = np.asarray(durations)
        if (durations.shape != (len(segments),) or not np.issubdtype(durations.dtype, np.integer)
                or np.any(durations < 0) or durations.sum() == 0):
            raise ValueError(f"durations must be non-negative whole frames, one per phone: shape ({len(segments)},), "
                             f"got {durations.dtype} {durations.shape}")
        means, vuv_prob = self.predict_frames(ling, durations, kind)
        variances = self.normalizers["acoustic"].std ** 2       # Zen et al. 2013: global variances
        sl = self.config.stream_slices()
        mcep = self._generate_mcep(means[:, sl["mcep"]], variances[sl["mcep"]], use_gv)
        lf0 = mlpg(means[:, sl["lf0"]], variances[sl["lf0"]])[:, 0]   # the continuous contour, then V/UV
        bap = np.minimum(mlpg(means[:, sl["bap"]], variances[sl["bap"]]), 0.0)  # aperiodicity in dB <= 0
        voiced = vuv_prob > 0.5
        f0 = np.where(voiced, np.exp(lf0), 0.0)
        return {"mcep": mcep, "f0": f0, "bap": bap, "vuv_prob": vuv_prob, "lf0_mean": means[:, sl["lf0"]][:, 0],
                "durations": durations.astype(np.int64), "phones": [s.label for s in segments],
                "frame_period": self.config.frame_shift_ms}

    def _generate_mcep(self, means: np.ndarray, variances: np.ndarray, use_gv: bool) -> np.ndarray:
        """MLPG of the mel-cepstrum; with GV, c1..cM by MLPG-GV (c0, the loudness, by plain MLPG), as the HMM voice."""
        c = mlpg(means, variances)
        if not use_gv or self.gv is None or len(c) < 3:
            return c
        T, D = c.shape
        higher = np.arange(3 * D).reshape(3, D)[:, 1:].ravel()
        variances = np.broadcast_to(variances, means.shape)
        c[:, 1:] = mlpg_gv(means[:, higher], variances[:, higher], self.gv[0][1:], self.gv[1][1:], n_iter=20)
        return c

    def vocode(self, feats: dict, n_samples: int | None = None) -> np.ndarray:
        """Audio from :meth:`generate_features` output (WORLD); peaks above 0.99 are scaled down, not clipped."""
        from ttslab.dsp.world import all_pass_alpha, world_synthesis

        audio = world_synthesis(feats["f0"], feats["mcep"], feats["bap"], sample_rate=self.sample_rate,
                                frame_period=feats["frame_period"], alpha=all_pass_alpha(self.sample_rate),
                                n_samples=n_samples)
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return audio * np.float32(0.99 / peak) if peak > 0.99 else audio

    def synthesize(self, item, rate: float = 1.0, *, kind: str | None = None,
                   use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for text (read by eSpeak NG), a list of phones (``["hh", "ah0", "l", "ow1"]``),
        segments or an utterance; ``rate > 1`` is faster; ``kind`` picks the acoustic model.
        Returns ``(audio float32, sample_rate)``."""
        return self.vocode(self.generate_features(item, kind=kind, rate=rate, use_gv=use_gv)), self.sample_rate

    def synthesize_utterance(self, utterance, oracle_durations: bool = False, *, kind: str | None = None,
                             rate: float = 1.0, use_gv: bool = True) -> tuple[np.ndarray, int]:
        """Speech for a corpus utterance's labels; with ``oracle_durations`` its own phone timing (same length)."""
        if oracle_durations:
            feats = self.generate_features(utterance, self.oracle_durations(utterance), kind=kind, use_gv=use_gv)
            return self.vocode(feats, n_samples=utterance.num_samples), self.sample_rate
        return self.synthesize(utterance, rate, kind=kind, use_gv=use_gv)

    # -- storage

    def save(self, path, half: bool = True) -> str:
        """Write the voice with :func:`ttslab.checkpoint.save_checkpoint` (float16 weights by default);
        returns its SHA-256 (also written to ``<path>.sha256``)."""
        from ttslab.checkpoint import save_checkpoint

        extra = {"format_version": FORMAT_VERSION, "speaker": self.speaker, "frontend": self.frontend,
                 "phones": self.phones, "info": _plain(self.info),
                 "normalizers": {k: n.to_dict() for k, n in self.normalizers.items()},
                 "gv": None if self.gv is None else [self.gv[0].tolist(), self.gv[1].tolist()]}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return save_checkpoint(path, self, model_config={"config": asdict(self.config), "kinds": self.kinds},
                               extra=extra, half=half)

    @classmethod
    def load(cls, path, sha256: str | None = None, *, verify: bool = True) -> DNNVoice:
        """Read a voice written by :meth:`save`, after checking its SHA-256 against ``sha256`` or the
        ``.sha256`` sidecar; ``CheckpointError`` when damaged or when there is no checksum to check
        (``verify=False`` loads an unverifiable file at your own risk; see :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import CheckpointError, load_checkpoint

        payload = load_checkpoint(path, sha256=sha256, verify=verify)
        extra = payload["extra"]
        if extra.get("format_version") != FORMAT_VERSION or "config" not in payload["model_config"]:
            raise CheckpointError(f"{path} is not a DNN voice of format {FORMAT_VERSION} "
                                  f"(found {extra.get('format_version')!r}); train it again")
        config = DNNConfig.from_dict(payload["model_config"]["config"])
        acoustic = {k: AcousticModel(config.with_kind(k)) for k in payload["model_config"]["kinds"]}
        normalizers = {k: Normalizer.from_dict(d) for k, d in extra["normalizers"].items()}
        gv = None if extra.get("gv") is None else tuple(np.asarray(g) for g in extra["gv"])
        voice = cls(extra["speaker"], config, DurationModel(config), acoustic, normalizers, gv, extra["frontend"],
                    extra["phones"], extra["info"])
        voice.load_state_dict(payload["model"])
        return voice.eval()


def _plain(obj):
    """``obj`` with numpy scalars/arrays turned into Python values (checkpoints accept no numpy)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
