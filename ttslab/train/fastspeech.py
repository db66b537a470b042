"""Training recipe for the FastSpeech-2-style acoustic model (:mod:`ttslab.models.fastspeech`).

Data: the English speakers of a corpus' ``train`` split (built-in full mode: 10 speakers x 330
prompts). The utterances of the last ``valid_prompts`` training prompts (every speaker) are held out
for validation, so the model is selected without touching the test split that the benchmark uses.
Normalisation statistics (per-speaker pitch/energy z-scores, per-bin mel mean/std) come from the
training items and are stored in the model.

Command line (writes the checkpoint, fp16 by default, and ``<out>.log.json`` with the history)::

    python -m ttslab.train.fastspeech --mode full --size teacher --out /tmp/ckpt/fastspeech_teacher.pt
    TTSLAB_CI=1 python -m ttslab.train.fastspeech --mode ci --size tiny --out /tmp/fs_tiny.pt

Notebooks call :func:`cached_fastspeech`, which trains once and reuses the checkpoint afterwards.

How the sizes were chosen (full corpus, batches of 16, one thread, CPU seconds; exploratory runs on a
shared 2-core box, validation = the 100 held-out utterances):

* a step of FastSpeech 2's own size (d=256, FFN 1024 with kernel 9, 24 M parameters) took ~12 s
  (wall, loaded box): 20 minutes would be ~100 steps. Kernel 3 and d=192 cut it to ~0.9 s;
* at similar CPU time the 5.9 M-parameter teacher (4+3 blocks, 900 steps, 880 s) reached a validation
  mel L1 of 0.523 against 0.592 for a 1.6 M model (d=128, 2+2 blocks, 1500 steps, 553 s);
* adding the stress and word-position inputs (same teacher, 1000 steps, 896 s) gave mel 0.504,
  duration loss 0.016 (was 0.028) and pitch loss 0.286 (was 0.330) -- not a clean A/B (1000 vs 900
  steps), but the duration gain is far larger than 100 more steps buy.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread before numpy/torch load: the recipe is timed on one thread
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import json
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ttslab.data.datasets import ENGLISH_SPEAKERS
from ttslab.device import resolve_device
from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items,
                                      fastspeech_loss, stats_from_items)
from ttslab.train.loop import Batches, History, TrainConfig, fit, load_or_train

SIZES = ("teacher", "small", "tiny")

#: Settings per mode. Full mode: the teacher takes ~0.9 s of CPU a step on one thread (batches of 16,
#: ~4200 frames), so 1000 steps (5 epochs of 3200 utterances) are ~15 min of CPU; the validation mel
#: L1 fell 0.83 -> 0.65 -> 0.56 -> 0.52 -> 0.50 at steps 200..1000 (still falling slowly: more steps
#: help a little). CI mode: seconds, on the CI corpus.
TRAIN_CONFIGS = {
    "full": TrainConfig(steps=1000, batch_size=16, lr=1e-3, warmup=100, schedule="cosine", min_lr_ratio=0.05,
                        grad_clip=1.0, valid_every=200, seed=0, threads=1, log_every=25),
    "ci": TrainConfig(steps=40, batch_size=8, lr=2e-3, warmup=5, schedule="cosine", grad_clip=1.0,
                      valid_every=20, seed=0, threads=1, log_every=5),
}
#: Training prompts held out (all speakers) for validation, per mode.
VALID_PROMPTS = {"full": 10, "ci": 2}


def model_config(size: str, speakers=ENGLISH_SPEAKERS) -> FastSpeechConfig:
    """``FastSpeechConfig.teacher()``, ``.small()`` or ``.tiny()`` for ``speakers``."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; use one of {SIZES}")
    return getattr(FastSpeechConfig, size)(speakers=tuple(speakers))


def split_train_valid(utterances, valid_prompts: int) -> tuple[list, list]:
    """Hold out every utterance of the last ``valid_prompts`` distinct texts (in corpus order)."""
    utterances = list(utterances)
    texts = list(dict.fromkeys(u.text for u in utterances))
    if valid_prompts < 0 or valid_prompts >= len(texts):
        raise ValueError(f"valid_prompts must be in 0..{len(texts) - 1}, got {valid_prompts}")
    held = set(texts[len(texts) - valid_prompts:]) if valid_prompts else set()
    return [u for u in utterances if u.text not in held], [u for u in utterances if u.text in held]


def training_items(corpus, speakers, valid_prompts: int, progress: bool = True) -> tuple[list, list | None]:
    """``(train_items, valid_items)``: the ``train`` split of ``speakers`` as FastSpeech items, with the
    utterances of the last ``valid_prompts`` prompts held out (None when there are none); every FastSpeech
    recipe (this one, :mod:`ttslab.train.distill_fastspeech`) trains on exactly these."""
    utts = [u for u in corpus.filter(split="train") if u.speaker in speakers]
    if not utts:
        raise ValueError(f"no training utterances of the speakers {list(speakers)} in {corpus!r}; "
                         f"build the corpus first (python -m ttslab build-corpus)")
    train_utts, valid_utts = split_train_valid(utts, valid_prompts)
    train_items = fastspeech_items(train_utts, speakers, progress=progress)
    return train_items, (fastspeech_items(valid_utts, speakers) if valid_utts else None)


def train_fastspeech(corpus, config: FastSpeechConfig | None = None, train_config: TrainConfig | None = None, *,
                     valid_prompts: int = VALID_PROMPTS["full"], ckpt_dir: str | Path | None = None,
                     progress: bool = True, device: str | torch.device = "auto") -> tuple[FastSpeech, History]:
    """Train a :class:`FastSpeech` on the English ``train`` utterances of ``corpus``; return ``(model, history)``.

    ``config`` defaults to the teacher size and ``train_config`` to ``TRAIN_CONFIGS["full"]``: the
    caller picks sizes and steps (``model_config("tiny")``, ``TRAIN_CONFIGS["ci"]``), the library never
    looks at the environment. ``valid_prompts`` training prompts are held out (:data:`VALID_PROMPTS`).
    With ``ckpt_dir`` an interrupted run resumes from its last checkpoint. Trains on ``device`` (default
    ``"auto"``: the GPU when there is one; :mod:`ttslab.device`); the returned model stays there.
    """
    device = resolve_device(device)  # fail before the features are computed
    config = config or model_config("teacher")
    train_config = train_config or TRAIN_CONFIGS["full"]
    train_items, valid_items = training_items(corpus, config.speakers, valid_prompts, progress=progress)

    torch.manual_seed(train_config.seed)  # the same initial weights for the same seed
    model = FastSpeech(config)
    model.set_stats(stats_from_items(train_items, config.speakers))
    frames = lambda items: [len(it["mel"]) for it in items]
    batches = Batches(train_items, train_config.batch_size, collate_fastspeech, lengths=frames(train_items),
                      seed=train_config.seed)
    valid = (Batches(valid_items, train_config.batch_size, collate_fastspeech, lengths=frames(valid_items),
                     shuffle=False) if valid_items else None)
    history = fit(model, fastspeech_loss, batches, train_config, valid_batches=valid, ckpt_dir=ckpt_dir,
                  progress=progress, desc="fastspeech", model_config=config.to_dict(), device=device)
    model.train_info = {"train_utterances": len(train_items), "valid_utterances": len(valid_items or []),
                        "speakers": list(config.speakers)}
    return model, history


def training_log(model: FastSpeech, history: History, train_config: TrainConfig, **info) -> dict:
    """Everything worth keeping about a run: settings, sizes, time, losses (JSON-able)."""
    return {"model": "fastspeech", "model_config": model.config.to_dict(), "train_config": train_config.to_dict(),
            "parameters": model.num_parameters(), "seconds": round(history.seconds, 1),
            "steps_done": history.steps_done, "best_step": history.best_step, "best_valid": history.best_valid,
            "stopped_early": history.stopped_early, "train": history.train, "valid": history.valid,
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            **getattr(model, "train_info", {}), **info}


def device_name(model: torch.nn.Module) -> str:
    """What the model was trained on, for the registry: the GPU's name, or the CPU's architecture."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()})"


def cached_fastspeech(mode: str, size: str | None = None, progress: bool = True,
                      device: str | torch.device = "auto") -> FastSpeech:
    """The model of ``size`` (default: tiny in "ci" mode, else the teacher) trained on the built-in corpus
    of ``mode`` with ``TRAIN_CONFIGS[mode]``, trained on first use and cached under
    ``data_home()/models/fastspeech/<key>`` (see :func:`ttslab.train.load_or_train`); trained on and
    returned on ``device`` (default ``"auto"``)."""
    device = resolve_device(device)
    return FastSpeech.from_checkpoint(cached_fastspeech_path(mode, size, progress, device), device=device)


def cached_fastspeech_path(mode: str, size: str | None = None, progress: bool = True,
                           device: str | torch.device = "auto") -> Path:
    """The checkpoint file behind :func:`cached_fastspeech` (trained first if absent), e.g. for a server
    that loads the model in another process."""
    from ttslab.data import load_builtin

    if mode not in TRAIN_CONFIGS:
        raise ValueError(f"mode must be one of {sorted(TRAIN_CONFIGS)}, got {mode!r}")
    size = size or ("tiny" if mode == "ci" else "teacher")
    config, train_config = model_config(size), TRAIN_CONFIGS[mode]
    key = {"model": "fastspeech", "mode": mode, "config": config.to_dict(), "train": train_config.to_dict(),
           "valid_prompts": VALID_PROMPTS[mode]}
    device = resolve_device(device)
    if device.type != "cpu":  # a GPU run gives other weights (other kernels); CPU keys stay as they were
        key["device"] = device.type

    def train(folder: Path) -> Path:
        model, history = train_fastspeech(load_builtin(mode), config, train_config,
                                          valid_prompts=VALID_PROMPTS[mode], ckpt_dir=folder / "run",
                                          progress=progress, device=device)
        log = training_log(model, history, train_config, corpus_mode=mode)
        (folder / "training_log.json").write_text(json.dumps(log, indent=1))
        path = folder / "fastspeech.pt"
        model.save(path, half=False, extra={"train_seconds": log["seconds"], "corpus_mode": mode})
        return path

    return load_or_train("fastspeech", key, train)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options every FastSpeech recipe shares (this one and :mod:`ttslab.train.distill_fastspeech`)."""
    p.add_argument("--out", required=True, help="checkpoint path (a .sha256 sidecar and .log.json are written too)")
    p.add_argument("--steps", type=int, default=None, help="override the number of steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the budget is measured on 1)")
    p.add_argument("--device", default="auto", help="auto (GPU if any, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--ckpt-dir", default=None, help="folder for resumable training checkpoints")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    p.add_argument("--no-progress", action="store_true")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """``TRAIN_CONFIGS[args.mode]`` with the command line's threads, steps, batch size and learning rate."""
    overrides = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size), ("lr", args.lr))
                 if v is not None}
    return replace(TRAIN_CONFIGS[args.mode], threads=args.threads, **overrides)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Train the FastSpeech-2-style acoustic model on the built-in corpus.")
    p.add_argument("--mode", choices=("full", "ci"), default="full", help="built-in corpus and settings")
    p.add_argument("--size", choices=SIZES, default=None, help="model size (default: teacher, tiny in CI mode)")
    add_run_arguments(p)
    args = p.parse_args(argv)

    from ttslab.data import load_builtin

    size = args.size or ("tiny" if args.mode == "ci" else "teacher")
    train_config = train_config_from_args(args)
    config = model_config(size)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model, history = train_fastspeech(load_builtin(args.mode), config, train_config,
                                      valid_prompts=VALID_PROMPTS[args.mode], ckpt_dir=args.ckpt_dir,
                                      progress=not args.no_progress, device=args.device)
    log = training_log(model, history, train_config, corpus_mode=args.mode, size=size,
                       wall_seconds=round(time.perf_counter() - t0, 1),
                       cpu_seconds=round(time.process_time() - cpu0, 1), command=" ".join(sys.argv),
                       device=str(next(model.parameters()).device), device_name=device_name(model))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = model.save(out, half=not args.fp32,
                        extra={"train_seconds": log["seconds"], "train_cpu_seconds": log["cpu_seconds"],
                               "corpus_mode": args.mode, "size": size,
                               "train_config": train_config.to_dict()})
    log["sha256"], log["bytes"] = digest, out.stat().st_size
    from ttslab.io import atomic_write_json

    atomic_write_json(out.with_name(out.name + ".log.json"), log)
    best = f"{history.best_valid:.4f} at step {history.best_step}" if history.best_valid is not None else "n/a"
    print(f"saved {out} ({out.stat().st_size / 1e6:.1f} MB, {model.num_parameters() / 1e6:.2f} M parameters), "
          f"trained {history.seconds / 60:.1f} min ({log['cpu_seconds'] / 60:.1f} min CPU, features included), "
          f"best validation loss {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
