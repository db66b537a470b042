"""Knowledge distillation, measured: the classic experiment (soft labels, temperature, less labelled data).

``--part classic`` (the only part so far; the TTS students of issue 10 will add their own parts):
frame-level phone classification from log-mel on the built-in corpus
(:mod:`ttslab.distill.classic`, recipe :mod:`ttslab.train.distill_classic`). A BiLSTM teacher, then
students of one size (a BiGRU ~10x smaller), all with the same step budget: from scratch, distilled
over ``T in {1, 2, 4, 8} x alpha in {0.5, 0.9}`` (``alpha = 0`` *is* the scratch student), and with
only 10 % of the training windows labelled (scratch on those vs distilled with the teacher's soft
labels on all). Per model: test accuracy (held-out sentences), parameters, real-time factor of
classification (compute seconds per second of speech, one thread), training seconds. Plus the "dark
knowledge": the phone pairs the teacher's soft labels (``T = 4``) call most alike.

    python benchmarks/distill.py --mode ci --part classic     # 2 speakers, a few steps (~30 s)
    python benchmarks/distill.py --mode full --part classic   # 4 speakers, ~4.1 k windows (~6-7 min of one free core)

Results go to ``<out>/distill_<mode>.json`` and ``.md``. One seed per model: differences of a few
tenths of a point between students are within what another seed would move.
"""

from __future__ import annotations

try:
    import harness  # run as `python benchmarks/distill.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy/torch start their pools

PARTS = ("classic",)


def classic(mode: str) -> dict:
    from ttslab.data import load_builtin
    from ttslab.train.distill_classic import SPEAKERS, default_settings, run

    settings = default_settings(mode)
    result = run(load_builtin(mode), mode, settings)
    rows = result["rows"]
    scratch = next(r for r in rows if r["model"] == "student scratch")
    kd = [r for r in rows if r["labels"] == 1.0 and r["alpha"]]
    best = max(kd, key=lambda r: r["accuracy"])
    few = [r for r in rows if r["labels"] < 1.0]
    few_scratch = next(r for r in few if not r["alpha"])
    few_best = max((r for r in few if r["alpha"]), key=lambda r: r["accuracy"])
    teacher = rows[0]
    return {"rows": rows, "top_confusions": result["top_confusions"],
            "data": {"speakers": list(SPEAKERS[mode]), "train_windows": result["train_windows"],
                     "train_frames": result["train_frames"], "test_frames": result["test_frames"],
                     "labelled_windows": result["labelled_windows"], "window_frames": 100},
            "settings": {"teacher_steps": settings.teacher_train.steps, "student_steps": settings.student_train.steps,
                         "batch_size": settings.student_train.batch_size, "temperatures": list(settings.temperatures),
                         "alphas": list(settings.alphas), "label_fraction": settings.label_fraction,
                         "confusion_T": settings.confusion_T},
            "summary": {"teacher_accuracy": teacher["accuracy"], "scratch_accuracy": scratch["accuracy"],
                        "best_kd": {k: best[k] for k in ("T", "alpha", "accuracy")},
                        "kd_gain_points_full_labels": 100 * (best["accuracy"] - scratch["accuracy"]),
                        "few_labels_scratch_accuracy": few_scratch["accuracy"],
                        "few_labels_best_kd": {k: few_best[k] for k in ("T", "alpha", "accuracy")},
                        "kd_gain_points_few_labels": 100 * (few_best["accuracy"] - few_scratch["accuracy"]),
                        "parameter_ratio": scratch["parameters"] / teacher["parameters"],
                        "speedup": teacher["rtf"] / scratch["rtf"]}}


def to_markdown(results: dict) -> str:
    from ttslab.train.distill_classic import table

    lines = ["# Knowledge distillation", ""]
    c = results.get("classic")
    if c:
        d, s, st = c["data"], c["summary"], c["settings"]
        lines += ["## Classic: LSTM teacher, GRU students, frame-level phone classification", "",
                  f"Speakers {', '.join(d['speakers'])}: {d['train_windows']} training windows of "
                  f"{d['window_frames']} frames ({d['train_frames']} frames), {d['test_frames']} test frames "
                  f"(held-out sentences). Teacher {st['teacher_steps']} steps, every student "
                  f"{st['student_steps']} steps, batch {st['batch_size']}. RTF: compute seconds per second of "
                  f"speech, one thread.", "", table(c["rows"]),
                  f"Student: {s['parameter_ratio']:.1%} of the teacher's parameters, {s['speedup']:.1f}x faster. "
                  f"Best distilled student (all labels): T={s['best_kd']['T']:g}, alpha={s['best_kd']['alpha']:g}, "
                  f"{s['kd_gain_points_full_labels']:+.2f} points over scratch. With "
                  f"{st['label_fraction']:.0%} labels: {s['kd_gain_points_few_labels']:+.2f} points "
                  f"(T={s['few_labels_best_kd']['T']:g}, alpha={s['few_labels_best_kd']['alpha']:g}; "
                  f"the two few-label (T, alpha) were fixed before the run, not chosen on the test set).", "",
                  f"Dark knowledge: the phones the teacher's soft labels (T={st['confusion_T']:g}) find most alike "
                  f"(mean probability of the second phone on frames of the first, training frames):", "",
                  "| phone | alike | mean p_T |", "|---|---|---:|"]
        lines += [f"| {r['phone']} | {r['confused_with']} | {r['mean_prob']:.3f} |" for r in c["top_confusions"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "distill")
    parser.add_argument("--part", choices=PARTS, action="append", default=None,
                        help="which part to run (repeatable; default: all)")
    args, run = harness.start("distill", parser, argv)
    parts = args.part or list(PARTS)
    results = {}
    if "classic" in parts:
        results["classic"] = classic(args.mode)
    results["summary"] = {p: results[p]["summary"] for p in parts}
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main()
