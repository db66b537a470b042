"""Train the intelligibility judge (:mod:`ttslab.models.judge`) on the built-in corpus.

Data: ground-truth log-mels and phone labels (:class:`ttslab.data.datasets.AcousticDataset`) of the
English speakers' **train** split; one utterance in ``valid_every_nth`` (default 20, i.e. 5 %) is held
out for validation (loss curve, greedy PER, best-weights restore), so the **test** split stays unseen
for the benchmark (``benchmarks/judge.py``). Loss: :func:`ttslab.models.judge.ctc_loss`; the loop:
:func:`ttslab.train.fit` (AdamW, warm-up + cosine schedule, gradient clipping).

Command line (writes the fp16 checkpoint, its ``.sha256`` and ``<out>.json`` with configs, history,
validation PER and timings)::

    python -m ttslab.train.judge --mode full --out /tmp/ckpt/judge_full.pt    # 1800 steps, 8-14 min, 1 thread
    python -m ttslab.train.judge --mode ci --out /tmp/judge_ci.pt             # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from ttslab.data.datasets import AcousticDataset, collate_acoustic
from ttslab.data.speakers import is_adaptation
from ttslab.device import resolve_device
from ttslab.metrics import corpus_phone_error_rate
from ttslab.models.judge import JudgeConfig, PhoneRecognizer, ctc_loss, transcribe_batch
from ttslab.text.phoneset import ID_TO_PHONE
from ttslab.train.loop import Batches, History, TrainConfig, fit


def default_train_config(mode: str = "full") -> TrainConfig:
    """Optimisation settings per mode (full: 1800 steps = ~9 epochs, 8-14 min on one thread; ci: seconds)."""
    if mode == "full":
        return TrainConfig(steps=1800, batch_size=16, lr=2e-3, warmup=100, schedule="cosine", min_lr_ratio=0.02,
                           grad_clip=5.0, valid_every=300, log_every=25, seed=0, threads=1)
    if mode == "ci":
        return TrainConfig(steps=40, batch_size=8, lr=3e-3, warmup=5, schedule="cosine", grad_clip=5.0,
                           valid_every=20, log_every=5, seed=0, threads=1)
    raise ValueError(f"unknown mode {mode!r}; use 'full' or 'ci'")


def judge_utterances(corpus, split: str = "train") -> list:
    """The English utterances of ``split`` that the judge trains or is tested on (labelled ones only).

    The built-in adaptation speakers are left out: they stay voices no shared model has heard."""
    utts = [u for u in corpus.filter(split=split, language="en")
            if u.segments is not None and not is_adaptation(u.speaker)]
    if not utts:
        raise ValueError(f"no labelled English {split!r} utterances in {corpus!r}; build the built-in corpus "
                         f"(`python -m ttslab build-corpus`) or pass a corpus with English phone timings")
    return utts


def split_train_valid(utterances: Sequence, valid_every_nth: int = 20) -> tuple[list, list]:
    """Every ``valid_every_nth``-th utterance (sorted by id, so reproducible) for validation, the rest for training.

    >>> split_train_valid(list("abcdef"), 3)
    (['a', 'b', 'd', 'e'], ['c', 'f'])
    """
    if valid_every_nth < 2:
        raise ValueError(f"valid_every_nth must be >= 2, got {valid_every_nth}")
    ordered = sorted(utterances, key=lambda u: getattr(u, "id", u))
    valid = [u for i, u in enumerate(ordered) if i % valid_every_nth == valid_every_nth - 1]
    train = [u for i, u in enumerate(ordered) if i % valid_every_nth != valid_every_nth - 1]
    return train, valid


def dataset_per(model: PhoneRecognizer, items: Sequence[dict], batch_size: int = 16) -> float:
    """Corpus-level greedy PER (silences ignored) of ``model`` on dataset items (ground-truth mels)."""
    refs, hyps = [], []
    for i in range(0, len(items), batch_size):
        batch = collate_acoustic(list(items[i:i + batch_size]))
        hyps += transcribe_batch(model, batch["mel"], batch["mel_lengths"])
        refs += [[ID_TO_PHONE[j] for j in it["phone_ids"]] for it in items[i:i + batch_size]]
    return corpus_phone_error_rate(refs, hyps)


def train_judge(corpus, config: JudgeConfig | None = None, train_config: TrainConfig | None = None,
                progress: bool = True, valid_every_nth: int = 20,
                ckpt_dir: str | Path | None = None,
                device: str | torch.device = "auto") -> tuple[PhoneRecognizer, History]:
    """Train a :class:`PhoneRecognizer` on ``corpus``' English train split; return ``(model, history)``.

    Trains on ``device`` (default ``"auto"``: the GPU when there is one; :mod:`ttslab.device`); the
    returned model stays there.

    ``history.valid`` rows get a ``"per"`` entry: the greedy PER on the validation utterances at
    that step. The returned model holds the weights of the best validation loss, in eval mode.
    """
    config = config or JudgeConfig.full()
    train_config = train_config or default_train_config("full")
    device = resolve_device(device)  # fail before the features are computed
    train_utts, valid_utts = split_train_valid(judge_utterances(corpus, "train"), valid_every_nth)
    if not train_utts or not valid_utts:
        raise ValueError(f"need at least {valid_every_nth} training utterances to hold some out for validation, "
                         f"got {len(train_utts) + len(valid_utts)}")
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    train_set = AcousticDataset(train_utts, progress=progress)
    valid_set = AcousticDataset(valid_utts, progress=progress)
    train_batches = Batches(train_set, train_config.batch_size, collate_acoustic, lengths=train_set.lengths(),
                            seed=train_config.seed)
    valid_batches = Batches(valid_set, train_config.batch_size, collate_acoustic, lengths=valid_set.lengths(),
                            shuffle=False)
    torch.manual_seed(train_config.seed)  # the initial weights
    model = PhoneRecognizer(config)
    pers: dict[int, float] = {}

    def on_valid(step: int, logs: dict) -> None:
        pers[step] = dataset_per(model, valid_set.items)

    history = fit(model, ctc_loss, train_batches, train_config, valid_batches=valid_batches, ckpt_dir=ckpt_dir,
                  progress=progress, desc="judge", on_valid=on_valid, model_config=config.to_dict(), device=device)
    for row in history.valid:  # fit records the losses; add the PER measured at the same steps
        row["per"] = pers.get(row["step"])
    return model, history


def main(argv: list[str] | None = None) -> Path:
    from dataclasses import replace

    from ttslab.config import mode as current_mode
    from ttslab.config import set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    parser = argparse.ArgumentParser(description="Train the CTC phone recognizer (intelligibility judge).")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="default: TTSLAB_CI")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt); the log goes to .json")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (GPU if any, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--no-augment", action="store_true", help="train without SpecAugment (for comparison)")
    parser.add_argument("--resume-dir", type=Path, default=None,
                        help="folder for the training state; an interrupted run started with it resumes there")
    args = parser.parse_args(argv)
    mode = args.mode or current_mode()
    set_threads(args.threads)
    config = JudgeConfig.full() if mode == "full" else JudgeConfig.tiny()
    if args.no_augment:
        config = replace(config, freq_masks=0, time_masks=0, noise_std=0.0)
    train_config = replace(default_train_config(mode), threads=args.threads)
    if args.steps:
        train_config = replace(train_config, steps=args.steps)
    corpus = load_builtin(mode)
    t0 = time.perf_counter()
    model, history = train_judge(corpus, config, train_config, progress=True, ckpt_dir=args.resume_dir,
                                 device=args.device)
    seconds = time.perf_counter() - t0
    log = {"mode": mode, "model_config": config.to_dict(), "train_config": train_config.to_dict(),
           "parameters": model.num_parameters(), "threads": args.threads,
           "device": str(next(model.parameters()).device),
           "seconds_total": round(seconds, 1), "seconds_training": round(history.seconds, 1),
           "valid_per": next((r["per"] for r in history.valid if r["step"] == history.best_step), None),
           "history": history.to_dict(),
           "command": "python -m ttslab.train.judge " + " ".join(sys.argv[1:] if argv is None else argv)}
    digest = model.save(args.out, extra={"mode": mode, "train_seconds": round(history.seconds, 1),
                                         "valid_per": log["valid_per"]})
    log["sha256"] = digest
    log["checkpoint_bytes"] = args.out.stat().st_size
    atomic_write_json(args.out.with_suffix(".json"), log)
    print(json.dumps({k: log[k] for k in ("parameters", "seconds_total", "valid_per", "checkpoint_bytes", "sha256")}))
    return args.out


if __name__ == "__main__":
    main()
