"""A federated *task*: the model, its loss and each client's data, as any engine needs them.

An engine (ttslab's simulator, a plain loop, Flower's simulation or deployment engine) runs in
processes of its own, so it receives the task as a factory name ``"module:function"`` it can import,
called as ``function(num_partitions=N, **task_args)`` and returning a :class:`FederatedTask`.

:func:`toy_regression` is the tiny task the engine tests and benchmarks use: a 2-layer MLP
(``4 -> 8 -> 2``) fitted to ``y = A_k x + b_k + noise``, where client ``k``'s map ``A_k, b_k`` is
shifted from a shared one (non-IID) and client ``k`` holds ``examples + 3k`` examples (so FedAvg's
weighting matters). Everything is drawn from ``seed`` and ``k``, so every process builds the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ttslab.federated.client import ClientData
from ttslab.train.loop import LossFn


@dataclass
class FederatedTask:
    """What every process of an engine needs to know about the learning problem.

    ``model_fn() -> nn.Module`` and a pure ``loss_fn(model, batch) -> (loss, logs)`` (the model code
    unchanged); ``client_data(partition_id) -> ClientData`` whose ``client_id`` is ``partition_id``,
    for ``partition_id`` in ``0 .. num_partitions - 1``.
    """

    model_fn: Callable[[], torch.nn.Module]
    loss_fn: LossFn
    client_data: Callable[[int], ClientData]
    num_partitions: int


def _toy_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def _toy_loss(model, batch):
    err = model(batch["x"]) - batch["y"]
    return (err ** 2).mean(), {"mae": float(err.detach().abs().mean())}


def _toy_collate(items):
    return {"x": torch.stack([it["x"] for it in items]), "y": torch.stack([it["y"] for it in items])}


def toy_regression(num_partitions: int, examples: int = 8, shift: float = 0.5, seed: int = 0) -> FederatedTask:
    """The tiny non-IID regression task (module docstring).

    >>> task = toy_regression(3)
    >>> [len(task.client_data(k)) for k in range(3)], task.client_data(2).client_id
    ([8, 11, 14], 2)
    """
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, int) or num_partitions < 1:
        raise ValueError(f"num_partitions must be an int >= 1, got {num_partitions!r}")
    if examples < 1:
        raise ValueError(f"examples must be >= 1, got {examples!r}")
    base = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, 4, generator=base), torch.randn(2, generator=base)

    def client_data(k: int) -> ClientData:
        if not 0 <= k < num_partitions:
            raise ValueError(f"partition {k} is outside 0..{num_partitions - 1}")
        g = torch.Generator().manual_seed(seed * 100_003 + 1 + k)
        a_k = a + shift * torch.randn(2, 4, generator=g)
        b_k = b + shift * torch.randn(2, generator=g)
        items = []
        for _ in range(examples + 3 * k):
            x = torch.randn(4, generator=g)
            items.append({"x": x, "y": a_k @ x + b_k + 0.05 * torch.randn(2, generator=g)})
        return ClientData(k, items, _toy_collate)

    return FederatedTask(_toy_model, _toy_loss, client_data, num_partitions)

