"""Training recipe for the DNN-SPSS voices (:mod:`ttslab.models.dnn_spss`), one voice per speaker.

Data, for each ``train`` utterance of the speaker (the same utterances the HMM voice trains on):

* WORLD features from :func:`ttslab.dsp.streams.extract_features` (the HMM system's settings and
  feature cache: both systems see identical frames), turned into the HMM's observation streams
  (:class:`~ttslab.dsp.streams.Observations`): mcep, continuous log-F0 and band aperiodicity,
  each with Δ and Δ², plus the voicing flag;
* frames per phone from the phone segments (:func:`~ttslab.dsp.streams.phone_frame_ranges`, as
  the HMM cuts them) and the 498 linguistic features of each phone.

The last ``valid_fraction`` of the utterances (at least one) are held out for validation: it picks
the best weights and feeds the training log; the test sentences are never seen. Targets are
z-scored with :class:`ttslab.dsp.normalize.Normalizer` fitted on the training part.

Batches: the duration model sees whole utterances (phones padded); the acoustic models see a random
window of ``chunk`` frames from each utterance of the batch (the whole utterance if shorter), so a
step covers many sentences without 5 ms frames, nearly copies of their neighbours, filling it.
The windows are drawn from a seeded generator, so a run is reproducible.

Command (the shipped checkpoints; 9.2 min of CPU on one thread once the features are cached)::

    python -m ttslab.train.dnn_spss --mode full --out /tmp/ckpt/dnn

writes ``dnn_full_<speaker>.pt`` (float16 weights) with its ``.sha256`` for each speaker, and
``dnn_full_training_log.json`` (configs, per-network histories and seconds, threads, machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.device import resolve_device
from ttslab.dsp.normalize import Normalizer
from ttslab.dsp.streams import Observations, extract_features, phone_frame_ranges
from ttslab.models.dnn_spss import (KINDS, AcousticModel, DNNConfig, DNNVoice, DurationModel, acoustic_loss,
                                    duration_loss, num_parameters)
from ttslab.train.loop import Batches, History, TrainConfig, fit

#: Speakers of a full-mode run: the HMM benchmark's (two male, two female, two accents).
FULL_SPEAKERS = ("en_us_m", "en_us_f", "en_gb_m", "en_rp_f")


# ----------------------------------------------------------------------------- settings per mode


def default_train_configs(mode: str = "full") -> dict[str, TrainConfig]:
    """Optimisation settings per network (``"duration"``, ``"ff"``, ``"lstm"``) for ``mode``.

    Full mode (313 training + 17 validation utterances a speaker), measured CPU time on one thread:
    ~3 s duration, ~63 s FF, ~72 s LSTM a speaker, 9.2 min for the four voices (14.2 min wall-clock
    on a shared 2-core box). Small batches (16 windows of 32 frames) with a high learning rate learnt
    faster per CPU second than 4096-frame batches (en_us_m, validation loss 0.56 vs 0.74 at equal
    cost); longer training still helps a little (FF 0.56 at 3200 steps, 0.55 at 6000; LSTM 0.54,
    0.51). CI mode trains the same nets for fewer steps (the CI corpus has 40 utterances a speaker).
    """
    if mode not in ("ci", "full"):
        raise ValueError(f"mode must be 'ci' or 'full', got {mode!r}")
    full = mode == "full"
    common = dict(weight_decay=0.0, schedule="cosine", min_lr_ratio=0.05, grad_clip=1.0, log_every=20, threads=None)
    return {
        "duration": TrainConfig(steps=1000 if full else 300, batch_size=16, lr=1e-3, warmup=20,
                                valid_every=100 if full else 50, **common),
        "ff": TrainConfig(steps=6000 if full else 800, batch_size=16, lr=3e-3, warmup=100,
                          valid_every=1000 if full else 200, **common),
        "lstm": TrainConfig(steps=6000 if full else 800, batch_size=16, lr=3e-3, warmup=100,
                            valid_every=1000 if full else 200, **common),
    }


#: Frames per training window of each acoustic kind (5 ms frames: 32 = 0.16 s).
CHUNK_FRAMES = {"ff": 32, "lstm": 32}


# ----------------------------------------------------------------------------- data


def training_utterances(corpus, speaker: str, max_utterances: int | None = None) -> list:
    """The ``train`` split of ``speaker`` (the HMM voice's training set), with segments checked."""
    if speaker not in corpus.speakers:
        raise KeyError(f"speaker {speaker!r} is not in this corpus; it has {corpus.speakers}")
    utts = [u for u in corpus if u.speaker == speaker and u.split == "train"][:max_utterances]
    if not utts:
        raise ValueError(f"speaker {speaker!r} has no training utterances (split 'train')")
    missing = [u.id for u in utts if u.segments is None]
    if missing:
        raise ValueError(f"utterances {missing[:3]} have no phone segments; align the corpus first "
                         "(ttslab.classical.align)")
    return utts


def prepare_utterance(utterance, features: np.ndarray, config: DNNConfig) -> dict:
    """One utterance's arrays: ``ling`` (P, 498), ``durations`` (P,) frames summing to T,
    ``targets`` (T, n_static) raw streams with Δ/Δ², ``vuv`` (T,) 0/1, ``positions`` (T, 3)."""
    from ttslab.text.context import contexts_from_segments, frame_features, linguistic_features

    features = np.asarray(features)
    bap_dim = features.shape[1] - config.mcep_order - 2
    if bap_dim != config.bap_dim:
        raise ValueError(f"{utterance.id}: features have {bap_dim} aperiodicity bands, the config {config.bap_dim}; "
                         "were they analysed at another sample rate or mcep order?")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{utterance.id}: WORLD features contain NaN/inf; delete its feature cache entry")
    segments = list(utterance.segments)
    obs = Observations.from_features(features, config.mcep_order)
    targets = np.concatenate([obs.mcep, obs.lf0, obs.bap], axis=1).astype(np.float32)
    ranges = phone_frame_ranges(segments, len(features), config.hop)
    durations = (ranges[:, 1] - ranges[:, 0]).astype(np.int64)
    ling = linguistic_features(contexts_from_segments(segments))
    positions = frame_features(np.zeros((len(ling), 0), np.float32), durations, config.duration_scale)
    return {"utt_id": utterance.id, "ling": ling, "durations": durations, "targets": targets,
            "vuv": obs.voiced.astype(np.float32), "positions": positions,
            "phone_of_frame": np.repeat(np.arange(len(ling)), durations),
            "labels": [s.label for s in segments]}


def prepare_data(utterances: Sequence, config: DNNConfig, *, jobs: int = 1, cache: bool = True,
                 cache_root: str | None = None, progress: bool = True) -> tuple[list[dict], list[np.ndarray]]:
    """:func:`prepare_utterance` for each utterance; also returns the static mel-cepstra list for GV.

    Features come from (and go to) the feature cache the HMM voices use: one key, the same files.
    """
    feats = extract_features(list(utterances), config.feature_config(), jobs=jobs, cache=cache, cache_root=cache_root,
                             progress=progress)
    items = [prepare_utterance(u, f, config) for u, f in zip(utterances, feats)]
    mceps = [np.asarray(f[:, :config.mcep_order + 1], dtype=np.float64) for f in feats]
    return items, mceps


def fit_normalizers(items: Sequence[dict]) -> dict[str, Normalizer]:
    """z-score normalizers of the phone durations (frames) and of the continuous acoustic targets."""
    return {"duration": Normalizer().fit([it["durations"][:, None].astype(np.float64) for it in items]),
            "acoustic": Normalizer().fit([it["targets"] for it in items])}


def normalize_items(items: Sequence[dict], normalizers: dict[str, Normalizer]) -> list[dict]:
    """Items with ``y_duration`` (P,) and ``y`` (T, n_static) z-scored (the raw arrays are dropped)."""
    out = []
    for it in items:
        new = {k: v for k, v in it.items() if k != "targets"}
        new["y_duration"] = normalizers["duration"].transform(it["durations"][:, None])[:, 0]
        new["y"] = normalizers["acoustic"].transform(it["targets"])
        out.append(new)
    return out


# ----------------------------------------------------------------------------- batches


def collate_duration(items: list[dict]) -> dict:
    """Phones of whole utterances, padded: ``x`` (B, P, 498), ``y`` (B, P), ``mask`` (B, P)."""
    B, P = len(items), max(len(it["ling"]) for it in items)
    x = np.zeros((B, P, items[0]["ling"].shape[1]), np.float32)
    y = np.zeros((B, P), np.float32)
    mask = np.zeros((B, P), np.float32)
    for b, it in enumerate(items):
        n = len(it["ling"])
        x[b, :n], y[b, :n], mask[b, :n] = it["ling"], it["y_duration"], 1.0
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "mask": torch.from_numpy(mask)}


def acoustic_collate(chunk: int | None = None, seed: int = 0, phone_level: bool = True):
    """A collate function over a random ``chunk``-frame window of each utterance (the whole utterance
    when ``chunk`` is None or longer), padded: ``y`` (B, L, n_static), ``vuv`` (B, L), ``mask`` (B, L),
    ``lengths`` (B,), and the inputs: with ``phone_level`` (faster, see
    :meth:`~ttslab.models.dnn_spss.AcousticModel.forward_phones`) ``ling`` (B, P, 498) of the phones
    the window covers, ``phone_index`` (B, L) and ``positions`` (B, L, 3); else ``x`` (B, L, 501)."""
    rng = np.random.default_rng(seed)

    def collate(items: list[dict]) -> dict:
        windows = []
        for it in items:
            T = len(it["y"])
            a = int(rng.integers(0, T - chunk + 1)) if chunk and T > chunk else 0
            windows.append((a, T if not chunk else min(T, a + chunk)))
        B, L = len(items), max(b - a for a, b in windows)
        y = np.zeros((B, L, items[0]["y"].shape[1]), np.float32)
        vuv, mask = np.zeros((B, L), np.float32), np.zeros((B, L), np.float32)
        positions = np.zeros((B, L, items[0]["positions"].shape[1]), np.float32)
        index = np.zeros((B, L), np.int64)
        spans = [(it["phone_of_frame"][a], it["phone_of_frame"][b - 1] + 1) for it, (a, b) in zip(items, windows)]
        P = max(q - p for p, q in spans)
        ling = np.zeros((B, P, items[0]["ling"].shape[1]), np.float32)
        for i, (it, (a, b), (p, q)) in enumerate(zip(items, windows, spans)):
            n = b - a
            ling[i, :q - p] = it["ling"][p:q]
            index[i, :n] = it["phone_of_frame"][a:b] - p
            positions[i, :n] = it["positions"][a:b]
            y[i, :n], vuv[i, :n], mask[i, :n] = it["y"][a:b], it["vuv"][a:b], 1.0
        out = {"y": torch.from_numpy(y), "vuv": torch.from_numpy(vuv), "mask": torch.from_numpy(mask),
               "lengths": torch.tensor([b - a for a, b in windows], dtype=torch.int64)}
        if phone_level:
            out.update(ling=torch.from_numpy(ling), phone_index=torch.from_numpy(index),
                       positions=torch.from_numpy(positions))
        else:
            gathered = np.take_along_axis(ling, index[..., None], axis=1)
            out["x"] = torch.from_numpy(np.concatenate([gathered, positions], axis=-1))
        return out

    return collate


# ----------------------------------------------------------------------------- training


def _split(items: list[dict], valid_fraction: float) -> tuple[list[dict], list[dict]]:
    n_valid = max(1, int(round(valid_fraction * len(items)))) if valid_fraction > 0 and len(items) > 1 else 0
    return items[:len(items) - n_valid], items[len(items) - n_valid:]


def _history_summary(history: History, max_points: int = 200) -> dict:
    """The history as a dict, its training log thinned to at most ``max_points`` entries."""
    d = history.to_dict()
    d["train"] = d["train"][::max(1, -(-len(d["train"]) // max_points))]
    return d


def train_dnn_voice(corpus, speaker: str, config: DNNConfig | None = None,
                    train_config: TrainConfig | dict[str, TrainConfig] | None = None, progress: bool = True, *,
                    kinds: Sequence[str] | None = None, mode: str = "full", max_utterances: int | None = None,
                    valid_fraction: float = 0.05, jobs: int = 1, cache: bool = True,
                    cache_root: str | None = None, device: str | torch.device = "auto") -> DNNVoice:
    """Train a duration model and an acoustic model per kind on ``speaker``'s ``train`` utterances.

    ``config``: sizes (default :meth:`DNNConfig.full`); ``kinds``: acoustic models to train (default
    ``(config.kind,)``); ``train_config``: one :class:`TrainConfig` for every network, or a dict with
    keys ``"duration"``, ``"ff"``, ``"lstm"`` (missing ones from :func:`default_train_configs` of
    ``mode``, "full" or "ci"). Deterministic for a given corpus and configs.
    ``voice.info`` records data sizes, seconds per network, histories and parameter counts. The
    networks train on ``device`` (default ``"auto"``: the GPU when there is one; :mod:`ttslab.device`)
    and the voice stays there (``voice.to("cpu")`` moves it).
    """
    device = resolve_device(device)  # fail before the features are extracted
    from ttslab.data.speakers import espeak_voice_for
    from ttslab.classical.mlpg import global_variance
    config = config or DNNConfig.full()
    kinds = tuple(kinds or (config.kind,))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown acoustic kind(s) {bad}; use {KINDS}")
    configs = default_train_configs(mode)
    if isinstance(train_config, TrainConfig):
        configs = {k: train_config for k in configs}
    elif train_config is not None:
        configs.update(train_config)

    t0 = time.perf_counter()
    utts = training_utterances(corpus, speaker, max_utterances)
    items, mceps = prepare_data(utts, config, jobs=jobs, cache=cache, cache_root=cache_root, progress=progress)
    feature_seconds = time.perf_counter() - t0
    train_items, valid_items = _split(items, valid_fraction)
    normalizers = fit_normalizers(train_items)
    train_items, valid_items = normalize_items(train_items, normalizers), normalize_items(valid_items, normalizers)
    info: dict = {"n_utterances": len(train_items), "n_valid_utterances": len(valid_items),
                  "n_frames": int(sum(len(it["y"]) for it in train_items)),
                  "n_phones": int(sum(len(it["ling"]) for it in train_items)),
                  "feature_seconds": round(feature_seconds, 2), "seconds": {}, "cpu_seconds": {}, "parameters": {},
                  "history": {}, "train_configs": {}}

    def run(name: str, model: torch.nn.Module, loss_fn, collate, valid_collate, tc: TrainConfig) -> None:
        lengths = [len(it["y"]) for it in train_items]
        batches = Batches(train_items, tc.batch_size, collate, lengths=lengths, seed=tc.seed)
        valid = (Batches(valid_items, tc.batch_size, valid_collate, lengths=[len(it["y"]) for it in valid_items],
                         shuffle=False) if valid_items else None)
        start, cpu = time.perf_counter(), time.process_time()
        history = fit(model, loss_fn, batches, tc, valid_batches=valid, progress=progress,
                      desc=f"{speaker} {name}", device=device)
        info["seconds"][name] = round(time.perf_counter() - start, 2)
        info["cpu_seconds"][name] = round(time.process_time() - cpu, 2)
        info["parameters"][name] = num_parameters(model)
        info["history"][name] = _history_summary(history)
        info["train_configs"][name] = tc.to_dict()

    torch.manual_seed(configs["duration"].seed)
    duration = DurationModel(config)
    run("duration", duration, duration_loss, collate_duration, collate_duration, configs["duration"])
    acoustic = {}
    for kind in kinds:
        tc = configs[kind]
        torch.manual_seed(tc.seed)
        acoustic[kind] = AcousticModel(config.with_kind(kind))
        run(kind, acoustic[kind], acoustic_loss, acoustic_collate(CHUNK_FRAMES[kind], seed=tc.seed),
            acoustic_collate(None), tc)
    info["training_seconds"] = round(time.perf_counter() - t0, 2)
    info["model_seconds"] = round(sum(info["seconds"].values()), 2)
    info["model_cpu_seconds"] = round(sum(info["cpu_seconds"].values()), 2)
    phones = sorted({p for it in items for p in it["labels"]})
    return DNNVoice(speaker, config.with_kind(kinds[0]), duration, acoustic, normalizers, global_variance(mceps),
                    espeak_voice_for(speaker, utts[0].language).to_dict(), phones, info)


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Train the DNN-SPSS voices (duration + FF + LSTM per speaker).")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="corpus and steps (default: TTSLAB_CI)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the voices and the training log")
    parser.add_argument("--speakers", default=None, help="comma-separated (default: " + ",".join(FULL_SPEAKERS) + ")")
    parser.add_argument("--kinds", default="ff,lstm", help="acoustic models to train (default ff,lstm)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for uncached WORLD feature extraction")
    parser.add_argument("--device", default="auto", help="auto (GPU if any, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    args = parser.parse_args(argv)

    from ttslab.config import mode as current_mode, set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    mode = args.mode or current_mode()
    set_threads(args.threads)
    corpus = load_builtin(mode).filter(speakers=list(ENGLISH_SPEAKERS))  # the source speakers
    speakers = args.speakers.split(",") if args.speakers else list(FULL_SPEAKERS)
    kinds = args.kinds.split(",")
    config = DNNConfig.full(kinds[0])
    log = {"mode": mode, "config": asdict(config), "kinds": kinds, "threads": args.threads,
           "device": str(resolve_device(args.device)),
           "train_configs": {k: v.to_dict() for k, v in default_train_configs(mode).items()},
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                      f"torch {torch.__version__}",
           "command": "python -m ttslab.train.dnn_spss " + " ".join(argv if argv is not None else sys.argv[1:]),
           "voices": {}}
    started = time.perf_counter()
    for speaker in speakers:
        voice = train_dnn_voice(corpus, speaker, config, kinds=kinds, mode=mode, jobs=args.jobs, device=args.device)
        path = args.out / f"dnn_{mode}_{speaker}.pt"
        digest = voice.save(path, half=not args.fp32)
        log["voices"][speaker] = {"path": path.name, "sha256": digest, "bytes": path.stat().st_size, **voice.info}
        print(f"{speaker}: {voice} trained in {voice.info['model_seconds']:.0f} s "
              f"(+ {voice.info['feature_seconds']:.0f} s features) -> {path}", flush=True)
    log["total_seconds"] = round(time.perf_counter() - started, 1)
    log["total_model_seconds"] = round(sum(v["model_seconds"] for v in log["voices"].values()), 1)
    log["total_bytes"] = sum(v["bytes"] for v in log["voices"].values())
    atomic_write_json(args.out / f"dnn_{mode}_training_log.json", log)
    print(f"{len(speakers)} voices: {log['total_model_seconds'] / 60:.1f} min of training, "
          f"{log['total_bytes'] / 1e6:.2f} MB -> {args.out}")
    return log


if __name__ == "__main__":
    main(sys.argv[1:])
