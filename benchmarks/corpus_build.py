"""Benchmark: how fast the built-in corpus builds from scratch (and that it is deterministic).

Usage: python benchmarks/corpus_build.py [--mode full|ci] [--jobs 2] [--threads 1] [--out benchmarks/results]

Builds the corpus into a fresh temporary folder, reports wall time, CPU time, minutes of audio,
utterances per second and the real-time factor (build seconds per second of audio), and compares
the manifest with an existing build in TTSLAB_DATA (if any) to confirm byte-identical output.
Writes corpus_build_<mode>.json and .md.
"""

from __future__ import annotations

import hashlib
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

try:
    import harness  # run as `python benchmarks/corpus_build.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()

from ttslab.data import builtin  # noqa: E402
from ttslab.text import espeak  # noqa: E402


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    p = harness.make_parser(__doc__, "corpus_build")
    p.add_argument("--jobs", type=int, default=2)
    a, run = harness.start("corpus_build", p, argv)
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
    }
    run.write(result, to_markdown)
    return 0


def to_markdown(result: dict) -> str:
    md = ["| mode | utterances | speakers | audio (min) | build wall (s) | CPU (s) | utt/s | RTF | × real time |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
          f"| {result['mode']} | {result['utterances']} | {result['speakers']} | {result['audio_minutes']} | {result['wall_seconds']} | "
          f"{result['cpu_seconds']} | {result['utterances_per_second']} | {result['real_time_factor']} | {result['times_faster_than_real_time']} |"]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    sys.exit(main())
