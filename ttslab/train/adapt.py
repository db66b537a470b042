"""Recipe: adapt the FastSpeech teacher to a new built-in speaker with k utterances (:mod:`ttslab.transfer`).

Which teacher: full mode the registered ``fastspeech_teacher`` (:mod:`ttslab.pretrained`; a retrained
teacher registered under the same name is picked up unchanged), CI mode the tiny model of
:func:`ttslab.train.fastspeech.cached_fastspeech`. Which data: the first ``k`` training utterances
of an adaptation speaker (:data:`ttslab.data.speakers.ADAPTATION_SPEAKERS`); k = 0 copies the nearest
source speaker (signatures from :data:`SIGNATURE_UTTERANCES` utterances each, the target's from one
enrolment utterance). Settings per mode: :data:`ADAPT_CONFIGS`.

Command line (writes the adapted checkpoint, with adapters merged, and ``<out>.log.json``)::

    python -m ttslab.train.adapt --mode full --speaker tgt_us_f --k 20 --method lora --out /tmp/tgt_us_f_lora.pt
    TTSLAB_CI=1 python -m ttslab.train.adapt --mode ci --speaker tgt_rp_m --k 5 --method l2sp --out /tmp/a.pt

Notebooks and the benchmark call :func:`cached_adaptation`, which adapts once and reuses the result.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # one BLAS thread before numpy/torch load: adaptation time is measured on one thread
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from ttslab.models.fastspeech import FastSpeech, fastspeech_items
from ttslab.transfer.adapt import (METHODS, AdaptConfig, adapt_speaker, adaptation_utterances, nearest_speaker,
                                   speaker_signature)

#: Settings per mode: the teacher takes ~1-1.5 s a step of 4 utterances on one busy CPU thread, so a full-mode
#: run is about half a minute: few steps, which the learning rates (DEFAULT_LR) are set for.
ADAPT_CONFIGS = {"full": AdaptConfig(steps=20, batch_size=4), "ci": AdaptConfig(steps=6, batch_size=4)}
#: Utterances per source speaker for its signature (and 1 enrolment utterance of the target).
SIGNATURE_UTTERANCES = {"full": 5, "ci": 2}


def load_teacher(mode: str, progress: bool = False) -> FastSpeech:
    """The teacher of ``mode``: the registered ``fastspeech_teacher`` (full) or the cached tiny model (ci), on the CPU."""
    if mode == "full":
        from ttslab import pretrained

        return pretrained.load("fastspeech_teacher")
    if mode == "ci":
        from ttslab.train.fastspeech import cached_fastspeech

        return cached_fastspeech("ci", progress=progress, device="cpu")
    raise ValueError(f"mode must be 'ci' or 'full', got {mode!r}")


def source_signatures(corpus, teacher: FastSpeech, n: int) -> dict:
    """``{source speaker: signature}`` from the first ``n`` training utterances of each of the teacher's speakers."""
    sigs = {}
    for s in teacher.speakers:
        items = fastspeech_items(adaptation_utterances(corpus, s, n), teacher.speakers)
        sigs[s] = speaker_signature(items)
    return sigs


def nearest_source(corpus, teacher: FastSpeech, speaker: str, mode: str) -> tuple[str, dict]:
    """The teacher's speaker nearest to ``speaker`` (one enrolment utterance) and every distance."""
    enrol = fastspeech_items(adaptation_utterances(corpus, speaker, 1), list(teacher.speakers) + [speaker])
    return nearest_speaker(speaker_signature(enrol), source_signatures(corpus, teacher, SIGNATURE_UTTERANCES[mode]))


def run_adaptation(corpus, teacher: FastSpeech, speaker: str, k: int, method: str, config: AdaptConfig,
                   mode: str, **kwargs) -> tuple[FastSpeech, dict]:
    """Adapt ``teacher`` to ``speaker`` from its first ``k`` training utterances (see the module docstring)."""
    near, dist = nearest_source(corpus, teacher, speaker, mode)
    utts = adaptation_utterances(corpus, speaker, k)
    model, info = adapt_speaker(teacher, speaker, utts, method, config, init_from=near, **kwargs)
    info.update(speaker=speaker, nearest=near, distances=dist, config=config.to_dict())
    return model, info


def cached_adaptation(mode: str, speaker: str, k: int, method: str, config: AdaptConfig | None = None
                      ) -> tuple[FastSpeech, dict]:
    """:func:`run_adaptation` on the built-in corpus of ``mode``, cached under ``data_home()/models/adapt/<key>``
    (keyed by the teacher's checksum, so a newly registered teacher adapts again)."""
    from ttslab.data import load_builtin
    from ttslab.train import load_or_train

    config = config or ADAPT_CONFIGS[mode]
    teacher = load_teacher(mode)
    digest = hashlib.sha256(
        b"".join(v.detach().cpu().numpy().tobytes() for v in teacher.state_dict().values())).hexdigest()
    key = {"model": "adapt", "mode": mode, "speaker": speaker, "k": k, "method": method, "config": config.to_dict(),
           "teacher": digest}

    def train(folder: Path) -> Path:
        model, info = run_adaptation(load_builtin(mode), teacher, speaker, k, method, config, mode)
        (folder / "info.json").write_text(json.dumps(info, indent=1))
        path = folder / "adapted.pt"
        model.save(path, half=False, extra={"adaptation": info})
        return path

    path = load_or_train("adapt", key, train)
    return FastSpeech.from_checkpoint(path), json.loads((path.parent / "info.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Adapt the FastSpeech teacher to a new built-in speaker.")
    p.add_argument("--mode", choices=("full", "ci"), default="full")
    p.add_argument("--speaker", required=True, help="a new speaker, e.g. one of ttslab.data.speakers.ADAPTATION_SPEAKERS")
    p.add_argument("--k", type=int, required=True, help="number of the speaker's training utterances (0: nearest speaker)")
    p.add_argument("--method", choices=METHODS, required=True)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="checkpoint path (a .sha256 sidecar and .log.json are written too)")
    args = p.parse_args(argv)

    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json

    torch.set_num_threads(args.threads)
    config = replace(ADAPT_CONFIGS[args.mode], **{k: v for k, v in (("steps", args.steps), ("lr", args.lr))
                                                  if v is not None})
    teacher = load_teacher(args.mode, progress=True)
    model, info = run_adaptation(load_builtin(args.mode), teacher, args.speaker, args.k, args.method, config, args.mode)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    info["command"] = " ".join(sys.argv)
    info["sha256"] = model.save(out, extra={"adaptation": info})
    atomic_write_json(out.with_name(out.name + ".log.json"), info)
    print(f"saved {out}: {args.method}, k={args.k}, {info['trainable_parameters']} trainable parameters, "
          f"{info['seconds']:.1f} s, started from {info['nearest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
