"""Federated FastSpeech on the built-in corpus: centralized vs FedAvg / FedProx / FedAsync, non-IID-ness,
failures, personalization, and the memory of 1000 lazy simulated clients.

Runs :func:`ttslab.train.federated_fastspeech.run_all` (sizes: its ``SETTINGS[mode]``; full mode: the
tiny FastSpeech, 10 English speakers as 10 one-speaker clients, 8 rounds x 4 clients x 8 local steps,
the same 256 optimizer steps for the centralized run; centralized, FedAvg and FedProx also at 32
rounds, 1024 steps each, centralized, FedAvg and FedAvg on IID clients at 128 rounds (4096 steps),
FedAvg at 32 rounds on 2 clients x 16 and 1 client x 32 local steps per round and on all 10 clients,
centralized and FedAvg at lr 8e-3; 3 held-out sentences per speaker) and, in a fresh process each, the
simulator's peak RSS with ``--clients`` lazy clients of the small FastSpeech (:func:`memory_probe`).
Every gap is to the centralized run with the same number of steps, and to the one with as many steps
as each federated client took one after another.

    python benchmarks/federated.py --mode ci
    python benchmarks/federated.py --mode full              # ~35 min of one core

Results: ``benchmarks/results/federated_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

try:
    import harness  # run as `python benchmarks/federated.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy/torch start their pools

MEMORY = {"ci": [{"num_clients": 100, "size": "tiny", "rounds": 1, "clients_per_round": 4, "local_steps": 1}],
          "full": [{"num_clients": 1000, "size": "small", "rounds": 2, "clients_per_round": 10, "local_steps": 2}]}
HERE = Path(__file__).resolve().parent
MAIN = ("centralized", "fedavg", "fedprox", "fedasync")  #: the systems of the issue's comparison


def probe_in_subprocess(mode: str, settings: dict) -> dict:
    """:func:`memory_probe` in a fresh interpreter, so its peak RSS is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--mode={mode}", "--probe", json.dumps(settings)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=HERE.parent)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(v, digits=2, scale=1.0):
    return harness.fmt(v, digits, scale)


def to_markdown(results: dict) -> str:
    cfg = results["experiments"]["config"]
    e = results["experiments"]
    steps = cfg["rounds"] * cfg["clients_per_round"] * cfg["local_steps"]
    long_rounds = e["strategies"].get("long_rounds", cfg["rounds"])
    longest = e["strategies"].get("longest_rounds") or 0
    rows, summary = e["strategies"]["rows"], results["summary"]
    lines = ["# Federated FastSpeech: centralized against FedAvg, FedProx and FedAsync", "",
             f"FastSpeech `{cfg['size']}` ({e['parameters']:,} parameters), {len(cfg['speakers'])} speakers, one "
             f"speaker per client (non-IID), {cfg['rounds']} rounds x {cfg['clients_per_round']} clients x "
             f"{cfg['local_steps']} local steps (batch {cfg['batch_size']}, AdamW lr {cfg['lr']}); centralized: "
             f"the same {steps} steps on all the data, {cfg['clients_per_round'] * cfg['local_steps']} per round; "
             f"centralized, FedAvg and FedProx continued to {long_rounds} rounds, centralized, FedAvg and FedAvg on "
             f"IID clients to {longest or long_rounds} (rows with more rounds are the same runs, continued); "
             "m x s: m clients per round, s local steps each. Held-out: "
             f"{cfg['test_per_speaker']} test sentence(s) per speaker; mel = held-out mel L1 (normalised); MCD-DTW "
             "and PER through the shipped neural vocoder and judge. *Steps*: optimizer steps in all; *sequential*: "
             "steps one after another (a federated round's clients train side by side). Two gaps: to the "
             "centralized run with the same steps, and to the one whose steps equal this row's sequential steps "
             "(n/a: no such centralized run).", "",
             "| system | rounds | steps | sequential | mel L1 | MCD-DTW dB | gap, same steps dB | gap, same "
             "sequential steps dB | PER % | bytes communicated |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r.get('rounds', '')} | {r['steps']} | {r.get('sequential_steps', '')} | "
                     f"{r['final_mel']:.3f} | {fmt(r.get('mcd_dtw_db'))} | {fmt(summary[name]['mcd_gap_db'])} | "
                     f"{fmt(summary[name].get('mcd_gap_sequential_db'))} | {fmt(r.get('per'), 1, 100)} | "
                     f"{r['bytes_total']:,} |")
    lines += ["", "Held-out mel L1 against rounds and cumulative bytes:", "",
              "| round | " + " | ".join(MAIN) + " | bytes (FedAvg) |", "|---:|" + "---:|" * (len(MAIN) + 1)]
    curves = {n: rows[n]["curve"] for n in MAIN}
    for i, point in enumerate(curves["fedavg"]):
        vals = " | ".join(f"{curves[n][i]['mel']:.3f}" if i < len(curves[n]) else "" for n in curves)
        lines.append(f"| {point['round']} | {vals} | {point['bytes']:,} |")
    for budget in (long_rounds, longest):
        every = max(1, budget // 8)
        names = [n for n in rows if n.endswith(f", {budget} rounds")] if budget > cfg["rounds"] else []
        if not names:
            continue
        lines += ["", f"The {budget}-round runs (held-out mel L1 every {every} rounds):", "",
                  "| round | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
        by_round = {n: {p["round"]: p["mel"] for p in rows[n]["curve"]} for n in names}
        for t in range(0, budget + 1, every):
            lines.append(f"| {t} | " + " | ".join(f"{by_round[n][t]:.3f}" if t in by_round[n] else ""
                                                   for n in names) + " |")
    law = [n for n in rows if not n.startswith("centralized") and summary[n].get("versus_sequential")]
    if law:
        lines += ["", "## Averaging K clients makes the progress of one", "",
                  "Each federated row against the centralized run with as many steps as each of its clients took "
                  "one after another:", "",
                  "| system | sequential steps | mel L1 | centralized, same sequential steps | mel L1 | MCD gap dB |",
                  "|---|---:|---:|---|---:|---:|"]
        for n in law:
            ref = summary[n]["versus_sequential"]
            lines.append(f"| {n} | {rows[n]['sequential_steps']} | {rows[n]['final_mel']:.3f} | {ref} | "
                         f"{rows[ref]['final_mel']:.3f} | {fmt(summary[n].get('mcd_gap_sequential_db'))} |")
    lines += ["", f"## Non-IID-ness: FedAvg on Dirichlet partitions ({e['alpha_sweep']['rounds']} rounds)", "",
              "| alpha | non-IID index | TV distance | mel L1 |", "|---|---:|---:|---:|"]
    for r in e["alpha_sweep"]["rows"]:
        lines.append(f"| {r['alpha']} | {r['non_iid_index']:.3f} | {r['tv_distance']:.3f} | {r['final_mel']:.3f} |")
    lines += ["", f"## Failures ({e['failures']['rounds']} rounds, one speaker per client)", "",
              "| case | mel L1 | virtual time | updates applied | dropped | stragglers | mean staleness |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in e["failures"]["rows"]:
        lines.append(f"| {r['case']} | {r['final_mel']:.3f} | {r['virtual_time']:.0f} | {r['updates']} | "
                     f"{r['dropped']} | {r['stragglers']} | {fmt(r['mean_staleness'])} |")
    p = e["personalization"]
    lines += ["", f"## Personalization: FedPer ({', '.join(p['personal_layers'])} stay on the client) vs global",
              "", "| client | speaker | global mel L1 | FedPer mel L1 | gain |", "|---:|---|---:|---:|---:|"]
    for r in p["rows"]:
        lines.append(f"| {r['client']} | {r['speaker']} | {r['global_mel']:.3f} | {r['personal_mel']:.3f} | "
                     f"{r['global_mel'] - r['personal_mel']:+.3f} |")
    if "fedper_voice" in p:
        lines += ["", f"MCD-DTW global {p['global_voice']['mcd_dtw_db']:.2f} dB, FedPer "
                      f"{p['fedper_voice']['mcd_dtw_db']:.2f} dB; PER global {100 * p['global_voice']['per']:.1f} %, "
                      f"FedPer {100 * p['fedper_voice']['per']:.1f} %. Bytes: global {p['bytes_global']:,}, FedPer "
                      f"{p['bytes_fedper']:,} (the personal layers are never sent)."]
    lines += ["", "## Memory of lazy simulated clients (fresh process each)", "",
              "| clients | model | parameters | rounds x sampled | peak RSS MiB | RSS before simulating MiB | "
              "one model MiB | all clients' models if eager MiB | s |", "|---:|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results["memory"]:
        lines.append(f"| {r['clients']} | {r['size']} | {r['parameters']:,} | {r['rounds']} x {r['clients_per_round']} "
                     f"| {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {r['model_mb']:.2f} | "
                     f"{r['eager_models_mb']:.0f} | {r['seconds']:.0f} |")
    lines += ["", f"Seconds per experiment: {e['seconds']}.", "", results["verdict"]]
    return "\n".join(lines) + "\n"


def verdict(experiments: dict, summary: dict, mode: str) -> str:
    """The goal's verdict at each budget: the best non-IID FedAvg / FedProx row's MCD gap to centralized
    with equal total steps (rows at the default learning rate with such a centralized run)."""
    rows = experiments["strategies"]["rows"]
    if "mcd_dtw_db" not in rows["centralized"]:
        return "MCD not measured (--no-voices)."
    cfg = experiments["config"]
    parts = []
    for rounds in sorted({r["rounds"] for r in rows.values()}):
        gaps = {n: summary[n]["mcd_gap_db"] for n, r in rows.items()
                if r["rounds"] == rounds and n.startswith(("fedavg", "fedprox")) and not n.startswith("fedavgm")
                and "IID" not in n
                and r["lr"] == cfg["lr"] and summary[n]["mcd_gap_db"] is not None}
        if not gaps:
            continue
        best = min(gaps, key=gaps.get)
        parts.append(f"at {rounds} rounds ({rows[best]['steps']} steps each) {'met' if gaps[best] <= 0.3 else 'NOT met'}"
                     ": " + ", ".join(f"{n} {g:+.2f} dB" for n, g in gaps.items()))
    caveat = " CI mode: a smoke-size run (a few steps), not evidence either way." if mode == "ci" else ""
    return ("Goal (non-IID FedAvg or FedProx within 0.3 dB MCD of centralized with the same steps): "
            + "; ".join(parts) + f"; on {len(cfg['speakers']) * cfg['test_per_speaker']} held-out sentences, one "
            "seed." + caveat)


def main(argv=None):
    parser = harness.make_parser(__doc__, "federated")
    parser.add_argument("--no-voices", action="store_true", help="skip MCD-DTW / PER")
    parser.add_argument("--probe", default=None, help=argparse_hidden())
    args, run = harness.start("federated", parser, argv)
    from ttslab.data import load_builtin
    from ttslab.train import federated_fastspeech as recipe

    corpus = load_builtin(args.mode)
    if args.probe:  # the child process of probe_in_subprocess
        print(json.dumps(recipe.memory_probe(corpus, **json.loads(args.probe))))
        return None
    experiments = recipe.run_all(corpus, recipe.SETTINGS[args.mode], voices=not args.no_voices, progress=False)
    memory = [probe_in_subprocess(args.mode, s) for s in MEMORY[args.mode]]
    summary = recipe.summary_metrics(experiments)
    results = {"summary": summary, "experiments": experiments, "memory": memory,
               "verdict": verdict(experiments, summary, args.mode)}
    return run.write(results, to_markdown)


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
