"""LoRA adapters: a frozen layer plus a trainable low-rank update, counted, injected and merged back.

LoRA (Hu et al. 2021) leaves a pretrained weight ``W`` (out x in) frozen and learns a rank-``r``
update of it::

    y = W x + b + (alpha / r) * B (A x)          A: (r x in), B: (out x r), B starts at 0
    W_merged = W + (alpha / r) * B A              one matrix again: no cost at inference

``B = 0`` at the start, so an adapted model starts exactly as the teacher. A convolution with kernel
``k`` is the same thing on the unfolded input: its weight is ``(out, in, k)``, ``A`` is a convolution
``(r, in, k)`` (same padding and stride as the base), ``B`` a 1x1 convolution ``(out, r, 1)``, and
the merged weight is ``W + (alpha / r) * (B[:, :, 0] @ A.reshape(r, in * k)).reshape(out, in, k)``.

Parameters added per layer: ``r * (in + out)`` for a Linear, ``r * (in * k + out)`` for a Conv1d
(against ``in * out`` or ``in * out * k`` frozen). For the FastSpeech teacher's attention
projection ``qkv`` (192 -> 576) at ``r = 4``: ``4 * (192 + 576) = 3072`` against 110 592.

>>> import torch
>>> from torch import nn
>>> layer = LoRA(nn.Linear(6, 4), rank=2, alpha=4.0)
>>> layer.num_adapter_parameters()          # 2 * (6 + 4)
20
>>> with torch.no_grad():
...     _ = layer.lora_B.normal_()
>>> x = torch.randn(3, 6)
>>> bool(torch.allclose(layer(x), layer.merged()(x), atol=1e-6))
True
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

#: Which submodules of a :class:`~ttslab.models.fastspeech.FastSpeech` get adapters by default: the
#: decoder and the variance adaptor's predictors, where a speaker's timbre and prosody live.
DEFAULT_TARGETS = ("decoder", "duration_predictor", "pitch_predictor", "energy_predictor", "mel_head")


class LoRA(nn.Module):
    """A frozen ``nn.Linear`` or ``nn.Conv1d`` plus a trainable rank-``rank`` update (see the module docstring)."""

    def __init__(self, base: nn.Module, rank: int = 4, alpha: float | None = None):
        super().__init__()
        if not isinstance(base, (nn.Linear, nn.Conv1d)):
            raise TypeError(f"LoRA wraps nn.Linear or nn.Conv1d, got {type(base).__name__}")
        if isinstance(base, nn.Conv1d) and (base.groups != 1 or base.dilation != (1,)):
            raise ValueError("LoRA supports ungrouped, undilated convolutions only")
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive integer, got {rank!r}")
        self.base, self.rank = base, rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        for p in self.base.parameters():
            p.requires_grad_(False)
        w = base.weight
        if isinstance(base, nn.Linear):
            a_shape, b_shape = (rank, base.in_features), (base.out_features, rank)
        else:
            a_shape, b_shape = (rank, base.in_channels, base.kernel_size[0]), (base.out_channels, rank, 1)
        # A: Kaiming-uniform like nn.Linear; B: zeros, so the wrapped layer starts as the base layer
        self.lora_A = nn.Parameter(torch.empty(a_shape, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(b_shape, dtype=w.dtype, device=w.device))

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / r) * B A`` in the shape of the base weight."""
        if isinstance(self.base, nn.Linear):
            return self.scaling * self.lora_B @ self.lora_A
        out_ch, in_ch, k = self.base.weight.shape
        return self.scaling * (self.lora_B[:, :, 0] @ self.lora_A.reshape(self.rank, in_ch * k)).reshape(out_ch, in_ch, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if isinstance(self.base, nn.Linear):
            return y + self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)
        b = self.base
        low = F.conv1d(x, self.lora_A, None, b.stride, b.padding)
        return y + self.scaling * F.conv1d(low, self.lora_B)

    def num_adapter_parameters(self) -> int:
        return self.lora_A.numel() + self.lora_B.numel()

    def merged(self) -> nn.Module:
        """A plain copy of the base layer with ``W + (alpha/r) B A`` as its weight (trainable again)."""
        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight.add_(self.delta_weight())
        for p in layer.parameters():
            p.requires_grad_(True)
        return layer


def _targets(model: nn.Module, targets: Iterable[str]) -> list[tuple[str, nn.Module]]:
    """``(qualified name, layer)`` of every Linear/Conv1d inside the named submodules of ``model``."""
    found = []
    for target in targets:
        sub = model.get_submodule(target) if target else model
        if isinstance(sub, (nn.Linear, nn.Conv1d)):
            found.append((target, sub))
        for name, m in sub.named_modules():
            if name and isinstance(m, (nn.Linear, nn.Conv1d)):
                found.append((f"{target}.{name}" if target else name, m))
    return found


def has_adapters(model: nn.Module) -> bool:
    return any(isinstance(m, LoRA) for m in model.modules())


def add_lora(model: nn.Module, rank: int = 4, alpha: float | None = None,
             targets: Iterable[str] = DEFAULT_TARGETS) -> int:
    """Freeze every parameter of ``model`` and wrap each Linear/Conv1d under ``targets`` in :class:`LoRA`,
    in place; return the number of trainable (adapter) parameters.

    Raises ``ValueError`` when the model already has adapters (merge them first with :func:`merge_lora`)
    and when ``targets`` name no Linear or Conv1d layer.
    """
    if has_adapters(model):
        raise ValueError("this model already has LoRA adapters: merge them into the weights with "
                         "merge_lora(model) before adding new ones")
    layers = _targets(model, targets)
    if not layers:
        raise ValueError(f"no nn.Linear or nn.Conv1d layer under {list(targets)}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name, layer in layers:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, LoRA(layer, rank, alpha))
    return adapter_parameters(model)


def adapter_parameters(model: nn.Module) -> int:
    """Number of adapter parameters in ``model`` (0 without adapters)."""
    return sum(m.num_adapter_parameters() for m in model.modules() if isinstance(m, LoRA))


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRA` in ``model`` by its merged plain layer, in place; return ``model``.

    The result has exactly the architecture (and state-dict keys) of the model before
    :func:`add_lora`, so it saves and loads as an ordinary checkpoint.
    """
    wrapped = [(name, m) for name, m in model.named_modules() if isinstance(m, LoRA)]
    if not wrapped:
        raise ValueError("this model has no LoRA adapters to merge")
    for name, m in wrapped:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, m.merged())
    return model
