"""ttslab's in-process simulator against Flower's simulation engine (Ray) on the same seeded run.

Both run the tiny non-IID regression task (:func:`ttslab.federated.tasks.toy_regression`: an MLP
``4 -> 8 -> 2``, 8 + 3k examples on client k) with FedAvg, every client in every round, 3 local SGD
steps; both give the same final weights bit for bit (checked here and in
``tests/test_flower_engines.py``). Measured side by side in one run, per engine:

* ``total``: wall time of the call (Ray: ``run_simulation`` from start to return, incl. ``ray.init``
  and shutdown; simulator: ``simulate``);
* ``per round``: the median round time from round 2 on (round 1 also pays Ray's actor start-up);
* ``start-up``: ``total - rounds x per round``;
* ``peak memory``: the largest sum of resident memory over this process and all its descendants
  (Ray's GCS, raylet and worker processes), sampled every 50 ms.

Then Flower's simulation engine alone at ``--clients-scale`` clients (one round each, next to the
simulator on the same clients), as long as the previous size took less than ``--budget`` seconds.
Ray gets ``--num-cpus`` CPUs (one per virtual client actor).

    python benchmarks/flower_engines.py --mode ci     # 3 clients x 2 rounds; scale 10    (~2 min)
    python benchmarks/flower_engines.py --mode full   # 10 clients x 3 rounds; scale 10, 100, 1000

Results go to ``<out>/flower_engines_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

try:
    import harness  # run as `python benchmarks/flower_engines.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy/torch start their pools

SETTINGS = {"ci": {"clients": 3, "rounds": 2, "scale": [10]},
            "full": {"clients": 10, "rounds": 3, "scale": [10, 100, 1000]}}
TASK = "ttslab.federated.tasks:toy_regression"
CLIENT = {"local_steps": 3, "batch_size": 4, "lr": 0.05, "optimizer": "sgd", "seed": 0}


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    total, todo, page = 0, [root], os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakMemory:
    """Samples :func:`tree_rss` of this process every ``interval`` seconds inside a ``with`` block."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak = tree_rss(os.getpid())
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed_strategy(strategy, stamps: list):
    """``strategy`` with ``aggregate`` recording ``time.perf_counter()`` after each round (round ends)."""
    inner = strategy.aggregate

    def aggregate(global_weights, replies, server_round):
        out = inner(global_weights, replies, server_round)
        stamps.append(time.perf_counter())
        return out

    strategy.aggregate = aggregate
    return strategy


def run_simulator(run):
    """The ttslab simulator on ``run``: (weights, seconds per round, total, peak bytes)."""
    from ttslab.federated.flower import load_task, make_server_strategy
    from ttslab.federated.simulator import ClientPool, SimulationConfig, simulate

    stamps: list[float] = []
    with PeakMemory() as mem:
        start = time.perf_counter()
        task = load_task(run)
        config = run.client_config()
        # lazy clients, as Flower's ClientApp builds a client's data per message: the toy task gives client
        # k 8 + 3k examples, 1.5 million at 1000 clients, too many to hold at once for no reason
        clients = ClientPool(range(run.num_nodes), task.client_data)
        result = simulate(task.model_fn, task.loss_fn, clients,
                          timed_strategy(make_server_strategy(run.strategy, run.strategy_args), stamps), config,
                          SimulationConfig(rounds=run.rounds, seed=config.seed, threads=1), progress=False)
        total = time.perf_counter() - start
    rounds = [b - a for a, b in zip(stamps, stamps[1:])]
    return result.weights, rounds, total, mem.peak


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Sleep until the 1-minute load average is at most ``max_load`` or ``max_wait`` seconds passed;
    returns the seconds waited. Ray's start-up deadline is missed under load, so a retry right away
    tends to fail again."""
    start = time.monotonic()
    while one_minute_load() > max_load and time.monotonic() - start < max_wait:
        time.sleep(5.0)
    return time.monotonic() - start


def one_minute_load() -> float:
    """The 1-minute load average (:func:`harness.load_average`; 0 where the system has none)."""
    first = harness.load_average().split()[0]
    return 0.0 if first == "n/a" else float(first)


def run_ray(run, num_cpus: int, attempts: int = 8, max_load: float = 3.0, max_wait: float = 90.0):
    """Flower's simulation engine on ``run``: (weights, seconds per round, total, peak bytes, failed starts).

    Ray 2.55.1 gives its raylet a fixed 30 s to register with the GCS (``raylet_start_wait_time_s = 30``,
    a local constant in ``ray/_private/node.py``: no environment variable or ``_system_config`` changes
    it); on an overloaded machine it misses that and nothing runs. Such attempts are retried (after
    waiting up to ``max_wait`` s for the load average to fall to ``max_load``) and counted; only the
    successful attempt is timed."""
    from ttslab.federated.flower.engines import RayStartupError, run_simulation_engine

    for failed in range(attempts):
        try:
            with PeakMemory() as mem:
                start = time.perf_counter()
                weights, history = run_simulation_engine(run, num_cpus=num_cpus, attempts=1)
                total = time.perf_counter() - start
            return weights, [h["seconds"] for h in history][1:], total, mem.peak, failed
        except RayStartupError:
            if failed + 1 == attempts:
                raise
            waited = wait_for_quiet(max_load, max_wait)
            print(f"Ray did not start (attempt {failed + 1} of {attempts}, load {one_minute_load():.1f} "
                  f"after waiting {waited:.0f} s); retrying", flush=True)


def summarise(name: str, rounds: list[float], total: float, peak: int, num_rounds: int) -> dict:
    per_round = statistics.median(rounds) if rounds else float("nan")
    return {"engine": name, "total_s": total, "per_round_s": per_round,
            "startup_s": total - num_rounds * per_round if rounds else float("nan"), "peak_mib": peak / 2 ** 20}


def to_markdown(results: dict) -> str:
    s = results["settings"]
    lines = ["# ttslab's simulator against Flower's simulation engine (Ray)", "",
             f"Same run: {s['clients']} clients x {s['rounds']} rounds of the tiny regression task, FedAvg, "
             f"3 local SGD steps; final weights bit-identical: **{results['bit_identical']}**.", "",
             "| engine | start-up s | per round s | total s | peak memory MiB |", "|---|---:|---:|---:|---:|"]
    for r in results["same_run"]:
        lines.append(f"| {r['engine']} | {harness.fmt(r['startup_s'], 2)} | {harness.fmt(r['per_round_s'], 3)} | "
                     f"{harness.fmt(r['total_s'], 2)} | {harness.fmt(r['peak_mib'], 0)} |")
    lines += ["", f"End to end the simulator is **{results['summary']['speedup_total']:.1f}x** faster "
              f"(goal >= 10x); per round {results['summary']['speedup_per_round']:.1f}x.", "",
              "## Flower's simulation engine at more clients (1 round each)", "",
              "| clients | Ray total s | Ray peak MiB | Ray start-ups missed | simulator total s | simulator peak MiB "
              "| ratio |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["scale"]:
        if "ray_error" in r:
            lines.append(f"| {r['clients']} | did not finish: {r['ray_error']} | | | {harness.fmt(r['sim_total_s'], 2)} "
                         f"| {harness.fmt(r['sim_peak_mib'], 0)} | |")
            continue
        lines.append(f"| {r['clients']} | {harness.fmt(r['ray_total_s'], 1)} | {harness.fmt(r['ray_peak_mib'], 0)} | "
                     f"{r.get('ray_failed_starts', '')} | {harness.fmt(r['sim_total_s'], 2)} | {harness.fmt(r['sim_peak_mib'], 0)} | "
                     f"{harness.fmt(r['ray_total_s'] / r['sim_total_s'], 1)} |")
    for skipped in results["skipped"]:
        lines.append(f"| {skipped} | skipped: {results.get('skip_reason', 'the previous size took longer than the budget')} "
                     f"| | | | | |")
    lines += ["", results["note"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "flower_engines")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs Ray may use (one per client actor)")
    parser.add_argument("--budget", type=float, default=240.0,
                        help="stop the scale series once a size took longer than this many seconds")
    parser.add_argument("--ray-attempts", type=int, default=8,
                        help="Ray start-ups to try per run before giving up (Ray's deadline is a fixed 30 s)")
    args, run_info = harness.start("flower_engines", parser, argv)
    import torch

    from ttslab.federated.flower import FlowerRun

    settings = SETTINGS[args.mode]
    run = FlowerRun(task=TASK, num_nodes=settings["clients"], rounds=settings["rounds"], client=CLIENT)
    w_sim, r_sim, t_sim, m_sim = run_simulator(run)
    w_ray, r_ray, t_ray, m_ray, failed = run_ray(run, args.num_cpus, args.ray_attempts)
    print("same run:", {"simulator_s": t_sim, "ray_s": t_ray, "failed_starts": failed}, flush=True)
    identical = list(w_sim) == list(w_ray) and all(torch.equal(w_sim[k], w_ray[k]) for k in w_sim)
    same_run = [summarise("ttslab simulator", r_sim, t_sim, m_sim, run.rounds),
                summarise("Flower simulation (Ray)", r_ray, t_ray, m_ray, run.rounds)]
    scale, skipped, skip_reason = [], [], None
    for i, n in enumerate(settings["scale"]):
        if scale and not scale[-1]["ray_total_s"] <= args.budget:      # too slow, or did not finish
            skipped = settings["scale"][i:]
            skip_reason = ("the previous size did not finish" if "ray_error" in scale[-1] else
                           f"the previous size took {scale[-1]['ray_total_s']:.0f} s, over the {args.budget:.0f} s budget")
            break
        # the round may take longer than the budget (then the series stops after it); it is not cut short
        one = run.replace(num_nodes=n, rounds=1, node_timeout=4 * args.budget)
        _, _, ts, ms = run_simulator(one)
        row = {"clients": n, "sim_total_s": ts, "sim_peak_mib": ms / 2 ** 20}
        try:
            _, _, tr, mr, f = run_ray(one, args.num_cpus, args.ray_attempts)
            failed += f
            row.update(ray_total_s=tr, ray_peak_mib=mr / 2 ** 20, ray_failed_starts=f)
        except RuntimeError as exc:         # the round did not finish within the budget: say how far it got
            row.update(ray_total_s=float("nan"), ray_peak_mib=float("nan"), ray_error=str(exc)[:200])
        scale.append(row)
        print("scale:", row, flush=True)
    note = ("Both engines run the same client_update and FedAvg code; the difference is the machinery: Ray "
            "starts a GCS, a raylet and one worker process per CPU, each importing torch and ttslab, and every "
            "client round trip is a serialized message; the simulator calls client_update in a loop. Peak memory "
            "is the sum over the process tree (Ray's processes included). The machine is a shared 2-core box: "
            f"see the load average below; absolute seconds vary with it, the ratio less so. Ray's raylet has a fixed "
            f"30 s to register at start-up (a constant in ray/_private/node.py, not configurable in Ray 2.55.1); "
            f"it missed it {failed} time(s) in this run; those attempts are retried after waiting for the load "
            f"to fall, and not timed. Ray gets {args.num_cpus} CPUs and each virtual client 1 CPU, so at most "
            f"{args.num_cpus} client actors (processes) exist whatever the number of clients. The toy task gives "
            f"client k 8 + 3k examples, so the work grows with the square of the number of clients (1.5 million "
            f"examples at 1000); both engines build a client's data only when it trains. The "
            f"simulator's start-up is its first client update (imports, first autograd call); its peak memory in "
            f"the scale table includes what Ray's client library left loaded in this process.")
    summary = {"ray_failed_starts": failed, "speedup_total": t_ray / t_sim, "speedup_per_round": same_run[1]["per_round_s"] /
               same_run[0]["per_round_s"], "bit_identical": identical}
    return run_info.write({"summary": summary, "same_run": same_run, "scale": scale, "skipped": skipped,
                           "skip_reason": skip_reason, "bit_identical": identical, "settings": {**settings, "num_cpus": args.num_cpus,
                                                                    "client": CLIENT, "task": TASK},
                           "note": note}, to_markdown)


if __name__ == "__main__":
    main()
