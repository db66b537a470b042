"""Distributed training: data parallelism with ``torch.distributed`` and ``torchrun``.

* :mod:`ttslab.distributed.ddp` — :func:`fit_ddp` wraps any ttslab model and recipe loss
  (``loss_fn(model, batch) -> (loss, logs)``) in DistributedDataParallel: replicas on every rank,
  gradients all-reduced in buckets during backward, disjoint deterministic shards of each global batch
  (:func:`shard`), loss scaled by each shard's share of the denominator, gradient accumulation,
  checkpoints written by rank 0 and resumed by every rank. gloo on CPU, NCCL on GPU (:func:`backend_for`).
  Its docstring explains why 2 processes x B/2 equal 1 process x B.
* :mod:`ttslab.distributed.run` — the entry point for ``torchrun`` (one node or several)::

      torchrun --standalone --nproc-per-node 2 -m ttslab.distributed.run --model tiny-fastspeech --out m.pt
      torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-backend c10d \\
               --rdzv-endpoint HOST:PORT --rdzv-id run1 -m ttslab.distributed.run --model tiny-fastspeech ...

* :mod:`ttslab.distributed.launch` — starts torchrun from Python on 127.0.0.1 with a timeout and stops
  its process group by PID (tests, benchmark, notebook).
* :mod:`ttslab.distributed.recipes` — the models the entry point trains (tiny FastSpeech, an MLP).
"""

from ttslab.distributed.ddp import backend_for, fit_ddp, init_process_group, shard
from ttslab.distributed.launch import LaunchResult, free_port, launch, launch_nodes, torchrun_command

__all__ = ["backend_for", "fit_ddp", "init_process_group", "shard", "LaunchResult", "free_port", "launch",
           "launch_nodes", "torchrun_command"]
