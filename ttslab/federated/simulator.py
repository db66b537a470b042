"""The in-process simulator: N virtual clients in one process, one server, a virtual clock.

Stable API (other modules and engines build on it)::

    result = simulate(model_fn, loss_fn, clients, strategy, client_config, sim_config,
                      evaluate_fn=None, initial=None, reply_fn=None, progress=True)
    result.weights           # final global weights (a new dict)
    result.history           # one dict per round: sampled, dropped, stragglers, steps, replied,
                             # bytes_up, bytes_down, virtual_time, staleness, train, eval
    result.personal          # client id -> its personal layers (FedPer; never sent)
    result.comm              # CommunicationLog: bytes up/down per round and in total

* ``clients``: a list of :class:`~ttslab.federated.client.ClientData`, or a :class:`ClientPool` that
  builds each client's data on demand (``ClientPool(ids, load)``), so 1000 clients cost the memory of
  their ids plus the one client training at a time. The simulator holds one global model, the
  personal layers of clients that have them, and (FedAsync) the replies in flight.
* ``strategy``: any :class:`~ttslab.federated.strategies.Strategy`. Synchronous strategies (FedAvg,
  FedProx, FedAvgM, FedAdam, the robust ones) aggregate one round's replies; :class:`FedAsync` runs the
  event loop below. Strategy options (FedProx's ``mu``) are passed into ``client_config``.
* :class:`SimulationConfig`: rounds, clients per round (or a fraction), seed, dropout and straggler
  probabilities and what the server does with stragglers, the upload codec, ``checkpoint_dir``.

**Round t (synchronous).** Randomness is drawn from ``numpy.random.default_rng([seed, t])`` only:
``m`` clients are sampled without replacement from the ids sorted by
:func:`~ttslab.federated.strategies.client_sort_key`; then, per sampled client in that order, one
uniform ``u_drop`` (``< dropout``: it receives the model but never answers) and one ``u_slow``
(``< straggler``: it runs ``slowdown`` times slower). A round lasts ``local_steps`` virtual time units
(one per local step of a normal client); a straggler then has done ``max(1, floor(local_steps /
slowdown))`` steps and, by ``straggler_policy``:

* ``"partial"``: sends what it has (fewer steps; the round keeps its length);
* ``"wait"``: the server waits, the straggler does all its steps, the round lasts ``local_steps * slowdown``;
* ``"drop"``: the server stops waiting; the straggler's reply is discarded (bytes down only).

A round where nobody answers leaves the global weights as they were (recorded as ``skipped``).

**FedAsync (event loop).** ``m`` clients train concurrently. Each dispatch ``j`` draws from
``default_rng([seed, 1_000_003, j])``: the client (uniform over those not in flight), ``u_drop`` and
``u_slow``. It starts from the current global version ``tau`` at virtual time ``s``, trains all its
``local_steps`` from the weights it received and arrives at
``s + local_steps * (slowdown if straggler else 1)``. Arrivals are applied one at a time in the order
``(time, client id, dispatch)`` with ``server_round = t`` (the number of updates applied so far), so a
straggler's staleness ``t - tau`` counts the updates that overtook it; each applied update frees its
slot and the next client is dispatched from the new weights. A dropped client frees its slot when
its arrival time comes, without an update. A "round" of the history is ``m`` arrivals; ``rounds``
rounds are ``rounds * m`` dispatches completed, as many client trainings as the synchronous run.

**Communication.** Down: the global weights, ``payload_bytes(w, "float32")`` per sampled client
(dropped ones too: they received the model). Up: per reply, ``codec="float32"`` sends the weights as
they are (lossless); ``"float16"`` and ``"int8"`` send the update ``w_k - w^t`` through
:func:`~ttslab.federated.compression.transmit` (int8 with stochastic rounding if ``stochastic``, seeded
by :func:`~ttslab.federated.client.client_seed`), and the server aggregates the decoded weights.

**Checkpoints.** With ``checkpoint_dir`` the server writes, after every round, ``round_<t>.pt`` atomically
with a SHA-256 sidecar: global weights, ``strategy.state_dict()``, personal layers, history, byte log,
the FedAsync queue and the identity of the run (settings, client ids, strategy). Every random draw is
a function of ``(seed, round)`` or ``(seed, dispatch)``, so a run restarted after a crash continues from
the newest valid checkpoint bit for bit as if it had never stopped; a checkpoint of another run is
refused. Raising ``rounds`` extends a finished run.

Bad input raises before the global weights change: an empty client, zero clients per round, a reply of
the wrong names/shape/dtype or non-finite (the strategy's :meth:`~Strategy.check`; wrap it in
:class:`~ttslab.federated.robust.SkipMalformed` to drop such replies instead), ``mu < 0`` and FedAsync's
``alpha`` outside (0, 1] (refused by their constructors).
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from ttslab.checkpoint import CheckpointError, read_sidecar
from ttslab.federated.client import ClientConfig, ClientData, client_seed, client_update, initial_weights
from ttslab.federated.compression import CommunicationLog, check_codec, payload_bytes, transmit
from ttslab.federated.strategies import FedAsync, Reply, Strategy, aggregate_metrics, client_sort_key
from ttslab.federated.weights import Weights, check_weights, clone_weights
from ttslab.io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file
from ttslab.train.loop import LossFn

STRAGGLER_POLICIES = ("partial", "wait", "drop")
ASYNC_STREAM = 1_000_003  #: separates FedAsync's per-dispatch random streams from the per-round ones
CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 2


class SimulationError(ValueError):
    """A simulation cannot run or resume as asked; the message names the setting and the fix."""


@dataclass
class SimulationConfig:
    """How the simulated federation behaves (see the module docstring for the exact rules).

    ``clients_per_round``: ``m`` (None: ``max(1, round(fraction * N))``); ``dropout``, ``straggler``:
    probabilities per sampled client; ``slowdown``: how many times slower a straggler is;
    ``straggler_policy``: ``"partial"``, ``"wait"`` or ``"drop"``; ``codec``: upload encoding
    (``"float32"``, ``"float16"``, ``"int8"``), ``stochastic``: unbiased int8 rounding; ``eval_every``:
    call ``evaluate_fn`` every that many rounds (and after the last); ``checkpoint_dir``: resumable runs.
    """

    rounds: int = 5
    clients_per_round: int | None = None
    fraction: float = 1.0
    seed: int = 0
    dropout: float = 0.0
    straggler: float = 0.0
    slowdown: float = 4.0
    straggler_policy: str = "partial"
    codec: str = "float32"
    stochastic: bool = False
    eval_every: int = 1
    threads: int | None = 1
    checkpoint_dir: str | None = None

    def __post_init__(self):
        for name in ("rounds", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        m = self.clients_per_round
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"clients_per_round must be an int >= 1 (zero clients sampled cannot train), got {m!r}")
        if not (isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1):
            raise ValueError(f"fraction must be in (0, 1] (zero clients sampled cannot train), got {self.fraction!r}")
        for name in ("dropout", "straggler"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 <= v < 1):
                raise ValueError(f"{name} (a probability per sampled client) must be in [0, 1), got {v!r}")
        if not (isinstance(self.slowdown, (int, float)) and math.isfinite(self.slowdown) and self.slowdown >= 1):
            raise ValueError(f"slowdown must be a finite number >= 1, got {self.slowdown!r}")
        if self.straggler_policy not in STRAGGLER_POLICIES:
            raise ValueError(f"straggler_policy must be one of {STRAGGLER_POLICIES}, got {self.straggler_policy!r}")
        check_codec(self.codec)
        if self.stochastic and self.codec != "int8":
            raise ValueError(f"stochastic rounding applies to the int8 codec only, not {self.codec!r}")
        self.seed = int(self.seed)

    def num_sampled(self, num_clients: int) -> int:
        """``m``: clients per round for a federation of ``num_clients`` (at most all of them)."""
        m = self.clients_per_round if self.clients_per_round is not None else round(self.fraction * num_clients)
        return max(1, min(int(m), num_clients))

    def identity(self) -> dict:
        """The settings a resumed run must share (not ``rounds``, ``eval_every``, ``threads`` or the folder)."""
        d = dataclasses.asdict(self)
        for k in ("rounds", "eval_every", "threads", "checkpoint_dir"):
            d.pop(k)
        return d


class ClientPool:
    """Clients whose data is built on demand: ``load(client_id) -> ClientData`` is called when a client
    is sampled (or evaluated) and the result is dropped afterwards, so the pool holds only the ids.

    >>> pool = ClientPool([2, 1], lambda k: ClientData(k, [0] * k, list))
    >>> pool.ids, len(pool.get(2))
    ([1, 2], 2)
    """

    def __init__(self, ids: Iterable, load: Callable[[object], ClientData]):
        self.ids = sorted(ids, key=client_sort_key)
        if not self.ids:
            raise SimulationError("a federation needs at least one client; the pool has no ids")
        if len(set(self.ids)) != len(self.ids):
            raise SimulationError(f"client ids must be distinct, got duplicates in {self.ids[:10]}...")
        self.load = load

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, client_id) -> ClientData:
        data = self.load(client_id)
        if not isinstance(data, ClientData) or data.client_id != client_id:
            raise SimulationError(f"the pool's load({client_id!r}) must return ClientData with that client_id")
        if len(data) == 0:
            raise SimulationError(f"client {client_id!r} has no examples: an empty client cannot train; leave it "
                                  f"out of the federation (or fix its partition)")
        return data

    @classmethod
    def of(cls, clients: "ClientPool | Sequence[ClientData]") -> "ClientPool":
        """A pool over a list of :class:`ClientData` (checked now: distinct ids, none empty)."""
        if isinstance(clients, ClientPool):
            return clients
        clients = list(clients)
        for c in clients:
            if not isinstance(c, ClientData):
                raise TypeError(f"clients must be ClientData (or a ClientPool), got {type(c).__name__}")
            if len(c) == 0:
                raise SimulationError(f"client {c.client_id!r} has no examples: an empty client cannot train; leave "
                                      f"it out of the federation (or fix its partition)")
        by_id = {c.client_id: c for c in clients}
        if len(by_id) != len(clients):
            raise SimulationError("client ids must be distinct")
        return cls(by_id, by_id.__getitem__)


@dataclass
class SimulationResult:
    """What :func:`simulate` returns (see the module docstring)."""

    weights: Weights
    history: list[dict]
    personal: dict = field(default_factory=dict)
    comm: CommunicationLog = field(default_factory=CommunicationLog)
    strategy: str = ""
    resumed_from: int = 0

    @property
    def total_bytes_up(self) -> int:
        return self.comm.total_up

    @property
    def total_bytes_down(self) -> int:
        return self.comm.total_down

    def metric(self, name: str, where: str = "eval") -> list[tuple[int, float]]:
        """``(round, value)`` of ``history[r][where][name]`` for the rounds that have it."""
        return [(row["round"], row[where][name]) for row in self.history if name in row.get(where, {})]


# --- one client's work ------------------------------------------------------------------------------

class _Run:
    """Everything one simulation shares: the clients, the settings, the byte log, personal layers."""

    def __init__(self, model_fn, loss_fn, pool, strategy, client_config, sim, reply_fn):
        self.model_fn, self.loss_fn, self.pool, self.strategy = model_fn, loss_fn, pool, strategy
        self.config, self.sim, self.reply_fn = client_config, sim, reply_fn
        self.personal: dict = {}
        self.pending: dict = {}  # personal layers trained this round, kept only if the round succeeds
        self.comm = CommunicationLog()

    def train(self, client_id, weights: Weights, steps: int, server_round: int, version: int | None) -> Reply:
        """Client ``client_id`` trains ``steps`` steps from ``weights``; returns the reply the server decodes."""
        data = self.pool.get(client_id)
        config = dataclasses.replace(self.config, local_steps=steps)
        result = client_update(weights, data, config, model_fn=self.model_fn, loss_fn=self.loss_fn,
                               server_round=server_round, local_weights=self.personal.get(client_id),
                               model_version=version, threads=self.sim.threads)
        reply = result.reply
        if self.reply_fn is not None:  # a hook for experiments: attacks, malformed replies
            reply = self.reply_fn(reply, weights, server_round)
        if result.local_weights:
            self.pending[client_id] = result.local_weights
        return self.upload(reply, weights, server_round)

    def commit(self) -> None:
        """The round went through: the clients keep the personal layers they trained in it."""
        self.personal.update(self.pending)
        self.pending = {}

    def upload(self, reply: Reply, weights: Weights, server_round: int) -> Reply:
        """The reply as the server receives it, after the codec; counts its bytes in ``reply.metrics``."""
        codec = self.sim.codec
        sent = reply.weights
        if codec == "float32" or not isinstance(sent, Mapping) or list(sent) != list(weights) or any(
                not isinstance(sent[n], torch.Tensor) or sent[n].shape != weights[n].shape for n in weights):
            # float32 is sent as is; a malformed reply is passed on untouched for the strategy to refuse
            nbytes = payload_bytes(sent, "float32") if isinstance(sent, Mapping) else 0
        else:
            seed = client_seed(self.sim.seed, server_round, reply.client_id) if self.sim.stochastic else None
            sent, nbytes = transmit(sent, codec, reference=weights, stochastic=self.sim.stochastic, seed=seed)
        return dataclasses.replace(reply, weights=sent, metrics={**reply.metrics, "bytes_up": float(nbytes)})


def _uniforms(rng: np.random.Generator, count: int) -> list[tuple[float, float]]:
    return [(float(rng.random()), float(rng.random())) for _ in range(count)]


def straggler_steps(local_steps: int, slowdown: float) -> int:
    """Steps a straggler ``slowdown`` times slower finishes in the time of ``local_steps`` normal steps.

    >>> straggler_steps(10, 4.0), straggler_steps(3, 4.0), straggler_steps(8, 1.0)
    (2, 1, 8)
    """
    return max(1, int(math.floor(local_steps / slowdown)))


def sample_round(ids: Sequence, sim: SimulationConfig, server_round: int) -> dict:
    """Round ``server_round``'s draws (module docstring): sampled ids, who drops out, who straggles.

    >>> sim = SimulationConfig(clients_per_round=2, dropout=0.5, seed=3)
    >>> plan = sample_round([0, 1, 2, 3], sim, 1)
    >>> len(plan["sampled"]), set(plan["dropped"]) <= set(plan["sampled"])
    (2, True)
    """
    rng = np.random.default_rng([sim.seed, server_round])
    m = sim.num_sampled(len(ids))
    chosen = sorted(rng.choice(len(ids), size=m, replace=False).tolist())
    sampled = [ids[i] for i in chosen]
    draws = _uniforms(rng, m)
    dropped = [c for c, (u, _) in zip(sampled, draws) if u < sim.dropout]
    slow = [c for c, (u, s) in zip(sampled, draws) if u >= sim.dropout and s < sim.straggler]
    return {"sampled": sampled, "dropped": dropped, "stragglers": slow}


def _row(server_round: int, plan: dict, steps: dict, replies: list[Reply], down: int, clock: float,
         **extra) -> dict:
    up = int(sum(r.metrics.get("bytes_up", 0) for r in replies))
    train = aggregate_metrics([dataclasses.replace(r, metrics={k: v for k, v in r.metrics.items() if k != "bytes_up"})
                               for r in replies]) if replies else {}
    return {"round": server_round, "sampled": list(plan["sampled"]), "dropped": list(plan["dropped"]),
            "stragglers": list(plan["stragglers"]), "steps": {str(k): v for k, v in steps.items()},
            "replied": [r.client_id for r in sorted(replies, key=lambda r: client_sort_key(r.client_id))],
            "bytes_up": up, "bytes_down": int(down), "virtual_time": float(clock), "train": train, **extra}


def _sync_round(run: _Run, weights: Weights, server_round: int, clock: float) -> tuple[Weights, dict]:
    sim, steps_full = run.sim, run.config.local_steps
    plan = sample_round(run.pool.ids, sim, server_round)
    down = payload_bytes(weights, "float32")
    run.comm.add(server_round, down=down * len(plan["sampled"]), messages_down=len(plan["sampled"]))
    replies, steps = [], {}
    duration = float(steps_full)
    run.pending = {}
    for cid in plan["sampled"]:
        if cid in plan["dropped"]:
            continue
        n = steps_full
        if cid in plan["stragglers"]:
            if sim.straggler_policy == "drop":
                continue
            if sim.straggler_policy == "partial":
                n = straggler_steps(steps_full, sim.slowdown)
            else:
                duration = max(duration, steps_full * sim.slowdown)
        steps[cid] = n
        replies.append(run.train(cid, weights, n, server_round, server_round - 1))
    new = run.strategy.aggregate(weights, replies, server_round) if replies else weights  # raises: nothing changed
    run.commit()
    run.comm.add(server_round, up=sum(int(r.metrics["bytes_up"]) for r in replies), messages_up=len(replies))
    return new, _row(server_round, plan, steps, replies, down * len(plan["sampled"]), clock + duration,
                     skipped=not replies, staleness=[])


# --- FedAsync: the event loop -------------------------------------------------------------------------

def _dispatch(run: _Run, weights: Weights, version: int, clock: float, index: int, busy: set) -> dict:
    """Dispatch number ``index``: draw a free client, hand it ``weights``, schedule its arrival."""
    sim = run.sim
    rng = np.random.default_rng([sim.seed, ASYNC_STREAM, index])
    free = [c for c in run.pool.ids if c not in busy]
    cid = free[int(rng.integers(len(free)))]
    u_drop, u_slow = _uniforms(rng, 1)[0]
    dropped, slow = u_drop < sim.dropout, u_drop >= sim.dropout and u_slow < sim.straggler
    steps = run.config.local_steps
    busy.add(cid)
    # the client trains from the weights it received; computing that when it arrives gives the same
    # reply (client_update depends on its arguments only) and trains nobody still in flight at the end
    return {"client": cid, "dispatch": index, "version": version, "start": clock, "dropped": dropped,
            "straggler": slow, "arrival": clock + steps * (sim.slowdown if slow else 1.0), "steps": steps,
            "weights": None if dropped else weights}


def _event_key(e: dict) -> tuple:
    return (e["arrival"], client_sort_key(e["client"]), e["dispatch"])


def _async_round(run: _Run, weights: Weights, server_round: int, state: dict) -> tuple[Weights, dict]:
    """``m`` arrivals of FedAsync (the ``server_round``-th block); ``state``: version, clock, queue, dispatches."""
    m = run.sim.num_sampled(len(run.pool))
    if m >= len(run.pool) and len(run.pool) > 1:
        m = len(run.pool) - 1  # one client must stay free, or no new dispatch could be drawn
    down = payload_bytes(weights, "float32")
    busy = {e["client"] for e in state["queue"]}
    sent = 0
    while len(state["queue"]) < m:  # fill the slots (round 1; afterwards they are refilled on arrival)
        state["queue"].append(_dispatch(run, weights, state["version"], state["clock"], state["dispatches"], busy))
        state["dispatches"] += 1
        sent += 1
    plan = {"sampled": [], "dropped": [], "stragglers": []}
    steps, applied, staleness, arrivals = {}, [], [], []
    for _ in range(m):
        state["queue"].sort(key=_event_key)
        event = state["queue"].pop(0)
        busy.discard(event["client"])
        state["clock"] = event["arrival"]
        cid = event["client"]
        arrivals.append({k: event[k] for k in ("client", "dispatch", "version", "start", "arrival", "dropped",
                                               "straggler")})
        plan["sampled"].append(cid)
        if event["straggler"]:
            plan["stragglers"].append(cid)
        if event["dropped"]:
            plan["dropped"].append(cid)
        else:
            run.pending = {}
            reply = run.train(cid, event["weights"], event["steps"], event["dispatch"] + 1, event["version"])
            weights = run.strategy.aggregate(weights, [reply], state["version"])
            run.commit()
            staleness.append(state["version"] - event["version"])
            state["version"] += 1
            steps[cid] = steps.get(cid, 0) + event["steps"]
            applied.append(reply)
        state["queue"].append(_dispatch(run, weights, state["version"], state["clock"], state["dispatches"], busy))
        state["dispatches"] += 1
        sent += 1
    run.comm.add(server_round, down=down * sent, messages_down=sent,
                 up=sum(int(r.metrics["bytes_up"]) for r in applied), messages_up=len(applied))
    return weights, _row(server_round, plan, steps, applied, down * sent, state["clock"], skipped=not applied,
                         staleness=staleness, version=state["version"], arrivals=arrivals)


# --- checkpoints ------------------------------------------------------------------------------------

def _identity(pool, strategy, client_config, sim, weights) -> dict:
    return {"format": CHECKPOINT_FORMAT, "sim": sim.identity(), "client": client_config.to_dict(),
            "strategy": type(strategy).__name__, "hyperparameters": {k: repr(v) for k, v in
                                                                     strategy.hyperparameters().items()},
            "clients": [repr(c) for c in pool.ids], "names": list(weights)}


def _save(folder: Path, server_round: int, payload: dict) -> Path:
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    path = folder / f"round_{server_round:06d}.pt"
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_name(path.name + ".sha256"), f"{sha256_bytes(data)}  {path.name}\n")
    for old in sorted(folder.glob("round_*.pt"))[:-KEEP_CHECKPOINTS]:
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest ``round_<t>.pt`` in ``folder`` whose SHA-256 matches its sidecar (None if there is none):
    a file cut short by a crash, or its missing sidecar, falls back to the round before."""
    for path in sorted(Path(folder).glob("round_*.pt"), reverse=True):
        try:
            expected = read_sidecar(path)
        except CheckpointError:
            continue
        if expected is not None and sha256_file(path) == expected:
            return path
    return None


def _load(folder: Path, identity: dict) -> dict | None:
    path = latest_checkpoint(folder)
    if path is None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("identity") != identity:
        theirs = state.get("identity", {})
        differ = sorted(k for k in set(identity) | set(theirs) if identity.get(k) != theirs.get(k))
        raise SimulationError(f"{path} belongs to another run (it differs in {differ}); use another "
                              f"checkpoint_dir or delete {folder}")
    return state


# --- the driver -------------------------------------------------------------------------------------

def simulate(model_fn: Callable[[], torch.nn.Module], loss_fn: LossFn, clients: ClientPool | Sequence[ClientData],
             strategy: Strategy, client_config: ClientConfig, sim_config: SimulationConfig | None = None, *,
             evaluate_fn: Callable[[Weights, int], Mapping[str, float]] | None = None,
             initial: Mapping[str, torch.Tensor] | None = None,
             reply_fn: Callable[[Reply, Weights, int], Reply] | None = None, progress: bool = True) -> SimulationResult:
    """Run a federated training of ``model_fn()`` with pure ``loss_fn`` over ``clients`` (module docstring).

    ``initial``: round-0 global weights (default :func:`initial_weights` with ``client_config.seed`` and
    ``local_prefixes``). ``evaluate_fn(weights, round) -> {name: float}``: server-side metrics, recorded
    as ``history[i]["eval"]`` (round 0 too). ``reply_fn(reply, global_weights, round) -> reply``: alters a
    reply before it is sent (attacks, faults). Returns a :class:`SimulationResult`; the arguments are
    never modified.
    """
    from tqdm.auto import tqdm

    sim = sim_config or SimulationConfig()
    if not isinstance(sim, SimulationConfig):
        raise TypeError(f"sim_config must be a SimulationConfig, got {type(sim).__name__}")
    if not isinstance(client_config, ClientConfig):
        raise TypeError(f"client_config must be a ClientConfig, got {type(client_config).__name__}")
    if not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a ttslab.federated Strategy, got {type(strategy).__name__}")
    pool = ClientPool.of(clients)
    options = strategy.client_options()
    if options:
        client_config = dataclasses.replace(client_config, **options)
    weights = clone_weights(initial) if initial is not None else initial_weights(
        model_fn, seed=client_config.seed, local_prefixes=client_config.local_prefixes)
    check_weights(weights, "the initial global weights")
    run = _Run(model_fn, loss_fn, pool, strategy, client_config, sim, reply_fn)
    asynchronous = isinstance(strategy, FedAsync)
    history: list[dict] = []
    state = {"version": 0, "clock": 0.0, "queue": [], "dispatches": 0}
    done = 0
    folder = Path(sim.checkpoint_dir) if sim.checkpoint_dir else None
    identity = _identity(pool, strategy, client_config, sim, weights)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        saved = _load(folder, identity)
        if saved is not None:
            done, weights, history = int(saved["round"]), OrderedDict(saved["weights"]), list(saved["history"])
            strategy.load_state_dict(saved["strategy"])
            run.personal = {k: OrderedDict(v) for k, v in saved["personal"]}
            run.comm = CommunicationLog.from_dict(saved["comm"])
            state = dict(saved["async"])
            state["queue"] = [dict(e, weights=None if e["weights"] is None else OrderedDict(e["weights"]))
                              for e in state["queue"]]
    resumed_from = done
    if done == 0 and evaluate_fn is not None:
        history.append({"round": 0, "virtual_time": 0.0, "bytes_up": 0, "bytes_down": 0,
                        "eval": dict(evaluate_fn(weights, 0))})
    bar = tqdm(range(done + 1, sim.rounds + 1), desc=f"{strategy.name} rounds", disable=not progress, leave=False)
    for t in bar:
        clock = history[-1]["virtual_time"] if history else 0.0
        if asynchronous:
            weights, row = _async_round(run, weights, t, state)
        else:
            weights, row = _sync_round(run, weights, t, clock)
        if evaluate_fn is not None and (t % sim.eval_every == 0 or t == sim.rounds):
            row["eval"] = dict(evaluate_fn(weights, t))
            bar.set_postfix({k: f"{v:.3f}" for k, v in list(row["eval"].items())[:2]})
        history.append(row)
        if folder is not None:
            _save(folder, t, {"identity": identity, "round": t, "weights": weights,
                              "strategy": strategy.state_dict(), "personal": list(run.personal.items()),
                              "history": history, "comm": run.comm.to_dict(), "async": state})
    return SimulationResult(clone_weights(weights), history, dict(run.personal), run.comm, strategy.name,
                            resumed_from)
