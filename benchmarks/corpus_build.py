"""Benchmark: how fast the built-in corpus builds from scratch (and that it is deterministic).

Usage: python benchmarks/corpus_build.py [--mode full|ci] [--jobs 2] [--out benchmarks/results]

Builds the corpus into a fresh temporary folder, reports wall time, CPU time, minutes of audio,
utterances per second and the real-time factor (build seconds per second of audio), and compares
the manifest with an existing build in TTSLAB_DATA (if any) to confirm byte-identical output.
Writes corpus_build_<mode>.json and .md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ttslab.data import builtin
from ttslab.io import atomic_write_json, atomic_write_text
from ttslab.text import espeak


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["full", "ci"], default="full")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    a = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ttslab-bench-"))
    try:
        espeak.library_info()  # load the library outside the timed region, as a warm process would
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        corpus = builtin.build_corpus(a.mode, tmp / "corpus", jobs=a.jobs, progress=True)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        manifest = (tmp / "corpus" / "manifest.json").read_bytes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    audio_s = corpus.info["total_seconds"]
    existing = builtin.default_root(a.mode) / "manifest.json"
    identical = (existing.read_bytes() == manifest) if existing.is_file() else None
    result = {
        "mode": a.mode, "jobs": a.jobs, "utterances": len(corpus), "speakers": len(corpus.speakers),
        "languages": corpus.languages, "audio_minutes": round(audio_s / 60, 1),
        "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
        "utterances_per_second": round(len(corpus) / wall, 1), "real_time_factor": round(wall / audio_s, 5),
        "times_faster_than_real_time": round(audio_s / wall), "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "identical_to_existing_build": identical, "espeak": corpus.info["espeak_version"],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(a.out / f"corpus_build_{a.mode}.json", result)
    md = ["| mode | utterances | speakers | audio (min) | build wall (s) | CPU (s) | utt/s | RTF | × real time |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
          f"| {a.mode} | {result['utterances']} | {result['speakers']} | {result['audio_minutes']} | {result['wall_seconds']} | "
          f"{result['cpu_seconds']} | {result['utterances_per_second']} | {result['real_time_factor']} | {result['times_faster_than_real_time']} |"]
    atomic_write_text(a.out / f"corpus_build_{a.mode}.md", "\n".join(md) + "\n")
    print(json.dumps(result, indent=1))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
