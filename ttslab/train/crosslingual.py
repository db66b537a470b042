"""Recipe: the English FastSpeech teacher fine-tuned to a Spanish or German speaker, or the same
architecture trained from scratch on the same utterances (:mod:`ttslab.transfer.crosslingual`).

Data: the first ``n`` utterances of the target speaker's ``train`` split (built-in full corpus: 50 a
speaker for es_m, es_f, de_m, de_f; CI: 10); the ``test`` split stays for the benchmark. Phones the
teacher never heard are the phones of the target language's utterances that do not occur in the
teacher's English training utterances; each is initialised from its nearest known phone
(:func:`~ttslab.transfer.crosslingual.phone_mapping`). Starting points (``init``):

* ``transfer``: the teacher, new phones mapped, a new speaker row (mean of the English rows);
* ``transfer_unmapped``: the same without the phone mapping (new phones keep their untrained rows);
* ``scratch``: the teacher's architecture, fresh weights, one speaker.

Every start trains every weight for the same number of steps (same compute), with the settings of
:data:`TRAIN_CONFIGS`. The intelligibility judge is English-only (trained on English speech only):
:func:`adapt_judge` fine-tunes it on the train recordings of the other languages (mixed with as many
English ones, so it keeps English), which gives the per-language PER measure of the benchmark.

Command line (one model; writes the checkpoint and ``<out>.log.json``)::

    python -m ttslab.train.crosslingual --mode full --speaker es_f --utterances 10 --init transfer --out /tmp/es_f_10.pt
    python -m ttslab.train.crosslingual --mode ci --speaker de_m --utterances all --init scratch --out /tmp/de_m.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from ttslab.device import resolve_device
from ttslab.train.loop import Batches, TrainConfig, fit
from ttslab.transfer.crosslingual import (fine_tune, phone_mapping, phones_of, scratch_model, transfer_model)

INITS = ("transfer", "transfer_unmapped", "scratch")
#: Fine-tuning settings per mode. Full: the teacher takes ~1.2 s of CPU a step on one thread with
#: batches of 8 (~3 s utterances), so 30 steps are ~40 s a model, the 12 models of the benchmark ~8 min.
#: That is little for a model trained from scratch: the comparison is at equal (small) compute.
TRAIN_CONFIGS = {
    "full": TrainConfig(steps=30, batch_size=8, lr=1e-3, warmup=3, schedule="cosine", min_lr_ratio=0.1,
                        grad_clip=1.0, valid_every=10_000, log_every=10, seed=0, threads=1),
    "ci": TrainConfig(steps=6, batch_size=4, lr=1e-3, warmup=1, schedule="cosine", grad_clip=1.0,
                      valid_every=10_000, log_every=2, seed=0, threads=1),
}
#: Judge fine-tuning per mode (the judge takes ~0.3-0.5 s a step of 16 utterances on one thread).
JUDGE_CONFIGS = {
    "full": TrainConfig(steps=100, batch_size=16, lr=5e-4, warmup=10, schedule="cosine", min_lr_ratio=0.1,
                        grad_clip=5.0, valid_every=10_000, log_every=25, seed=0, threads=1),
    "ci": TrainConfig(steps=4, batch_size=8, lr=5e-4, warmup=1, schedule="cosine", grad_clip=5.0,
                      valid_every=10_000, log_every=2, seed=0, threads=1),
}


def target_utterances(corpus, speaker: str, n: int | None = None) -> list:
    """The first ``n`` (all when None) ``train`` utterances of ``speaker``, with phone labels."""
    utts = [u for u in corpus.filter(speakers=speaker, split="train") if u.segments is not None]
    if not utts:
        raise ValueError(f"speaker {speaker!r} has no labelled training utterances in {corpus!r}; "
                         f"known speakers: {list(corpus.speakers)}")
    if n is not None and not 1 <= n <= len(utts):
        raise ValueError(f"asked for {n} utterances of {speaker!r}, which has {len(utts)} training utterances; "
                         f"use 1..{len(utts)} (or None for all)")
    return utts[:n] if n is not None else utts


def teacher_phones(corpus, teacher_speakers: Sequence[str]) -> list[str]:
    """Phones the teacher heard: those of its speakers' ``train`` utterances (inventory order)."""
    phones = phones_of(u for u in corpus.filter(split="train") if u.speaker in set(teacher_speakers))
    if not phones:
        raise ValueError(f"none of the teacher's speakers {list(teacher_speakers)[:4]}... is in {corpus!r}")
    return phones


def language_mapping(corpus, language: str, known: Sequence[str], **kwargs) -> dict[str, str]:
    """:func:`phone_mapping` of every phone in ``language``'s utterances (all splits) onto ``known``."""
    utts = list(corpus.filter(language=language))
    if not utts:
        langs = sorted({u.language for u in corpus})
        raise ValueError(f"no utterances of language {language!r} in {corpus!r} (it has {langs}): "
                         "its phones cannot be mapped; build them into the corpus first")
    return phone_mapping(phones_of(utts), known, language=language, **kwargs)


def train_crosslingual(teacher, corpus, speaker: str, n_utterances: int | None, init: str = "transfer",
                       train_config: TrainConfig | None = None, *, known_phones: Sequence[str] | None = None,
                       progress: bool = False, device: str | torch.device = "cpu") -> tuple:
    """Train one model for ``speaker`` from ``init`` on its first ``n_utterances``; return
    ``(model, history, info)``. ``known_phones`` default: :func:`teacher_phones` of ``corpus``."""
    from ttslab.models.fastspeech import fastspeech_items, speaker_stats_from_items, stats_from_items

    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; use one of {INITS}")
    device = resolve_device(device)
    if speaker in teacher.speakers:
        raise ValueError(f"{speaker!r} is one of the teacher's own speakers; pick a speaker it has not seen")
    train_config = train_config or TRAIN_CONFIGS["full"]
    utts = target_utterances(corpus, speaker, n_utterances)
    language = utts[0].language
    known = list(known_phones) if known_phones is not None else teacher_phones(corpus, teacher.speakers)
    mapping = language_mapping(corpus, language, known)
    probe = fastspeech_items(utts, speakers=(speaker,))
    stats = speaker_stats_from_items(probe, (speaker,))[speaker]
    if init == "scratch":
        model = scratch_model(teacher.config, speaker, stats, stats_from_items(probe, (speaker,)),
                              seed=train_config.seed)
        items = probe
    else:
        model = transfer_model(teacher, speaker, stats, mapping if init == "transfer" else None)
        items = fastspeech_items(utts, speakers=model.speakers)
    torch.manual_seed(train_config.seed)
    history = fine_tune(model, items, train_config, progress=progress, desc=f"{speaker} {init} {len(utts)}",
                        device=device)
    info = {"speaker": speaker, "language": language, "init": init, "n_utterances": len(utts),
            "mapping": mapping if init == "transfer" else {}, "new_phones": sorted(mapping),
            "seconds": round(history.seconds, 1), "final_loss": history.train[-1]["loss"] if history.train else None,
            "train_config": train_config.to_dict()}
    return model.eval(), history, info


def judge_training_utterances(corpus, languages: Sequence[str], seed: int = 0) -> list:
    """The labelled ``train`` utterances of ``languages`` plus as many English ones (a seeded sample)."""
    import random

    new = [u for u in corpus.filter(split="train") if u.language in set(languages) and u.segments is not None]
    if not new:
        raise ValueError(f"no labelled training utterances of {list(languages)} to teach the judge")
    english = [u for u in corpus.filter(split="train", language="en") if u.segments is not None]
    return new + random.Random(seed).sample(english, min(len(new), len(english)))


def adapt_judge(judge, corpus, languages: Sequence[str], train_config: TrainConfig | None = None, *,
                progress: bool = False, device: str | torch.device = "cpu"):
    """A copy of the English judge fine-tuned (CTC) on :func:`judge_training_utterances`; returns
    ``(judge, history)``. Its output layer already has a class for every inventory phone."""
    import copy

    from ttslab.data.datasets import AcousticDataset, collate_acoustic
    from ttslab.models.judge import ctc_loss

    train_config = train_config or JUDGE_CONFIGS["full"]
    data = AcousticDataset(judge_training_utterances(corpus, languages, train_config.seed),
                           speakers=tuple(corpus.speakers), progress=progress)
    model = copy.deepcopy(judge).float().train()
    batches = Batches(data, train_config.batch_size, collate_acoustic, lengths=data.lengths(), seed=train_config.seed)
    history = fit(model, ctc_loss, batches, train_config, progress=progress, desc="judge (all languages)",
                  device=resolve_device(device))
    return model.eval(), history


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Fine-tune the English FastSpeech teacher to a speaker of another "
                                "language, or train the same architecture from scratch on the same data.")
    p.add_argument("--mode", choices=("ci", "full"), default=None, help="corpus and settings (default: TTSLAB_CI)")
    p.add_argument("--speaker", required=True, help="target speaker, e.g. es_f, de_m")
    p.add_argument("--utterances", default="all", help="how many of its training utterances (a number or 'all')")
    p.add_argument("--init", choices=INITS, default="transfer")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the registered fastspeech_teacher "
                   "in full mode, the cached tiny CI model in ci mode)")
    p.add_argument("--steps", type=int, default=None, help="override the number of steps")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path; the log goes to <out>.log.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    args = p.parse_args(argv)

    from ttslab.config import mode as current_mode, set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    mode = args.mode or current_mode()
    set_threads(args.threads)
    teacher = load_teacher(mode, args.teacher)
    n = None if args.utterances == "all" else int(args.utterances)
    tc = replace(TRAIN_CONFIGS[mode], threads=args.threads, **({"steps": args.steps} if args.steps else {}))
    t0 = time.perf_counter()
    model, history, info = train_crosslingual(teacher, load_builtin(mode), args.speaker, n, args.init, tc,
                                              progress=True, device=args.device)
    digest = model.save(args.out, extra={"crosslingual": info})
    log = {**info, "mode": mode, "sha256": digest, "wall_seconds": round(time.perf_counter() - t0, 1),
           "history": history.to_dict(), "device": str(resolve_device(args.device)),
           "command": "python -m ttslab.train.crosslingual " + " ".join(sys.argv[1:] if argv is None else argv)}
    atomic_write_json(args.out.with_name(args.out.name + ".log.json"), log)
    print(f"{args.speaker} ({info['language']}), {info['n_utterances']} utterances, {args.init}: "
          f"final loss {info['final_loss']:.3f} in {info['seconds']:.0f} s -> {args.out}")
    return log


def load_teacher(mode: str, path: str | None = None):
    """The teacher: a checkpoint ``path``, else the registered ``fastspeech_teacher`` (full mode) or the
    cached tiny model of the CI corpus (ci mode, trained on first use)."""
    from ttslab.models.fastspeech import FastSpeech

    if path is not None:
        return FastSpeech.from_checkpoint(path)
    if mode == "full":
        from ttslab import pretrained

        return pretrained.load("fastspeech_teacher")
    from ttslab.train.fastspeech import cached_fastspeech

    return cached_fastspeech("ci", progress=False, device="cpu")


if __name__ == "__main__":
    main(sys.argv[1:])
