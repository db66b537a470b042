"""Intelligibility judge: phone error rate on held-out real speech (the floor) and on vocoder resynthesis.

For every English test utterance of the built-in corpus, the judge (:mod:`ttslab.models.judge`,
greedy CTC decoding) transcribes

* ``ground_truth``     the recording itself: the judge's own error, the floor of every system;
* ``world``            WORLD analysis-resynthesis (:func:`ttslab.vocoders.world_vocoder_resynthesize`);
* ``griffin_lim_32``   log-mel -> Griffin-Lim, 32 iterations (:func:`ttslab.vocoders.mel_resynthesize`);

and the corpus-level PER ``sum(S + D + I) / sum(N)`` (silences not scored) is reported per condition,
with the substitution/deletion/insertion split, per speaker, and the judge's speed. Several
checkpoints can be compared in one run (e.g. trained with and without SpecAugment).

Results go to ``<out>/judge_<mode>.json`` and ``.md``::

    python benchmarks/judge.py --mode ci --checkpoint /tmp/ckpt/judge_full.pt               # 100 utterances
    python benchmarks/judge.py --mode full --checkpoint /tmp/ckpt/judge_full.pt --jobs 2    # 400 utterances
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import harness  # run as `python benchmarks/judge.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread everywhere, before numpy/torch start their pools

import numpy as np  # noqa: E402

CONDITIONS = ("ground_truth", "world", "griffin_lim_32")


def condition_mels(utt) -> dict:
    """``{condition: (80, T) log-mel}`` of one utterance: the recording and its two resyntheses.

    The resyntheses' log-mels are cached (:class:`ttslab.dsp.cache.FeatureCache`, ``judge-resynth``):
    they cost ~2 s per utterance and do not depend on the judge, so comparing judges is cheap.
    """
    import torch

    from ttslab.dsp import log_mel
    from ttslab.dsp.cache import FeatureCache
    from ttslab.vocoders import mel_resynthesize, world_vocoder_resynthesize

    torch.set_num_threads(1)
    x = utt.load_audio()
    vocoders = {"world": world_vocoder_resynthesize, "griffin_lim_32": lambda a: mel_resynthesize(a, n_iter=32)}
    out = {"utterance": utt.id, "speaker": utt.speaker, "phones": list(utt.phones),
           "seconds": len(x) / utt.sample_rate, "ground_truth": log_mel(x)}
    for name, vocode in vocoders.items():
        cache = FeatureCache(None, "judge-resynth", {"vocoder": name, "feature": "log_mel"})
        key = f"{utt.id}.{utt.sha256[:16]}" if utt.sha256 else utt.id  # the audio's checksum: never a stale entry
        out[name] = cache.get_or_compute(key, lambda: log_mel(vocode(x)))  # noqa: B023 (called right here)
    return out


def score(model, rows: list[dict]) -> dict:
    """Corpus PER and S/D/I per condition, PER per speaker, and transcription time for one judge."""
    from ttslab.metrics import PER_IGNORED, edit_operations

    out = {}
    for cond in CONDITIONS:
        totals = np.zeros(4, dtype=np.int64)  # S, D, I, N
        by_speaker: dict[str, np.ndarray] = {}
        seconds = 0.0
        for r in rows:
            t0 = time.perf_counter()
            hyp = model.transcribe(r[cond])
            seconds += time.perf_counter() - t0
            ref = [p for p in r["phones"] if p not in PER_IGNORED]
            counts = np.array([*edit_operations(ref, hyp), len(ref)])
            totals += counts
            by_speaker[r["speaker"]] = by_speaker.get(r["speaker"], 0) + counts
        s, d, i, n = (int(v) for v in totals)
        out[cond] = {"per": (s + d + i) / n, "substitutions": s, "deletions": d, "insertions": i, "phones": n,
                     "per_by_speaker": {spk: float(c[:3].sum() / c[3]) for spk, c in sorted(by_speaker.items())},
                     "judge_rtf": seconds / sum(r["seconds"] for r in rows)}
    return out


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    judges = list(results["judges"])
    lines = [f"# Intelligibility judge: PER (%) on the held-out test split ({meta['mode']} corpus, "
             f"{meta['n_utterances']} utterances, {meta['n_phones']} phones; silences not scored)", "",
             "| condition | " + " | ".join(judges) + " |", "|---|" + "---:|" * len(judges)]
    for cond in CONDITIONS:
        cells = []
        for j in judges:
            r = results["judges"][j]["scores"][cond]
            cells.append(f"{100 * r['per']:.2f} (S {r['substitutions']} / D {r['deletions']} / I {r['insertions']})")
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    lines += ["", "| judge | parameters | checkpoint (bytes) | trained (s) | judge RTF (1 thread, from mel) |",
              "|---|---:|---:|---:|---:|"]
    for j in judges:
        info = results["judges"][j]
        lines.append(f"| {j} | {info['parameters']:,} | {info['checkpoint_bytes']:,} | "
                     f"{info.get('train_seconds') or '-'} | {info['scores']['ground_truth']['judge_rtf']:.4f} |")
    first = results["judges"][judges[0]]["scores"]
    speakers = list(first["ground_truth"]["per_by_speaker"])
    lines += ["", f"PER (%) per speaker, judge `{judges[0]}`:", "",
              "| speaker | " + " | ".join(CONDITIONS) + " |", "|---|" + "---:|" * len(CONDITIONS)]
    for spk in speakers:
        lines.append(f"| {spk} | " + " | ".join(f"{100 * first[c]['per_by_speaker'][spk]:.2f}" for c in CONDITIONS)
                     + " |")
    lines += ["", "Greedy CTC decoding.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "judge")
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                        help="judge checkpoint(s); several are compared side by side")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N utterances")
    parser.add_argument("--jobs", type=int, default=1, help="parallel one-thread processes for the vocoders")
    args, run = harness.start("judge", parser, argv)

    from tqdm.auto import tqdm

    from ttslab.data import load_builtin
    from ttslab.models.judge import from_checkpoint

    mode = args.mode
    judges = {path.stem: from_checkpoint(path) for path in args.checkpoint}  # fail early on a bad checkpoint
    utts = list(load_builtin(mode).filter(split="test", language="en"))[: args.limit or None]
    if args.jobs > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.jobs) as pool:
            rows = list(tqdm(pool.imap(condition_mels, utts), total=len(utts), desc="resynthesis"))
    else:
        rows = [condition_mels(u) for u in tqdm(utts, desc="resynthesis")]

    results = {"judges": {}, "meta": {
        "mode": mode, "n_utterances": len(rows), "audio_seconds": sum(r["seconds"] for r in rows),
        "n_phones": int(sum(len([p for p in r["phones"] if p not in ("pau", "sil")]) for r in rows)),
        "decoding": "greedy CTC (best path)"}}
    for (name, model), path in zip(judges.items(), args.checkpoint):
        results["judges"][name] = {"checkpoint": str(path), "checkpoint_bytes": path.stat().st_size,
                                   "parameters": model.num_parameters(), "config": model.config.to_dict(),
                                   "train_seconds": model.extra.get("train_seconds"),
                                   "scores": score(model, rows)}
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
