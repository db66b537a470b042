"""The client side: local training from the global weights (FedAvg / FedProx / FedPer) and evaluation.

* :class:`ClientData`: one client's items, its collate function and its id;
* :class:`ClientConfig`: local steps, optimizer, FedProx's ``mu``, personal layers, seed (a flat dict
  with :meth:`ClientConfig.to_dict`, so a Flower ``ConfigRecord`` can carry it);
* :func:`client_update`: build a fresh model, load the global weights (and the client's own personal
  layers), run ``local_steps`` optimizer steps of :func:`ttslab.train.loop.train_step`, return a
  :class:`~ttslab.federated.strategies.Reply` with the shared weights and, separately, the personal ones;
* :func:`proximal_loss`: FedProx's ``loss_fn(model, batch) + (mu/2) ||w - w^t||^2`` around any loss;
* :func:`evaluate`: the loss terms of given weights on a client's data (:func:`ttslab.train.loop.evaluate`);
  combine clients with :func:`~ttslab.federated.strategies.aggregate_metrics`.

Determinism: the model is built under ``torch.manual_seed(config.seed)`` (the same initial personal
layers and buffers on every client and in the server's :func:`initial_weights`), and local training
draws from :func:`client_seed` ``(config.seed, server_round, client_id)``: the batch order and the
torch RNG (dropout). Both happen inside ``torch.random.fork_rng``, so a client's result depends only
on its arguments, not on which clients ran before it, and the caller's RNG state is left alone.
The optimizer starts fresh every round (clients keep no optimizer state), as in FedAvg.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from ttslab.config import thread_limit
from ttslab.device import resolve_device
from ttslab.federated.strategies import Reply, check_mu
from ttslab.federated.weights import (Weights, check_prefixes, check_weights, get_weights, is_local, set_weights,
                                      validate_update)
from ttslab.train.loop import Batches, LossFn, TrainConfig, evaluate as evaluate_batches, make_optimizer, train_step

OPTIMIZERS = ("adamw", "sgd")


@dataclass
class ClientData:
    """One client's private data: training ``items`` batched by ``collate`` (optional ``lengths`` for
    length bucketing, as :class:`~ttslab.train.loop.Batches`). ``len()`` is its number of examples."""

    client_id: int | str
    items: Sequence
    collate: Callable[[list], dict]
    lengths: Sequence[int] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def batches(self, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> Batches:
        """Deterministic batches for ``seed`` (:class:`~ttslab.train.loop.Batches`)."""
        return Batches(self.items, batch_size, self.collate, lengths=self.lengths, shuffle=shuffle, seed=seed)


@dataclass
class ClientConfig:
    """Local training settings. ``local_steps`` counts optimizer updates per round (a straggler runs
    fewer: ``dataclasses.replace(config, local_steps=k)``); the learning rate is constant within a round.

    ``optimizer``: ``"adamw"`` (:func:`ttslab.train.loop.make_optimizer`, with ``betas``,
    ``weight_decay``) or ``"sgd"`` (plain SGD with ``momentum``; textbook FedAvg). ``mu``: FedProx's
    proximal weight (0: FedAvg). ``local_prefixes``: personal layers (FedPer) that never leave the client.
    """

    local_steps: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: str = "adamw"
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    momentum: float = 0.0
    grad_clip: float | None = 1.0
    mu: float = 0.0
    local_prefixes: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        for name in ("local_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        self.mu = check_mu(self.mu)
        self.local_prefixes = check_prefixes(self.local_prefixes)
        self.betas = tuple(float(b) for b in self.betas)
        self.seed = int(self.seed)

    def to_dict(self) -> dict:
        """Flat dict of numbers, strings and lists (``grad_clip=None`` becomes 0.0)."""
        d = dataclasses.asdict(self)
        d["betas"], d["local_prefixes"] = list(self.betas), list(self.local_prefixes)
        d["grad_clip"] = 0.0 if self.grad_clip is None else float(self.grad_clip)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "ClientConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown ClientConfig fields {unknown}; known: {sorted(names)}")
        d = dict(d)
        if d.get("grad_clip") == 0:
            d["grad_clip"] = None
        return cls(**d)

    def train_config(self) -> TrainConfig:
        """The equivalent :class:`~ttslab.train.loop.TrainConfig` (what :func:`make_optimizer` reads)."""
        return TrainConfig(steps=self.local_steps, batch_size=self.batch_size, lr=self.lr, betas=self.betas,
                           weight_decay=self.weight_decay, schedule="constant", grad_clip=self.grad_clip,
                           seed=self.seed)


class ClientResult(NamedTuple):
    """:func:`client_update`'s result: ``reply`` goes to the server; ``local_weights`` (the personal
    layers, empty without ``local_prefixes``) stay with the client for its next round."""

    reply: Reply
    local_weights: Weights


class EvalResult(NamedTuple):
    """One client's evaluation: mean loss terms over its batches (``metrics``) and its size."""

    client_id: int | str
    num_examples: int
    metrics: dict


def client_seed(seed: int, server_round: int, client_id: int | str) -> int:
    """The seed of one client's local training in one round: the first 32-bit word of
    ``numpy.random.SeedSequence([seed, server_round, h])``, with ``h`` the integer id itself or, for a
    string id, the first 8 bytes of its SHA-256 (stable across processes, unlike ``hash()``).

    >>> client_seed(0, 1, "a") == client_seed(0, 1, "a") != client_seed(0, 2, "a")
    True
    """
    if isinstance(client_id, (int, np.integer)) and not isinstance(client_id, bool) and client_id >= 0:
        h = int(client_id)
    else:
        h = int.from_bytes(hashlib.sha256(str(client_id).encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([int(seed), int(server_round), h]).generate_state(1)[0])


def proximal_loss(loss_fn: LossFn, anchor: Mapping[str, torch.Tensor], mu: float) -> LossFn:
    """FedProx's local objective around any ``loss_fn(model, batch) -> (loss, logs)``::

        loss_fn(model, batch) + (mu / 2) * sum_name ||w_name - anchor_name||^2

    the *squared* Euclidean norm over the ``anchor`` tensors (the round's global weights ``w^t``), so its
    gradient is ``mu (w - w^t)``: a pull back towards the global model proportional to the drift.
    ``logs["proximal"]`` is the added term. ``mu = 0`` returns ``loss_fn`` itself: exactly FedAvg.

    >>> m = torch.nn.Linear(1, 1, bias=False); _ = m.weight.data.fill_(3.0)
    >>> f = proximal_loss(lambda model, batch: (model.weight.sum() * 0, {}), {"weight": torch.tensor([[1.0]])}, mu=0.5)
    >>> float(f(m, None)[0].detach())        # 0.5 / 2 * (3 - 1) ** 2
    1.0
    """
    mu = check_mu(mu)
    if mu == 0:
        return loss_fn
    names = list(anchor)

    def loss_with_proximal_term(model, batch):
        loss, logs = loss_fn(model, batch)
        params = dict(model.named_parameters())
        missing = [n for n in names if n not in params]
        if missing:
            raise KeyError(f"the proximal anchor names parameters the model lacks: {missing[:3]}")
        drift = sum(((params[n] - anchor[n].to(params[n].device)) ** 2).sum() for n in names)
        term = 0.5 * mu * drift
        return loss + term, {**logs, "proximal": float(term.detach())}

    return loss_with_proximal_term


def initial_weights(model_fn: Callable[[], torch.nn.Module], *, seed: int = 0, local_prefixes: Sequence[str] = (),
                    which: str = "trainable") -> Weights:
    """The server's round-0 global weights: ``model_fn()`` built under ``torch.manual_seed(seed)`` (the
    clients' ``config.seed``), without the personal layers (:func:`~ttslab.federated.weights.get_weights`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_fn()
    return get_weights(model, which=which, exclude=local_prefixes)


def build_model(model_fn: Callable[[], torch.nn.Module], global_weights: Mapping[str, torch.Tensor], *,
                local_weights: Mapping[str, torch.Tensor] | None = None, local_prefixes: Sequence[str] = (),
                seed: int = 0, device: str | torch.device | None = None) -> torch.nn.Module:
    """A fresh ``model_fn()`` (built under ``torch.manual_seed(seed)``) holding ``global_weights`` and the
    client's personal ``local_weights`` (None: the freshly built personal layers), on ``device``.

    Every trainable parameter must be global or personal; one that is neither would be trained and
    then thrown away every round, so it is an error (freeze it, or build the global weights with
    :func:`initial_weights`).
    """
    prefixes = check_prefixes(local_prefixes)
    check_weights(global_weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_fn()
    names = {n for n, _ in model.named_parameters()} | set(model.state_dict())
    unmatched = [p for p in prefixes if not any(is_local(n, [p]) for n in names)]
    if unmatched:
        raise ValueError(f"local prefixes {unmatched} match no parameter of the model (e.g. {sorted(names)[:4]})")
    personal_global = [n for n in global_weights if is_local(n, prefixes)]
    if personal_global:
        raise ValueError(f"the global weights hold personal layers {personal_global[:3]}: build them with "
                         f"initial_weights(model_fn, local_prefixes=...) so they never reach the server")
    orphans = [n for n, p in model.named_parameters()
               if p.requires_grad and n not in global_weights and not is_local(n, prefixes)]
    if orphans:
        raise ValueError(f"trainable parameters {orphans[:3]} are neither in the global weights nor personal "
                         f"(local_prefixes): they would be reset every round; freeze them or include them")
    set_weights(model, global_weights)
    if local_weights:
        wrong = [n for n in local_weights if not is_local(n, prefixes)]
        if wrong:
            raise ValueError(f"local_weights hold {wrong[:3]}, which are not under local_prefixes {list(prefixes)}")
        set_weights(model, local_weights)
    return model.to(resolve_device(device)) if device is not None else model


def client_update(global_weights: Mapping[str, torch.Tensor], data: ClientData, config: ClientConfig, *,
                  model_fn: Callable[[], torch.nn.Module], loss_fn: LossFn, server_round: int = 1,
                  local_weights: Mapping[str, torch.Tensor] | None = None, model_version: int | None = None,
                  device: str | torch.device | None = "cpu", threads: int | None = None) -> ClientResult:
    """One client's round: ``config.local_steps`` steps of local training from ``global_weights``.

    The loss is ``loss_fn`` (FedAvg) or, with ``config.mu > 0``, :func:`proximal_loss` around it
    anchored at ``global_weights`` (FedProx). ``local_weights``: the client's personal layers from its
    previous round (None in its first). Returns a :class:`ClientResult`: the reply (the shared weights
    as CPU tensors of the global dtypes, ``num_examples = len(data)``, the mean training loss terms and
    ``steps``; ``model_version`` is passed through for FedAsync) and the new personal weights.
    Deterministic for ``(config.seed, server_round, data.client_id)``; see the module docstring.
    ``threads``: torch threads while training (None: as set; a tiny model on a busy 2-core machine
    runs many times faster with 1), restored afterwards.
    """
    if not isinstance(config, ClientConfig):
        raise TypeError(f"config must be a ClientConfig, got {type(config).__name__}")
    if len(data) == 0:
        raise ValueError(f"client {data.client_id!r} has no examples: an empty client cannot train; leave it out "
                         f"of the round (or fix its partition)")
    device = resolve_device(device) if device is not None else torch.device("cpu")
    model = build_model(model_fn, global_weights, local_weights=local_weights, local_prefixes=config.local_prefixes,
                        seed=config.seed, device=device)
    seed = client_seed(config.seed, server_round, data.client_id)
    batches = data.batches(config.batch_size, seed=seed)
    if config.optimizer == "adamw":
        optimizer = make_optimizer(model, config.train_config())
    else:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                    momentum=config.momentum, weight_decay=config.weight_decay)
    objective = proximal_loss(loss_fn, {n: w.to(device) for n, w in global_weights.items()}, config.mu)
    sums: dict[str, float] = {}
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), (thread_limit(threads) if threads else nullcontext()):
        torch.manual_seed(seed)
        stream = batches.stream()
        for _ in range(config.local_steps):
            _, _, batch = next(stream)
            logs = train_step(model, optimizer, objective, batch, config.grad_clip, device)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + v
    model.eval()
    state = model.state_dict()
    shared = OrderedDict((n, state[n].detach().to("cpu", copy=True)) for n in global_weights)
    local = OrderedDict((n, t.detach().to("cpu", copy=True)) for n, t in state.items()
                        if is_local(n, config.local_prefixes) and t.is_floating_point())
    validate_update(global_weights, shared, client_id=data.client_id)
    metrics = {k: v / config.local_steps for k, v in sums.items()}
    metrics["steps"] = float(config.local_steps)
    return ClientResult(Reply(data.client_id, shared, len(data), metrics, model_version), local)


def evaluate(weights: Mapping[str, torch.Tensor], data: ClientData, *, model_fn: Callable[[], torch.nn.Module],
             loss_fn: LossFn, batch_size: int = 16, local_weights: Mapping[str, torch.Tensor] | None = None,
             local_prefixes: Sequence[str] = (), seed: int = 0, device: str | torch.device | None = "cpu",
             threads: int | None = None) -> EvalResult:
    """The loss terms of ``weights`` (plus a client's personal ``local_weights``) on ``data``: the mean
    over its batches in a fixed order (:func:`ttslab.train.loop.evaluate`, model in eval mode).

    Combine clients with :func:`~ttslab.federated.strategies.aggregate_metrics` (example-weighted).
    ``seed`` must be the clients' ``config.seed`` when the model has buffers or frozen layers;
    ``threads`` as in :func:`client_update`.
    """
    if len(data) == 0:
        raise ValueError(f"client {data.client_id!r} has no examples to evaluate on; leave it out")
    model = build_model(model_fn, weights, local_weights=local_weights, local_prefixes=local_prefixes, seed=seed,
                        device=device)
    with thread_limit(threads) if threads else nullcontext():
        metrics = evaluate_batches(model, loss_fn, data.batches(batch_size, shuffle=False), device)
    return EvalResult(data.client_id, len(data), metrics)
