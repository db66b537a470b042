"""Recipe: distil the FastSpeech teacher (``ttslab.pretrained`` "fastspeech_teacher") into a smaller student.

Four methods, the same data split, model sizes and step budget as :mod:`ttslab.train.fastspeech`:

* ``scratch``     -- the student alone on the recordings (the baseline: what distillation must beat);
* ``sequence``    -- sequence-level KD (FastSpeech's own recipe): the targets are the teacher's generated
  mel, durations, pitch and energy (:func:`ttslab.distill.teacher_generated_items`), computed once on the
  training device in batches;
* ``kd``          -- the recordings' loss plus, through :func:`ttslab.distill.distill`, output KD (L1 to the
  teacher's teacher-forced mel), feature KD (FitNets hints: the student's encoder and last decoder block
  -> the teacher's, through learned projections) and duration KD (the teacher's ``log(1 + d)``)::

      L = L_fs(student, recordings) + w_out |mel_s - mel_t| + w_feat sum_k ||W_k h_s - h_t||^2 / d_t
          + w_dur (logd_s - logd_t)^2

* ``sequence+kd`` -- the KD terms on top of the teacher-generated targets.

Validation is the same for every method: the plain FastSpeech loss on held-out *recordings* (the KD
loss is used only while the model trains; see :func:`student_loss`), so the best step is chosen, and
methods are compared, against real speech.

Command line (fp16 checkpoint + ``<out>.log.json``, like ``ttslab.train.fastspeech``)::

    python -m ttslab.train.distill_fastspeech --mode full --size small --method sequence+kd --out /tmp/student.pt
    TTSLAB_CI=1 python -m ttslab.train.distill_fastspeech --mode ci --size tiny --method kd \\
        --teacher /tmp/fs_tiny_teacher.pt --out /tmp/student_ci.pt
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread before numpy/torch load (the CPU budget is measured on one)
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ttslab.device import resolve_device
from ttslab.distill import DurationKD, FeatureKD, KDStudent, OutputKD, distill, teacher_generated_items
from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, collate_fastspeech,
                                      fastspeech_loss, stats_from_items)
from ttslab.train.fastspeech import (TRAIN_CONFIGS, VALID_PROMPTS, add_run_arguments, model_config, train_config_from_args,
                                     training_items, training_log)
from ttslab.train.loop import Batches, History, TrainConfig, fit

METHODS = ("scratch", "sequence", "kd", "sequence+kd")
STUDENT_SIZES = ("small", "tiny")
#: Fields a student must share with its teacher to be distilled from it (inputs and outputs).
SHARED_FIELDS = ("n_phones", "n_mels", "speakers", "phone_context")


@dataclass(frozen=True)
class KDWeights:
    """Weights of the KD terms (``kd`` methods). Output KD is an L1 on the log-mel like the model's own mel
    loss, so 1.0 weighs it as much as the recordings; the hints are normalised per teacher dimension."""

    output: float = 1.0
    feature: float = 0.1
    duration: float = 1.0
    #: (student layer, teacher layer) hint pairs; ``-1`` is the last block of each stack
    hints: tuple[tuple[str, str], ...] = (("encoder_out", "encoder_out"), ("decoder_states[-1]", "decoder_states[-1]"))


def check_student(config: FastSpeechConfig, teacher: FastSpeech) -> None:
    """Refuse a student that reads other phones or speakers, or predicts other features, than ``teacher``."""
    for field in SHARED_FIELDS:
        mine, theirs = getattr(config, field), getattr(teacher.config, field)
        if mine != theirs:
            raise ValueError(f"student and teacher differ in {field}: {mine} vs {theirs}; a student must share "
                             f"its teacher's vocabulary, speakers and outputs (build it with "
                             f"model_config(size, speakers=teacher.speakers))")


def student_loss(method: str, student: FastSpeech, teacher: FastSpeech, weights: KDWeights = KDWeights()):
    """``(model to train, loss_fn)`` for ``method``: the KD methods wrap the student and the hint
    projections in a :class:`~ttslab.distill.KDStudent` and use the distilled loss while training;
    in eval mode (validation) every method uses the plain :func:`fastspeech_loss`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    if not method.endswith("kd"):
        return student, fastspeech_loss
    hints = FeatureKD.for_fastspeech(student, teacher, weights.hints, weight=weights.feature)
    kd = distill(fastspeech_loss, [OutputKD(("mel",), "l1", weights.output), hints,
                                   DurationKD("log", weights.duration)], teacher=teacher)

    def loss_fn(model, batch):
        return kd(model, batch) if model.training else fastspeech_loss(model, batch)

    return KDStudent(student, hints), loss_fn


def train_student(corpus, teacher: FastSpeech, method: str, config: FastSpeechConfig | None = None,
                  train_config: TrainConfig | None = None, *, valid_prompts: int = VALID_PROMPTS["full"],
                  weights: KDWeights = KDWeights(), ckpt_dir: str | Path | None = None, progress: bool = True,
                  device: str | torch.device = "auto", generate_batch: int = 32) -> tuple[FastSpeech, History]:
    """Train a student of ``config`` (default: ``small`` with the teacher's speakers) by ``method`` on the
    English ``train`` utterances of ``corpus``; return ``(student, history)``.

    The split, normalisation and training loop are :func:`ttslab.train.fastspeech.train_fastspeech`'s.
    The teacher moves to ``device`` (it generates targets or runs alongside the student there);
    teacher-generated items are computed in batches of ``generate_batch``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    device = resolve_device(device)
    config = config or model_config("small", teacher.speakers)
    check_student(config, teacher)  # before any feature is computed
    train_config = train_config or TRAIN_CONFIGS["full"]
    recorded, valid_items = training_items(corpus, config.speakers, valid_prompts, progress=progress)
    teacher = teacher.to(device).eval()
    t0 = time.perf_counter()
    train_items = (teacher_generated_items(teacher, recorded, batch_size=generate_batch)
                   if method.startswith("sequence") else recorded)
    generate_seconds = time.perf_counter() - t0

    torch.manual_seed(train_config.seed)
    student = FastSpeech(config)
    student.set_stats(stats_from_items(recorded, config.speakers))  # the recordings' scale, as the teacher's
    model, loss_fn = student_loss(method, student, teacher, weights)
    frames = lambda items: [len(it["mel"]) for it in items]
    batches = Batches(train_items, train_config.batch_size, collate_fastspeech, lengths=frames(train_items),
                      seed=train_config.seed)
    valid = (Batches(valid_items, train_config.batch_size, collate_fastspeech, lengths=frames(valid_items),
                     shuffle=False) if valid_items else None)
    history = fit(model, loss_fn, batches, train_config, valid_batches=valid, ckpt_dir=ckpt_dir, progress=progress,
                  desc=f"student {method}", model_config={**config.to_dict(), "method": method}, device=device)
    student.train_info = {"train_utterances": len(train_items), "valid_utterances": len(valid_items or []),
                          "speakers": list(config.speakers), "method": method,
                          "teacher_parameters": teacher.num_parameters(),
                          "teacher_generate_seconds": round(generate_seconds, 1),
                          "kd_weights": {"output": weights.output, "feature": weights.feature,
                                         "duration": weights.duration, "hints": [list(h) for h in weights.hints]}}
    return student.eval(), history


def load_teacher(path: str | None, device: str | torch.device = "cpu") -> FastSpeech:
    """The registered teacher (``ttslab.pretrained`` "fastspeech_teacher"), or the checkpoint at ``path``."""
    if path is None:
        from ttslab import pretrained

        return pretrained.load("fastspeech_teacher", device=device)
    return FastSpeech.from_checkpoint(path, device=device)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Distil the FastSpeech teacher into a smaller student.")
    p.add_argument("--mode", choices=("full", "ci"), default="full", help="built-in corpus and settings")
    p.add_argument("--size", choices=STUDENT_SIZES, default=None, help="student size (default small, tiny in CI)")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the registered fastspeech_teacher)")
    add_run_arguments(p)
    args = p.parse_args(argv)

    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    size = args.size or ("tiny" if args.mode == "ci" else "small")
    train_config = train_config_from_args(args)
    device = resolve_device(args.device)
    teacher = load_teacher(args.teacher, device)
    config = model_config(size, teacher.speakers)
    t0, cpu0 = time.perf_counter(), time.process_time()
    model, history = train_student(load_builtin(args.mode), teacher, args.method, config, train_config,
                                   valid_prompts=VALID_PROMPTS[args.mode], ckpt_dir=args.ckpt_dir,
                                   progress=not args.no_progress, device=device)
    command = "python -m ttslab.train.distill_fastspeech " + " ".join(sys.argv[1:] if argv is None else argv)
    log = training_log(model, history, train_config, corpus_mode=args.mode, size=size,
                       wall_seconds=round(time.perf_counter() - t0, 1),
                       cpu_seconds=round(time.process_time() - cpu0, 1), command=command,
                       device=str(next(model.parameters()).device),
                       device_name=(torch.cuda.get_device_name(device) if device.type == "cuda"
                                    else f"CPU ({platform.machine()})"),
                       teacher=args.teacher or "pretrained:fastspeech_teacher")
    log["model"] = "fastspeech_student"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = model.save(out, half=not args.fp32,
                        extra={"train_seconds": log["seconds"], "train_cpu_seconds": log["cpu_seconds"],
                               "corpus_mode": args.mode, "size": size, "method": args.method,
                               "train_config": train_config.to_dict()})
    log["sha256"], log["bytes"] = digest, out.stat().st_size
    atomic_write_json(out.with_name(out.name + ".log.json"), log)
    best = f"{history.best_valid:.4f} at step {history.best_step}" if history.best_valid is not None else "n/a"
    print(f"saved {out} ({out.stat().st_size / 1e6:.1f} MB, {model.num_parameters() / 1e6:.2f} M parameters, "
          f"method {args.method}), trained {history.seconds / 60:.1f} min, best validation loss {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
