"""Serving TTS with Ray Serve on 127.0.0.1: a load test (latency, throughput, nothing dropped) with and
without dynamic batching, teacher vs the smaller model, and the edge/cloud placements.

For each batching setting (``@serve.batch`` on, then off) one server is started
(:class:`ttslab.serving.TTSServer`: the registered FastSpeech teacher and the small FastSpeech, each with
the registered neural vocoder, one replica each, one torch thread each) and, for each model and each
concurrency N, N client threads send ``requests(N)`` requests over HTTP (a new connection each), bounded
by a time limit per cell. Reported per cell: p50/p95/p99 latency (client side, request sent to WAV
received), utterances/s and audio-seconds/s over the cell's wall time, and every outcome counted
(status codes, client errors; ``unanswered`` must be 0).

Edge/cloud (batching on): each placement of :mod:`ttslab.serving.client` -- everything on the server,
the vocoder on the edge, the acoustic model on the edge -- synthesizes the same sentences; the table
gives the bytes each way and the median latency, with the edge's own compute time. The "edge" is this
process, on the same 2 cores as the server, so its compute competes with the server's: on a real
device the split trades its CPU time for the network's bytes.

    python benchmarks/serving.py --mode ci      # N in {1, 4}, a few requests, small texts
    python benchmarks/serving.py --mode full    # N in {1, 4, 16, 64}, <= ~10 min on 2 cores

Results go to ``<out>/serving_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import statistics
import time

try:
    import harness  # run as `python benchmarks/serving.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()

TEXTS = ["Hello there.", "The quick brown fox jumps over the lazy dog.", "Can you hear me now?",
         "Speech synthesis turns written text into sound.", "It is a fine day for a walk in the park.",
         "Please call me back at five."]

SETTINGS = {"ci": {"concurrency": [1, 4], "requests": lambda n: max(4, n), "cell_limit_s": 60.0,
                   "placement_repeats": 2, "models": ["teacher", "small"]},
            "full": {"concurrency": [1, 4, 16, 64], "requests": lambda n: max(12, 2 * n), "cell_limit_s": 45.0,
                     "placement_repeats": 5, "models": ["teacher", "small"]}}


def load_cells(server, settings: dict, batching: bool) -> list[dict]:
    from ttslab.serving.client import load_test, synthesize

    cells = []
    for model in settings["models"]:
        synthesize(server.url, "Warm up.", model=model)  # first call pays for lazy set-up, not timed
        for n in settings["concurrency"]:
            result = load_test(server.url, TEXTS, concurrency=n, requests=settings["requests"](n), model=model,
                               time_limit_s=settings["cell_limit_s"], timeout_s=120.0)
            cells.append({"batching": batching, "model": model, **result.summary()})
            print(cells[-1], flush=True)
    return cells


def placements(server, repeats: int) -> list[dict]:
    from ttslab import pretrained
    from ttslab.serving import SpeechEngine
    from ttslab.serving.client import PLACEMENTS, run_placement

    edge = SpeechEngine(pretrained.load("fastspeech_teacher"), pretrained.load("vocoder").vocode)
    texts = TEXTS[:3]
    runs = {p: [] for p in PLACEMENTS}
    for _ in range(repeats):
        for text in texts:
            for p in PLACEMENTS:  # interleaved: load changes hit every placement alike
                runs[p].append(run_placement(p, server.url, text, "en_us_m", model="teacher", edge=edge))
    rows = []
    for p, rs in runs.items():
        rows.append({"placement": p, "runs": len(rs),
                     "bytes_up_mean": round(statistics.mean(r["bytes_up"] for r in rs)),
                     "bytes_down_mean": round(statistics.mean(r["bytes_down"] for r in rs)),
                     "latency_median_ms": round(1000 * statistics.median(r["seconds"] for r in rs), 1),
                     "edge_compute_median_ms": round(1000 * statistics.median(r["edge_seconds"] for r in rs), 1),
                     "audio_s_mean": round(statistics.mean(len(r["audio"]) for r in rs) / 22050.0, 3)})
    return rows


def to_markdown(results: dict) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.0f}"

    lines = ["# Serving: Ray Serve load test and edge/cloud split", "",
             "Server start-up (Ray + Serve + models, 127.0.0.1): "
             + ", ".join(f"batching {k}: {v:.0f} s" for k, v in results["startup_s"].items()) + ".", "",
             "| batching | model | N clients | sent | ok | other statuses | client errors | unanswered | "
             "p50 ms | p95 ms | p99 ms | utt/s | audio s/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in results["load"]:
        other = {k: v for k, v in c["statuses"].items() if k != "200"} or "-"
        lines.append(f"| {'on' if c['batching'] else 'off'} | {c['model']} | {c['concurrency']} | {c['sent']} | {c['ok']} | "
                     f"{other} | {c['client_errors'] or '-'} | {c['unanswered']} | {ms(c['p50_ms'])} | {ms(c['p95_ms'])} | "
                     f"{ms(c['p99_ms'])} | {c['utterances_per_s']:.2f} | {c['audio_s_per_s']:.2f} |")
    lines += ["", "## Edge/cloud placement (teacher, batching on)", "",
              "| placement | runs | bytes up | bytes down | median latency ms | edge compute ms | audio s |",
              "|---|---|---|---|---|---|---|"]
    for r in results["placements"]:
        lines.append(f"| {r['placement']} | {r['runs']} | {r['bytes_up_mean']} | {r['bytes_down_mean']} | "
                     f"{r['latency_median_ms']:.0f} | {r['edge_compute_median_ms']:.0f} | {r['audio_s_mean']:.2f} |")
    return "\n".join(lines) + "\n\n" + results["note"] + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "serving")
    args, run = harness.start("serving", parser, argv)
    settings = SETTINGS[args.mode]
    from ttslab.serving import TTSServer, default_models

    models = default_models(args.mode)
    results = {"load": [], "placements": [], "startup_s": {}, "models": {k: vars(v) for k, v in models.items()},
               "settings": {k: v for k, v in settings.items() if k != "requests"},
               "requests_per_cell": {n: settings["requests"](n) for n in settings["concurrency"]}}
    for batching in (True, False):
        t0 = time.perf_counter()
        with TTSServer(models, batching=batching) as server:
            results["startup_s"]["on" if batching else "off"] = time.perf_counter() - t0
            results["load"] += load_cells(server, settings, batching)
            if batching:
                results["placements"] = placements(server, settings["placement_repeats"])
    results["note"] = (
        "Client threads and server share the same 2 CPU cores (and other jobs: see the load average in the "
        "footer), so latencies include queueing behind CPU work; with one replica per model, requests beyond "
        "what one replica computes at a time wait in Serve's queue (max_ongoing_requests=64) or the batch queue. "
        "Dynamic batching pads a batch to its longest text and runs one forward pass; on a CPU with one thread "
        "that saves per-call overhead but not arithmetic, so its gain here is small; on a GPU it is the main lever. "
        "Nothing is dropped: every request sent is counted as a status or a client error (unanswered = 0).")
    summary = {f"{'batch' if c['batching'] else 'nobatch'}_{c['model']}_n{c['concurrency']}_p50_ms": c["p50_ms"]
               for c in results["load"]}
    return run.write({"summary": summary, **results}, to_markdown)


if __name__ == "__main__":
    main()
