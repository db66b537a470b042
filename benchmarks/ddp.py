"""Data-parallel scaling: tiny FastSpeech trained by 1 and by 2 processes (torchrun, gloo), items/s and efficiency.

Every configuration runs ``python -m ttslab.distributed.run`` under torchrun (started by
:func:`ttslab.distributed.launch.launch` on 127.0.0.1, bounded in time, stopped by PID) on the same
global batches of the built-in corpus:

* ``1 process x 1 thread``  the baseline;
* ``1 process x N threads`` one process using as many torch threads as the 2-process run has processes
  (what the cores could give without DDP);
* ``2 processes x 1 thread`` DistributedDataParallel, each rank half of every global batch.

Throughput is global items (utterances) per second over the steady steps (the first ``--skip`` steps,
which pay for warm-up and the first all-reduce, are left out; the median step time is used);
efficiency is ``throughput(P processes) / (P x throughput(1 process x 1 thread))``. Every run gets
``OMP_WAIT_POLICY=PASSIVE`` (see :data:`ENV`). Start-up (torchrun,
imports, corpus features, rendezvous) is reported separately as wall time. On a 2-core machine that
other jobs share this is CPU-bound: two ranks compete with each other (and with the gloo threads) for
two cores, so an efficiency well under 1 is the honest result here; the same script on a machine with
free cores or GPUs measures real scaling.

    python benchmarks/ddp.py --mode ci            # 16 utterances, global batch 8, 20 steps, 2 repeats (~40 s)
    python benchmarks/ddp.py --mode full          # 64 utterances, global batch 16, 30 steps
    python benchmarks/ddp.py --mode ci --device cuda   # GPU machine: + CUDA rows (NCCL when >= 2 GPUs), vs the CPU

Results go to ``<out>/ddp_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

try:
    import harness  # run as `python benchmarks/ddp.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy/torch start their pools

#: OpenMP's default wait policy spins on a core while a thread waits for its peers. Measured here with 2
#: torch threads on a shared 2-core machine: 1.5-2.8 s a step spinning against 0.05-0.09 s passive (the
#: spinning thread steals the core its peer needs). Passive waiting for every configuration.
ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

SETTINGS = {"ci": {"utterances": 16, "batch_size": 8, "steps": 20, "skip": 2},
            "full": {"utterances": 64, "batch_size": 16, "steps": 30, "skip": 3}}


def measure(nproc: int, threads: int, settings: dict, device: str, folder: Path, timeout_s: float) -> dict:
    """One torchrun run: its steady step times, wall time and final loss."""
    from ttslab.distributed.launch import launch

    out = folder / f"p{nproc}_t{threads}_{device}.pt"
    args = ["--model", "tiny-fastspeech", "--corpus-mode", settings["mode"], "--utterances", settings["utterances"],
            "--batch-size", settings["batch_size"], "--steps", settings["steps"], "--threads", threads,
            "--device", device, "--out", out]
    result = launch([str(a) for a in args], nproc_per_node=nproc, timeout_s=timeout_s, env=ENV).check()
    summary = json.loads(out.with_name(out.name + ".json").read_text())
    return {"processes": nproc, "threads_per_process": threads, "backend": summary["backend"],
            "device": summary["device"], "steady": summary["step_seconds"][settings["skip"]:],
            "final_loss": summary["train"][-1]["loss"], "wall_s": result.seconds}


def pooled(repeats: list[dict], batch_size: int) -> dict:
    """One configuration's repeats: the median of all their steady steps, the mean wall time."""
    steady = [t for r in repeats for t in r["steady"]]
    step = statistics.median(steady)
    return {**{k: repeats[0][k] for k in ("processes", "threads_per_process", "backend", "device", "final_loss")},
            "global_batch": batch_size, "repeats": len(repeats), "steps_timed": len(steady), "median_step_s": step,
            "items_per_s": batch_size / step, "wall_s": statistics.mean(r["wall_s"] for r in repeats),
            "step_seconds": steady, "env": ENV}


def configurations(device: str, processes: int, gpus: int | None = None) -> list[tuple[int, int, str]]:
    """``(processes, threads, device)`` rows. The CPU baseline (1 process x 1 thread) always comes first:
    on a GPU machine the speed-up is over the CPU. NCCL needs one GPU per rank, so the multi-process GPU
    row needs ``processes`` GPUs.

    >>> configurations("cpu", 2)
    [(1, 1, 'cpu'), (1, 2, 'cpu'), (2, 1, 'cpu')]
    >>> configurations("cuda", 2, gpus=1)
    [(1, 1, 'cpu'), (2, 1, 'cpu'), (1, 1, 'cuda')]
    """
    rows = [(1, 1, "cpu"), (1, processes, "cpu"), (processes, 1, "cpu")]
    if device == "cpu":
        return rows
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count()
    return [rows[0], rows[2], (1, 1, device)] + ([(processes, 1, device)] if gpus >= processes else [])


def to_markdown(results: dict) -> str:
    rows = ["| configuration | device | backend | median step (s) | items/s | speed-up | efficiency | wall incl. start-up (s) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results["runs"]:
        name = (f"{r['processes']} process{'es' if r['processes'] > 1 else ''} x "
                f"{r['threads_per_process']} thread{'s' if r['threads_per_process'] > 1 else ''}")
        rows.append(f"| {name} | {r['device']} | {r['backend'] or '-'} | "
                    f"{r['median_step_s']:.3f} | {r['items_per_s']:.1f} | {r['speedup']:.2f} | {r['efficiency']:.2f} | "
                    f"{r['wall_s']:.1f} |")
    s = results["settings"]
    return (f"# Data-parallel training: 1 vs {max(r['processes'] for r in results['runs'])} processes\n\n"
            f"Tiny FastSpeech, {s['utterances']} utterances, global batch {s['batch_size']}, {s['steps']} steps "
            f"(first {s['skip']} not timed), {results['repeats']} interleaved runs per row. Speed-up and efficiency against "
            f"1 process x 1 thread; efficiency = speed-up / processes (threads for the 1-process rows).\n\n"
            + "\n".join(rows) + "\n\n" + results["note"] + "\n")


def main(argv=None):
    parser = harness.make_parser(__doc__, "ddp")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the data-parallel run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration, interleaved")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per torchrun run")
    args, run = harness.start("ddp", parser, argv)
    settings = {**SETTINGS[args.mode], "mode": args.mode}
    p = args.processes
    configs = configurations(args.device, p)
    with tempfile.TemporaryDirectory(prefix="ttslab-ddp-bench-") as tmp:
        # interleaved (A B C A B C): a change in the machine's load hits every configuration alike
        raw = [[measure(n, t, settings, dev, Path(tmp), args.timeout) for n, t, dev in configs]
               for _ in range(args.repeats)]
    runs = [pooled([rep[i] for rep in raw], settings["batch_size"]) for i in range(len(configs))]
    base = runs[0]["items_per_s"]
    for r in runs:
        r["speedup"] = r["items_per_s"] / base
        r["efficiency"] = r["speedup"] / max(r["processes"], r["threads_per_process"])

    note = (f"Measured on {harness.machine_facts()['cpu_count']} CPU cores shared with other jobs (load average in "
            f"the footer). CPU-bound: the ranks of the DDP run share the same cores, and every step adds a "
            f"gloo all-reduce of all gradients, so efficiency below 1 is expected here; it says what data "
            f"parallelism costs on one small machine, not what it gives on many.")
    return run.write({"summary": {f"p{r['processes']}_t{r['threads_per_process']}_{r['device'].split(':')[0]}":
                                  r["items_per_s"] for r in runs},
                      "runs": runs, "settings": settings, "device": args.device, "note": note,
                      "repeats": args.repeats,
                      "meta": {"processes": p}}, to_markdown)


if __name__ == "__main__":
    main()
