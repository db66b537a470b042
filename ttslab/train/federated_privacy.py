"""Recipe: a federated FastSpeech voice under differential privacy and under attack, and how it sounds.

The *federated voice* is a tiny FastSpeech (:meth:`FastSpeechConfig.tiny`) trained from scratch by
:func:`ttslab.federated.simulator.simulate` over clients that each hold a random (IID) share of the
English training utterances of the built-in corpus, FedSGD-like (SGD, a few local steps). Its quality
(:func:`voice_quality`) is measured on held-out test sentences:

* ``mel_l1``: teacher-forced mel L1 (the training loss's mel term) on the test items;
* ``mcd_dtw_db``: MCD-DTW in dB between the recording and the voice's speech (the model's own
  durations, through the shipped neural vocoder), both analysed by WORLD
  (:func:`~ttslab.vocoders.evaluate.compare_analyses`): the project's standard MCD, as in
  ``benchmarks/federated.py`` and ``benchmarks/fastspeech.py``;
* ``per``: phone error rate of the shipped judge (``ttslab.pretrained.load("judge")``) on that speech;
* ``length_ratio``: mean of predicted over recorded frames on those sentences (MCD-DTW aligns any
  length, so a voice that babbles on for several times the sentence's length can still score a low
  MCD; its PER, far above 100 %, and this ratio show it);
* ``empty_outputs``: sentences for which the model predicted (almost) no frames, or non-finite ones
  (noise can break a voice entirely): PER 100 %, no MCD.

:func:`train_voice` runs one configuration: any strategy, optional attackers (``reply_fn``),
optional checkpoints. :func:`private_strategy` builds DP-FedAvg for a target epsilon (sigma from
:func:`~ttslab.federated.privacy.noise_for_epsilon` for the run's rounds and sampling rate).

    python -m ttslab.train.federated_privacy --epsilon 8      # one private voice, its quality and epsilon
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ttslab.federated import ClientConfig, ClientData, FedAvg, Strategy
from ttslab.federated.partitions import iid
from ttslab.federated.privacy import DPFedAvg, noise_for_epsilon
from ttslab.federated.simulator import SimulationConfig, SimulationResult, simulate
from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items, fastspeech_loss
from ttslab.models.fastspeech.data import stats_from_items

#: Per mode: clients, clients sampled per round, rounds, local SGD steps and batch, learning rate,
#: training utterances used (None: all), test sentences (taken round-robin over the speakers) and those
#: scored for MCD and PER, and DP's clipping bound C (about the norm of an update; measured 1.1 - 1.4).
SETTINGS = {
    "ci": dict(clients=8, per_round=4, rounds=4, local_steps=2, batch_size=4, lr=3e-3, train_utterances=64,
               test_utterances=10, audio_utterances=2, max_norm=1.0),
    "full": dict(clients=40, per_round=10, rounds=30, local_steps=4, batch_size=8, lr=3e-3, train_utterances=800,
                 test_utterances=60, audio_utterances=6, max_norm=1.0),
}
DELTA = 1e-5
#: Fewer predicted frames than this count as no speech: PER 100 %, left out of the MCD mean.
MIN_FRAMES = 8


@dataclass
class VoiceTask:
    """Everything a federated voice run needs: the model factory and loss, the clients, the test set."""

    model_fn: Callable[[], FastSpeech]
    loss_fn: Callable
    clients: list[ClientData]
    test_items: list[dict]
    test_utterances: list
    settings: dict
    #: WORLD analyses of the test recordings by utterance id, filled by :func:`voice_quality` on first use.
    reference_analyses: dict = field(default_factory=dict)

    @property
    def sample_rate(self) -> float:
        """``q``: the fraction of clients sampled per round (the accountant's sampling rate)."""
        return self.settings["per_round"] / len(self.clients)


def voice_task(corpus, settings: dict, seed: int = 0, progress: bool = False) -> VoiceTask:
    """Clients (an :func:`~ttslab.federated.partitions.iid` split of the first ``train_utterances``
    English training utterances, by id), the tiny model with the training data's pitch/energy
    statistics, and the English test utterances."""
    config = FastSpeechConfig.tiny()
    train = sorted((u for u in corpus.filter(split="train") if u.speaker in config.speakers), key=lambda u: u.id)
    if settings.get("train_utterances"):
        rng = np.random.default_rng(seed)
        train = [train[i] for i in sorted(rng.permutation(len(train))[:settings["train_utterances"]])]
    test = round_robin(sorted((u for u in corpus.filter(split="test") if u.speaker in config.speakers),
                              key=lambda u: u.id), settings.get("test_utterances"))
    if not train or not test:
        raise ValueError(f"no English train/test utterances in {corpus!r}; build the corpus first")
    items = fastspeech_items(train, config.speakers, progress=progress)
    by_id = {it["utt_id"]: it for it in items}
    stats = stats_from_items(items, config.speakers)
    part = iid(train, settings["clients"], seed=seed)
    clients = [ClientData(k, [by_id[i] for i in ids], collate_fastspeech, lengths=[len(by_id[i]["mel"]) for i in ids])
               for k, ids in sorted(part.clients.items())]

    def model_fn() -> FastSpeech:
        model = FastSpeech(config)
        model.set_stats(stats)
        return model

    return VoiceTask(model_fn, fastspeech_loss, clients, fastspeech_items(test, config.speakers), test, settings)


def round_robin(utterances: Sequence, count: int | None) -> list:
    """The first ``count`` utterances taking one per speaker in turn (speakers in order of appearance).

    >>> from types import SimpleNamespace as U
    >>> [u.id for u in round_robin([U(id=i, speaker=s) for i, s in enumerate("aabbb")], 4)]
    [0, 2, 1, 3]
    """
    queues: dict = {}
    for u in utterances:
        queues.setdefault(u.speaker, []).append(u)
    out = []
    while any(queues.values()) and (count is None or len(out) < count):
        for q in queues.values():
            if q and (count is None or len(out) < count):
                out.append(q.pop(0))
    return out


def private_strategy(task: VoiceTask, epsilon: float, *, inner: Strategy | None = None, seed: int = 0) -> DPFedAvg:
    """DP-FedAvg whose sigma reaches ``epsilon`` (at ``DELTA``) after the task's rounds at its sampling
    rate; ``epsilon = inf`` gives clipping without noise."""
    s = task.settings
    sigma = noise_for_epsilon(epsilon, DELTA, task.sample_rate, s["rounds"])
    return DPFedAvg(max_norm=s["max_norm"], noise_multiplier=sigma, sample_rate=task.sample_rate, delta=DELTA,
                    inner=inner, seed=seed)


def train_voice(task: VoiceTask, strategy: Strategy | None = None, *, reply_fn=None, seed: int = 0,
                checkpoint_dir: str | None = None, progress: bool = False) -> SimulationResult:
    """One federated training of the task's voice (settings in ``task.settings``)."""
    s = task.settings
    config = ClientConfig(local_steps=s["local_steps"], batch_size=s["batch_size"], lr=s["lr"], optimizer="adamw",
                          grad_clip=1.0, seed=seed)
    sim = SimulationConfig(rounds=s["rounds"], clients_per_round=s["per_round"], seed=seed,
                           checkpoint_dir=checkpoint_dir)
    return simulate(task.model_fn, task.loss_fn, task.clients, strategy or FedAvg(), config, sim, reply_fn=reply_fn,
                    progress=progress)


def voice_quality(weights, task: VoiceTask, judge=None, audio_utterances: int | None = None, vocoder=None) -> dict:
    """``{"mel_l1", "mcd_dtw_db", "per", "empty_outputs", "length_ratio"}`` of ``weights`` (module docstring); ``judge`` and
    ``vocoder`` default to the shipped ones. MCD and PER on the first ``audio_utterances`` test sentences
    (one per speaker first)."""
    from ttslab import pretrained
    from ttslab.dsp.world import world_analysis
    from ttslab.federated.client import build_model
    from ttslab.metrics import corpus_phone_error_rate
    from ttslab.train.loop import Batches, evaluate
    from ttslab.vocoders.evaluate import compare_analyses

    judge = judge if judge is not None else pretrained.load("judge")
    vocoder = vocoder if vocoder is not None else pretrained.load("vocoder")
    model = build_model(task.model_fn, weights).eval()
    with torch.no_grad():
        metrics = evaluate(model, task.loss_fn, Batches(task.test_items, 8, collate_fastspeech, shuffle=False), "cpu")
    count = audio_utterances or task.settings["audio_utterances"]
    picked, seen = [], set()
    for utt, item in zip(task.test_utterances, task.test_items):   # one per speaker first, then the rest
        if utt.speaker not in seen:
            picked.append((utt, item))
            seen.add(utt.speaker)
    picked = picked[:count]
    mcds, refs, hyps, ratios = [], [], [], []
    for utt, item in picked:
        refs.append(list(utt.phones))
        try:
            with torch.no_grad():
                mel = model.infer(item, item["speaker"])["mel"].numpy()
        except ValueError:             # e.g. noise drove a predicted duration negative (NaN weights)
            mel = np.zeros((0, 80))
        if len(mel) < MIN_FRAMES or not np.isfinite(mel).all():   # "no frames at all", or broken weights
            hyps.append([])
            continue
        speech = np.asarray(vocoder.vocode(mel.T), dtype=np.float32)
        if utt.id not in task.reference_analyses:
            task.reference_analyses[utt.id] = world_analysis(utt.load_audio(), utt.sample_rate)
        mcds.append(compare_analyses(task.reference_analyses[utt.id], world_analysis(speech, utt.sample_rate),
                                     same_timing=False)["mcd_dtw_db"])
        hyps.append(judge.transcribe(speech))
        ratios.append(len(mel) / len(item["mel"]))
    return {"mel_l1": float(metrics["mel"]), "mcd_dtw_db": float(np.mean(mcds)) if mcds else math.nan,
            "per": float(corpus_phone_error_rate(refs, hyps)), "empty_outputs": len(picked) - len(mcds),
            "length_ratio": float(np.mean(ratios)) if ratios else math.nan}


def epsilon_curve(task: VoiceTask, epsilons: Sequence[float], judge=None, seed: int = 0,
                  progress: bool = False) -> list[dict]:
    """One private voice per epsilon: ``{"epsilon", "sigma", "spent", **voice_quality}`` each."""
    rows = []
    for eps in epsilons:
        strategy = private_strategy(task, eps, seed=seed)
        result = train_voice(task, strategy, seed=seed, progress=progress)
        rows.append({"epsilon": eps, "sigma": strategy.noise_multiplier, "spent": strategy.epsilon(),
                     **voice_quality(result.weights, task, judge)})
    return rows


def frame_batches(corpus, clients: int, frames: int, split: str = "test", offset: int = 40) -> list[tuple]:
    """``clients`` batches ``(frames x 80 log-mel, speaker labels)``: ``frames`` consecutive frames
    from ``offset`` of the first utterance (by id) of each of the first ``clients`` English speakers
    that has that many: one client, one speaker, one stretch of speech (the attack's victims)."""
    from ttslab.data.datasets import AcousticDataset
    from ttslab.dsp.spectral import num_frames

    speakers = FastSpeechConfig.tiny().speakers
    first = {}
    for u in sorted(corpus.filter(split=split), key=lambda u: u.id):
        long_enough = u.num_samples is not None and num_frames(u.num_samples) >= offset + frames
        if u.speaker in speakers and u.speaker not in first and u.segments is not None and long_enough:
            first[u.speaker] = u
    chosen = [first[s] for s in speakers if s in first][:clients]
    if len(chosen) < clients:
        raise ValueError(f"only {len(chosen)} speakers have an utterance of {offset + frames} frames; ask for fewer")
    data = AcousticDataset(chosen, speakers=speakers, progress=False)
    return [(torch.from_numpy(np.asarray(data[k]["mel"][offset:offset + frames], dtype=np.float32)),
             torch.full((frames,), int(data[k]["speaker"]))) for k in range(clients)]


def frame_clients(corpus, frames_per_speaker: int, clients: int = 10, seed: int = 0) -> tuple[list[ClientData], tuple]:
    """Frame-classification clients: every 4th frame of the first training utterances of each English
    speaker (up to ``frames_per_speaker``), pooled and dealt out at random to ``clients`` clients
    (IID: one-speaker clients would each pull the classifier to their own label), and held-out
    ``(frames, labels)`` from the test split."""
    from ttslab.data.datasets import AcousticDataset

    speakers = FastSpeechConfig.tiny().speakers

    def frames_of(split, per_speaker):
        out = {}
        for s in speakers:
            utts = sorted((u for u in corpus.filter(split=split) if u.speaker == s and u.segments is not None),
                          key=lambda u: u.id)[:6]
            if utts:
                mel = np.concatenate([it["mel"][::4] for it in AcousticDataset(utts, speakers, progress=False).items])
                out[speakers.index(s)] = torch.from_numpy(mel[:per_speaker].astype(np.float32))
        return out

    train = frames_of("train", frames_per_speaker)
    items = [{"frames": f, "speaker": torch.tensor(k)} for k in sorted(train) for f in train[k]]
    order = np.random.default_rng(seed).permutation(len(items))
    shares = np.array_split(order, clients)
    data = [ClientData(k, [items[i] for i in sorted(share)], collate_frames) for k, share in enumerate(shares)]
    test = frames_of("test", 64)
    x = torch.cat([test[k] for k in sorted(test)])
    y = torch.cat([torch.full((len(test[k]),), k) for k in sorted(test)])
    return data, (x, y)


def collate_frames(items: list[dict]) -> dict:
    return {"frames": torch.stack([it["frames"] for it in items]), "speaker": torch.stack([it["speaker"] for it in items])}


def main(argv: list[str] | None = None) -> dict:
    from ttslab.config import mode as default_mode
    from ttslab.data import load_builtin

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", default=None, choices=sorted(SETTINGS), help="default: TTSLAB_CI")
    parser.add_argument("--epsilon", type=float, default=math.inf, help="target epsilon (inf: no noise)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    mode = args.mode or default_mode()
    task = voice_task(load_builtin(mode), SETTINGS[mode], seed=args.seed, progress=True)
    row = epsilon_curve(task, [args.epsilon], seed=args.seed, progress=True)[0]
    print(json.dumps(row, indent=1))
    return row


if __name__ == "__main__":
    main()
