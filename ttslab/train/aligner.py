"""Training recipe for the flat-start forced aligner (:mod:`ttslab.classical.align`).

The algorithm (flat start, embedded Baum-Welch, mixture splitting, Viterbi) lives in
:class:`ttslab.classical.align.ForcedAligner`; this module is the recipe: a speaker's ``train``
split, the settings per mode, and a command line that trains it and scores its boundaries on the
held-out ``test`` split against eSpeak's exact ones::

    python -m ttslab.train.aligner --mode full --speaker en_us_m
    python -m ttslab.train.aligner --mode ci --speaker en_us_m        # seconds
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ttslab.classical.align import AlignerConfig, ForcedAligner, accuracy_within, boundary_errors, train_aligner

#: Settings per mode (CI: fewer Baum-Welch passes, single-Gaussian states).
CONFIGS = {"full": AlignerConfig(), "ci": AlignerConfig(n_iter=3, mixtures=1)}


def train_speaker_aligner(corpus, speaker: str, mode: str = "full", **overrides) -> ForcedAligner:
    """A speaker-dependent aligner on ``speaker``'s ``train`` split with the settings of ``mode``."""
    if mode not in CONFIGS:
        raise ValueError(f"mode must be one of {sorted(CONFIGS)}, got {mode!r}")
    return train_aligner(corpus, speakers=speaker, config=CONFIGS[mode], **overrides)


def main(argv: list[str] | None = None) -> dict:
    from ttslab.config import mode as current_mode
    from ttslab.config import set_threads
    from ttslab.data import load_builtin

    parser = argparse.ArgumentParser(description="Train a forced aligner and score it on held-out sentences.")
    parser.add_argument("--mode", choices=("ci", "full"), default=None, help="default: TTSLAB_CI")
    parser.add_argument("--speaker", default="en_us_m")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    mode = args.mode or current_mode()
    set_threads(args.threads)
    corpus = load_builtin(mode)
    aligner = train_speaker_aligner(corpus, args.speaker, mode)
    errors = np.concatenate([boundary_errors(u.segments, aligner.align_utterance(u), u.sample_rate)
                             for u in corpus.filter(speakers=args.speaker, split="test")])
    result = {"speaker": args.speaker, "mode": mode, "boundaries": int(errors.size),
              "within_20ms": round(accuracy_within(errors), 4)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
