"""Vocoder quality floor: how close does each vocoder's analysis-resynthesis get to the original?

Runs :func:`ttslab.vocoders.evaluate.evaluate_vocoders` (WORLD, Griffin-Lim 32 and 100 iterations)
on the held-out English test utterances of the built-in corpus; the metrics and why there are two
kinds of spectral measure are explained in that module.

Results go to ``<out>/vocoder_floor_<mode>.json`` and ``<out>/vocoder_floor_<mode>.md``::

    python benchmarks/vocoder_floor.py --mode ci              # 100 utterances, 285 s of audio: ~6 min
    python benchmarks/vocoder_floor.py --mode ci --limit 10   # a quick look
    python benchmarks/vocoder_floor.py --mode full --jobs 2    # 400 utterances: ~20 min on 2 cores

The corpus must be built first (``python -m ttslab build-corpus --mode ci``).
"""

from __future__ import annotations

import sys

try:
    import harness  # run as `python benchmarks/vocoder_floor.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread everywhere, before numpy/torch start their pools, so RTFs compare

from ttslab.dsp.spectral import SAMPLE_RATE  # noqa: E402
from ttslab.vocoders.evaluate import DEFAULT_VOCODERS, evaluate_vocoders, to_markdown  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "vocoder_floor")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N utterances")
    parser.add_argument("--jobs", type=int, default=1, help="parallel one-thread processes")
    args, run = harness.start("vocoder_floor", parser, argv)

    from ttslab.data import load_builtin

    mode = args.mode
    from ttslab.data.speakers import ENGLISH_SPEAKERS

    corpus = load_builtin(mode).filter(split="test", speakers=list(ENGLISH_SPEAKERS))  # the source speakers
    utterances = list(corpus)[: args.limit] if args.limit else list(corpus)
    results = evaluate_vocoders(utterances, jobs=args.jobs)
    results["meta"] = {
        "mode": mode, "n_utterances": len(utterances), "sample_rate": SAMPLE_RATE,
        "audio_seconds": sum(r["seconds"] for r in results["rows"]) / len(DEFAULT_VOCODERS),
        "jobs": args.jobs, "limit": args.limit,
    }
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
