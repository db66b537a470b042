"""Vocoder quality floor: how close does each vocoder's analysis-resynthesis get to the original?

Runs :func:`ttslab.vocoders.evaluate.evaluate_vocoders` (WORLD, Griffin-Lim 32 and 100 iterations)
on the held-out English test utterances of the built-in corpus; the metrics and why there are two
kinds of spectral measure are explained in that module.

Results go to ``<out>/vocoder_floor.json`` and ``<out>/vocoder_floor.md``::

    python benchmarks/vocoder_floor.py --mode ci              # 100 utterances, 285 s of audio: ~6 min
    python benchmarks/vocoder_floor.py --mode ci --limit 10   # a quick look
    python benchmarks/vocoder_floor.py --mode full --jobs 2    # 400 utterances: ~20 min on 2 cores

The corpus must be built first (``python -m ttslab build-corpus --mode ci``).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    # One thread everywhere, set before numpy/torch start their thread pools, so RTFs compare.
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import argparse
import platform
import sys
from pathlib import Path

from ttslab.dsp.spectral import SAMPLE_RATE
from ttslab.io import atomic_write_json, atomic_write_text
from ttslab.vocoders.evaluate import DEFAULT_VOCODERS, evaluate_vocoders, to_markdown

def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="corpus size (default: TTSLAB_CI)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N utterances")
    parser.add_argument("--jobs", type=int, default=1, help="parallel one-thread processes")
    args = parser.parse_args(argv)

    import torch

    from ttslab.config import mode as default_mode
    from ttslab.data import load_builtin

    torch.set_num_threads(1)
    mode = args.mode or default_mode()
    corpus = load_builtin(mode).filter(split="test", language="en")
    utterances = list(corpus)[: args.limit] if args.limit else list(corpus)
    results = evaluate_vocoders(utterances, jobs=args.jobs)
    results["meta"] = {
        "mode": mode, "n_utterances": len(utterances), "sample_rate": SAMPLE_RATE,
        "audio_seconds": sum(r["seconds"] for r in results["rows"]) / len(DEFAULT_VOCODERS),
        "threads": torch.get_num_threads(), "jobs": args.jobs, "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    atomic_write_json(args.out / "vocoder_floor.json", results)
    atomic_write_text(args.out / "vocoder_floor.md", to_markdown(results))
    print(to_markdown(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
