"""Building blocks: positions and masks, FFT blocks, variance predictors and embeddings, postnet, length regulator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ttslab.models.fastspeech.config import FastSpeechConfig


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


def zero_padding(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
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
        h = F.relu(self.conv1(zero_padding(x, mask).transpose(1, 2))).transpose(1, 2)
        return self.conv2(zero_padding(h, mask).transpose(1, 2)).transpose(1, 2)


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
        x = zero_padding(self.norm1(x + self.dropout(self.attn(x, mask))), mask)
        return zero_padding(self.norm2(x + self.dropout(self.ffn(x, mask))), mask)


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
        x = zero_padding(self.dropout(x + self.positions(x.shape[1], x.device)[None]), mask)
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
            x = self.dropout(norm(F.relu(conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2))))
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
            return zero_padding(self.conv(value[:, None, :]).transpose(1, 2), mask)
        return zero_padding(self.table(torch.bucketize(value, self.edges)), mask)


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
            y = conv(zero_padding(y, mask).transpose(1, 2)).transpose(1, 2)
            if i < len(self.norms):
                y = self.dropout(torch.tanh(self.norms[i](y)))
        return zero_padding(y, mask)


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
    return zero_padding(y, frame_mask), totals


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
