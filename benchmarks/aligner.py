"""Flat-start forced aligner: boundary accuracy on held-out utterances, training time, alignment speed.

For every English speaker of the built-in corpus: train a speaker-dependent
:class:`ttslab.classical.align.ForcedAligner` on its train split (transcripts only, flat start),
align its held-out test utterances and compare the phone boundaries with the corpus' exact eSpeak
labels (:func:`~ttslab.classical.align.boundary_errors`: internal boundaries, in seconds).
Reported per speaker and pooled over all boundaries: % within 10 / 20 / 50 ms, mean absolute
error, training time and the alignment real-time factor (alignment seconds / audio seconds, one
thread, features included).

The "lexicon" section trains the same way from *text only*, the way a real corpus is used: 30 train
utterances of one speaker written out in the LJSpeech layout, read back with
:func:`ttslab.data.readers.read_ljspeech`, transcribed with CMUdict (``sp`` between words) and
aligned; word starts are compared with the built-in corpus' word starts.

Results go to ``<out>/aligner_<mode>.json`` and ``<out>/aligner_<mode>.md``::

    python benchmarks/aligner.py --mode ci                  # 10 speakers x 40 utterances: ~5 min on 2 cores
    python benchmarks/aligner.py --mode full --jobs 2       # 10 speakers x 330 utterances: ~25 min on 2 cores
    python benchmarks/aligner.py --mode full --speakers en_us_m,en_gb_f

With ``--jobs 2`` two speakers train at once (one thread each), so training times are those of a
shared machine. The corpus must be built first (``python -m ttslab build-corpus --mode ci``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

try:
    import harness  # run as `python benchmarks/aligner.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread everywhere, before numpy starts its pools: multi-threaded BLAS is slower here

import numpy as np  # noqa: E402

TOLERANCES_MS = (10, 20, 50)
LEXICON_SPEAKER, LEXICON_UTTERANCES = "en_us_m", 30


def summarize(errors: np.ndarray) -> dict:
    """% within each tolerance and mean absolute error (ms) of boundary errors in seconds."""
    from ttslab.classical.align import accuracy_within

    out = {"n_boundaries": int(errors.size), "mean_abs_ms": round(float(errors.mean()) * 1000, 2),
           "median_abs_ms": round(float(np.median(errors)) * 1000, 2)}
    for tol in TOLERANCES_MS:
        out[f"within_{tol}ms"] = round(100 * accuracy_within(errors, tol / 1000), 2)
    return out


def evaluate_speaker(mode: str, speaker: str, overrides: dict) -> dict:
    """Train on ``speaker``'s train split, align its test split; errors, timings, training log."""
    from ttslab.classical.align import boundary_errors, train_aligner
    from ttslab.data import load_builtin

    corpus = load_builtin(mode)
    aligner = train_aligner(corpus, speakers=speaker, progress=False, **overrides)
    test = list(corpus.filter(speakers=speaker, split="test"))
    errors, align_seconds = [], 0.0
    for utt in test:
        started = time.perf_counter()
        hypothesis = aligner.align_utterance(utt)
        align_seconds += time.perf_counter() - started
        errors.append(boundary_errors(utt.segments, hypothesis, utt.sample_rate))
    errors = np.concatenate(errors)
    audio_seconds = sum(u.duration for u in test)
    train_utts = corpus.filter(speakers=speaker, split="train")
    return {
        "speaker": speaker, **summarize(errors), "n_train_utterances": len(train_utts),
        "train_audio_seconds": round(sum(u.duration for u in train_utts), 1),
        "n_test_utterances": len(test), "test_audio_seconds": round(audio_seconds, 1),
        "train_seconds": round(aligner.fit_seconds_, 1), "align_rtf": round(align_seconds / audio_seconds, 4),
        "log_likelihood_per_frame": [round(h["per_frame"], 4) for h in aligner.history_],
        "errors_ms": np.round(errors * 1000, 2).tolist(),
    }


def evaluate_lexicon(mode: str, overrides: dict, speaker: str = LEXICON_SPEAKER, n: int = LEXICON_UTTERANCES) -> dict:
    """Text-only training on ``n`` utterances in the LJSpeech layout; word-start errors vs the corpus."""
    from ttslab.classical.align import ForcedAligner, transcript, word_boundary_errors
    from ttslab.data import load_builtin
    from ttslab.data.readers import read_ljspeech

    builtin = list(load_builtin(mode).filter(speakers=speaker, split="train"))[:n]
    root = Path(tempfile.mkdtemp(prefix="ttslab-lj-"))
    try:
        write_ljspeech_layout(builtin, root)
        corpus = read_ljspeech(root)
        aligner = ForcedAligner(progress=False, **overrides).fit(list(corpus))
        errors, tiled = [], 0
        for ref in builtin:
            utt = corpus[ref.id]
            segments = aligner.align_utterance(utt)
            tiled += segments[0].start == 0 and segments[-1].end == utt.num_samples
            errors.append(word_boundary_errors(ref.segments, ref.words, segments, transcript(utt).words,
                                               utt.sample_rate))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    errors = np.concatenate(errors)
    words = summarize(errors)
    words["n_words"] = words.pop("n_boundaries")
    return {"speaker": speaker, "n_utterances": len(builtin), "tiled": tiled, "train_seconds": round(aligner.fit_seconds_, 1),
            **words}


def write_ljspeech_layout(utterances, root: Path) -> None:
    """``root/metadata.csv`` (``id|text|text``) and ``root/wavs/<id>.wav`` for built-in utterances."""
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    for utt in utterances:
        shutil.copyfile(utt.wav_path, root / "wavs" / f"{utt.id}.wav")
    (root / "metadata.csv").write_text("".join(f"{u.id}|{u.text}|{u.text}\n" for u in utterances), encoding="utf-8")


def to_markdown(results: dict) -> str:
    meta, cfg = results["meta"], results["config"]
    lines = [f"# Flat-start forced aligner: built-in corpus, mode `{meta['mode']}`", "",
             f"Speaker-dependent monophone HMMs ({cfg['n_states']} states, {cfg['mixtures']} Gaussians per state "
             f"after {meta['n_iterations']} Baum-Welch iterations, {cfg['n_mfcc']} MFCC + deltas, "
             f"{1000 * cfg['hop'] / cfg['sample_rate']:.1f} ms frames) trained from transcripts only on each "
             "speaker's train split; errors are for the internal phone boundaries of its held-out test utterances "
             "against the exact eSpeak labels. RTF = alignment time / audio time (one thread, features included). "
             f"{meta['jobs']} speaker(s) trained at a time.", "",
             "| speaker | boundaries | within 10 ms (%) | within 20 ms (%) | within 50 ms (%) | mean abs error (ms) "
             "| train utts | train time (s) | align RTF |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["speakers"] + [results["overall"]]:
        name = r["speaker"] if r is not results["overall"] else "**all (pooled)**"
        lines.append(f"| {name} | {r['n_boundaries']} | {r['within_10ms']:.1f} | {r['within_20ms']:.1f} | "
                     f"{r['within_50ms']:.1f} | {r['mean_abs_ms']:.1f} | {r.get('n_train_utterances', '')} | "
                     f"{r['train_seconds']:.0f} | {r['align_rtf']:.4f} |")
    if results.get("lexicon"):
        lx = results["lexicon"]
        lines += ["", "## Text-only (real-corpus path)", "",
                  f"{lx['n_utterances']} train utterances of {lx['speaker']} written in the LJSpeech layout, read with "
                  "`read_ljspeech`, transcribed with CMUdict (+ `sp` between words), trained flat-start and aligned "
                  f"({lx['train_seconds']:.0f} s). Word starts against the built-in corpus' word starts "
                  f"({lx['n_words']} words; {lx['tiled']}/{lx['n_utterances']} utterances tiled):", "",
                  f"within 20 ms: {lx['within_20ms']:.1f} %, within 50 ms: {lx['within_50ms']:.1f} %, "
                  f"mean absolute error {lx['mean_abs_ms']:.1f} ms."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "aligner")
    parser.add_argument("--speakers", default="all", help="comma-separated speaker ids, or 'all' English speakers")
    parser.add_argument("--jobs", type=int, default=1, help="speakers trained at once (one process each)")
    parser.add_argument("--no-lexicon", action="store_true", help="skip the text-only (LJSpeech layout) check")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override an AlignerConfig field, e.g. --set n_iter=6 (repeatable)")
    args, run = harness.start("aligner", parser, argv)

    from ttslab.classical.align import AlignerConfig
    from ttslab.data import load_builtin

    mode = args.mode
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(AlignerConfig(), key))
        overrides[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    corpus = load_builtin(mode)
    from ttslab.data.speakers import is_adaptation

    english = [s for s in corpus.speakers if corpus.filter(speakers=s)[0].language == "en" and not is_adaptation(s)]
    speakers = english if args.speakers == "all" else args.speakers.split(",")

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(evaluate_speaker, mode, s, overrides) for s in speakers]
        lexicon = None if args.no_lexicon else pool.submit(evaluate_lexicon, mode, overrides)
        rows = []
        for f in futures:
            rows.append(f.result())
            r = rows[-1]
            print(f"{r['speaker']}: {r['within_20ms']:.1f} % within 20 ms, mean {r['mean_abs_ms']:.1f} ms, "
                  f"trained in {r['train_seconds']:.0f} s", flush=True)
        lexicon = lexicon.result() if lexicon else None
    all_errors = np.concatenate([np.asarray(r["errors_ms"]) / 1000 for r in rows])
    overall = {"speaker": "all", **summarize(all_errors),
               "train_seconds": round(float(np.mean([r["train_seconds"] for r in rows])), 1),
               "align_rtf": round(float(np.mean([r["align_rtf"] for r in rows])), 4),
               "mean_of_speakers_within_20ms": round(float(np.mean([r["within_20ms"] for r in rows])), 2)}
    config = asdict(AlignerConfig(**overrides))
    results = {
        "config": config, "overall": overall, "speakers": [{k: v for k, v in r.items() if k != "errors_ms"} for r in rows],
        "lexicon": lexicon,
        "meta": {"mode": mode, "speakers": speakers, "jobs": args.jobs, "wall_seconds": round(time.perf_counter() - started, 1),
                 "n_iterations": len(rows[0]["log_likelihood_per_frame"]), "overrides": overrides},
    }
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
