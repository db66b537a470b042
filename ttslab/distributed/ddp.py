"""Data-parallel training with :class:`torch.nn.parallel.DistributedDataParallel` that matches one process.

How DDP works, in three sentences: every process ("rank") holds a full replica of the model, built
from the same seed and made identical by DDP, which broadcasts rank 0's weights when it wraps the
model; each rank runs forward and backward on its own shard of the batch; during backward DDP
all-reduces the gradients (sums them over ranks and divides by the number of ranks), bucket by bucket
(``bucket_cap_mb``, 25 MB by default, so communication overlaps the rest of the backward pass), so
every replica takes the same optimizer step and the replicas stay identical.

What makes 2 processes x B/2 equal to 1 process x B:

* **Shards cut from the same global batch.** Every rank builds the same :class:`ttslab.train.Batches`
  (same items, same seed) and so sees the same global batches of ``B`` item indices in the same order.
  :func:`shard` cuts each global batch into ``world_size x accumulate`` contiguous pieces of (nearly)
  equal size with :func:`numpy.array_split`: rank ``r`` takes pieces ``r*accumulate ... r*accumulate +
  accumulate - 1``, one per micro-batch. The pieces are disjoint and their union is exactly the global
  batch, so the gradient summed over ranks and micro-batches is the single-process gradient. The cut
  depends only on ``(seed, epoch, position, rank, world_size, accumulate)``: a rerun or a resumed run
  reads the same items. Overlapping shards would count some items twice; random per-rank sampling
  would make the run unrepeatable.
* **Loss scaling by each shard's share of the denominator.** DDP *averages* gradients over ranks. A
  per-rank mean loss averaged over ranks is the global mean only when every shard has the same
  denominator. For a masked sequence loss (mean over real frames) it does not: shards have different
  numbers of frames. So every micro-batch's loss ``L_rj`` (a mean over ``w_rj`` units: items, frames,
  phones...) is multiplied by ``world_size * w_rj / W`` with ``W`` the sum of all ``w_rj`` (one
  ``all_reduce`` of the counts before the step). DDP's average then yields the gradient of
  ``sum_rj w_rj L_rj / W``, the mean over the whole global batch: exact, up to float rounding. A loss
  made of terms with different denominators (FastSpeech: mel terms per frame, duration/pitch/energy
  per phone) returns a dict ``{group: mean}`` and ``weight_fn`` returns ``{group: count}``; each group
  is scaled by its own share (:mod:`ttslab.distributed.recipes`).
* **Gradient accumulation.** With ``accumulate = k`` each rank runs ``k`` micro-batches before one
  optimizer step; the first ``k - 1`` backward passes run under ``no_sync()`` (no all-reduce), the
  last one reduces the accumulated gradients. The same scaling makes 1 process x 2 micro-batches of
  B/2 equal to one batch of B.
* Everything after the reduced gradient (clipping, AdamW, the learning-rate schedule of
  :func:`ttslab.train.lr_factor`) is the single-process code, fed identical gradients on every rank.

The equal result is "equal up to float rounding": the reduction adds the ranks' partial gradients in
another order than one process adds per-item contributions. ``tests/test_distributed.py`` measures it:
after 4 steps of tiny FastSpeech with SGD the largest weight difference is 1.2e-7 (an MLP with AdamW:
3e-8). Tiny FastSpeech with AdamW differs by up to 1e-4, all in parameters whose true gradient is
(nearly) zero, such as the attention's key bias: their gradient is rounding noise, and Adam divides by
its RMS, so noise becomes a step of size lr. That is Adam amplifying noise, not DDP changing the sum.
A rank that fails (a NaN loss, a crash) leaves the others waiting in the next collective until the
process group's timeout (:func:`init_process_group`); the launcher then stops them all.

Checkpoints: rank 0 writes ``last.pt`` atomically with :func:`ttslab.checkpoint.save_checkpoint`, then
every rank waits at a barrier; on resume every rank loads the same file. The global batch does not
depend on ``world_size`` or ``accumulate``, so a checkpoint written by 2 processes resumes on 1.

Backends: gloo for CPU tensors, NCCL for CUDA (:func:`backend_for`). This module never reads the
environment; the torchrun entry point (:mod:`ttslab.distributed.run`) reads RANK/WORLD_SIZE/LOCAL_RANK
and passes them in.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist

from ttslab.checkpoint import save_checkpoint
from ttslab.device import resolve_device, to_device
from ttslab.train import Batches, History, TrainConfig, lr_factor, make_optimizer, seed_everything
from ttslab.train.loop import restore_run

__all__ = ["backend_for", "init_process_group", "shard", "fit_ddp", "WeightFn"]

#: ``weight_fn(batch) -> count`` or ``{group: count}``: the denominator(s) of the loss on ``batch``.
WeightFn = Callable[[dict], "float | torch.Tensor | dict"]


def backend_for(device: str | torch.device) -> str:
    """``"nccl"`` for a CUDA device, ``"gloo"`` otherwise (CPU)."""
    return "nccl" if resolve_device(device).type == "cuda" else "gloo"


def init_process_group(rank: int, world_size: int, device: str | torch.device = "cpu", *,
                       timeout_s: float = 120.0) -> torch.device:
    """Join the process group (backend from ``device``); return the device this rank trains on.

    The rendezvous address comes from ``MASTER_ADDR``/``MASTER_PORT``, which torchrun sets for its
    workers (``init_method="env://"``, read by torch itself). A CUDA rank uses ``cuda:<local rank>``:
    pass ``device="cuda:N"``. ``timeout_s`` bounds every collective, so a rank whose peer died fails
    instead of hanging.
    """
    device = resolve_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return device


def shard(indices: Sequence[int], rank: int, world_size: int, accumulate: int = 1) -> list[list[int]]:
    """Rank ``rank``'s micro-batches of one global batch: ``accumulate`` lists of item indices.

    The global batch is cut into ``world_size * accumulate`` contiguous pieces (sizes differ by at most
    one); rank ``r`` gets pieces ``r * accumulate`` to ``r * accumulate + accumulate - 1``. Over all
    ranks the pieces are disjoint and their union is the global batch, in order.

    >>> shard(list(range(8)), 0, 2), shard(list(range(8)), 1, 2)
    ([[0, 1, 2, 3]], [[4, 5, 6, 7]])
    >>> shard(list(range(7)), 1, 2, accumulate=2)
    [[4, 5], [6]]
    """
    if not 0 <= rank < world_size or accumulate < 1:
        raise ValueError(f"need 0 <= rank < world_size and accumulate >= 1, got rank={rank}, "
                         f"world_size={world_size}, accumulate={accumulate}")
    pieces = world_size * accumulate
    if len(indices) < pieces:
        raise ValueError(f"a global batch of {len(indices)} items cannot feed {world_size} ranks x {accumulate} "
                         f"micro-batches; use a larger batch_size or drop_last=True in Batches")
    parts = np.array_split(np.asarray(indices, dtype=np.int64), pieces)
    return [p.tolist() for p in parts[rank * accumulate:(rank + 1) * accumulate]]


def _as_groups(value) -> dict:
    """A loss or a weight as ``{group: value}`` (a bare value is the group ``"loss"``)."""
    return dict(value) if isinstance(value, dict) else {"loss": value}


def _all_reduce_sum(values: dict[str, float], device: torch.device, world_size: int) -> dict[str, float]:
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    if world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.cpu().tolist()))


def _barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def fit_ddp(model: torch.nn.Module, loss_fn: Callable, batches: Batches, config: TrainConfig, *,
            rank: int = 0, world_size: int = 1, accumulate: int = 1, weight_fn: WeightFn | None = None,
            device: str | torch.device = "cpu", ckpt_dir: str | Path | None = None, resume: bool = True,
            stop_after: int | None = None, model_config: dict | None = None,
            on_step: Callable[[int, dict], None] | None = None,
            optimizer_fn: Callable[[torch.nn.Module, TrainConfig], torch.optim.Optimizer] = make_optimizer) -> History:
    """Train ``model`` for ``config.steps`` updates of ``batches.batch_size`` items each, data-parallel.

    ``world_size > 1`` needs a joined process group (:func:`init_process_group`); the model is then
    wrapped in DistributedDataParallel and ``loss_fn(ddp_model, batch)`` gets the wrapper (call it like
    the model; its attributes are on ``ddp_model.module``). ``world_size == 1`` with no process group
    trains in this process with the same code (what the equivalence test compares against).

    ``loss_fn(model, batch) -> (loss, logs)``: ``loss`` a tensor (a mean over ``weight_fn(batch)``
    units, default: the items of the micro-batch) or ``{group: tensor}`` with ``weight_fn`` returning
    ``{group: count}`` (see the module docstring). ``accumulate`` micro-batches make one step.
    Checkpoints (``ckpt_dir``): rank 0 writes ``last.pt`` every ``config.checkpoint_every`` (default
    ``valid_every``) steps, at the end and at ``stop_after`` (stop early, as if interrupted); with
    ``resume`` every rank continues from it. ``on_step(step, logs)`` runs on every rank after each step.
    ``optimizer_fn(model, config)`` makes the optimizer (default :func:`ttslab.train.make_optimizer`, AdamW).
    Returns the :class:`ttslab.train.History` (``train`` holds the global loss of each logged step).
    """
    if world_size > 1 and not dist.is_initialized():
        raise RuntimeError("world_size > 1 needs a process group: call init_process_group first (or run under "
                           "torchrun via python -m ttslab.distributed.run)")
    device = resolve_device(device)
    model.to(device)
    seed_everything(config.seed)
    optimizer = optimizer_fn(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    history, step, epoch, index = History(), 0, 0, 0
    ckpt = Path(ckpt_dir) / "last.pt" if ckpt_dir is not None else None
    # a resumed run must share the global batches and the schedule; world size, accumulation and how often
    # it logs or saves may differ
    ignored = ("threads", "checkpoint_every", "valid_every", "log_every")
    run_config = {"train": {k: v for k, v in config.to_dict().items() if k not in ignored},
                  "model": dict(model_config or {}), "batch_size": batches.batch_size}

    _barrier(world_size)  # no rank looks for a checkpoint while another may still be writing one
    if ckpt is not None and resume and ckpt.is_file():
        state = restore_run(ckpt, run_config, model, optimizer, scheduler, device)
        step, epoch, index = state["step"], state["epoch"], state["index"]
        history = History.from_dict(state["history"])

    wrapped = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def save(at_epoch: int, at_index: int, seconds: float) -> None:
        if rank == 0:
            history.seconds = seconds
            save_checkpoint(ckpt, model, model_config=model_config, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), step=step, epoch=at_epoch, index=at_index,
                            history=history.to_dict(), torch_rng=torch.get_rng_state(), run_config=run_config,
                            cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                            world_size=world_size, accumulate=accumulate)
        _barrier(world_size)  # every rank continues (or exits) only once the file is complete

    limit = config.steps if stop_after is None else min(config.steps, stop_after)
    every = config.checkpoint_every or config.valid_every
    elapsed, t0 = history.seconds, time.perf_counter()
    groups = batches.indices(epoch)
    while step < limit:
        if index >= len(groups):
            epoch, index = epoch + 1, 0
            groups = batches.indices(epoch)
        pieces = shard(groups[index], rank, world_size, accumulate)
        micro = [to_device(batches.batch(idx), device) for idx in pieces]
        counts = [{k: float(v) for k, v in _as_groups(weight_fn(b) if weight_fn else len(idx)).items()}
                  for b, idx in zip(micro, pieces)]
        totals = _all_reduce_sum({k: sum(c[k] for c in counts) for k in counts[0]}, device, world_size)
        wrapped.train()
        optimizer.zero_grad(set_to_none=True)
        share_sum: dict[str, float] = {}
        for j, (batch, count) in enumerate(zip(micro, counts)):
            sync = j == len(micro) - 1 or world_size == 1
            with contextlib.nullcontext() if sync else wrapped.no_sync():
                loss, logs = loss_fn(wrapped, batch)
                terms = _as_groups(loss)
                if set(terms) != set(count):
                    raise ValueError(f"loss groups {sorted(terms)} do not match weight groups {sorted(count)}")
                # a group with no units anywhere (total 0) contributes nothing, like a masked mean over nothing
                share = {k: count[k] / totals[k] if totals[k] else 0.0 for k in terms}
                scaled = sum(terms[k] * share[k] for k in sorted(terms))
                if not torch.isfinite(scaled):
                    raise FloatingPointError(f"loss became {float(scaled)} at step {step}: lower the learning rate")
                (scaled * world_size).backward()
            for k in terms:  # this micro-batch's part of the global mean, to report the global loss
                share_sum[k] = share_sum.get(k, 0.0) + float(terms[k].detach()) * share[k]
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip if config.grad_clip else float("inf"))
        optimizer.step()
        scheduler.step()
        step += 1
        index += 1
        global_terms = _all_reduce_sum(share_sum, device, world_size)
        logs = {"loss": sum(global_terms.values()), **({} if list(global_terms) == ["loss"] else global_terms),
                "grad_norm": float(norm)}
        if step % config.log_every == 0 or step == limit:
            history.train.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **logs})
        if on_step is not None:
            on_step(step, logs)
        if ckpt is not None and (step % every == 0 or step == limit):
            save(epoch, index, elapsed + time.perf_counter() - t0)
    history.steps_done = step
    history.seconds = elapsed + time.perf_counter() - t0
    model.eval()
    return history
