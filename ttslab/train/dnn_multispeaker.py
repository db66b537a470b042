"""Recipe: one multi-speaker DNN-SPSS voice (:mod:`ttslab.models.dnn_multispeaker`) for all English speakers.

Data: the first ``per_speaker`` ``train`` utterances of every speaker (default: all ten English
speakers, all their utterances), prepared exactly as for the per-speaker voices
(:func:`ttslab.train.dnn_spss.prepare_data`: the shared WORLD feature cache, the same linguistic and
position features, the same Δ/Δ² streams); each item is tagged with its speaker's index. The last
5 % of each speaker's utterances are held out for validation. Targets are z-scored over all speakers.
The duration net and the feed-forward acoustic net train like the per-speaker ones (same batches of
16 windows of 32 frames, same learning rates, same number of steps: :func:`default_train_configs`).

Command line (writes ``<out>`` with its ``.sha256`` and ``<out>.log.json``)::

    python -m ttslab.train.dnn_multispeaker --mode full --per-speaker 40 --out /tmp/ckpt/dnn_multi.pt
    python -m ttslab.train.dnn_multispeaker --mode ci --per-speaker 5 --out /tmp/dnn_multi_ci.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Sequence

import torch

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.device import resolve_device
from ttslab.models.dnn_multispeaker import (MultiSpeakerDNN, build_nets, multispeaker_acoustic_loss,
                                            multispeaker_duration_loss)
from ttslab.models.dnn_spss import DNNConfig
from ttslab.train.dnn_spss import (CHUNK_FRAMES, acoustic_collate, collate_duration, fit_normalizers,
                                   normalize_items, prepare_data, training_utterances)
from ttslab.train.loop import Batches, TrainConfig, fit


def default_train_configs(mode: str = "full") -> dict[str, TrainConfig]:
    """The per-speaker settings (:func:`ttslab.train.dnn_spss.default_train_configs`): the same steps,
    so the shared model costs what ONE per-speaker voice costs (full: 1000 duration + 6000 FF steps,
    ~1-2 min of CPU on one thread) while it serves ten speakers."""
    from ttslab.train.dnn_spss import default_train_configs as per_speaker

    configs = per_speaker(mode)
    return {k: configs[k] for k in ("duration", "ff")}


def with_speaker(collate):
    """A collate function that also returns ``speaker`` (B,): each item's speaker index."""
    def collate_with_speaker(items: list[dict]) -> dict:
        batch = collate(items)
        batch["speaker"] = torch.tensor([it["speaker"] for it in items], dtype=torch.long)
        return batch

    return collate_with_speaker


def split_per_speaker(items: Sequence[dict], valid_fraction: float) -> tuple[list[dict], list[dict]]:
    """The last ``valid_fraction`` (at least one when > 0) of each speaker's items for validation."""
    train, valid = [], []
    for s in sorted({it["speaker"] for it in items}):
        mine = [it for it in items if it["speaker"] == s]
        n = max(1, int(round(valid_fraction * len(mine)))) if valid_fraction > 0 and len(mine) > 1 else 0
        train += mine[:len(mine) - n]
        valid += mine[len(mine) - n:]
    return train, valid


def train_multispeaker_dnn(corpus, speakers: Sequence[str] = ENGLISH_SPEAKERS, config: DNNConfig | None = None,
                           train_configs: dict[str, TrainConfig] | None = None, *, code: str = "onehot",
                           code_dim: int = 8, mode: str = "full", per_speaker: int | None = None,
                           valid_fraction: float = 0.05, jobs: int = 1, progress: bool = True,
                           device: str | torch.device = "auto") -> MultiSpeakerDNN:
    """Train the shared duration and acoustic nets on ``speakers``' training utterances; deterministic."""
    from ttslab.classical.mlpg import global_variance
    from ttslab.data.speakers import espeak_voice_for

    device = resolve_device(device)
    config = (config or DNNConfig.full()).with_kind("ff")
    speakers = list(dict.fromkeys(speakers))
    if len(speakers) < 2:
        raise ValueError(f"a multi-speaker model needs at least 2 speakers, got {speakers}")
    configs = {**default_train_configs(mode), **(train_configs or {})}
    t0 = time.perf_counter()
    items, gv, frontends = [], {}, {}
    for i, spk in enumerate(speakers):
        utts = training_utterances(corpus, spk, per_speaker)
        mine, mceps = prepare_data(utts, config, jobs=jobs, progress=progress)
        for it in mine:
            it["speaker"] = i
        items += mine
        gv[spk] = global_variance(mceps)
        frontends[spk] = espeak_voice_for(spk, utts[0].language).to_dict()
    feature_seconds = time.perf_counter() - t0
    train_items, valid_items = split_per_speaker(items, valid_fraction)
    normalizers = fit_normalizers(train_items)
    train_items, valid_items = normalize_items(train_items, normalizers), normalize_items(valid_items, normalizers)
    torch.manual_seed(configs["duration"].seed)  # the initial weights
    duration, acoustic = build_nets(config, len(speakers), code, code_dim)
    info = {"speakers": speakers, "code": code, "per_speaker": per_speaker, "n_utterances": len(train_items),
            "n_valid_utterances": len(valid_items), "feature_seconds": round(feature_seconds, 1), "seconds": {},
            "cpu_seconds": {}, "parameters": {}, "history": {}, "train_configs": {}}
    for name, net, loss, collate, valid_collate in (
            ("duration", duration, multispeaker_duration_loss, collate_duration, collate_duration),
            ("ff", acoustic, partial(multispeaker_acoustic_loss, config=config),
             acoustic_collate(CHUNK_FRAMES["ff"], seed=configs["ff"].seed), acoustic_collate(None))):
        tc = configs[name]
        torch.manual_seed(tc.seed)
        lengths = [len(it["y"]) for it in train_items]
        batches = Batches(train_items, tc.batch_size, with_speaker(collate), lengths=lengths, seed=tc.seed)
        valid = (Batches(valid_items, tc.batch_size, with_speaker(valid_collate), shuffle=False,
                         lengths=[len(it["y"]) for it in valid_items]) if valid_items else None)
        start, cpu = time.perf_counter(), time.process_time()
        history = fit(net, loss, batches, tc, valid_batches=valid, progress=progress, desc=f"multi-speaker {name}",
                      device=device)
        info["seconds"][name] = round(time.perf_counter() - start, 2)
        info["cpu_seconds"][name] = round(time.process_time() - cpu, 2)
        info["parameters"][name] = sum(p.numel() for p in net.parameters())
        info["history"][name] = {"best_valid": history.best_valid, "best_step": history.best_step,
                                 "valid": history.valid, "final_train": history.train[-1] if history.train else None}
        info["train_configs"][name] = tc.to_dict()
    info["model_seconds"] = round(sum(info["seconds"].values()), 2)
    info["model_cpu_seconds"] = round(sum(info["cpu_seconds"].values()), 2)
    phones = sorted({p for it in items for p in it["labels"]})
    return MultiSpeakerDNN(speakers, config, duration, acoustic, normalizers, gv, frontends, phones, info)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Train one multi-speaker DNN-SPSS voice (shared hidden layers, "
                                "speaker codes) on all English speakers.")
    p.add_argument("--mode", choices=("ci", "full"), default=None, help="corpus and steps (default: TTSLAB_CI)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")
    p.add_argument("--speakers", default=None, help="comma-separated (default: the 10 English speakers)")
    p.add_argument("--per-speaker", type=int, default=None, help="training utterances per speaker (default all)")
    p.add_argument("--code", choices=("onehot", "embedding"), default="onehot")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1, help="processes for uncached WORLD feature extraction")
    p.add_argument("--device", default="auto")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    args = p.parse_args(argv)

    from ttslab.config import mode as current_mode, set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    mode = args.mode or current_mode()
    set_threads(args.threads)
    speakers = args.speakers.split(",") if args.speakers else list(ENGLISH_SPEAKERS)
    model = train_multispeaker_dnn(load_builtin(mode).filter(language="en"), speakers, code=args.code, mode=mode,
                                   per_speaker=args.per_speaker, jobs=args.jobs, device=args.device)
    digest = model.to("cpu").save(args.out, half=not args.fp32)
    log = {**model.info, "mode": mode, "sha256": digest, "bytes": args.out.stat().st_size,
           "threads": args.threads, "device": str(resolve_device(args.device)),
           "command": "python -m ttslab.train.dnn_multispeaker " + " ".join(sys.argv[1:] if argv is None else argv)}
    atomic_write_json(args.out.with_name(args.out.name + ".log.json"), log)
    print(f"{len(speakers)} speakers, {model.info['n_utterances']} utterances: trained in "
          f"{model.info['model_seconds']:.0f} s -> {args.out}")
    return log


if __name__ == "__main__":
    main(sys.argv[1:])
