"""Training recipe for an HTS-style HMM voice (:mod:`ttslab.classical.hts`) on the built-in corpus.

The algorithm (state segmentation, clustering, GV) lives in :func:`ttslab.classical.hts.train_voice`;
this module is the recipe: which data, which settings per mode, and a command line that writes the
voice file (``.npz``, checksummed inside) and ``<out>.json`` with the command, its time and the tree sizes::

    python -m ttslab.train.hmm_voice --mode full --speaker en_us_m --out /tmp/ckpt/hmm_en_us_m.npz
    python -m ttslab.train.hmm_voice --mode ci --speaker en_us_m --out /tmp/hmm_ci.npz     # seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ttslab.classical.hts import HTSConfig, Voice, train_voice

#: Settings per mode: full mode is the shipped recipe; CI mode trains on 15 utterances with one process.
CONFIGS = {"full": HTSConfig(), "ci": HTSConfig(max_utterances=15, jobs=1)}


def train_hmm_voice(corpus, speaker: str, mode: str = "full", progress: bool = True, **overrides) -> Voice:
    """:func:`~ttslab.classical.hts.train_voice` with the settings of ``mode`` (``overrides`` replace fields)."""
    from dataclasses import replace

    if mode not in CONFIGS:
        raise ValueError(f"mode must be one of {sorted(CONFIGS)}, got {mode!r}")
    return train_voice(corpus, speaker, replace(CONFIGS[mode], **overrides), progress=progress)


def main(argv: list[str] | None = None) -> Path:
    from ttslab.config import mode as current_mode
    from ttslab.config import set_threads
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    parser = argparse.ArgumentParser(description="Train an HTS-style HMM voice on the built-in corpus.")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="default: TTSLAB_CI")
    parser.add_argument("--speaker", default="en_us_m")
    parser.add_argument("--out", type=Path, required=True, help="voice file (.npz); the log goes to .json")
    parser.add_argument("--jobs", type=int, default=None, help="feature-extraction processes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    mode = args.mode or current_mode()
    set_threads(args.threads)
    overrides = {"jobs": args.jobs} if args.jobs else {}
    t0 = time.perf_counter()
    voice = train_hmm_voice(load_builtin(mode), args.speaker, mode, **overrides)
    seconds = time.perf_counter() - t0
    voice.save(args.out)
    log = {"kind": "hmm_voice", "mode": mode, "speaker": args.speaker, "seconds": round(seconds, 1),
           "config": asdict(voice.config), "info": voice.info, "threads": args.threads,
           "bytes": args.out.stat().st_size,
           "command": "python -m ttslab.train.hmm_voice " + " ".join(sys.argv[1:] if argv is None else argv)}
    atomic_write_json(args.out.with_suffix(".json"), log)
    print(json.dumps({k: log[k] for k in ("speaker", "seconds", "bytes")}))
    return args.out


if __name__ == "__main__":
    main()
