"""The torchrun entry point: data-parallel training of a ttslab model on the built-in corpus.

One machine, two processes (each reads half of every global batch)::

    torchrun --standalone --nproc-per-node 2 -m ttslab.distributed.run --model tiny-fastspeech \\
        --corpus-mode ci --utterances 16 --batch-size 8 --steps 4 --out /tmp/ddp/model.pt

Two machines (or two "nodes" on one machine, as the tests do on 127.0.0.1), one command per node,
the same code unchanged; ``HOST:PORT`` is reachable from every node (node 0 serves the rendezvous)::

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT --rdzv-id run1 -m ttslab.distributed.run --model tiny-fastspeech ...
    torchrun --nnodes 2 --node-rank 1 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT --rdzv-id run1 -m ttslab.distributed.run --model tiny-fastspeech ...

Without torchrun (``python -m ttslab.distributed.run ...``) it trains in one process, no process group.
On a GPU machine pass ``--device cuda``: rank ``r`` uses ``cuda:<LOCAL_RANK>`` and the backend is NCCL
(one GPU per rank). The CUDA/NCCL path has not run yet: the machines this was built on had no GPU.

This is the edge: it reads torchrun's RANK, WORLD_SIZE, LOCAL_RANK (and torch reads MASTER_ADDR and
MASTER_PORT) plus ``TTSLAB_CI`` for the default corpus mode, and passes everything on as arguments.
Rank 0 writes ``--out`` (the final weights, a ttslab checkpoint) and ``<out>.json`` (the history,
timing and settings).
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread per rank before numpy/torch load: the ranks share the cores
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ttslab.checkpoint import save_checkpoint
from ttslab.distributed.ddp import backend_for, fit_ddp, init_process_group
from ttslab.distributed.recipes import MODELS, build
from ttslab.io import atomic_write_text
from ttslab.train import TrainConfig, make_optimizer


def sgd(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Plain SGD at ``config.lr``: an update proportional to the gradient, so float noise in a gradient
    stays noise-sized in the weights (AdamW divides by the gradient's running RMS and can blow noise
    up to a step of size lr; see tests/test_distributed.py)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=config.lr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="torchrun ... -m ttslab.distributed.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="tiny-fastspeech")
    p.add_argument("--corpus-mode", choices=("ci", "full"), default=None,
                   help="built-in corpus to read (default: ci when TTSLAB_CI is set, else full)")
    p.add_argument("--utterances", type=int, default=16, help="training utterances (the first N English ones)")
    p.add_argument("--batch-size", type=int, default=8, help="GLOBAL batch: items per step over all ranks")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per rank and step")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="adamw (ttslab.train.make_optimizer) or plain SGD (the equivalence test: see tests)")
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--schedule", default="constant")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--device", default="cpu", help="cpu, cuda (cuda:<LOCAL_RANK> per rank) or auto")
    p.add_argument("--ckpt-dir", type=Path, default=None, help="checkpoint folder (resumed from when it holds one)")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (as if interrupted)")
    p.add_argument("--out", type=Path, default=None, help="final weights (rank 0 writes it)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    corpus_mode = args.corpus_mode or ("ci" if os.environ.get("TTSLAB_CI", "").strip().lower()
                                       in {"1", "true", "yes", "on"} else "full")
    torch.set_num_threads(args.threads)
    device = args.device
    if device in ("cuda", "auto") and torch.cuda.is_available():
        device = f"cuda:{local_rank}"
    if world > 1:
        device = init_process_group(rank, world, device)

    from ttslab.data import load_builtin
    from ttslab.data.datasets import ENGLISH_SPEAKERS

    t_data = time.perf_counter()
    utts = [u for u in load_builtin(corpus_mode).filter(split="train") if u.speaker in ENGLISH_SPEAKERS]
    recipe = build(args.model, utts[: args.utterances], ENGLISH_SPEAKERS, batch_size=args.batch_size, seed=args.seed)
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup=args.warmup,
                         schedule=args.schedule, grad_clip=args.grad_clip or None, seed=args.seed, log_every=1,
                         valid_every=args.checkpoint_every or args.steps, checkpoint_every=args.checkpoint_every)
    data_seconds = time.perf_counter() - t_data
    step_times: list[float] = []
    last = [time.perf_counter()]

    def on_step(step: int, logs: dict) -> None:
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    history = fit_ddp(recipe.model, recipe.loss_fn, recipe.batches, config, rank=rank, world_size=world,
                      accumulate=args.accumulate, weight_fn=recipe.weight_fn, device=device, ckpt_dir=args.ckpt_dir,
                      stop_after=args.stop_after, model_config=recipe.model_config, on_step=on_step,
                      optimizer_fn=make_optimizer if args.optimizer == "adamw" else sgd)
    if rank == 0 and args.out is not None:
        save_checkpoint(args.out, recipe.model, model_config=recipe.model_config,
                        extra={"world_size": world, "accumulate": args.accumulate, "steps": history.steps_done})
        summary = {"model": args.model, "world_size": world, "accumulate": args.accumulate,
                   "backend": backend_for(device) if world > 1 else None, "device": str(device),
                   "global_batch": args.batch_size, "steps_done": history.steps_done, "step_seconds": step_times,
                   "data_seconds": data_seconds, "train": history.train, "argv": sys.argv[1:] if argv is None else argv}
        atomic_write_text(args.out.with_name(args.out.name + ".json"), json.dumps(summary, indent=1) + "\n")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
