"""Recipe: FastSpeech trained federated across speakers who keep their recordings (notebook 09).

The federation (:class:`Federation`): the English speakers of the built-in corpus, each speaker's
``train`` utterances split into clients by :func:`ttslab.federated.make_partition` (one speaker per
client by default; a Dirichlet mix or IID for the sweeps); every speaker's first ``test_per_speaker``
``test`` sentences are the held-out set. The model is :class:`~ttslab.models.fastspeech.FastSpeech`
of size ``tiny`` or ``small``; its normalisation statistics (per-speaker pitch/energy, the mel
mean/std) are computed once from all clients' training items: in a real deployment the clients
would send these sums once (a few hundred numbers), which this recipe does not simulate.

The experiments (each a function returning a JSON-able dict; :func:`run_all` runs every one):

* :func:`compare_strategies`: centralized training against FedAvg, FedProx and FedAsync on non-IID
  speakers, **the same number of optimizer steps** (``rounds * clients_per_round * local_steps``):
  the centralized run is one client holding all the data that takes ``clients_per_round *
  local_steps`` steps per "round" (AdamW restarted every round, as the clients' is); the held-out mel
  loss after every round, MCD-DTW and PER of the final voices (neural vocoder, shipped judge); at
  ``rounds``, ``long_rounds`` and ``longest_rounds`` (the same runs, snapshotted on the way), each row
  also against the centralized run with as many steps as its clients took one after another;
* :func:`alpha_sweep`: FedAvg on Dirichlet partitions of growing concentration ``alpha``;
* :func:`failures`: dropouts, partial stragglers, and FedAsync with stragglers on the virtual clock;
* :func:`personalization`: FedPer (``speaker_embedding`` and ``mel_head`` stay on the client) against
  the global-only model, per client, on that client's speaker.

Command line (writes ``<out>.json`` and ``<out>.log.json`` with the exact command)::

    python -m ttslab.train.federated_fastspeech --mode full --out /tmp/federated_full.json
    TTSLAB_CI=1 python -m ttslab.train.federated_fastspeech --mode ci --out /tmp/federated_ci.json
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread before numpy/torch load
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import json
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ttslab.data.speakers import ENGLISH_SPEAKERS
from ttslab.federated import (ClientConfig, ClientData, CommunicationLog, FedAsync, FedAvg, FedAvgM, FedProx,
                              SimulationConfig, SimulationResult, Strategy, UtteranceKey, build_model, clone_weights,
                              evaluate, make_partition, simulate)
from ttslab.models.fastspeech import (FastSpeech, FastSpeechConfig, collate_fastspeech, fastspeech_items,
                                      fastspeech_loss, stats_from_items, utterance_inputs)

PERSONAL_LAYERS = ("speaker_embedding", "mel_head")  #: FedPer: the speaker's own layers never leave it


@dataclass
class ExperimentConfig:
    """Sizes of one experiment run (:data:`SETTINGS` per mode)."""

    size: str = "tiny"
    speakers: tuple[str, ...] = ENGLISH_SPEAKERS
    train_per_speaker: int | None = None   # None: all of a speaker's training utterances
    test_per_speaker: int = 1
    rounds: int = 10
    long_rounds: int | None = None          # None: rounds * clients_per_round (see compare_strategies)
    long_splits: tuple[int, ...] = (2, 1)   # FedAvg at long_rounds with fewer clients x more local steps
    longest_rounds: int | None = None       # None: long_rounds * clients_per_round; 0: no third budget
    tuned_lr: float | None = None           # centralized and FedAvg also at this lr (None: not run)
    all_clients: bool = False               # FedAvg with every client in every round, at long_rounds
    clients_per_round: int = 4
    local_steps: int = 8
    batch_size: int = 8
    lr: float = 2e-3
    mu: float = 0.01
    async_alpha: float = 0.6
    alphas: tuple[float, ...] = (0.1, 1.0, 100.0)
    sweep_rounds: int = 5
    seed: int = 0

    @property
    def rounds_long(self) -> int:
        """The longer budget of :func:`compare_strategies` (``long_rounds``, default ``rounds *
        clients_per_round``)."""
        return self.long_rounds if self.long_rounds is not None else self.rounds * self.clients_per_round

    @property
    def rounds_longest(self) -> int:
        """The third budget of :func:`compare_strategies` (``longest_rounds``, default ``rounds_long *
        clients_per_round``; 0: none): where FedAvg's clients have each taken as many sequential steps
        as the centralized run took by ``rounds_long``."""
        if self.longest_rounds is not None:
            return self.longest_rounds
        return self.rounds_long * self.clients_per_round

    def client_config(self, **overrides) -> ClientConfig:
        base = dict(local_steps=self.local_steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed)
        return ClientConfig(**{**base, **overrides})

    def sim_config(self, **overrides) -> SimulationConfig:
        base = dict(rounds=self.rounds, clients_per_round=self.clients_per_round, seed=self.seed)
        return SimulationConfig(**{**base, **overrides})


#: Full mode: tiny FastSpeech, 10 speakers, 8 rounds x 4 clients x 8 steps = 256 steps per run;
#: centralized, FedAvg and FedProx continued to 32 rounds (1024 steps), centralized and FedAvg (and
#: FedAvg on IID clients) to 128 (4096 steps), FedAvg also on 2 x 16 and 1 x 32 steps per round and
#: with all 10 clients in every round (to 32 rounds on IID clients, to 128 on one-speaker ones);
#: centralized and FedAvg also at lr 8e-3; 3 held-out sentences per speaker (about 0.05 s a step of 8
#: on one thread: ~30,000 steps and ~600 synthesized sentences in all, ~35 min on the shared 2-core
#: machine); CI mode: seconds on the CI corpus.
SETTINGS = {
    "full": ExperimentConfig(rounds=8, sweep_rounds=4, test_per_speaker=3, tuned_lr=8e-3, all_clients=True),
    "ci": ExperimentConfig(speakers=ENGLISH_SPEAKERS[:4], train_per_speaker=12, test_per_speaker=1, rounds=2,
                           clients_per_round=2, local_steps=2, batch_size=4, alphas=(0.1, 100.0), sweep_rounds=2),
}


class Federation:
    """The clients, the model and the held-out sentences of one experiment (see the module docstring)."""

    def __init__(self, corpus, config: ExperimentConfig):
        self.config = config
        self.speakers = tuple(config.speakers)
        train, self.test_utts = [], []
        for s in self.speakers:
            utts = list(corpus.filter(speakers=[s], split="train"))[: config.train_per_speaker]
            test = list(corpus.filter(speakers=[s], split="test"))[: config.test_per_speaker]
            if not utts or not test:
                raise ValueError(f"speaker {s!r} has no train or test utterances in {corpus!r}")
            train += utts
            self.test_utts += test
        self.items = OrderedDict((it["utt_id"], it) for it in fastspeech_items(train, self.speakers))
        self.keys = [UtteranceKey(u.id, u.speaker, u.language) for u in train]
        self.test_items = fastspeech_items(self.test_utts, self.speakers)
        self.stats = stats_from_items(list(self.items.values()), self.speakers)
        self.model_config = getattr(FastSpeechConfig, config.size)(speakers=self.speakers)

    def model_fn(self) -> FastSpeech:
        model = FastSpeech(self.model_config)
        model.set_stats(self.stats)
        return model

    loss_fn = staticmethod(fastspeech_loss)

    def clients(self, kind: str = "speaker", **options) -> tuple[list[ClientData], dict]:
        """Clients of a partition (:func:`~ttslab.federated.make_partition`) and the partition's summary."""
        partition = make_partition(kind, self.keys, **options)
        clients = []
        for k, ids in partition.clients.items():
            items = [self.items[u] for u in ids]
            if items:
                clients.append(ClientData(k, items, collate_fastspeech, lengths=[len(it["mel"]) for it in items]))
        summary = partition.summary()
        summary["labels"] = {str(k): v for k, v in partition.labels.items()}
        return clients, summary

    def pooled(self) -> ClientData:
        """Every training item in one client: the centralized baseline."""
        items = list(self.items.values())
        return ClientData("all", items, collate_fastspeech, lengths=[len(it["mel"]) for it in items])

    def held_out(self, speaker: str | None = None) -> ClientData:
        items = [it for it in self.test_items if speaker is None or self.speakers[int(it["speaker"])] == speaker]
        return ClientData("test", items, collate_fastspeech)

    def valid_loss(self, weights, *, local_weights=None, speaker: str | None = None,
                   local_prefixes=()) -> dict[str, float]:
        """Mean loss terms of ``weights`` on the held-out sentences (of one ``speaker``, or all)."""
        return evaluate(weights, self.held_out(speaker), model_fn=self.model_fn, loss_fn=self.loss_fn,
                        batch_size=8, local_weights=local_weights, local_prefixes=local_prefixes,
                        seed=self.config.seed, threads=1).metrics

    def evaluate_fn(self, weights, server_round: int) -> dict[str, float]:
        """For :func:`~ttslab.federated.simulate`: the held-out loss and mel L1 of the global model."""
        m = self.valid_loss(weights)
        return {"loss": m["loss"], "mel": m["mel"]}


# --- voice quality: MCD-DTW and PER through the neural vocoder and the judge -----------------------

class VoiceMeter:
    """MCD-DTW (WORLD mel-cepstra, as ``benchmarks/deep_tts.py``) and PER (the shipped judge) of a
    model's voice on the held-out sentences, with the recordings' analyses computed once."""

    def __init__(self, utterances):
        from ttslab import pretrained
        from ttslab.dsp.world import world_analysis

        self.utterances = list(utterances)
        self.judge, self.vocoder = pretrained.load("judge"), pretrained.load("vocoder")
        self.refs = [world_analysis(u.load_audio(), u.sample_rate) for u in self.utterances]

    def synthesize(self, model: FastSpeech, utt) -> np.ndarray:
        with torch.no_grad():
            mel = model.infer(utterance_inputs(utt), utt.speaker)["mel"].T.numpy()
        return np.asarray(self.vocoder.vocode(mel), dtype=np.float32)

    def measure(self, models) -> dict:
        """``models``: one FastSpeech, or ``{speaker: FastSpeech}`` (personal models). Returns MCD-DTW (dB,
        mean over sentences), PER (corpus level) and the per-speaker MCD."""
        from ttslab.dsp.world import world_analysis
        from ttslab.metrics import corpus_phone_error_rate
        from ttslab.vocoders.evaluate import compare_analyses

        mcd, hyps, per_speaker = [], [], {}
        for utt, ref in zip(self.utterances, self.refs):
            model = models[utt.speaker] if isinstance(models, dict) else models
            y = self.synthesize(model, utt)
            d = compare_analyses(ref, world_analysis(y, utt.sample_rate), same_timing=False)["mcd_dtw_db"]
            mcd.append(d)
            per_speaker.setdefault(utt.speaker, []).append(d)
            hyps.append(self.judge.transcribe(y))
        per = corpus_phone_error_rate([list(u.phones) for u in self.utterances], hyps)
        return {"mcd_dtw_db": float(np.mean(mcd)), "per": float(per),
                "mcd_by_speaker": {s: float(np.mean(v)) for s, v in per_speaker.items()}}


def model_from(fed: Federation, weights, local_weights=None, local_prefixes=()) -> FastSpeech:
    model = build_model(fed.model_fn, weights, local_weights=local_weights, local_prefixes=local_prefixes,
                        seed=fed.config.seed)
    return model.eval()


# --- the experiments ------------------------------------------------------------------------------

def _curve(result, scale_bytes: bool = True) -> list[dict]:
    cum = 0
    rows = []
    for row in result.history:
        cum += row.get("bytes_up", 0) + row.get("bytes_down", 0)
        if "eval" in row:
            rows.append({"round": row["round"], "mel": row["eval"]["mel"], "loss": row["eval"]["loss"],
                         "bytes": cum if scale_bytes else 0, "virtual_time": row.get("virtual_time", 0.0)})
    return rows


def run_strategy(fed: Federation, strategy: Strategy, clients, *, client_config=None, sim_config=None,
                 progress: bool = False, server_eval: bool = True, evaluate_fn=None):
    """One federated run with the federation's held-out evaluation every round (``server_eval``; a
    FedPer model has no server-side voice to evaluate: its speaker layers live on the clients);
    ``evaluate_fn`` replaces that evaluation (e.g. a :class:`Snapshot`)."""
    c = fed.config
    evaluate_fn = evaluate_fn or (fed.evaluate_fn if server_eval else None)
    return simulate(fed.model_fn, fed.loss_fn, clients, strategy, client_config or c.client_config(),
                    sim_config or c.sim_config(), evaluate_fn=evaluate_fn, progress=progress)


def run_centralized(fed: Federation, rounds: int | None = None, progress: bool = False, evaluate_fn=None,
                    lr: float | None = None):
    """The same optimizer steps as ``rounds`` federated rounds, on all the data in one place (at the
    clients' learning rate unless ``lr``)."""
    c = fed.config
    rounds = rounds or c.rounds
    config = c.client_config(local_steps=c.local_steps * c.clients_per_round, lr=lr or c.lr)
    return simulate(fed.model_fn, fed.loss_fn, [fed.pooled()], FedAvg(), config,
                    SimulationConfig(rounds=rounds, clients_per_round=1, seed=c.seed),
                    evaluate_fn=evaluate_fn or fed.evaluate_fn, progress=progress)


class Snapshot:
    """The federation's held-out evaluation that also keeps a copy of the global weights after each
    round in ``at``: one long run then gives the shorter runs too. Round ``t``'s randomness depends only
    on ``(seed, t)`` (:func:`~ttslab.federated.simulate`), so the first ``a`` rounds of a longer run
    are the ``a``-round run, bit for bit (``tests/test_federated_simulator.py`` checks it)."""

    def __init__(self, fed: Federation, *at: int):
        if not at:
            raise ValueError("Snapshot needs at least one round to keep")
        self.fed, self.at, self.kept = fed, tuple(at), {}

    @property
    def weights(self):
        """The weights kept after the first round of ``at`` (None before it)."""
        return self.kept.get(self.at[0])

    def __call__(self, weights, server_round: int) -> dict[str, float]:
        if server_round in self.at:
            self.kept[server_round] = clone_weights(weights)
        return self.fed.evaluate_fn(weights, server_round)

    def result(self, long: SimulationResult, at: int | None = None) -> SimulationResult:
        """``long`` as it stood after round ``at`` (default: the first of ``at``): the weights kept then,
        the history and the bytes up to there (the personal layers are not kept: use it for
        global-only runs)."""
        at = self.at[0] if at is None else at
        if at not in self.kept:
            raise ValueError(f"the run never reached round {at}: nothing was kept")
        history = [row for row in long.history if row["round"] <= at]
        comm = CommunicationLog()
        for row in history:
            if row["round"] > 0:
                comm.add(row["round"], up=row.get("bytes_up", 0), down=row.get("bytes_down", 0))
        return SimulationResult(self.kept[at], history, {}, comm, long.strategy)


def compare_strategies(fed: Federation, meter: VoiceMeter | None = None, progress: bool = False) -> dict:
    """Centralized vs FedAvg, FedProx, FedAsync on one-speaker clients (module docstring), every row
    with its total optimizer steps (``steps``) and the steps its clients took one after another
    (``sequential_steps``: ``rounds * local_steps``; a centralized run's are all sequential).

    * After ``rounds``: the four systems, and rows that take the gap apart: FedAvg on IID clients (how
      much is non-IID-ness?), FedAvgM (server momentum 0.9), and, with ``tuned_lr``, centralized and
      FedAvg at that learning rate (is the gap a learning-rate artefact?).
    * After ``rounds_long`` (default ``clients_per_round`` times more) and ``rounds_longest`` (that many
      times more again): the same runs continued (snapshots of one run per system: centralized,
      FedAvg, FedAvg on IID clients to the longest budget, FedProx to the long one). At each budget
      every client has taken as many sequential steps as the centralized run took at the budget
      before: averaging K parallel runs of s steps makes about the progress of one run of s steps,
      not K s, which :func:`summary_metrics` measures against the centralized row with the same
      sequential steps.
    * FedAvg at ``rounds_long`` with the same steps per round split over fewer clients (``long_splits``:
      m clients x ``clients_per_round * local_steps / m`` local steps), and (``all_clients``) with every
      client in every round, on IID clients (to ``rounds_long``) and on one-speaker clients (to the
      longest budget): does the number of clients averaged change the progress per round, and does
      full participation remove the one-speaker cost?"""
    c = fed.config
    clients, summary = fed.clients("speaker")
    iid_clients, _ = fed.clients("iid", num_clients=len(clients), seed=c.seed)
    long_rounds, longest = c.rounds_long, c.rounds_longest
    if long_rounds < c.rounds:
        raise ValueError(f"long_rounds ({long_rounds}) must be >= rounds ({c.rounds})")
    if longest and longest < long_rounds:
        raise ValueError(f"longest_rounds ({longest}) must be 0 or >= long_rounds ({long_rounds})")
    budgets = sorted({c.rounds, long_rounds, longest} - {0})
    runs = {}

    def continued(name: str, run, last: int) -> None:
        """``run(evaluate_fn, rounds)`` once to ``last`` rounds; a row per budget up to there."""
        keep = [b for b in budgets if b <= last]
        snapshot = Snapshot(fed, *keep)
        long = run(snapshot, last)
        for b in keep:
            runs[name if b == c.rounds else f"{name}, {b} rounds"] = long if b == last else snapshot.result(long, b)

    def federated(strategy_fn, some_clients, **sim_options):
        return lambda ev, rounds: run_strategy(fed, strategy_fn(), some_clients, progress=progress, evaluate_fn=ev,
                                               sim_config=c.sim_config(rounds=rounds, **sim_options))

    last = longest or long_rounds
    continued("centralized", lambda ev, rounds: run_centralized(fed, rounds, progress, evaluate_fn=ev), last)
    continued("fedavg", federated(FedAvg, clients), last)
    continued("fedprox", federated(lambda: FedProx(mu=c.mu), clients), long_rounds)
    runs["fedasync"] = run_strategy(fed, FedAsync(alpha=c.async_alpha, staleness="polynomial"), clients,
                                    progress=progress)
    continued("fedavg, IID clients", federated(FedAvg, iid_clients), last)
    runs["fedavgm (server momentum 0.9)"] = run_strategy(fed, FedAvgM(server_lr=1.0, momentum=0.9), clients,
                                                         progress=progress)
    lrs = {}  # rows not at the clients' learning rate
    if c.tuned_lr is not None:
        central, federated_row = f"centralized, lr {c.tuned_lr:g}", f"fedavg, lr {c.tuned_lr:g}"
        runs[central] = run_centralized(fed, progress=progress, lr=c.tuned_lr)
        runs[federated_row] = run_strategy(fed, FedAvg(), clients, progress=progress,
                                           client_config=c.client_config(lr=c.tuned_lr))
        lrs = dict.fromkeys((central, federated_row), c.tuned_lr)
    per_round = c.clients_per_round * c.local_steps
    for m in (m for m in c.long_splits if m < c.clients_per_round and per_round % m == 0):
        runs[f"fedavg, {m} x {per_round // m} local steps, {long_rounds} rounds"] = run_strategy(
            fed, FedAvg(), clients, progress=progress, client_config=c.client_config(local_steps=per_round // m),
            sim_config=c.sim_config(rounds=long_rounds, clients_per_round=m))
    if c.all_clients:  # one-speaker clients to the longest budget: does drift outlast full participation?
        for label, some, until in (("", clients, last), (", IID clients", iid_clients, long_rounds)):
            continued(f"fedavg, all {len(some)} x {c.local_steps} local steps{label}",
                      federated(FedAvg, some, clients_per_round=len(some)), until)
    runs = dict(sorted(runs.items(), key=lambda kv: len(kv[1].history)))  # by budget, stable within one
    out = {"partition": {k: summary[k] for k in ("kind", "num_clients", "non_iid_index")}, "rows": {},
           "long_rounds": long_rounds, "longest_rounds": longest}
    for name, result in runs.items():
        central = name.startswith("centralized")
        done = [row["steps"] for row in result.history if row["round"] > 0]
        row = {"curve": _curve(result, scale_bytes=not central),
               "final_mel": result.history[-1]["eval"]["mel"],
               "bytes_total": 0 if central else result.comm.total,
               "steps": int(sum(sum(s.values()) for s in done)),
               "sequential_steps": int(sum(max(s.values(), default=0) for s in done)),
               "rounds": len(done), "lr": lrs.get(name, c.lr)}
        if meter is not None:
            row.update(meter.measure(model_from(fed, result.weights)))
        out["rows"][name] = row
    out["runs"] = runs  # the SimulationResults (weights to listen to); not JSON, dropped before saving
    return out


def alpha_sweep(fed: Federation, progress: bool = False) -> dict:
    """FedAvg after ``sweep_rounds`` rounds on Dirichlet partitions (as many clients as speakers)."""
    c = fed.config
    rows = []
    for alpha in c.alphas:
        clients, summary = fed.clients("dirichlet", num_clients=len(fed.speakers), alpha=alpha, seed=c.seed)
        result = run_strategy(fed, FedAvg(), clients, sim_config=c.sim_config(rounds=c.sweep_rounds),
                              progress=progress)
        rows.append({"alpha": alpha, "non_iid_index": summary["non_iid_index"],
                     "tv_distance": summary["tv_distance"], "final_mel": result.history[-1]["eval"]["mel"]})
    clients, summary = fed.clients("iid", num_clients=len(fed.speakers), seed=c.seed)
    result = run_strategy(fed, FedAvg(), clients, sim_config=c.sim_config(rounds=c.sweep_rounds), progress=progress)
    rows.append({"alpha": "iid", "non_iid_index": summary["non_iid_index"], "tv_distance": summary["tv_distance"],
                 "final_mel": result.history[-1]["eval"]["mel"]})
    return {"rounds": c.sweep_rounds, "rows": rows}


def failures(fed: Federation, progress: bool = False) -> dict:
    """Held-out mel loss after ``sweep_rounds`` rounds when clients drop out or straggle (virtual time too)."""
    c = fed.config
    clients, _ = fed.clients("speaker")
    cases = {
        "fedavg, no failures": (FedAvg(), {}),
        "fedavg, 30% dropout": (FedAvg(), {"dropout": 0.3}),
        "fedavg, 50% stragglers (partial work)": (FedAvg(), {"straggler": 0.5}),
        "fedavg, 50% stragglers (server waits)": (FedAvg(), {"straggler": 0.5, "straggler_policy": "wait"}),
        "fedasync (polynomial), 50% stragglers": (FedAsync(alpha=c.async_alpha, staleness="polynomial"),
                                                  {"straggler": 0.5}),
    }
    rows = []
    for name, (strategy, options) in cases.items():
        result = run_strategy(fed, strategy, clients, sim_config=c.sim_config(rounds=c.sweep_rounds, **options),
                              progress=progress)
        h = [r for r in result.history if r["round"] > 0]
        stale = [s for r in h for s in r.get("staleness", [])]
        rows.append({"case": name, "final_mel": result.history[-1]["eval"]["mel"],
                     "virtual_time": h[-1]["virtual_time"], "updates": sum(len(r["replied"]) for r in h),
                     "dropped": sum(len(r["dropped"]) for r in h), "stragglers": sum(len(r["stragglers"]) for r in h),
                     "mean_staleness": float(np.mean(stale)) if stale else None})
    return {"rounds": c.sweep_rounds, "rows": rows}


def personalization(fed: Federation, meter: VoiceMeter | None = None, progress: bool = False,
                    global_result=None) -> dict:
    """FedPer vs global-only FedAvg, per client (its speaker's held-out sentences); ``global_result``:
    the FedAvg run of :func:`compare_strategies`, reused (the same run)."""
    c = fed.config
    clients, summary = fed.clients("speaker")
    labels = {int(k): v for k, v in summary["labels"].items()}
    glob = global_result or run_strategy(fed, FedAvg(), clients, progress=progress)
    per_config = c.client_config(local_prefixes=PERSONAL_LAYERS)
    fedper = run_strategy(fed, FedAvg(), clients, client_config=per_config, progress=progress,
                          server_eval=False)
    rows = []
    for k, speaker in sorted(labels.items()):
        local = fedper.personal.get(k)
        row = {"client": k, "speaker": speaker, "global_mel": fed.valid_loss(glob.weights, speaker=speaker)["mel"],
               "trained": local is not None}
        row["personal_mel"] = fed.valid_loss(fedper.weights, local_weights=local, speaker=speaker,
                                             local_prefixes=PERSONAL_LAYERS)["mel"]
        rows.append(row)
    out = {"personal_layers": list(PERSONAL_LAYERS), "rows": rows,
           "bytes_global": glob.comm.total, "bytes_fedper": fedper.comm.total}
    if meter is not None:
        models = {s: model_from(fed, fedper.weights, fedper.personal.get(k), PERSONAL_LAYERS)
                  for k, s in labels.items()}
        out["global_voice"] = meter.measure(model_from(fed, glob.weights))
        out["fedper_voice"] = meter.measure(models)
    return out


def run_all(corpus, config: ExperimentConfig, *, voices: bool = True, progress: bool = False) -> dict:
    """Every experiment, timed; ``voices=False`` skips MCD/PER (seconds per sentence: WORLD analyses)."""
    fed = Federation(corpus, config)
    meter = VoiceMeter(fed.test_utts) if voices else None
    out, seconds = {"config": {k: list(v) if isinstance(v, tuple) else v for k, v in
                               dataclasses.asdict(config).items()}}, {}
    for name, fn in (("strategies", compare_strategies), ("personalization", personalization),
                     ("alpha_sweep", alpha_sweep), ("failures", failures)):
        t0 = time.perf_counter()
        kwargs = {"meter": meter} if name in ("strategies", "personalization") else {}
        if name == "personalization":
            kwargs["global_result"] = out["strategies"]["runs"]["fedavg"]
        out[name] = fn(fed, progress=progress, **kwargs)
        seconds[name] = round(time.perf_counter() - t0, 1)
    out["strategies"].pop("runs")
    out["seconds"] = seconds
    out["parameters"] = sum(p.numel() for p in fed.model_fn().parameters())
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (``getrusage``'s ``ru_maxrss``, KiB on Linux), in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(corpus, num_clients: int, *, size: str = "small", rounds: int = 2, clients_per_round: int = 10,
                 local_steps: int = 2, seed: int = 0) -> dict:
    """Peak RSS of a simulation with ``num_clients`` lazy clients (:class:`~ttslab.federated.ClientPool`):
    the English training utterances split IID into ``num_clients`` clients whose items are computed
    only when a client is sampled, FedPer speaker embeddings kept per client. Run it in a fresh process:
    the peak counts everything the process did before."""
    from ttslab.federated import ClientPool, iid

    speakers = ENGLISH_SPEAKERS
    utts = {u.id: u for u in corpus.filter(split="train") if u.speaker in speakers}
    partition = iid([UtteranceKey(u.id, u.speaker, u.language) for u in utts.values()], num_clients, seed=seed)
    sample = fastspeech_items(list(utts.values())[:: max(1, len(utts) // 200)], speakers)
    config = getattr(FastSpeechConfig, size)(speakers=speakers)
    stats = stats_from_items(sample, speakers)

    def model_fn():
        model = FastSpeech(config)
        model.set_stats(stats)
        return model

    def load(k):
        items = fastspeech_items([utts[u] for u in partition.clients[k]], speakers)
        return ClientData(k, items, collate_fastspeech)

    pool = ClientPool(list(partition.clients), load)
    client_config = ClientConfig(local_steps=local_steps, batch_size=4, lr=1e-3, seed=seed,
                                 local_prefixes=("speaker_embedding",))
    before = peak_rss_mb()
    t0 = time.perf_counter()
    result = simulate(model_fn, fastspeech_loss, pool, FedAvg(), client_config,
                      SimulationConfig(rounds=rounds, clients_per_round=clients_per_round, seed=seed), progress=False)
    model_mb = sum(t.numel() * t.element_size() for t in result.weights.values()) / 2 ** 20
    return {"clients": num_clients, "size": size, "parameters": sum(t.numel() for t in result.weights.values()),
            "rounds": rounds, "clients_per_round": clients_per_round, "local_steps": local_steps,
            "seconds": round(time.perf_counter() - t0, 1), "rss_before_mb": round(before, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "model_mb": round(model_mb, 2),
            "eager_models_mb": round(model_mb * num_clients, 1), "personal_clients": len(result.personal)}


def centralized_reference(rows: dict, name: str, sequential: bool = False) -> str | None:
    """The centralized row (at the same learning rate) that a row of :func:`compare_strategies` is
    compared with: the one with the same total ``steps`` or, with ``sequential``, the one whose steps
    equal the row's ``sequential_steps`` (as many steps as each of its clients took in a row); None
    if there is none."""
    row = rows[name]
    want = row["sequential_steps"] if sequential else row["steps"]
    same = [n for n, r in rows.items() if n.startswith("centralized") and r["steps"] == want
            and r.get("lr") == row.get("lr")]
    return same[0] if same else None


def summary_metrics(results: dict) -> dict:
    """The headline: each row's final MCD and mel loss, and its gaps to centralized training with the
    same total steps and with the same sequential steps (:func:`centralized_reference`; None where that
    run does not exist)."""
    rows = results["strategies"]["rows"]
    out = {}
    for name, r in rows.items():
        entry = {}
        for key, sequential in (("", False), ("_sequential", True)):
            ref = centralized_reference(rows, name, sequential)
            central = rows.get(ref)
            entry[f"versus{key}"] = ref
            entry[f"mcd_gap{key}_db"] = (r["mcd_dtw_db"] - central["mcd_dtw_db"]) if (
                central is not None and "mcd_dtw_db" in r) else None
            entry[f"mel_gap{key}"] = None if central is None else r["final_mel"] - central["final_mel"]
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Federated FastSpeech experiments on the built-in corpus.")
    p.add_argument("--mode", choices=sorted(SETTINGS), default=None, help="corpus and sizes (default: TTSLAB_CI)")
    p.add_argument("--out", required=True, help="JSON file for the results")
    p.add_argument("--no-voices", action="store_true", help="skip MCD-DTW / PER (faster)")
    args = p.parse_args(argv)
    from ttslab.config import mode, set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    set_threads(1)
    run_mode = args.mode or mode()
    t0 = time.perf_counter()
    results = run_all(load_builtin(run_mode), SETTINGS[run_mode], voices=not args.no_voices, progress=True)
    results["summary"] = summary_metrics(results)
    results["command"] = " ".join(["python -m ttslab.train.federated_fastspeech"] + list(argv or sys.argv[1:]))
    results["seconds_total"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(args.out, results)
    print(json.dumps(results["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
