"""A FastSpeech-2-style multi-speaker acoustic model: phones -> 80-band log-mel, non-autoregressive.

Ren et al. 2019 ("FastSpeech") and 2021 ("FastSpeech 2"), with phone-level pitch and energy as in
ming024's FastSpeech2 implementation. For an utterance of ``N`` phones, speaker ``s`` and ``T`` frames::

    h     = Encoder(E_phone[ids] + E_stress + E_wordpos + PE(1..N))  (N, d)   FFT blocks
    h     = h + E_speaker[s]                                     speaker embedding
    logd  = DurationPredictor(h)           target log(1 + d_n)   frames per phone
    p     = PitchPredictor(h)              target (log F0_n - mu_s) / sigma_s      (z-score per speaker)
    h     = h + PitchEmbedding(p)
    e     = EnergyPredictor(h)             target (log E_n - mu_s) / sigma_s
    h     = h + EnergyEmbedding(e)
    z     = LengthRegulator(h, d)                                (T, d)   phone n repeated d_n times
    y     = Decoder(z + PE(1..T)) W + b                          (T, 80)  FFT blocks, linear head
    y'    = y + Postnet(y)                                       optional

The input is eSpeak's phone sequence with two small context streams that eSpeak also gives: lexical
stress (0/1/2; ming024's FastSpeech 2 keeps it in the ARPAbet symbol) and the phone's position in its
word (initial/medial/final/single, or none for pauses), because eSpeak's intonation and timing rules
hinge on stressed syllables and word edges; without them pitch is much harder to predict.

An FFT ("feed-forward Transformer") block is multi-head self-attention followed by a two-layer 1-D
convolution (kernel 9 then 1 in FastSpeech 2), each with a residual connection and LayerNorm after it.
In training the variance adaptor is fed the *target* durations, pitch and energy (teacher forcing);
at inference it uses its own predictions, which is where the controls act:

* speaking rate ``r``:   ``d_n <- (exp(logd_n) - 1) / r``, rounded cumulatively so the total is exact;
* pitch shift ``k`` semitones: ``log F0 <- log F0 + k ln2 / 12``, i.e. ``p <- p + k ln2 / (12 sigma_s)``;
* energy scale ``g``:    ``log E <- log E + ln g``, i.e. ``e <- e + ln g / sigma_s``;
* speaker: another row of the speaker table (new rows for adaptation: :meth:`FastSpeech.add_speakers`).

Every padded position is masked: attention ignores padded keys and every convolution sees zeros
there, so a padded batch gives the same outputs on its real frames as each utterance alone.

Sizes come from one :class:`FastSpeechConfig` (``teacher()``, ``small()`` ~6x fewer parameters,
``tiny()`` for CI); :func:`fastspeech_loss` is the pure training loss
(``(model, batch) -> (loss, logs)``) and the forward returns every intermediate output, so
distillation can match mels, variances or hidden states.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ttslab.data.datasets import ENGLISH_SPEAKERS, MEL_PAD
from ttslab.dsp.spectral import N_MELS, SAMPLE_RATE
from ttslab.text.phoneset import NUM_PHONE_IDS

VARIANCE_EMBEDDINGS = ("linear", "bins")
#: Word-position classes of :func:`phone_context` (index = class id).
WORD_POSITIONS = ("none", "initial", "medial", "final", "single")
N_STRESS = 3  # 0 unstressed / consonant, 1 primary, 2 secondary
#: Predicted utterances longer than this many frames (about 3 minutes) are refused as a runaway.
MAX_FRAMES = 16000
LN2_OVER_12 = math.log(2.0) / 12.0


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass
class FastSpeechConfig:
    """Every size of :class:`FastSpeech`; the defaults are the teacher. ``speakers`` fixes the rows of
    the speaker table.

    Why these sizes (measured on one CPU thread, batches of 16, see the training recipe): the decoder
    runs at the frame rate (~7 frames per phone), so it costs most; FastSpeech 2's kernel-9 FFN
    (d=256) takes ~12 s a step, too slow to train here in 20 minutes, while kernel 3 with d=192 takes
    ~1 s and reached a lower validation mel loss in the same CPU time than a 4x smaller model. Dropout
    is off in the FFT blocks: a run sees the data only a few times, and dropout cost ~25% of the step.
    """

    speakers: tuple[str, ...] = ENGLISH_SPEAKERS
    n_phones: int = NUM_PHONE_IDS
    n_mels: int = N_MELS
    d_model: int = 192
    n_heads: int = 2
    encoder_layers: int = 4
    decoder_layers: int = 3
    ffn_hidden: int = 768
    ffn_kernels: tuple[int, int] = (3, 1)    # kernel of the first and second FFN convolution (FS2: 9, 1)
    phone_context: bool = True               # stress + word-position embeddings on the input
    dropout: float = 0.0                     # FFT blocks (residual branches and input)
    predictor_channels: int = 192
    predictor_kernel: int = 3
    predictor_layers: int = 2
    predictor_dropout: float = 0.2
    variance_embedding: str = "linear"       # "linear" (Conv1d on the value, FastPitch) | "bins"
    n_bins: int = 256                        # bins over [-bin_range, bin_range] z-scores ("bins")
    bin_range: float = 4.0
    postnet_layers: int = 0                  # 0: no postnet
    postnet_channels: int = 256
    postnet_kernel: int = 5

    def __post_init__(self):
        self.speakers = tuple(str(s) for s in self.speakers)
        self.ffn_kernels = tuple(int(k) for k in self.ffn_kernels)
        if not self.speakers or len(set(self.speakers)) != len(self.speakers):
            raise ValueError(f"speakers must be a non-empty list of distinct names, got {self.speakers}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.variance_embedding not in VARIANCE_EMBEDDINGS:
            raise ValueError(f"variance_embedding must be one of {VARIANCE_EMBEDDINGS}, "
                             f"got {self.variance_embedding!r}")
        if len(self.ffn_kernels) != 2 or any(k < 1 or k % 2 == 0 for k in self.ffn_kernels):
            raise ValueError(f"ffn_kernels must be two odd sizes, got {self.ffn_kernels}")
        for name in ("predictor_kernel", "postnet_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be odd (same-length convolutions), got {getattr(self, name)}")
        if min(self.encoder_layers, self.decoder_layers, self.predictor_layers) < 1:
            raise ValueError("encoder_layers, decoder_layers and predictor_layers must be >= 1")

    @property
    def n_speakers(self) -> int:
        return len(self.speakers)

    # Sizes. The teacher is what ships (fp16, <= ~12 MB); ``small`` is the distillation student.
    @classmethod
    def teacher(cls, **overrides) -> "FastSpeechConfig":
        """The defaults: d=192, 4 encoder + 3 decoder FFT blocks, FFN 768 (kernels 3, 1), ~5.9 M parameters."""
        return cls(**overrides)

    @classmethod
    def small(cls, **overrides) -> "FastSpeechConfig":
        """The student: d=96, 2+2 blocks, FFN 384 (kernels 3, 1): ~6x fewer parameters than the teacher."""
        base = dict(d_model=96, encoder_layers=2, decoder_layers=2, ffn_hidden=384, predictor_channels=96)
        return cls(**{**base, **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "FastSpeechConfig":
        """For tests and CI: d=32, 1+1 blocks, a 2-layer postnet; trains a few steps in seconds."""
        base = dict(d_model=32, encoder_layers=1, decoder_layers=1, ffn_hidden=64, predictor_channels=32,
                    predictor_dropout=0.0, postnet_layers=2, postnet_channels=32, n_bins=32)
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        """Plain Python values (lists for tuples): fits a checkpoint's ``model_config``."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "FastSpeechConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FastSpeechConfig fields {sorted(unknown)}")
        return cls(**d)


# ---------------------------------------------------------------------------------------------
# Building blocks


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """``(n, d)`` sinusoidal position table (Vaswani et al. 2017):
    ``PE[t, 2i] = sin(t / 10000^(2i/d))``, ``PE[t, 2i+1] = cos(t / 10000^(2i/d))``.

    >>> [round(v, 4) for v in sinusoidal_positions(3, 4)[:, 0].tolist()]
    [0.0, 0.8415, 0.9093]
    """
    t = torch.arange(n, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(t * inv)
    pe[:, 1::2] = torch.cos(t * inv[: d // 2])
    return pe


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, max_len)`` bool mask, True on real positions.

    >>> lengths_to_mask(torch.tensor([1, 3])).int().tolist()
    [[1, 0, 0], [1, 1, 1]]
    """
    max_len = int(lengths.max()) if max_len is None else int(max_len)
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the padded positions of ``(B, L, C)`` features (``mask`` (B, L), True = real)."""
    return x.masked_fill(~mask[..., None], 0.0)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention; padded keys get no weight."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.out(y.transpose(1, 2).reshape(B, L, d))


class ConvFFN(nn.Module):
    """``W2 * ReLU(W1 * x)`` with 1-D convolutions along time (FastSpeech's position-wise FFN)."""

    def __init__(self, d: int, hidden: int, kernels: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv1d(d, hidden, kernels[0], padding=kernels[0] // 2)
        self.conv2 = nn.Conv1d(hidden, d, kernels[1], padding=kernels[1] // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(_masked(x, mask).transpose(1, 2))).transpose(1, 2)
        return self.conv2(_masked(h, mask).transpose(1, 2)).transpose(1, 2)


class FFTBlock(nn.Module):
    """Self-attention then conv FFN, each ``x = LayerNorm(x + Dropout(f(x)))`` (post-norm, as FastSpeech)."""

    def __init__(self, d: int, heads: int, hidden: int, kernels: tuple[int, int], dropout: float):
        super().__init__()
        self.attn = SelfAttention(d, heads)
        self.norm1 = nn.LayerNorm(d)
        self.ffn = ConvFFN(d, hidden, kernels)
        self.norm2 = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = _masked(self.norm1(x + self.dropout(self.attn(x, mask))), mask)
        return _masked(self.norm2(x + self.dropout(self.ffn(x, mask))), mask)


class FFTStack(nn.Module):
    """Sinusoidal positions + FFT blocks; returns the output and every block's output."""

    def __init__(self, config: FastSpeechConfig, layers: int):
        super().__init__()
        c = config
        self.d = c.d_model
        self.blocks = nn.ModuleList([FFTBlock(c.d_model, c.n_heads, c.ffn_hidden, c.ffn_kernels, c.dropout)
                                     for _ in range(layers)])
        self.dropout = nn.Dropout(c.dropout)
        self._pe = torch.zeros(0, c.d_model)

    def positions(self, n: int, device) -> torch.Tensor:
        if len(self._pe) < n:  # grow the cached table (not a buffer: it is not a weight)
            self._pe = sinusoidal_positions(max(n, 2 * len(self._pe), 256), self.d)
        return self._pe[:n].to(device)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = _masked(self.dropout(x + self.positions(x.shape[1], x.device)[None]), mask)
        states = []
        for block in self.blocks:
            x = block(x, mask)
            states.append(x)
        return x, states


class VariancePredictor(nn.Module):
    """``(B, N, d) -> (B, N)``: [Conv1d -> ReLU -> LayerNorm -> Dropout] x layers -> Linear (FastSpeech 2)."""

    def __init__(self, d: int, channels: int, kernel: int, layers: int, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv1d(d if i == 0 else channels, channels, kernel, padding=kernel // 2)
                                    for i in range(layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(layers)])
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = self.dropout(norm(F.relu(conv(_masked(x, mask).transpose(1, 2)).transpose(1, 2))))
        return self.proj(x).squeeze(-1).masked_fill(~mask, 0.0)


class VarianceEmbedding(nn.Module):
    """A phone-level z-score -> ``(B, N, d)``: a kernel-3 Conv1d on the value ("linear", FastPitch) or
    an embedding of its bin among ``n_bins`` uniform bins over ``[-r, r]`` ("bins", FastSpeech 2).

    "linear" extrapolates smoothly beyond the training range (large pitch shifts); "bins" cannot."""

    def __init__(self, d: int, kind: str, n_bins: int, bin_range: float):
        super().__init__()
        self.kind = kind
        if kind == "linear":
            self.conv = nn.Conv1d(1, d, 3, padding=1)
        else:
            self.register_buffer("edges", torch.linspace(-bin_range, bin_range, n_bins - 1), persistent=False)
            self.table = nn.Embedding(n_bins, d)

    def forward(self, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        value = value.masked_fill(~mask, 0.0)
        if self.kind == "linear":
            return _masked(self.conv(value[:, None, :]).transpose(1, 2), mask)
        return _masked(self.table(torch.bucketize(value, self.edges)), mask)


class Postnet(nn.Module):
    """Residual refinement of the (normalised) mel: [Conv1d -> LayerNorm -> tanh] x (layers-1) -> Conv1d.

    LayerNorm over channels instead of Tacotron 2's BatchNorm, so outputs never depend on the batch."""

    def __init__(self, n_mels: int, channels: int, kernel: int, layers: int, dropout: float):
        super().__init__()
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList([nn.Conv1d(a, b, kernel, padding=kernel // 2) for a, b in zip(dims, dims[1:])])
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(layers - 1)])
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for i, conv in enumerate(self.convs):
            y = conv(_masked(y, mask).transpose(1, 2)).transpose(1, 2)
            if i < len(self.norms):
                y = self.dropout(torch.tanh(self.norms[i](y)))
        return _masked(y, mask)


# ---------------------------------------------------------------------------------------------
# Length regulation and duration rounding


def length_regulate(x: torch.Tensor, durations: torch.Tensor,
                    max_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat phone ``n`` of ``x`` (B, N, C) ``durations[:, n]`` times: ``((B, T, C), frame_lengths (B,))``.

    Frame ``t`` takes phone ``n`` with ``cum[n-1] <= t < cum[n]`` (``cum`` the cumulative durations),
    found by a sorted search; frames past an utterance's total are zero. ``T = max(total)`` unless
    ``max_frames`` is given.

    >>> y, n = length_regulate(torch.tensor([[[1.], [2.], [3.]]]), torch.tensor([[2, 0, 3]]))
    >>> y[0, :, 0].tolist(), n.tolist()
    ([1.0, 1.0, 3.0, 3.0, 3.0], [5])
    """
    if durations.dtype.is_floating_point:
        raise TypeError("durations must be integer frame counts (round them first: round_durations)")
    if (durations < 0).any():
        raise ValueError("durations must be >= 0 frames")
    cum = durations.cumsum(1)
    totals = cum[:, -1]
    T = int(totals.max()) if max_frames is None else int(max_frames)
    T = max(T, 1)
    t = torch.arange(T, device=x.device).expand(len(x), T).contiguous()
    idx = torch.searchsorted(cum.contiguous(), t, right=True).clamp(max=x.shape[1] - 1)
    y = torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[2]))
    frame_mask = t < totals[:, None]
    return _masked(y, frame_mask), totals


def round_durations(frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Integer durations from real-valued ones by rounding the *cumulative* sum, so the total is the
    rounded total (rounding each phone alone can drift by up to N/2 frames).

    ``d_n = round(c_n) - round(c_{n-1})`` with ``c_n = sum_{m<=n} max(frames_m, 0)``.

    >>> round_durations(torch.tensor([[0.4, 0.4, 0.4, 0.4]])).tolist()
    [[0, 1, 0, 1]]
    """
    frames = frames.clamp(min=0.0)
    if mask is not None:
        frames = frames.masked_fill(~mask, 0.0)
    ends = torch.round(frames.cumsum(1))
    return torch.diff(ends, dim=1, prepend=torch.zeros_like(ends[:, :1])).long()


# ---------------------------------------------------------------------------------------------
# The model


class FastSpeech(nn.Module):
    """FastSpeech-2-style acoustic model (see the module docstring for the equations).

    Buffers (saved with the weights): per-speaker ``pitch_mean/pitch_std`` (phone log-F0) and
    ``energy_mean/energy_std`` (phone log energy) for the z-scores, and ``mel_mean/mel_std`` (80,)
    that scale the linear head's output, so the decoder starts near the data's average spectrum.
    Set them from training data with :meth:`set_stats` before training.
    """

    #: Normalisation buffers: four per speaker (S,), two per mel bin (80,).
    STAT_NAMES = ("pitch_mean", "pitch_std", "energy_mean", "energy_std", "mel_mean", "mel_std")

    def __init__(self, config: FastSpeechConfig | None = None):
        super().__init__()
        self.config = c = config or FastSpeechConfig()
        self.phone_embedding = nn.Embedding(c.n_phones, c.d_model, padding_idx=0)
        nn.init.normal_(self.phone_embedding.weight, 0.0, c.d_model ** -0.5)
        with torch.no_grad():
            self.phone_embedding.weight[0].zero_()
        if c.phone_context:
            self.stress_embedding = nn.Embedding(N_STRESS, c.d_model)
            self.word_position_embedding = nn.Embedding(len(WORD_POSITIONS), c.d_model)
            for table in (self.stress_embedding, self.word_position_embedding):
                nn.init.normal_(table.weight, 0.0, c.d_model ** -0.5)
        self.encoder = FFTStack(c, c.encoder_layers)
        self.speaker_embedding = nn.Embedding(c.n_speakers, c.d_model)
        nn.init.normal_(self.speaker_embedding.weight, 0.0, c.d_model ** -0.5)
        pred = (c.d_model, c.predictor_channels, c.predictor_kernel, c.predictor_layers, c.predictor_dropout)
        self.duration_predictor = VariancePredictor(*pred)
        self.pitch_predictor = VariancePredictor(*pred)
        self.energy_predictor = VariancePredictor(*pred)
        self.pitch_embedding = VarianceEmbedding(c.d_model, c.variance_embedding, c.n_bins, c.bin_range)
        self.energy_embedding = VarianceEmbedding(c.d_model, c.variance_embedding, c.n_bins, c.bin_range)
        self.decoder = FFTStack(c, c.decoder_layers)
        self.mel_head = nn.Linear(c.d_model, c.n_mels)
        self.postnet = (Postnet(c.n_mels, c.postnet_channels, c.postnet_kernel, c.postnet_layers, c.dropout)
                        if c.postnet_layers > 0 else None)
        S = c.n_speakers
        for name, value in (("pitch_mean", 0.0), ("pitch_std", 1.0), ("energy_mean", 0.0), ("energy_std", 1.0)):
            self.register_buffer(name, torch.full((S,), value))
        self.register_buffer("mel_mean", torch.zeros(c.n_mels))
        self.register_buffer("mel_std", torch.ones(c.n_mels))

    # --- speakers and statistics ----------------------------------------------------------------
    @property
    def speakers(self) -> tuple[str, ...]:
        return self.config.speakers

    def speaker_index(self, speaker: str | int) -> int:
        """Row of ``speaker`` (a name or an index) in the speaker table; a clear error if unknown."""
        if isinstance(speaker, (int, np.integer)) and not isinstance(speaker, bool):
            if not 0 <= int(speaker) < self.config.n_speakers:
                raise ValueError(f"speaker index {speaker} out of range 0..{self.config.n_speakers - 1}")
            return int(speaker)
        if speaker not in self.speakers:
            raise ValueError(f"unknown speaker {speaker!r}; this model knows {list(self.speakers)} "
                             f"(add new ones with model.add_speakers)")
        return self.speakers.index(speaker)

    def set_stats(self, stats: dict) -> None:
        """Set normalisation statistics: ``{"pitch_mean": (S,), "pitch_std", "energy_mean", "energy_std",
        "mel_mean": (80,), "mel_std"}`` (any subset; numbers, lists, arrays or tensors)."""
        for name, value in stats.items():
            buf = getattr(self, name, None)
            if name not in self.STAT_NAMES or buf is None:
                raise KeyError(f"unknown statistic {name!r}; expected some of {self.STAT_NAMES}")
            value = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if value.shape != buf.shape:
                raise ValueError(f"{name} must have shape {tuple(buf.shape)}, got {tuple(value.shape)}")
            if not torch.isfinite(value).all() or (name.endswith("std") and (value <= 0).any()):
                raise ValueError(f"{name} must be finite (and > 0 for a std), got {value}")
            buf.copy_(value)

    def speaker_stats(self) -> dict[str, dict[str, float]]:
        """Per-speaker pitch/energy statistics as plain floats (what a checkpoint's ``extra`` keeps)."""
        return {s: {k: float(getattr(self, k)[i]) for k in self.STAT_NAMES[:4]} for i, s in enumerate(self.speakers)}

    def add_speakers(self, names: Sequence[str], *, init_from: str | None = None,
                     stats: dict[str, dict[str, float]] | None = None) -> list[int]:
        """Append rows to the speaker table for adaptation; return their indices.

        Each new row starts as a copy of ``init_from``'s embedding (default: the mean of all rows),
        and its pitch/energy statistics come from ``stats[name]`` (keys ``pitch_mean`` ... as
        :meth:`speaker_stats`) or else from ``init_from`` / the mean over speakers. Compute real
        statistics from the new speaker's data (:func:`speaker_stats_from_items`) when you have it.
        """
        names = [str(n) for n in names]
        clash = [n for n in names if n in self.speakers] or ([] if len(set(names)) == len(names) else names)
        if not names or clash:
            raise ValueError(f"give new, distinct speaker names (already known or repeated: {clash})")
        stats = stats or {}
        old = self.speaker_embedding.weight.data
        src = self.speaker_index(init_from) if init_from is not None else None
        rows = old[src] if src is not None else old.mean(0)
        table = nn.Embedding(len(old) + len(names), old.shape[1]).to(old.device)
        with torch.no_grad():
            table.weight[: len(old)] = old
            table.weight[len(old):] = rows
        self.speaker_embedding = table
        for key in self.STAT_NAMES[:4]:
            buf = getattr(self, key)
            default = float(buf[src]) if src is not None else float(buf.mean())
            new = [float(stats.get(n, {}).get(key, default)) for n in names]
            setattr(self, key, torch.cat([buf, torch.tensor(new, dtype=buf.dtype, device=buf.device)]))
        self.config = replace(self.config, speakers=self.speakers + tuple(names))
        return [self.speakers.index(n) for n in names]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- normalisation ----------------------------------------------------------------------------
    def normalize_variances(self, pitch: torch.Tensor, energy: torch.Tensor,
                            speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Phone log-F0 and log energy (B, N) -> per-speaker z-scores."""
        s = speaker[:, None]
        return ((pitch - self.pitch_mean[s]) / self.pitch_std[s], (energy - self.energy_mean[s]) / self.energy_std[s])

    def denormalize_variances(self, pitch_z: torch.Tensor, energy_z: torch.Tensor,
                              speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`normalize_variances`: z-scores -> log-F0 and log energy."""
        s = speaker[:, None]
        return pitch_z * self.pitch_std[s] + self.pitch_mean[s], energy_z * self.energy_std[s] + self.energy_mean[s]

    # --- forward ----------------------------------------------------------------------------------
    def forward(self, phone_ids: torch.Tensor, speaker: torch.Tensor, phone_lengths: torch.Tensor | None = None,
                durations: torch.Tensor | None = None, pitch: torch.Tensor | None = None,
                energy: torch.Tensor | None = None, *, stress: torch.Tensor | None = None,
                word_position: torch.Tensor | None = None, rate: float = 1.0, pitch_shift_semitones: float = 0.0,
                energy_scale: float = 1.0) -> dict:
        """Run the model on a padded batch; return a dict of every intermediate output.

        ``phone_ids`` (B, N) long (0 = padding), ``speaker`` (B,) long, ``phone_lengths`` (B,) (default:
        non-zero ids). ``stress`` and ``word_position`` (B, N) long (:func:`phone_context`) are required
        when ``config.phone_context``. Optional teacher forcing: ``durations`` (B, N) frames, ``pitch`` (B, N) phone
        log-F0, ``energy`` (B, N) phone log energy (natural units, as batches of
        :func:`ttslab.data.datasets.collate_acoustic` hold them). Controls (``rate`` etc.) act on the
        values fed forward, predicted or given.

        Returns ``mel`` and ``mel_postnet`` (B, T, 80) log-mel (equal without a postnet),
        ``log_duration`` (B, N) predicted ``log(1 + frames)``, ``pitch``/``energy`` (B, N) predicted
        z-scores, ``pitch_target``/``energy_target`` (the z-scores of the given ones, if given),
        ``durations`` (B, N) the integer durations used, ``encoder_out`` (B, N, d) (speaker added),
        ``variance_out`` (B, N, d) (pitch and energy embeddings added), ``decoder_out`` (B, T, d),
        ``encoder_states``/``decoder_states`` (lists, one per block), ``phone_mask`` (B, N) and
        ``frame_mask`` (B, T) (True on real positions), ``frame_lengths`` (B,).
        """
        phone_ids, speaker, phone_lengths = self._check_inputs(phone_ids, speaker, phone_lengths)
        if not rate > 0:
            raise ValueError(f"rate is a speed multiplier and must be > 0, got {rate}")
        if not energy_scale > 0:
            raise ValueError(f"energy_scale multiplies the energy and must be > 0, got {energy_scale}")
        phone_mask = lengths_to_mask(phone_lengths, phone_ids.shape[1])
        x = self.phone_embedding(phone_ids)
        if self.config.phone_context:
            stress, word_position = self._check_context(phone_ids, stress, word_position)
            x = x + self.stress_embedding(stress) + self.word_position_embedding(word_position)
        x = _masked(x * math.sqrt(self.config.d_model), phone_mask)
        enc, enc_states = self.encoder(x, phone_mask)
        h = _masked(enc + self.speaker_embedding(speaker)[:, None, :], phone_mask)
        out = {"phone_mask": phone_mask, "encoder_out": h, "encoder_states": enc_states}

        log_d = self.duration_predictor(h, phone_mask)
        p_pred = self.pitch_predictor(h, phone_mask)
        out.update(log_duration=log_d, pitch=p_pred)
        if pitch is not None or energy is not None:
            if pitch is None or energy is None:
                raise ValueError("give both pitch and energy targets, or neither")
            p_z, e_z = self.normalize_variances(pitch.float(), energy.float(), speaker)
            out.update(pitch_target=p_z.masked_fill(~phone_mask, 0.0), energy_target=e_z.masked_fill(~phone_mask, 0.0))
        s = speaker[:, None]
        p_used = (out["pitch_target"] if pitch is not None else p_pred) + pitch_shift_semitones * LN2_OVER_12 / self.pitch_std[s]
        h = h + self.pitch_embedding(p_used, phone_mask)
        e_pred = self.energy_predictor(h, phone_mask)
        e_used = (out["energy_target"] if energy is not None else e_pred) + math.log(energy_scale) / self.energy_std[s]
        h = h + self.energy_embedding(e_used, phone_mask)
        out.update(energy=e_pred, pitch_used=p_used, energy_used=e_used, variance_out=h)

        if durations is None:
            frames = (torch.exp(log_d.detach()) - 1.0) / rate
            durations = round_durations(frames, phone_mask)
            durations[:, 0] += (durations.sum(1) == 0).long()  # at least one frame per utterance
        else:
            durations = durations.long().masked_fill(~phone_mask, 0)
            if rate != 1.0:
                durations = round_durations(durations.float() / rate, phone_mask)
        if int(durations.sum(1).max()) > MAX_FRAMES:
            raise ValueError(f"predicted {int(durations.sum(1).max())} frames (> {MAX_FRAMES}): the text is too "
                             f"long or the rate too slow; split the text into sentences")
        z, frame_lengths = length_regulate(h, durations)
        frame_mask = lengths_to_mask(frame_lengths, z.shape[1])
        dec, dec_states = self.decoder(z, frame_mask)
        y = self.mel_head(dec)                     # normalised log-mel
        scale = lambda v: (v * self.mel_std + self.mel_mean).masked_fill(~frame_mask[..., None], MEL_PAD)
        mel = scale(y)
        mel_post = scale(y + self.postnet(y, frame_mask)) if self.postnet is not None else mel
        out.update(durations=durations, frame_lengths=frame_lengths, frame_mask=frame_mask, decoder_out=dec,
                   decoder_states=dec_states, mel=mel, mel_postnet=mel_post)
        return out

    def _check_context(self, phone_ids, stress, word_position):
        if stress is None or word_position is None:
            raise ValueError("this model reads stress and word-position inputs besides phone ids: pass the dict "
                             "of text_to_inputs(text, speaker) or utterance_inputs(utterance), or stress= and "
                             "word_position= (see phone_context)")
        out = []
        for name, v, n in (("stress", stress, N_STRESS), ("word_position", word_position, len(WORD_POSITIONS))):
            v = torch.as_tensor(v, device=phone_ids.device).long()
            if v.shape != phone_ids.shape:
                raise ValueError(f"{name} {tuple(v.shape)} must match phone_ids {tuple(phone_ids.shape)}")
            if (v < 0).any() or (v >= n).any():
                raise ValueError(f"{name} values must lie in 0..{n - 1}")
            out.append(v)
        return out

    def _check_inputs(self, phone_ids, speaker, phone_lengths):
        if not torch.is_tensor(phone_ids) or phone_ids.ndim != 2 or phone_ids.dtype.is_floating_point:
            raise ValueError(f"phone_ids must be a (B, N) integer tensor, got "
                             f"{getattr(phone_ids, 'shape', type(phone_ids))}")
        if phone_ids.shape[1] == 0:
            raise ValueError("empty phone sequence: give at least one phone")
        if (phone_ids < 0).any() or (phone_ids >= self.config.n_phones).any():
            raise ValueError(f"phone ids must lie in 0..{self.config.n_phones - 1} (ttslab.text.phoneset.PHONE_TO_ID)")
        speaker = torch.as_tensor(speaker, dtype=torch.long, device=phone_ids.device).reshape(-1)
        if len(speaker) != len(phone_ids):
            raise ValueError(f"{len(speaker)} speakers for a batch of {len(phone_ids)}")
        if (speaker < 0).any() or (speaker >= self.config.n_speakers).any():
            raise ValueError(f"speaker indices must lie in 0..{self.config.n_speakers - 1}")
        if phone_lengths is None:
            phone_lengths = (phone_ids != 0).sum(1)
        phone_lengths = torch.as_tensor(phone_lengths, device=phone_ids.device).long()
        if (phone_lengths < 1).any() or (phone_lengths > phone_ids.shape[1]).any():
            raise ValueError("phone_lengths must lie in 1..N (every utterance needs at least one phone)")
        return phone_ids, speaker, phone_lengths

    # --- inference ----------------------------------------------------------------------------
    @torch.no_grad()
    def infer(self, phone_ids, speaker: str | int, rate: float = 1.0, pitch_shift_semitones: float = 0.0,
              energy_scale: float = 1.0, durations=None, postnet: bool = True, *, stress=None,
              word_position=None) -> dict:
        """Synthesize one utterance: ``phone_ids`` (N,) (list, array or tensor), or the dict of
        :func:`text_to_inputs` (ids with their stress and word positions) -> dict with ``mel``
        (T, 80) log-mel (postnet output when there is one), ``durations`` (N,) frames, ``pitch`` (N,)
        phone F0 in Hz (``exp`` of the log-F0, shift included), ``energy`` (N,) phone log energy.

        ``durations`` (N,) forces the timing (oracle durations); ``rate`` 2.0 speaks twice as fast.
        """
        if isinstance(phone_ids, dict):
            stress = phone_ids.get("stress") if stress is None else stress
            word_position = phone_ids.get("word_position") if word_position is None else word_position
            phone_ids = phone_ids["phone_ids"]
        ids = torch.as_tensor(np.asarray(phone_ids), dtype=torch.long)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError(f"phone_ids must be a non-empty 1-D sequence, got shape {tuple(ids.shape)}")
        if (ids == 0).any():
            raise ValueError("phone_ids contain 0 (padding) inside the utterance")
        spk = torch.tensor([self.speaker_index(speaker)])
        dur = None
        if durations is not None:
            dur = torch.as_tensor(np.asarray(durations), dtype=torch.long)
            if dur.shape != ids.shape:
                raise ValueError(f"durations {tuple(dur.shape)} must match phone_ids {tuple(ids.shape)}")
            dur = dur[None]
        was_training = self.training
        self.eval()
        try:
            device = self.mel_mean.device
            ctx = {k: None if v is None else torch.as_tensor(np.asarray(v)).long()[None].to(device)
                   for k, v in (("stress", stress), ("word_position", word_position))}
            out = self(ids[None].to(device), spk.to(device), durations=None if dur is None else dur.to(device),
                       rate=rate, pitch_shift_semitones=pitch_shift_semitones, energy_scale=energy_scale, **ctx)
        finally:
            self.train(was_training)
        log_f0, log_e = self.denormalize_variances(out["pitch_used"], out["energy_used"], spk.to(device))
        mel = out["mel_postnet" if postnet else "mel"][0]
        return {"mel": mel.cpu(), "durations": out["durations"][0].cpu(), "pitch": torch.exp(log_f0[0]).cpu(),
                "energy": log_e[0].cpu()}

    def synthesize(self, text: str, speaker: str, vocoder: Callable | None = None, **controls) -> tuple[np.ndarray, int]:
        """Text -> ``(audio, 22050)``; see :func:`synthesize`."""
        return synthesize(self, text, speaker, vocoder=vocoder, **controls)

    # --- checkpoints --------------------------------------------------------------------------
    def save(self, path: str | Path, *, half: bool = True, extra: dict | None = None, **state) -> str:
        """Write a checksummed checkpoint (fp16 weights by default); return its SHA-256. ``extra`` keeps
        the speaker list and per-speaker statistics as plain values, plus anything given."""
        from ttslab.checkpoint import save_checkpoint

        info = {"model": "fastspeech", "speakers": list(self.speakers), "speaker_stats": self.speaker_stats(),
                **(extra or {})}
        return save_checkpoint(path, self, model_config=self.config.to_dict(), extra=info, half=half, **state)

    @classmethod
    def from_checkpoint(cls, path: str | Path, sha256: str | None = None, *, verify: bool = True) -> "FastSpeech":
        """Load a checkpoint written by :meth:`save` (checksum verified, ``weights_only`` unpickling);
        ``verify=False`` loads a file with no sidecar and no ``sha256`` (see :func:`ttslab.checkpoint.verify_file`)."""
        from ttslab.checkpoint import CheckpointError, load_checkpoint

        payload = load_checkpoint(path, sha256=sha256, verify=verify)
        try:
            model = cls(FastSpeechConfig.from_dict(payload["model_config"]))
            model.load_state_dict(payload["model"])
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path} does not hold a FastSpeech checkpoint: {exc}") from exc
        return model.eval()


def save_fastspeech(path: str | Path, model: FastSpeech, **kwargs) -> str:
    """:meth:`FastSpeech.save` as a function."""
    return model.save(path, **kwargs)


def load_fastspeech(path: str | Path, sha256: str | None = None, *, verify: bool = True) -> FastSpeech:
    """:meth:`FastSpeech.from_checkpoint` as a function."""
    return FastSpeech.from_checkpoint(path, sha256=sha256, verify=verify)


# ---------------------------------------------------------------------------------------------
# Loss


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the True positions of ``mask`` (broadcast over trailing dims)."""
    while mask.ndim < x.ndim:
        mask = mask[..., None]
    mask = mask.expand_as(x)
    return (x * mask).sum() / mask.sum().clamp(min=1)


def loss_terms(out: dict, batch: dict) -> dict[str, torch.Tensor]:
    """The five FastSpeech 2 loss terms from a teacher-forced forward ``out`` and its ``batch``:

    * ``mel``, ``postnet``: L1 between predicted and target log-mel on real frames;
    * ``duration``: MSE of ``log(1 + d)``;  ``pitch``, ``energy``: MSE of the per-speaker z-scores,
      all on real phones.
    """
    target = batch["mel"]
    if target.shape[:2] != out["mel"].shape[:2]:
        raise ValueError(f"target mel {tuple(target.shape)} does not match the regulated length "
                         f"{tuple(out['mel'].shape)}: the durations must sum to the mel lengths")
    fmask, pmask = out["frame_mask"], out["phone_mask"]
    terms = {"mel": _masked_mean((out["mel"] - target).abs(), fmask)}
    if out["mel_postnet"] is not out["mel"]:
        terms["postnet"] = _masked_mean((out["mel_postnet"] - target).abs(), fmask)
    log_d = torch.log1p(batch["durations"].float())
    terms["duration"] = _masked_mean((out["log_duration"] - log_d) ** 2, pmask)
    terms["pitch"] = _masked_mean((out["pitch"] - out["pitch_target"]) ** 2, pmask)
    terms["energy"] = _masked_mean((out["energy"] - out["energy_target"]) ** 2, pmask)
    return terms


def fastspeech_loss(model: FastSpeech, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Pure training loss: teacher-forced forward on a :func:`~ttslab.data.datasets.collate_acoustic`
    batch, ``loss = mel + postnet + duration + pitch + energy`` (FastSpeech 2's unweighted sum).

    Returns ``(loss, {term: float})``. Raises ``ValueError`` when the durations do not sum to the
    mel lengths (features and labels out of step).
    """
    if not torch.equal(batch["durations"].sum(1), batch["mel_lengths"]):
        raise ValueError("durations do not sum to mel_lengths in this batch; rebuild the feature cache")
    out = model(batch["phone_ids"], batch["speaker"], batch["phone_lengths"], durations=batch["durations"],
                pitch=batch["pitch"], energy=batch["energy"], stress=batch.get("stress"),
                word_position=batch.get("word_position"))
    terms = loss_terms(out, batch)
    loss = sum(terms.values())
    return loss, {k: float(v.detach()) for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------
# Statistics from training items


def speaker_stats_from_items(items: Sequence[dict], speakers: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-speaker mean/std of phone log-F0 and log energy over phones with >= 1 frame.

    ``items`` are :class:`~ttslab.data.datasets.AcousticDataset` items (``speaker`` is an index into
    ``speakers``); a speaker without items is left out.
    """
    out = {}
    for i, name in enumerate(speakers):
        mine = [it for it in items if int(it["speaker"]) == i]
        if not mine:
            continue
        keep = [it["durations"] > 0 for it in mine]
        p = np.concatenate([it["pitch"][k] for it, k in zip(mine, keep)]).astype(np.float64)
        e = np.concatenate([it["energy_phone"][k] for it, k in zip(mine, keep)]).astype(np.float64)
        out[name] = {"pitch_mean": float(p.mean()), "pitch_std": float(p.std() + 1e-5),
                     "energy_mean": float(e.mean()), "energy_std": float(e.std() + 1e-5)}
    return out


def stats_from_items(items: Sequence[dict], speakers: Sequence[str]) -> dict:
    """Everything :meth:`FastSpeech.set_stats` needs, from training items: per-speaker pitch/energy
    z-score statistics (speakers without items get the mean over the others) and the per-bin mean
    and std of the log-mel."""
    per = speaker_stats_from_items(items, speakers)
    if not per:
        raise ValueError("no items for any of the model's speakers; check the speaker list and the data")
    stats = {}
    for key in ("pitch_mean", "pitch_std", "energy_mean", "energy_std"):
        mean = float(np.mean([v[key] for v in per.values()]))
        stats[key] = [per.get(s, {}).get(key, mean) for s in speakers]
    mels = np.concatenate([it["mel"] for it in items]).astype(np.float64)
    stats["mel_mean"] = mels.mean(0).tolist()
    stats["mel_std"] = (mels.std(0) + 1e-3).tolist()
    return stats


def add_phone_context(items: Sequence[dict], utterances: Sequence) -> None:
    """Add ``stress`` and ``word_position`` (:func:`phone_context`) to acoustic items, in place.

    ``items[i]`` must be the item of ``utterances[i]`` (as :class:`~ttslab.data.datasets.AcousticDataset`
    builds them)."""
    if len(items) != len(utterances):
        raise ValueError(f"{len(items)} items for {len(utterances)} utterances")
    for it, utt in zip(items, utterances):
        if it["utt_id"] != utt.id or len(utt.segments) != len(it["phone_ids"]):
            raise ValueError(f"item {it['utt_id']} does not belong to utterance {utt.id}")
        it["stress"], it["word_position"] = phone_context(utt.segments)


def fastspeech_items(utterances: Sequence, speakers: Sequence[str] = ENGLISH_SPEAKERS,
                     progress: bool = False) -> list[dict]:
    """Acoustic items (:class:`~ttslab.data.datasets.AcousticDataset`) with the phone context this
    model reads; batch them with :func:`collate_fastspeech`."""
    from ttslab.data.datasets import AcousticDataset

    utterances = list(utterances)
    items = AcousticDataset(utterances, speakers=speakers, progress=progress).items
    add_phone_context(items, utterances)
    return items


def collate_fastspeech(items: list[dict]) -> dict:
    """:func:`~ttslab.data.datasets.collate_acoustic` plus padded ``stress`` and ``word_position`` (B, N)."""
    from ttslab.data.datasets import collate_acoustic

    batch = collate_acoustic(items)
    for key in ("stress", "word_position"):
        if key in items[0]:
            values = torch.zeros_like(batch["phone_ids"])
            for i, it in enumerate(items):
                values[i, : len(it[key])] = torch.from_numpy(np.asarray(it[key], dtype=np.int64))
            batch[key] = values
    return batch


# ---------------------------------------------------------------------------------------------
# Text front end and synthesis


def phone_context(segments) -> tuple[np.ndarray, np.ndarray]:
    """``(stress, word_position)`` (N,) int64 of labelled segments: stress 0/1/2 and the class of
    :data:`WORD_POSITIONS` (0 none for pauses/silence, 1 initial, 2 medial, 3 final, 4 single-phone word).

    >>> from ttslab.data.corpus import Segment
    >>> segs = [Segment("sil", 0, 1), Segment("k", 1, 2, 0), Segment("ae", 2, 3, 0, 1), Segment("t", 3, 4, 0),
    ...         Segment("ay", 4, 5, 1, 1), Segment("sil", 5, 6)]
    >>> [a.tolist() for a in phone_context(segs)]
    [[0, 0, 1, 0, 1, 0], [0, 1, 2, 3, 4, 0]]
    """
    segments = list(segments)
    stress = np.array([min(max(int(s.stress), 0), N_STRESS - 1) for s in segments], dtype=np.int64)
    word = np.array([int(s.word) for s in segments])
    pos = np.zeros(len(segments), dtype=np.int64)
    for i, w in enumerate(word):
        if w < 0:
            continue
        first = i == 0 or word[i - 1] != w
        last = i == len(word) - 1 or word[i + 1] != w
        pos[i] = 4 if first and last else 1 if first else 3 if last else 2
    return stress, pos


def utterance_inputs(utterance) -> dict:
    """Model inputs of a labelled corpus utterance (no audio read): ``{"phone_ids", "stress",
    "word_position"}`` (N,) int64 and ``"phones"``, the same sequence its acoustic features have."""
    from ttslab.text.phoneset import phone_id

    if utterance.segments is None:
        raise ValueError(f"utterance {utterance.id} has no phone labels; use text_to_inputs(utterance.text, ...)")
    stress, word_position = phone_context(utterance.segments)
    return {"phone_ids": np.array([phone_id(s.label) for s in utterance.segments], dtype=np.int64),
            "stress": stress, "word_position": word_position, "phones": [s.label for s in utterance.segments]}


def text_to_inputs(text: str, speaker: str = "en_us_m", *, voice: str | None = None) -> dict:
    """Model inputs for ``text`` as the built-in ``speaker`` (its eSpeak voice and accent) says it:
    ``{"phone_ids", "stress", "word_position"}`` (N,) int64 and ``"phones"`` (labels).

    The same path labelled the corpus (eSpeak's phone events -> :func:`ttslab.data.builtin.segments_from_events`,
    ``sil`` at both ends, ``pau`` between clauses), so the model sees the sequences it was trained on.
    ``voice`` overrides the eSpeak voice (for speakers that are not built in).
    """
    from ttslab.data import builtin
    from ttslab.text import espeak
    from ttslab.text.phoneset import phone_id

    if not isinstance(text, str) or not any(ch.isalnum() for ch in text):
        raise ValueError(f"empty text {text!r}: give at least one word to synthesize")
    if voice is not None:
        settings = {"voice": voice, "rate": 175, "pitch": 50, "pitch_range": 50, "language": voice.split("-")[0][:2]}
    else:
        try:
            spk = builtin.speaker(speaker)
        except KeyError:
            raise ValueError(f"unknown speaker {speaker!r} for the eSpeak front end; use a built-in speaker "
                             f"({[s.id for s in builtin.SPEAKERS]}) or pass voice='en-us'") from None
        settings = {"voice": spk.voice, "rate": spk.rate, "pitch": spk.pitch, "pitch_range": spk.pitch_range,
                    "language": spk.language}
    syn = espeak.synthesize(text, settings["voice"], rate=settings["rate"], pitch=settings["pitch"],
                            pitch_range=settings["pitch_range"])
    segments = builtin.segments_from_events(syn.audio, syn.phones, settings["language"])
    stress, word_position = phone_context(segments)
    return {"phone_ids": np.array([phone_id(s.label) for s in segments], dtype=np.int64), "stress": stress,
            "word_position": word_position, "phones": [s.label for s in segments]}


def text_to_phone_ids(text: str, speaker: str = "en_us_m", *, voice: str | None = None) -> np.ndarray:
    """Phone ids (N,) of ``text`` (see :func:`text_to_inputs`, which adds stress and word positions)."""
    return text_to_inputs(text, speaker, voice=voice)["phone_ids"]


def synthesize(model: FastSpeech, text: str, speaker: str, vocoder: Callable | None = None, *,
               rate: float = 1.0, pitch_shift_semitones: float = 0.0, energy_scale: float = 1.0,
               voice: str | None = None) -> tuple[np.ndarray, int]:
    """Text -> ``(audio float32, 22050)``: eSpeak front end, the model, then ``vocoder(log_mel (80, T))``
    (default: Griffin-Lim, :func:`ttslab.vocoders.griffin_lim`). The front end uses ``speaker``'s
    accent when it is a built-in speaker, else ``voice`` (default ``"en-us"``)."""
    model.speaker_index(speaker)  # unknown speaker: fail before running eSpeak
    from ttslab.data import builtin

    known = any(s.id == speaker for s in builtin.SPEAKERS)
    inputs = text_to_inputs(text, speaker, voice=voice if (voice or known) else "en-us")
    out = model.infer(inputs, speaker, rate=rate, pitch_shift_semitones=pitch_shift_semitones, energy_scale=energy_scale)
    log_mel = out["mel"].T.numpy()
    if vocoder is None:
        from ttslab.vocoders import griffin_lim as vocoder
    audio = np.asarray(vocoder(log_mel), dtype=np.float32)
    return audio, SAMPLE_RATE
