"""Model weights as the federated code passes them around: an ordered ``{name: tensor}`` dict.

What travels between server and clients is a :data:`Weights` dict of named floating-point CPU
tensors (a subset of a model's ``state_dict``). Everything here is a plain function:

* :func:`get_weights` / :func:`set_weights`: read a model's trainable (or all floating) state,
  leaving out personal layers (:func:`is_local`), and load such a dict back;
* :func:`validate_update`: a client's update must have the global weights' keys, shapes and dtypes
  and be finite, or an :class:`UpdateError` names the client and the tensor;
* :func:`num_bytes`: what one copy costs on the wire (communication cost);
* :func:`clone_weights`, :func:`max_abs_diff`: copies and bit-for-bit comparisons.

The functions never modify the dicts they are given; they return new ones.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Iterable, Mapping

import torch

Weights = OrderedDict[str, torch.Tensor]  #: what travels: names -> floating-point CPU tensors
WHICH = ("trainable", "floating")


class UpdateError(ValueError):
    """A client's update cannot be aggregated (wrong keys, shape, dtype, non-finite values, no examples).

    ``client_id`` and ``name`` (the offending tensor, or None) say where; the global weights are untouched.
    """

    def __init__(self, message: str, *, client_id=None, name: str | None = None):
        super().__init__(message)
        self.client_id, self.name = client_id, name


def is_local(name: str, local_prefixes: Iterable[str]) -> bool:
    """True when ``name`` lies under one of ``local_prefixes`` (personal layers that stay on the client).

    A prefix names a module or a tensor: ``"speaker_embedding"`` matches ``"speaker_embedding.weight"``
    but not ``"speaker_embedding2.weight"``.

    >>> is_local("speaker_embedding.weight", ["speaker_embedding"]), is_local("speaker_embedding2.w", ["speaker_embedding"])
    (True, False)
    """
    return any(name == p or name.startswith(p if p.endswith(".") else p + ".") for p in local_prefixes)


def check_prefixes(local_prefixes: Iterable[str]) -> tuple[str, ...]:
    """``local_prefixes`` as a tuple of non-empty strings (a single string is refused: it is not a list)."""
    if isinstance(local_prefixes, str):
        raise TypeError(f"local_prefixes must be a list of names, got the string {local_prefixes!r}; "
                        f"write [{local_prefixes!r}]")
    prefixes = tuple(local_prefixes)
    bad = [p for p in prefixes if not isinstance(p, str) or not p.strip(".")]
    if bad:
        raise ValueError(f"local_prefixes must be non-empty module or parameter names, got {bad}")
    return prefixes


def _floating(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point()


def get_weights(model: torch.nn.Module, *, which: str = "trainable", exclude: Iterable[str] = ()) -> Weights:
    """A copy of ``model``'s state as :data:`Weights` (CPU tensors, the model's order and dtypes).

    ``which="trainable"``: the parameters with ``requires_grad`` (what local training changes; buffers
    such as normalisation statistics come from the model's constructor on every client);
    ``which="floating"``: every floating-point tensor of the ``state_dict`` (parameters and buffers).
    Names under ``exclude`` (personal layers, :func:`is_local`) are left out.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    exclude = check_prefixes(exclude)
    if which == "trainable":
        items = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.is_floating_point()]
    else:
        items = [(n, t) for n, t in model.state_dict(keep_vars=True).items() if _floating(t)]
    return OrderedDict((n, t.detach().to("cpu", copy=True)) for n, t in items if not is_local(n, exclude))


def set_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Copy ``weights`` into ``model``'s parameters/buffers of the same names, in place; return the model.

    Every name must exist in the model with the same shape and dtype (a clear error otherwise, raised
    before anything is copied, so a failed call leaves the model as it was).
    """
    state = model.state_dict(keep_vars=True)
    for name, value in weights.items():
        if name not in state:
            raise KeyError(f"the model has no parameter or buffer {name!r}; the weights belong to another "
                           f"architecture (model names: {list(state)[:5]}...)")
        target = state[name]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"weights[{name!r}] is a {type(value).__name__}, expected a torch.Tensor")
        if value.shape != target.shape or value.dtype != target.dtype:
            raise ValueError(f"weights[{name!r}] is {value.dtype} {tuple(value.shape)}, the model's is "
                             f"{target.dtype} {tuple(target.shape)}")
    with torch.no_grad():
        for name, value in weights.items():
            state[name].copy_(value)
    return model


def split_weights(weights: Mapping[str, torch.Tensor], local_prefixes: Iterable[str]) -> tuple[Weights, Weights]:
    """``(shared, local)``: the entries outside / under ``local_prefixes`` (the same tensors, not copies)."""
    prefixes = check_prefixes(local_prefixes)
    shared = OrderedDict((n, t) for n, t in weights.items() if not is_local(n, prefixes))
    local = OrderedDict((n, t) for n, t in weights.items() if is_local(n, prefixes))
    return shared, local


def clone_weights(weights: Mapping[str, torch.Tensor]) -> Weights:
    """A deep copy (detached CPU clones, same order)."""
    return OrderedDict((n, t.detach().to("cpu", copy=True)) for n, t in weights.items())


def check_weights(weights: Mapping[str, torch.Tensor], what: str = "the global weights") -> None:
    """``weights`` must be a non-empty mapping of finite floating-point tensors (else ``ValueError``)."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"{what} must be a non-empty {{name: tensor}} dict (get_weights(model)), got "
                         f"{type(weights).__name__} of length {len(weights) if hasattr(weights, '__len__') else '?'}")
    for name, t in weights.items():
        if not _floating(t):
            raise TypeError(f"{what}[{name!r}] must be a floating-point torch.Tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{what}[{name!r}] holds NaN or inf")


def validate_update(global_weights: Mapping[str, torch.Tensor], update: Mapping[str, torch.Tensor], *,
                    client_id=None) -> None:
    """Raise :class:`UpdateError` unless ``update`` matches ``global_weights``: the same names, and per
    name the same shape and dtype, with finite values. Checks only; modifies nothing."""
    who = f"client {client_id!r}"
    if not isinstance(update, Mapping):
        raise UpdateError(f"{who} sent a {type(update).__name__}, expected a {{name: tensor}} dict",
                          client_id=client_id)
    missing = [n for n in global_weights if n not in update]
    extra = [n for n in update if n not in global_weights]
    if missing:
        raise UpdateError(f"{who}'s update lacks {missing[:3]}{'...' if len(missing) > 3 else ''}: a client must "
                          f"return every global tensor", client_id=client_id, name=missing[0])
    if extra:
        raise UpdateError(f"{who}'s update has tensors the global model does not: {extra[:3]} (personal layers "
                          f"never leave the client: check local_prefixes)", client_id=client_id, name=extra[0])
    for name, ref in global_weights.items():
        value = update[name]
        if not isinstance(value, torch.Tensor):
            raise UpdateError(f"{who}'s update[{name!r}] is a {type(value).__name__}, expected a torch.Tensor "
                              f"(convert numpy arrays with torch.from_numpy)", client_id=client_id, name=name)
        if value.shape != ref.shape:
            raise UpdateError(f"{who}'s update[{name!r}] has shape {tuple(value.shape)}, the global weights "
                              f"{tuple(ref.shape)}: the client trained another architecture",
                              client_id=client_id, name=name)
        if value.dtype != ref.dtype:
            raise UpdateError(f"{who}'s update[{name!r}] is {value.dtype}, the global weights are {ref.dtype}: "
                              f"decode compressed updates before aggregating", client_id=client_id, name=name)
        if not torch.isfinite(value).all():
            raise UpdateError(f"{who}'s update[{name!r}] holds NaN or inf: its local training diverged "
                              f"(lower its learning rate or leave it out of the round)",
                              client_id=client_id, name=name)


def num_bytes(weights: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None) -> int:
    """Bytes of the tensors' raw data (as ``dtype`` if given, e.g. ``torch.float16`` for halved updates).

    >>> num_bytes({"w": torch.zeros(3, 2), "b": torch.zeros(2)}), num_bytes({"w": torch.zeros(4)}, torch.float16)
    (32, 8)
    """
    size = (lambda t: t.element_size()) if dtype is None else (lambda t: torch.empty((), dtype=dtype).element_size())
    return int(sum(t.numel() * size(t) for t in weights.values()))


def max_abs_diff(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Largest absolute difference between two weight dicts with the same names (0.0: bit-identical
    values; NaN anywhere gives ``nan``)."""
    if list(a) != list(b):
        raise ValueError(f"the dicts hold different names: {sorted(set(a) ^ set(b))[:5]}")
    worst = 0.0
    for name in a:
        if a[name].shape != b[name].shape:
            raise ValueError(f"{name!r}: shapes {tuple(a[name].shape)} and {tuple(b[name].shape)} differ")
        d = (a[name].double() - b[name].double()).abs()
        if torch.isnan(d).any():
            return math.nan
        if d.numel():
            worst = max(worst, float(d.max()))
    return worst
