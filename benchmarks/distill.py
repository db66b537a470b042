"""Knowledge distillation, measured: the classic experiment (soft labels, temperature, less labelled data).

``--part export``: a FastSpeech exported to ONNX (:mod:`ttslab.distill.export`) and run with onnxruntime
on one thread, against PyTorch on one thread, and its dynamic int8 quantization: file size, real-time
factor of the acoustic model alone (compute seconds per second of generated speech, no vocoder), the
largest difference to PyTorch, how many utterances keep the fp32 durations, and the distance of the
int8 mels to the fp32 ones (MCD-DTW on DCT cepstra of the log-mel: int8 changes the durations, so
frames are aligned by DTW). Two int8 variants: matrix multiplications only, and convolutions too. Full mode: the registered ``fastspeech_teacher`` and an untrained
``small``-config model (the student's architecture: speed and size only until the students exist);
ci mode: an untrained ``tiny`` model.

``--part classic`` (the TTS students of issue 10 will add their own parts):
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
    python benchmarks/distill.py --mode full --part export    # teacher + small, 10 test sentences (~1-2 min)

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

PARTS = ("classic", "export")


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


def cepstral_distance_dtw(mel_ref, mel_syn, n: int = 25) -> float:
    """MCD-DTW (dB) between the DCT-II cepstra (coefficients 1..n-1) of two natural-log mels: quantization
    may change the durations, so the frames are aligned by DTW. Not WORLD's mel-cepstrum (no vocoder
    here): compare these numbers with each other only."""
    import numpy as np
    from scipy.fft import dct

    from ttslab.metrics import mcd_dtw

    c = lambda m: dct(np.asarray(m, dtype=np.float64), type=2, norm="ortho", axis=1)[:, :n]  # noqa: E731
    return mcd_dtw(c(mel_ref), c(mel_syn))


def export_one(name: str, model, sentences: list[str], folder) -> dict:
    import numpy as np

    from ttslab.distill.export import export_onnx, onnx_session, quantize_int8, run_onnx, seconds_per_call
    from ttslab.dsp.spectral import HOP, SAMPLE_RATE
    from ttslab.models.fastspeech import text_to_inputs

    fp32 = export_onnx(model, folder / f"{name}.onnx")
    files = {"onnx fp32": fp32, "onnx int8 (matmul)": quantize_int8(fp32, folder / f"{name}_int8.onnx"),
             "onnx int8 (matmul+conv)": quantize_int8(fp32, folder / f"{name}_int8c.onnx", convolutions=True)}
    sessions = {k: onnx_session(v) for k, v in files.items()}
    inputs = [text_to_inputs(text, "en_us_m") for text in sentences]
    torch_out = [model.infer(x, 0) for x in inputs]
    audio_s = sum(len(o["mel"]) for o in torch_out) * HOP / SAMPLE_RATE
    rows = [{"model": name, "runtime": "pytorch fp32", "parameters": model.num_parameters(),
             "rtf": seconds_per_call(lambda: [model.infer(x, 0) for x in inputs]) / audio_s}]
    ref = [run_onnx(sessions["onnx fp32"], x, 0) for x in inputs]
    for runtime, session in sessions.items():
        outs = [run_onnx(session, x, 0) for x in inputs]
        same = [(o, r) for o, r in zip(outs, ref) if np.array_equal(o["durations"], r["durations"])]
        row = {"model": name, "runtime": runtime, "parameters": model.num_parameters(),
               "file_bytes": files[runtime].stat().st_size,
               "rtf": seconds_per_call(lambda: [run_onnx(session, x, 0) for x in inputs]) / audio_s,
               "same_durations": f"{len(same)}/{len(outs)}",
               "mel_cd_dtw_vs_fp32": float(np.mean([cepstral_distance_dtw(r["mel"], o["mel"])
                                                    for o, r in zip(outs, ref)]))}
        if runtime == "onnx fp32":
            row["max_abs_diff_vs_pytorch"] = max(float(np.abs(o["mel"] - t["mel"].numpy()).max())
                                                 for o, t in zip(outs, torch_out))
        rows.append(row)
    return {"rows": rows, "audio_seconds": audio_s}


def export(mode: str) -> dict:
    import tempfile
    from pathlib import Path

    import torch

    from ttslab.data.builtin import read_prompts
    from ttslab.models.fastspeech import FastSpeech, FastSpeechConfig

    sentences = read_prompts("en_test")[: 10 if mode == "full" else 2]
    models = {}
    if mode == "full":
        from ttslab import pretrained

        models["teacher (registered)"] = pretrained.load("fastspeech_teacher")
        torch.manual_seed(0)
        models["small (untrained)"] = FastSpeech(FastSpeechConfig.small(speakers=models["teacher (registered)"].speakers))
    else:
        torch.manual_seed(0)
        models["tiny (untrained)"] = FastSpeech(FastSpeechConfig.tiny())
    for name, m in models.items():
        if "untrained" in name:  # ~3.5 frames a phone instead of an untrained predictor's ~0
            with torch.no_grad():
                m.duration_predictor.proj.bias.fill_(1.5)
        m.eval()
    rows, audio = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in models.items():
            r = export_one(name.split(" ")[0], m, sentences, Path(tmp))
            for row in r["rows"]:
                row["model"] = name
            rows += r["rows"]
            audio[name] = r["audio_seconds"]
    fp32 = [r for r in rows if r["runtime"] == "onnx fp32"]
    return {"rows": rows, "sentences": len(sentences), "audio_seconds": audio,
            "summary": {"max_abs_diff_vs_pytorch": max(r["max_abs_diff_vs_pytorch"] for r in fp32),
                        **{f"{r['model']} {r['runtime']} rtf": r["rtf"] for r in rows}}}


def carried_over(json_path, parts: list[str]) -> dict:
    """The parts *not* run now from the previous results file of this mode, each with the command and commit
    that measured it (``measured_by``), so running one part keeps the others' tables."""
    import json

    if not json_path.is_file():
        return {}
    old = json.loads(json_path.read_text())
    meta = old.get("meta", {})
    kept = {}
    for part in PARTS:
        if part not in parts and part in old:
            kept[part] = {**old[part], "measured_by": old[part].get("measured_by") or {
                "command": meta.get("command"), "commit": meta.get("commit"), "dirty": meta.get("dirty"),
                "wall_seconds": meta.get("wall_seconds")}}
    return kept


def measured_by(part: dict) -> list[str]:
    m = part.get("measured_by")
    if not m:
        return []
    return ["", f"(This part comes from an earlier run: `{m['command']}`, commit `{(m['commit'] or '?')[:12]}`"
                f"{' with uncommitted changes' if m.get('dirty') else ''}, {(m.get('wall_seconds') or 0) / 60:.1f} min.)"]


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
                  f"speech, one thread (best of 2). train s: wall-clock seconds on a shared machine (see the load "
                  f"average in the footer), not CPU time. One seed per model.", "", table(c["rows"]),
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
        lines += measured_by(c)
    e = results.get("export")
    if e:
        lines += ["", "## ONNX export and int8 quantization (acoustic model only, one thread)", "",
                  f"{e['sentences']} test sentences, speaker en_us_m. RTF: compute seconds per second of generated "
                  f"speech.", "",
                  "| model | runtime | parameters | file MB | RTF | max abs diff to PyTorch | same durations | "
                  "cepstral distance to fp32 (DTW, dB) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in e["rows"]:
            mb = f"{r['file_bytes'] / 1e6:.2f}" if "file_bytes" in r else ""
            diff = f"{r['max_abs_diff_vs_pytorch']:.1e}" if "max_abs_diff_vs_pytorch" in r else ""
            mae = "" if r.get("mel_cd_dtw_vs_fp32") is None else f"{r['mel_cd_dtw_vs_fp32']:.3f}"
            lines.append(f"| {r['model']} | {r['runtime']} | {r['parameters']:,} | {mb} | {r['rtf']:.4f} | {diff} | "
                         f"{r.get('same_durations', '')} | {mae} |")
        lines += measured_by(e)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "distill")
    parser.add_argument("--part", choices=PARTS, action="append", default=None,
                        help="which part to run (repeatable; default: all)")
    args, run = harness.start("distill", parser, argv)
    parts = args.part or list(PARTS)
    results = carried_over(run.paths[0], parts)
    if "classic" in parts:
        results["classic"] = classic(args.mode)
    if "export" in parts:
        results["export"] = export(args.mode)
    results["summary"] = {p: results[p]["summary"] for p in PARTS if p in results}
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main()
