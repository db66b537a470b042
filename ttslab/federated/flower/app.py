"""A Flower 1.41 app (Message API) around ttslab's framework-free federated functions.

The ServerApp and the ClientApp only move records; every number is computed by
:mod:`ttslab.federated`:

* the ClientApp's ``train`` handler turns the message's ``ArrayRecord`` into the global weights,
  runs :func:`~ttslab.federated.client_update` on its partition (``node_config["partition-id"]``)
  and replies with the new weights and a ``MetricRecord`` holding ``num-examples``,
  ``partition-id`` and the mean training losses; personal layers (FedPer) stay in the node's
  ``context.state``; the ``evaluate`` handler runs :func:`~ttslab.federated.evaluate`;
* the ServerApp's main loop sends the global weights to every node, turns the replies into
  :class:`~ttslab.federated.Reply` objects whose ``client_id`` is the partition id, and calls the
  ttslab :class:`~ttslab.federated.Strategy` (``aggregate``: replies sorted by client id, summed in
  float64). It never uses a Flower strategy: Flower's FedAvg sums float32 in reply order, so its
  result depends on which node answered first (``tests/test_flower_engines.py`` measures by how much).

What a run is, is one :class:`FlowerRun` of plain values (it travels as JSON in Flower's run config,
key ``ttslab-run``), naming a *task factory* ``"module:function"`` that every process imports:
``factory(num_partitions=N, **task_args) -> FederatedTask`` gives the model, the loss and each
partition's :class:`~ttslab.federated.ClientData`. Because each client's seed is
``client_seed(seed, round, partition_id)`` and the server's sum is ordered, a run gives the same
weights bit for bit on any engine: ttslab's loop, Flower's simulation engine (Ray) or its deployment
engine (:mod:`~ttslab.federated.flower.engines`).

The module-level ``server_app`` and ``client_app`` read the run from ``context.run_config``; that is
what an app directory's ``pyproject.toml`` names for ``flwr run``. :func:`make_server_app` /
:func:`make_client_app` with a ``FlowerRun`` give apps bound to it (for ``run_simulation``).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from ttslab.checkpoint import save_checkpoint
from ttslab.federated.client import ClientConfig, client_update, evaluate, initial_weights
from ttslab.federated.strategies import Reply, aggregate_metrics, make_strategy
from ttslab.federated.tasks import FederatedTask
from ttslab.federated.weights import Weights
from ttslab.io import atomic_write_json

RUN_KEY = "ttslab-run"          #: the run-config key holding a FlowerRun as JSON
LOCAL_KEY = "ttslab-local"      #: the node-state key holding a client's personal layers
ROBUST = ("fedmedian", "fedtrimmedavg", "krum")


@dataclass(frozen=True)
class FlowerRun:
    """One federated run, as plain values (JSON in Flower's run config).

    ``task``: ``"module:function"``, called as ``function(num_partitions=num_nodes, **task_args)``;
    every node trains in every round (``num_nodes`` partitions, ids ``0 .. num_nodes-1``);
    ``client``: :meth:`ClientConfig.to_dict`; ``strategy`` / ``strategy_args``: as
    :func:`ttslab.federated.make_strategy` (or ``fedmedian``, ``fedtrimmedavg``, ``krum`` from
    :mod:`ttslab.federated.robust`); ``evaluate``: a federated evaluation after every round;
    ``output``: where the ServerApp writes the final weights (a ttslab checkpoint) and, next to
    it, ``<output>.json`` with the history; ``node_timeout``: seconds to wait for the nodes.
    """

    task: str
    num_nodes: int
    rounds: int
    client: dict = field(default_factory=dict)
    strategy: str = "fedavg"
    strategy_args: dict = field(default_factory=dict)
    task_args: dict = field(default_factory=dict)
    evaluate: bool = False
    output: str = ""
    node_timeout: float = 120.0

    def __post_init__(self):
        if not isinstance(self.task, str) or self.task.count(":") != 1:
            raise ValueError(f"task must be 'module:function' (a task factory), got {self.task!r}")
        for name in ("num_nodes", "rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        ClientConfig.from_dict(self.client)           # bad settings fail here, not on a node
        make_server_strategy(self.strategy, self.strategy_args)

    def client_config(self) -> ClientConfig:
        return ClientConfig.from_dict(self.client)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FlowerRun":
        return cls(**json.loads(text))

    def replace(self, **changes) -> "FlowerRun":
        return dataclasses.replace(self, **changes)


def make_server_strategy(name: str, args: Mapping):
    """A ttslab strategy by name: the §1 strategies (:func:`make_strategy`) or a robust one."""
    if name in ROBUST:
        from ttslab.federated import robust

        return {"fedmedian": robust.FedMedian, "fedtrimmedavg": robust.FedTrimmedAvg,
                "krum": robust.Krum}[name](**args)
    return make_strategy(name, **args)


_TASKS: dict[str, FederatedTask] = {}


def load_task(run: FlowerRun) -> FederatedTask:
    """Import and call the run's task factory (once per process: the Ray actors and the nodes keep it)."""
    key = json.dumps([run.task, run.num_nodes, run.task_args], sort_keys=True)
    if key not in _TASKS:
        module_name, attr = run.task.split(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ImportError(f"cannot import the task factory {run.task!r} ({exc}); every Flower process must "
                              f"be able to import it (is ttslab on its PYTHONPATH?)") from exc
        task = factory(num_partitions=run.num_nodes, **run.task_args)
        if not isinstance(task, FederatedTask):
            raise TypeError(f"{run.task} returned {type(task).__name__}, expected a FederatedTask")
        _TASKS[key] = task
    return _TASKS[key]


def run_from_context(context: Context, bound: FlowerRun | None) -> FlowerRun:
    if bound is not None:
        return bound
    if RUN_KEY not in context.run_config:
        raise KeyError(f"the run config has no {RUN_KEY!r}: start the app through "
                       f"ttslab.federated.flower.engines, which writes it")
    return FlowerRun.from_json(str(context.run_config[RUN_KEY]))


def partition_of(context: Context, run: FlowerRun) -> int:
    """The node's partition id from its node config, checked against the run's number of nodes."""
    if "partition-id" not in context.node_config:
        raise KeyError("the node config has no 'partition-id': start each SuperNode with "
                       "--node-config 'partition-id=i num-partitions=N'")
    pid = int(context.node_config["partition-id"])
    if not 0 <= pid < run.num_nodes:
        raise ValueError(f"partition-id {pid} is outside 0..{run.num_nodes - 1}")
    return pid


# --- records <-> ttslab weights ------------------------------------------------------------------

def to_record(weights: Mapping[str, torch.Tensor]) -> ArrayRecord:
    """Weights as an ``ArrayRecord`` (raw bytes of each tensor: the values travel exactly)."""
    return ArrayRecord(OrderedDict((n, t.detach().cpu().contiguous()) for n, t in weights.items()))


def from_record(record: ArrayRecord, names=None) -> Weights:
    """An ``ArrayRecord`` back as :data:`~ttslab.federated.weights.Weights` (in ``names`` order if given)."""
    state = record.to_torch_state_dict()
    order = list(names) if names is not None else list(state)
    missing = [n for n in order if n not in state]
    if missing:
        raise KeyError(f"the record lacks tensors {missing[:3]}")
    return OrderedDict((n, state[n]) for n in order)


# --- the ClientApp ---------------------------------------------------------------------------------

def make_client_app(run: FlowerRun | None = None) -> ClientApp:
    """A ClientApp for ``run`` (None: read from ``context.run_config[RUN_KEY]``)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        spec = run_from_context(context, run)
        task, pid = load_task(spec), partition_of(context, spec)
        server_round = int(msg.content["config"]["server-round"])
        config = ClientConfig.from_dict(json.loads(str(msg.content["config"]["client-config"])))
        global_weights = from_record(msg.content["arrays"])
        local = from_record(context.state[LOCAL_KEY]) if LOCAL_KEY in context.state else None
        result = client_update(global_weights, task.client_data(pid), config, model_fn=task.model_fn,
                               loss_fn=task.loss_fn, server_round=server_round, local_weights=local, threads=1)
        if result.local_weights:
            context.state[LOCAL_KEY] = to_record(result.local_weights)
        reply = result.reply
        metrics = {k: float(v) for k, v in reply.metrics.items()}
        metrics.update({"num-examples": int(reply.num_examples), "partition-id": pid})
        return Message(RecordDict({"arrays": to_record(reply.weights), "metrics": MetricRecord(metrics)}),
                       reply_to=msg)

    @app.evaluate()
    def evaluate_handler(msg: Message, context: Context) -> Message:
        spec = run_from_context(context, run)
        task, pid = load_task(spec), partition_of(context, spec)
        config = spec.client_config()
        local = from_record(context.state[LOCAL_KEY]) if LOCAL_KEY in context.state else None
        result = evaluate(from_record(msg.content["arrays"]), task.client_data(pid), model_fn=task.model_fn,
                          loss_fn=task.loss_fn, local_weights=local, local_prefixes=config.local_prefixes,
                          seed=config.seed, threads=1)
        metrics = {k: float(v) for k, v in result.metrics.items()}
        metrics.update({"num-examples": int(result.num_examples), "partition-id": pid})
        return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)

    return app


# --- the ServerApp ---------------------------------------------------------------------------------

def wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    """The ids of ``count`` connected nodes (sorted), waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes[:count]
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(nodes)} of {count} nodes connected within {timeout:.0f} s")
        time.sleep(0.2)


def exchange(grid: Grid, nodes: list[int], content: RecordDict, message_type: str, server_round: int,
             timeout: float) -> list[Message]:
    """Send ``content`` to every node and return the replies; any error or missing reply raises (a
    lost client would silently change the average, and this app does not sample)."""
    messages = [Message(RecordDict(dict(content.items())), dst_node_id=node, message_type=message_type,
                        group_id=str(server_round)) for node in nodes]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    errors = [m.error.reason for m in replies if m.has_error()]
    if errors or len(replies) != len(nodes):
        raise RuntimeError(f"round {server_round} ({message_type}): {len(replies)} of {len(nodes)} replies, "
                           f"errors: {errors[:3]}")
    return replies


def replies_to_ttslab(replies: list[Message], names) -> list[Reply]:
    """Flower reply messages as ttslab :class:`Reply` objects with ``client_id = partition-id``."""
    out = []
    for m in replies:
        metrics = dict(m.content["metrics"])
        pid, n = int(metrics.pop("partition-id")), int(metrics.pop("num-examples"))
        out.append(Reply(pid, from_record(m.content["arrays"], names), n, metrics))
    return out


def serve(grid: Grid, run: FlowerRun) -> tuple[Weights, list[dict]]:
    """The server's loop: ``run.rounds`` rounds of train (and evaluate) over all nodes; returns the
    final global weights and the per-round history."""
    task, config = load_task(run), run.client_config()
    strategy = make_server_strategy(run.strategy, run.strategy_args)
    config = dataclasses.replace(config, **strategy.client_options())
    weights = initial_weights(task.model_fn, seed=config.seed, local_prefixes=config.local_prefixes)
    nodes = wait_for_nodes(grid, run.num_nodes, run.node_timeout)
    history = []
    for server_round in range(1, run.rounds + 1):
        start = time.perf_counter()
        content = RecordDict({"arrays": to_record(weights), "config": ConfigRecord(
            {"server-round": server_round, "client-config": json.dumps(config.to_dict())})})
        replies = replies_to_ttslab(exchange(grid, nodes, content, MessageType.TRAIN, server_round,
                                             run.node_timeout), list(weights))
        weights = strategy.aggregate(weights, replies, server_round)
        entry = {"round": server_round, "clients": sorted(r.client_id for r in replies),
                 "train": aggregate_metrics(replies)}
        if run.evaluate:
            content = RecordDict({"arrays": to_record(weights), "config": ConfigRecord({"server-round": server_round})})
            evals = exchange(grid, nodes, content, MessageType.EVALUATE, server_round, run.node_timeout)
            results = []
            for m in evals:
                metrics = dict(m.content["metrics"])
                results.append(Reply(int(metrics.pop("partition-id")), {}, int(metrics.pop("num-examples")), metrics))
            entry["evaluate"] = aggregate_metrics(results)
        entry["seconds"] = time.perf_counter() - start
        history.append(entry)
    return weights, history


def write_result(path: str | Path, weights: Weights, history: list[dict], run: FlowerRun) -> None:
    """The final weights as a ttslab checkpoint (with its SHA-256 sidecar) and the history as JSON."""
    path = Path(path)
    save_checkpoint(path, weights, extra={"run": run.to_json()})
    atomic_write_json(path.with_suffix(path.suffix + ".json"), {"run": json.loads(run.to_json()),
                                                                "history": history})


def make_server_app(run: FlowerRun | None = None) -> ServerApp:
    """A ServerApp for ``run`` (None: read from ``context.run_config[RUN_KEY]``); it writes the result
    to ``run.output`` when set."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        spec = run_from_context(context, run)
        weights, history = serve(grid, spec)
        if spec.output:
            write_result(spec.output, weights, history, spec)

    return app


server_app = make_server_app()
client_app = make_client_app()
