"""One training loop for every neural model in ttslab.

The pieces are deliberately small and functional, so later chapters can recombine them:

* a model's loss is a pure function ``loss_fn(model, batch) -> (loss, {name: float})`` defined next to
  the model; distillation wraps it (teacher outputs in the closure), FedProx adds a proximal term;
* :class:`Batches` turns in-memory items into deterministic, length-bucketed batches; the same seed
  gives the same batches in the same order, also after a resume;
* :func:`train_step` is one optimizer step (what a federated client repeats locally);
* :func:`fit` is the loop: warm-up + cosine/exponential learning-rate schedule, gradient clipping,
  training on any device (the batches follow the model there: :func:`ttslab.device.to_device`),
  validation every ``valid_every`` steps, early stopping, a ``tqdm.auto`` progress bar, atomic
  checkpoints (:mod:`ttslab.checkpoint`) and resume from the last one;
* :func:`load_or_train` caches a trained checkpoint under a key made from its configuration, so a
  notebook re-run reuses the model instead of training it again.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ttslab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ttslab.device import module_device, resolve_device, to_device

LossFn = Callable[[torch.nn.Module, dict], "tuple[torch.Tensor, dict]"]
SCHEDULES = ("constant", "cosine", "exponential")


@dataclass
class TrainConfig:
    """Optimisation settings (AdamW). Steps count optimizer updates, not epochs."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    warmup: int = 0                  # linear warm-up steps
    schedule: str = "cosine"         # after warm-up: constant | cosine | exponential
    min_lr_ratio: float = 0.05       # final lr = lr * min_lr_ratio (cosine, exponential)
    grad_clip: float | None = 1.0    # max global gradient norm (None: no clipping)
    valid_every: int = 200
    patience: int | None = None      # stop after this many validations without improvement
    checkpoint_every: int | None = None  # default: at every validation
    seed: int = 0
    threads: int | None = None       # torch intra-op threads (None: leave as is)
    log_every: int = 10

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got steps={self.steps}, "
                             f"batch_size={self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; use one of {SCHEDULES}")
        if self.valid_every < 1 or self.log_every < 1:
            raise ValueError("valid_every and log_every must be >= 1")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio is the final fraction of lr and must be in [0, 1], got {self.min_lr_ratio}")
        # the exponential schedule raises min_lr_ratio to a power: 0 would drop to lr 0 right after the warm-up
        if self.schedule == "exponential" and self.min_lr_ratio == 0:
            raise ValueError("min_lr_ratio must be > 0 for the exponential schedule (it decays towards it)")
        self.betas = tuple(self.betas)

    def to_dict(self) -> dict:
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels where it has them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then the schedule.

    cosine: ``r + (1 - r) * (1 + cos(pi * p)) / 2``; exponential: ``r ** p``; with ``p`` the fraction
    of post-warm-up steps done and ``r = min_lr_ratio``.

    >>> cfg = TrainConfig(steps=110, warmup=10, schedule="cosine", min_lr_ratio=0.0)
    >>> [round(lr_factor(s, cfg), 3) for s in (0, 9, 10, 60, 110)]
    [0.1, 1.0, 1.0, 0.5, 0.0]
    """
    if step < config.warmup:
        return (step + 1) / config.warmup
    if config.schedule == "constant":
        return 1.0
    p = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    r = config.min_lr_ratio
    if config.schedule == "cosine":
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))
    return r ** p


class Batches:
    """Deterministic batches of in-memory ``items`` for epoch ``e``: ``batches.epoch(e)``.

    With ``lengths`` the items are sorted by length inside random pools of ``50 * batch_size``
    (bucketing: little padding, still shuffled); the batch order is then shuffled too. Everything
    depends only on ``(seed, e)``, so a resumed run sees exactly the batches it would have seen.
    """

    def __init__(self, items: Sequence, batch_size: int, collate: Callable[[list], dict], *,
                 lengths: Sequence[int] | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False):
        if len(items) == 0:
            raise ValueError("no training items: check the corpus split / speaker filter")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if lengths is not None and len(lengths) != len(items):
            raise ValueError(f"{len(lengths)} lengths for {len(items)} items")
        self.items, self.batch_size, self.collate = items, batch_size, collate
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last

    def indices(self, epoch: int) -> list[list[int]]:
        n, bs = len(self.items), self.batch_size
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.lengths is not None:
            pool = 50 * bs
            order = np.concatenate([chunk[np.argsort(self.lengths[chunk], kind="stable")]
                                    for chunk in np.array_split(order, max(1, math.ceil(n / pool)))])
        groups = [order[i:i + bs].tolist() for i in range(0, n, bs)]
        if self.drop_last and len(groups) > 1 and len(groups[-1]) < bs:
            groups.pop()
        if self.shuffle and self.lengths is not None:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        return groups

    def __len__(self) -> int:
        return len(self.indices(0))

    def batch(self, idx: list[int]) -> dict:
        return self.collate([self.items[i] for i in idx])

    def epoch(self, epoch: int) -> Iterator[dict]:
        for idx in self.indices(epoch):
            yield self.batch(idx)

    def stream(self, start_epoch: int = 0, start_index: int = 0) -> Iterator[tuple[int, int, dict]]:
        """Endless ``(epoch, index, batch)``; skipped batches are never collated (cheap resume)."""
        epoch, index = start_epoch, start_index
        while True:
            groups = self.indices(epoch)
            for i in range(index, len(groups)):
                yield epoch, i, self.batch(groups[i])
            epoch, index = epoch + 1, 0


@dataclass
class History:
    """What :func:`fit` did: per-log-step training losses, per-validation losses, timing."""

    train: list[dict] = field(default_factory=list)
    valid: list[dict] = field(default_factory=list)
    best_step: int | None = None
    best_valid: float | None = None
    seconds: float = 0.0
    stopped_early: bool = False
    steps_done: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _check_loss(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()} at step {step}: lower the learning rate, check the "
                                 f"inputs for NaN/inf, or enable grad_clip")


def _placed(model: torch.nn.Module, device) -> torch.device:
    """Move ``model`` to ``device`` (None: leave it where it is); return the device it is on."""
    if device is None:
        return module_device(model)
    device = resolve_device(device)
    if module_device(model) != device:  # train_step runs every step: skip the no-op walk over the weights
        model.to(device)
    return device


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, batch: dict,
               grad_clip: float | None = 1.0, device: str | torch.device | None = None) -> dict:
    """One update: forward, backward, clip, step. Returns the loss terms as floats (+ ``grad_norm``).

    The model is moved to ``device`` (None: it stays where it is) and the batch's tensors to the
    model's device, so a collate function can always build CPU tensors.
    """
    batch = to_device(batch, _placed(model, device))
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss, logs = loss_fn(model, batch)
    _check_loss(loss, -1)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip else float("inf"))
    optimizer.step()
    return {"loss": float(loss.detach()), **{k: float(v) for k, v in logs.items()}, "grad_norm": float(norm)}


@torch.no_grad()
def evaluate(model: torch.nn.Module, loss_fn: LossFn, batches: Batches | Sequence[dict],
             device: str | torch.device | None = None) -> dict:
    """Mean of every loss term over the batches, weighted by batch count (model in eval mode), on
    ``device`` (None: where the model is; the batches are moved there)."""
    device = _placed(model, device)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for batch in (batches.epoch(0) if isinstance(batches, Batches) else batches):
        loss, logs = loss_fn(model, to_device(batch, device))
        for k, v in {"loss": float(loss), **{k: float(v) for k, v in logs.items()}}.items():
            sums[k] = sums.get(k, 0.0) + v
        n += 1
    model.train(was_training)
    if n == 0:
        raise ValueError("no validation batches")
    return {k: v / n for k, v in sums.items()}


def restore_run(ckpt: Path, run_config: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                scheduler, device: torch.device) -> dict:
    """Load a training checkpoint into ``model``, ``optimizer`` and ``scheduler`` and restore the RNG
    state; return the whole checkpoint (step, batch position, history, ...) for the caller's loop.

    Refuses a checkpoint written under another ``run_config`` (what a resumed run must share with the
    interrupted one), so a resumed run reproduces an uninterrupted one. Used by :func:`fit` and by
    :func:`ttslab.distributed.fit_ddp`.
    """
    state = load_checkpoint(ckpt)
    if state.get("run_config") != run_config:
        raise CheckpointError(f"{ckpt} was written by a run with other settings; delete {ckpt.parent} or "
                              f"pass resume=False to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    # dropout on a GPU draws from the CUDA generator; a run resumed on the CPU has no use for it
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return state


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                             betas=config.betas, weight_decay=config.weight_decay)


def fit(model: torch.nn.Module, loss_fn: LossFn, train_batches: Batches, config: TrainConfig, *,
        valid_batches: Batches | None = None, ckpt_dir: str | Path | None = None, resume: bool = True,
        progress: bool = True, desc: str = "train", optimizer: torch.optim.Optimizer | None = None,
        on_valid: Callable[[int, dict], None] | None = None, model_config: dict | None = None,
        device: str | torch.device | None = None) -> History:
    """Train ``model`` for ``config.steps`` updates; return the :class:`History`.

    The model is moved to ``device`` (``"auto"``, ``"cpu"``, ``"cuda"``...: :func:`ttslab.device.resolve_device`;
    None, the default, trains it where it is) and every batch to the same device; the collate
    functions build CPU tensors. The trained model stays on that device.

    With ``valid_batches`` the model is validated every ``valid_every`` steps and at the end; the best
    weights (lowest validation loss) are restored at the end, and ``patience`` stops early. With
    ``ckpt_dir``, ``last.pt`` is written atomically at every validation (or ``checkpoint_every``) and,
    with ``resume``, an interrupted run continues from it: same weights, optimizer, schedule, batch
    position and RNG state, so the result equals an uninterrupted run.
    """
    # before the optimizer is made (and resumed state loaded), so its state lives with the weights
    device = _placed(model, device)
    if not config.threads:
        return _fit(model, loss_fn, train_batches, config, valid_batches=valid_batches, ckpt_dir=ckpt_dir,
                    resume=resume, progress=progress, desc=desc, optimizer=optimizer, on_valid=on_valid,
                    model_config=model_config, device=device)
    from ttslab.config import thread_limit

    with thread_limit(config.threads):  # the caller's thread settings come back afterwards
        return _fit(model, loss_fn, train_batches, config, valid_batches=valid_batches, ckpt_dir=ckpt_dir,
                    resume=resume, progress=progress, desc=desc, optimizer=optimizer, on_valid=on_valid,
                    model_config=model_config, device=device)


def _fit(model, loss_fn, train_batches, config, *, valid_batches, ckpt_dir, resume, progress, desc, optimizer,
         on_valid, model_config, device) -> History:
    from tqdm.auto import tqdm

    seed_everything(config.seed)
    optimizer = optimizer or make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    history, step, epoch, index = History(), 0, 0, 0
    best_state, bad_validations, elapsed = None, 0, 0.0
    ckpt = Path(ckpt_dir) / "last.pt" if ckpt_dir is not None else None
    # what a resumed run must share with the interrupted one (the thread count may differ)
    run_config = {"train": {k: v for k, v in config.to_dict().items() if k != "threads"},
                  "model": dict(model_config or {})}

    if ckpt is not None and resume and ckpt.is_file():
        state = restore_run(ckpt, run_config, model, optimizer, scheduler, device)
        step, epoch, index = state["step"], state["epoch"], state["index"]
        history = History.from_dict(state["history"])
        best_state, bad_validations = state.get("best_model"), state.get("bad_validations", 0)
        elapsed = history.seconds

    def save(at_epoch: int, at_index: int) -> None:
        history.seconds = elapsed + (time.perf_counter() - t0)
        save_checkpoint(ckpt, model, model_config=model_config, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), step=step, epoch=at_epoch, index=at_index,
                        history=history.to_dict(), best_model=best_state, bad_validations=bad_validations,
                        torch_rng=torch.get_rng_state(), run_config=run_config,
                        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

    def validate() -> bool:
        """Validate, track the best weights; True when patience ran out."""
        nonlocal best_state, bad_validations
        logs = evaluate(model, loss_fn, valid_batches, device)
        history.valid.append({"step": step, **logs})
        if on_valid is not None:
            on_valid(step, logs)
        if history.best_valid is None or logs["loss"] < history.best_valid:
            history.best_valid, history.best_step = logs["loss"], step
            best_state, bad_validations = copy.deepcopy(model.state_dict()), 0
        else:
            bad_validations += 1
        return config.patience is not None and bad_validations >= config.patience

    t0 = time.perf_counter()
    bar = tqdm(total=config.steps, initial=step, desc=desc, disable=not progress, leave=True)
    stream = train_batches.stream(epoch, index)
    running: dict[str, float] = {}
    while step < config.steps:
        epoch, index, batch = next(stream)
        logs = train_step(model, optimizer, loss_fn, batch, config.grad_clip, device)
        scheduler.step()
        step += 1
        index += 1
        for k, v in logs.items():
            running[k] = running.get(k, 0.0) + v
        bar.update(1)
        if step % config.log_every == 0 or step == config.steps:
            n = config.log_every if step % config.log_every == 0 else step % config.log_every
            mean = {k: v / n for k, v in running.items()}
            history.train.append({"step": step, "lr": optimizer.param_groups[0]["lr"], **mean})
            bar.set_postfix(loss=f"{mean['loss']:.4f}")
            running = {}
        stop = False
        if valid_batches is not None and (step % config.valid_every == 0 or step == config.steps):
            stop = validate()
            if history.valid:
                bar.set_postfix(loss=history.train[-1]["loss"] if history.train else float("nan"),
                                valid=f"{history.valid[-1]['loss']:.4f}")
        every = config.checkpoint_every or config.valid_every
        if ckpt is not None and (step % every == 0 or step == config.steps or stop):
            save(epoch, index)
        if stop:
            history.stopped_early = True
            break
    bar.close()
    history.steps_done = step
    history.seconds = elapsed + (time.perf_counter() - t0)
    if valid_batches is not None and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def load_or_train(name: str, key_config: dict, train_fn: Callable[[Path], Path], *,
                  root: str | Path | None = None, verify: Callable[[Path], object] | None = None) -> Path:
    """The checkpoint trained for ``key_config``, training it with ``train_fn(folder) -> path`` if absent.

    The folder is ``root/<name>/<16-hex key of key_config>`` (default root: ``data_home()/models``);
    ``train_fn`` must write its checkpoint inside it with :func:`ttslab.checkpoint.save_checkpoint`.
    A ``DONE`` file names the finished checkpoint, so an interrupted training is resumed, not reused.
    ``verify(path)`` checks a cached file before it is reused (default: :func:`load_checkpoint`, which
    verifies the checksum); pass the model's own loader for other formats (e.g. an HMM voice).
    """
    from ttslab.dsp.cache import canonical_json, config_key
    from ttslab.io import atomic_write_text

    if root is None:
        from ttslab.config import data_home

        root = data_home() / "models"
    folder = Path(root) / name / config_key(key_config)
    done = folder / "DONE"
    if done.is_file():
        path = folder / done.read_text().strip()
        (verify or load_checkpoint)(path)  # raises with advice when the file is missing or corrupt
        return path
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.json", canonical_json(key_config) + "\n")
    path = Path(train_fn(folder))
    if path.parent.resolve() != folder.resolve() or not path.is_file():
        raise RuntimeError(f"train_fn must save its checkpoint inside {folder}, got {path}")
    atomic_write_text(done, path.name + "\n")
    return path
