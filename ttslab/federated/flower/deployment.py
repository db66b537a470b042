"""Command line: one federated run on Flower's Deployment Engine on 127.0.0.1 (or another engine).

    python -m ttslab.federated.flower.deployment --nodes 3 --rounds 2 --out final.pt
    python -m ttslab.federated.flower.deployment --nodes 3 --rounds 2 --compare   # all three engines

starts a SuperLink and ``--nodes`` SuperNodes (free ports unless ``--port``), waits for their health,
submits the app with ``flwr run``, writes the final weights (a ttslab checkpoint) and stops every
process it started, by pid, also on an error, Ctrl-C or SIGTERM. ``--compare`` also runs ttslab's
simulator and Flower's simulation engine and prints whether the weights are bit-identical.
A taken ``--port`` is refused before anything starts (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time

import torch

from ttslab.checkpoint import save_checkpoint
from ttslab.federated.client import ClientConfig
from ttslab.federated.flower.app import FlowerRun
from ttslab.federated.flower.engines import (PortInUseError, run_deployment_engine, run_simulation_engine,
                                             run_ttslab_simulator)

ENGINES = {"deployment": run_deployment_engine, "simulation": run_simulation_engine,
           "simulator": run_ttslab_simulator}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ttslab.federated.flower.deployment", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="ttslab.federated.tasks:toy_regression", help="task factory module:function")
    p.add_argument("--task-args", default="{}", help="JSON keyword arguments of the task factory")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--strategy-args", default="{}", help="JSON, e.g. '{\"mu\": 0.01}' for fedprox")
    p.add_argument("--client", default='{"local_steps": 3, "batch_size": 4, "lr": 0.05, "optimizer": "sgd"}',
                   help="JSON ClientConfig fields")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=sorted(ENGINES), default="deployment")
    p.add_argument("--port", type=int, default=None, help="SuperLink port (default: a free one)")
    p.add_argument("--compare", action="store_true", help="run all three engines and compare the weights")
    p.add_argument("--out", default=None, help="write the final weights here (ttslab checkpoint)")
    return p.parse_args(argv)


def build_run(args: argparse.Namespace) -> FlowerRun:
    client = {**json.loads(args.client), "seed": args.seed}
    return FlowerRun(task=args.task, task_args=json.loads(args.task_args), num_nodes=args.nodes, rounds=args.rounds,
                     strategy=args.strategy, strategy_args=json.loads(args.strategy_args),
                     client=ClientConfig.from_dict(client).to_dict())


def raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")   # unwinds through every `finally`: the processes get stopped


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_on_sigterm)
    run = build_run(args)
    engines = sorted(ENGINES) if args.compare else [args.engine]
    results = {}
    try:
        for name in engines:
            start = time.perf_counter()
            kwargs = {"superlink_port": args.port} if name == "deployment" else {}
            weights, history = ENGINES[name](run, **kwargs)
            results[name] = weights
            last = history[-1].get("train", {})
            print(f"{name:>10}: {time.perf_counter() - start:6.1f} s, last round train loss "
                  f"{last.get('loss', float('nan')):.6f}", flush=True)
    except PortInUseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(results) > 1:
        ref_name, ref = next(iter(results.items()))
        for name, weights in results.items():
            same = list(weights) == list(ref) and all(torch.equal(weights[k], ref[k]) for k in ref)
            print(f"{name} vs {ref_name}: {'bit-identical' if same else 'DIFFERENT'}")
    if args.out:
        save_checkpoint(args.out, results[engines[-1]], extra={"run": run.to_json()})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
