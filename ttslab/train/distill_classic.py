"""Recipe: the classic distillation experiment (:mod:`ttslab.distill.classic`) on the built-in corpus.

Data: log-mel frames and phone labels (:class:`ttslab.data.datasets.AcousticDataset`) of a few English
speakers; training windows from the **train** split, accuracy on the **test** split (held-out
sentences). Sizes per mode (:func:`default_settings`):

* full: 4 speakers (en_us_m, en_us_f, en_gb_f, en_ca_f) x 330 training / 40 test sentences
  (~4.1 k windows of 100 frames, ~66 min of speech); teacher 600 steps, each student 250 steps,
  batch 32; about 6-7 min of one CPU core in all (13 trainings);
* ci: 2 speakers x 16 / 4 sentences, a few steps per model: seconds, for tests and CI.

Command line (prints the table; ``--out`` writes the JSON log with the exact command)::

    python -m ttslab.train.distill_classic --mode full --out /tmp/distill_classic_full.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ttslab.distill.classic import (ClassicSettings, FrameSet, band_stats, frame_windows, normalized,
                                    run_classic_experiment)
from ttslab.dsp.spectral import HOP, SAMPLE_RATE
from ttslab.train.loop import TrainConfig

FRAME_RATE = SAMPLE_RATE / HOP
SPEAKERS = {"full": ("en_us_m", "en_us_f", "en_gb_f", "en_ca_f"), "ci": ("en_us_m", "en_us_f")}
UTTERANCES = {"full": (None, None), "ci": (16, 4)}  # per speaker: train, test (None: all)


def default_settings(mode: str = "full") -> ClassicSettings:
    """The grid and budgets per mode (the grid is the same in both; ci trains a few steps)."""
    if mode == "full":
        return ClassicSettings()
    if mode == "ci":
        quick = dict(batch_size=8, lr=3e-3, warmup=2, grad_clip=5.0, log_every=5, seed=0, threads=1)
        return ClassicSettings(teacher_train=TrainConfig(steps=12, **quick), student_train=TrainConfig(steps=6, **quick))
    raise ValueError(f"unknown mode {mode!r}; use 'full' or 'ci'")


def load_frames(corpus, split: str, speakers: Sequence[str], per_speaker: int | None = None,
                window: int = 100, progress: bool = False) -> FrameSet:
    """Windows of ``corpus``' labelled ``split`` utterances of ``speakers`` (the first ``per_speaker`` of each,
    by id), not yet normalised."""
    from ttslab.data.datasets import AcousticDataset

    utts = []
    for spk in speakers:
        mine = sorted((u for u in corpus.filter(split=split, speakers=spk) if u.segments is not None), key=lambda u: u.id)
        if not mine:
            raise ValueError(f"no labelled {split!r} utterances of speaker {spk!r} in {corpus!r}: build the built-in "
                             f"corpus (`python -m ttslab build-corpus`) or choose other speakers")
        utts += mine[:per_speaker]
    return frame_windows(AcousticDataset(utts, speakers=tuple(speakers), progress=progress).items, window)


def classic_data(corpus, mode: str, progress: bool = False) -> tuple[FrameSet, FrameSet]:
    """Normalised ``(train, test)`` frame sets of the mode's speakers (test scaled with the training statistics)."""
    n_train, n_test = UTTERANCES[mode]
    train = load_frames(corpus, "train", SPEAKERS[mode], n_train, progress=progress)
    test = load_frames(corpus, "test", SPEAKERS[mode], n_test, progress=progress)
    mean, std = band_stats(train)
    return normalized(train, mean, std), normalized(test, mean, std)


def run(corpus, mode: str, settings: ClassicSettings | None = None, progress: bool = False) -> dict:
    """Load the data for ``mode`` and run :func:`ttslab.distill.classic.run_classic_experiment`."""
    train, test = classic_data(corpus, mode, progress)
    return run_classic_experiment(train, test, settings or default_settings(mode), frame_rate=FRAME_RATE,
                                  progress=progress)


def table(rows: list[dict]) -> str:
    """The result rows as Markdown."""
    lines = ["| model | T | alpha | labels | test accuracy % | parameters | RTF (x1e-3) | train s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = "" if r["T"] is None else f"{r['T']:g}"
        a = "" if r["alpha"] is None else f"{r['alpha']:g}"
        lines.append(f"| {r['model']} | {t} | {a} | {r['labels']:.0%} | {100 * r['accuracy']:.2f} | "
                     f"{r['parameters']:,} | {1000 * r['rtf']:.2f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    from ttslab.config import mode as current_mode
    from ttslab.config import set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    parser = argparse.ArgumentParser(description="Classic distillation: LSTM teacher, GRU students, phone frames.")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="default: TTSLAB_CI")
    parser.add_argument("--out", type=Path, default=None, help="JSON log (rows, dark knowledge, command)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    mode = args.mode or current_mode()
    set_threads(args.threads)
    settings = default_settings(mode)
    settings = replace(settings, teacher_train=replace(settings.teacher_train, threads=args.threads),
                       student_train=replace(settings.student_train, threads=args.threads))
    result = run(load_builtin(mode), mode, settings, progress=True)
    print(table(result["rows"]))
    log = {"mode": mode, "rows": result["rows"], "top_confusions": result["top_confusions"],
           "train_frames": result["train_frames"], "test_frames": result["test_frames"],
           "confusion": np.round(result["confusion"], 5).tolist(),
           "command": "python -m ttslab.train.distill_classic " + " ".join(sys.argv[1:] if argv is None else argv)}
    if args.out is not None:
        atomic_write_json(args.out, log)
        print(json.dumps({"written": str(args.out)}))
    return log


if __name__ == "__main__":
    main()
