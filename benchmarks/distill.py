"""Knowledge distillation, measured: the classic experiment (soft labels, temperature, less labelled data).

``--part export``: a FastSpeech exported to ONNX (:mod:`ttslab.distill.export`) and run with onnxruntime
on one thread, against PyTorch on one thread, and its dynamic int8 quantization: file size, real-time
factor of the acoustic model alone (compute seconds per second of generated speech, no vocoder), the
largest difference to PyTorch, how many utterances keep the fp32 durations, and the distance of the
int8 mels to the fp32 ones (MCD-DTW on DCT cepstra of the log-mel: int8 changes the durations, so
frames are aligned by DTW). Two int8 variants: matrix multiplications only, and convolutions too. Full mode: the registered ``fastspeech_teacher`` and an untrained
``small``-config model (the student's architecture: speed and size only until the students exist);
ci mode: an untrained ``tiny`` model.

``--part students``: the TTS students (:mod:`ttslab.train.distill_fastspeech`) against the registered
teacher, end to end with the registered neural vocoder, side by side on one thread: MCD-DTW, F0 RMSE,
V/UV (WORLD analyses, as ``benchmarks/deep_tts.py``), PER (the judge), parameters, RTF (acoustic model
alone and end to end), peak RSS of a synthesis process, training time; issue 10's section-4 goals as
pass/fail columns and Nix-TTS' reported ratios as the anchor row. Students: every registered ``student_*``
plus ``--student NAME=PATH`` (repeatable; CI mode with neither uses the CI tiny model as a stand-in
student: a smoke run, not a result). ``--with-vocoder NAME`` or ``NAME=PATH`` (repeatable) pairs the
students (``--pair NAME``: only those; ``teacher`` allowed) with a smaller vocoder too, e.g. the one
trained on recordings and the distilled one. Two more tables from the same run: the section-3 ablation
(size x method, each with the registered vocoder, so only the acoustic model differs) and the vocoders
(each small vocoder behind the same acoustic models).

``--part classic``:
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
    python benchmarks/distill.py --mode full --part students  # registered student_* (+ --student NAME=PATH)
    python benchmarks/distill.py --mode full --part students --student NAME=PATH ... \
        --with-vocoder vocoder_small --with-vocoder vocoder_small_distilled --pair teacher --pair student_small

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

PARTS = ("classic", "export", "students")


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


# ----------------------------------------------------------------------------- TTS students (issue 10, 3-4)

STUDENT_SPEAKERS = {"full": ("en_us_m", "en_us_f", "en_gb_m", "en_rp_f"), "ci": ("en_us_m", "en_us_f")}
PER_SPEAKER = {"full": 5, "ci": 1}
#: Issue 10 section 4, end to end (acoustic model + vocoder): the student's share of the teacher's
#: parameters, its speed-up, and how far behind the teacher its MCD-DTW and PER may be.
GOALS = {"parameter_share": 0.20, "speedup": 5.0, "mcd_db_behind": 0.3, "per_points_behind": 2.0}
#: The anchor: Nix-TTS (Chevi et al. 2022) against its teacher (VITS), parameters and CPU speed-up.
NIX_TTS = {"parameter_reduction": (0.82, 0.89), "cpu_speedup": (3.0, 3.3)}


def student_checkpoints(mode: str, specs: list[str], folder, registered: bool = True) -> dict:
    """``{label: (checkpoint path, training log or {})}``: the teacher first, then (``registered``) every
    registered ``student_*``, then ``specs`` (``NAME=PATH`` or ``PATH``); in CI mode with neither, the CI
    cache's tiny FastSpeech (trained from scratch) stands in, so that the part runs everywhere."""
    import json
    from pathlib import Path

    from ttslab import pretrained

    found = {"teacher": (pretrained.path("fastspeech_teacher"), pretrained.training_log("fastspeech_teacher"))}
    if registered:
        for name in pretrained.available():
            if name.startswith("student_"):
                found[name] = (pretrained.path(name), pretrained.training_log(name))
    for spec in specs:
        name, _, path = spec.rpartition("=")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--student {spec}: no checkpoint at {path} (train one with "
                                    f"python -m ttslab.train.distill_fastspeech ... --out {path})")
        log = path.with_name(path.name + ".log.json")
        found[name or path.stem] = (path, json.loads(log.read_text()) if log.is_file() else {})
    if len(found) == 1:
        if mode != "ci":
            raise SystemExit("no students: pass --student NAME=PATH (python -m ttslab.train.distill_fastspeech) "
                             "or register them (python scripts/train_pretrained.py student_small)")
        from ttslab.train.fastspeech import cached_fastspeech

        path = Path(folder) / "tiny_ci.pt"
        cached_fastspeech("ci", "tiny", progress=False, device="cpu").save(path, half=False)
        found["tiny scratch (CI cache, stand-in)"] = (path, {})
    return found


def load_vocoder(spec: str):
    """``(label, vocoder, training log or {})`` of ``NAME`` (registered) or ``NAME=PATH`` (a checkpoint of
    ``python -m ttslab.train.vocoder``, its log ``<stem>.json`` beside it)."""
    import json
    from pathlib import Path

    from ttslab import pretrained
    from ttslab.vocoders.neural import NeuralVocoder

    name, _, path = spec.partition("=")
    if not path:
        return name, pretrained.load(name), pretrained.training_log(name)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--with-vocoder {spec}: no checkpoint at {path} (train one with "
                                f"python -m ttslab.train.vocoder --size small ... --out {path})")
    log = path.with_suffix(".json")
    return name, NeuralVocoder.from_checkpoint(path).eval(), json.loads(log.read_text()) if log.is_file() else {}


def current_rss_mb() -> float:
    """This process' resident set size now (Linux ``/proc/self/status``), MB."""
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_probe(path, utterance_inputs: list, speakers: list, queue, vocoder_name: str = "vocoder") -> None:
    """(In a fresh process.) Load the registered vocoder, then the acoustic model at ``path`` (None: none),
    synthesize; report ``(peak RSS, RSS now - RSS before the acoustic model)`` in MB (``ru_maxrss``: KB)."""
    import resource

    import torch

    from ttslab.models.fastspeech import FastSpeech

    torch.set_num_threads(1)
    vocoder = load_vocoder(vocoder_name)[1]
    before = current_rss_mb()
    if path is not None:
        model = FastSpeech.from_checkpoint(path)
        for x, spk in zip(utterance_inputs, speakers):
            vocoder.vocode(model.infer(x, spk)["mel"].T.numpy())
    queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, current_rss_mb() - before))


def peak_rss_mb(path, utterance_inputs: list, speakers: list, vocoder_name: str = "vocoder") -> tuple[float, float]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # a fresh interpreter: its peak is this synthesis' alone
    queue = ctx.Queue()
    p = ctx.Process(target=peak_rss_probe, args=(path, utterance_inputs, speakers, queue, vocoder_name))
    p.start()
    value = queue.get(timeout=600)
    p.join()
    return value


def students(mode: str, specs: list[str], per_speaker: int | None = None, repeats: int = 2,
             with_vocoder: list[str] | None = None, pair: list[str] | None = None) -> dict:
    """Teacher vs students, end to end with the registered neural vocoder, on held-out test sentences;
    each of ``with_vocoder`` (``NAME`` registered, e.g. ``"vocoder_small"``, or ``NAME=PATH``) adds the
    students (those in ``pair`` when given; ``"teacher"`` may be one) with that vocoder too (the
    compressed end-to-end system of issue 10, section 4)."""
    import tempfile
    import time

    import torch

    from ttslab import pretrained
    from ttslab.data import load_builtin
    from ttslab.dsp.f0 import f0_pyin
    from ttslab.dsp.world import world_analysis
    from ttslab.metrics import corpus_phone_error_rate
    from ttslab.models.fastspeech import FastSpeech, utterance_inputs
    from ttslab.vocoders.evaluate import compare_analyses

    torch.set_num_threads(1)
    corpus = load_builtin(mode)
    per_speaker = per_speaker or PER_SPEAKER[mode]
    utts = [u for spk in STUDENT_SPEAKERS[mode] for u in list(corpus.filter(speakers=spk, split="test"))[:per_speaker]]
    judge, vocoder = pretrained.load("judge"), pretrained.load("vocoder")
    with tempfile.TemporaryDirectory() as tmp:
        found = student_checkpoints(mode, specs, tmp)
        models = {name: FastSpeech.from_checkpoint(path) for name, (path, _) in found.items()}
        teacher = models["teacher"]
        for name, m in models.items():
            if m.speakers != teacher.speakers or m.config.n_phones != teacher.config.n_phones:
                raise ValueError(f"{name}: speakers/phones differ from the teacher's; not a student of it")
        vocoders = {name: ("vocoder", vocoder) for name in models}
        unknown = sorted(set(pair or []) - set(models))
        if unknown:
            raise ValueError(f"--pair {unknown}: not among the models {list(models)}")
        paired = list(pair) if pair else [n for n in models if n != "teacher"]
        vocoder_info = {"vocoder": {"parameters": vocoder_parameters(vocoder),
                                    **vocoder_summary(pretrained.training_log("vocoder"))}}
        for spec in with_vocoder or []:
            vname, small, vlog = load_vocoder(spec)
            vocoder_info[vname] = {"parameters": vocoder_parameters(small), **vocoder_summary(vlog)}
            for name in paired:
                label = f"{name} + {vname}"
                models[label], vocoders[label], found[label] = models[name], (spec, small), found[name]
        inputs = [utterance_inputs(u) for u in utts]
        # side by side: every utterance through every model in turn, best of `repeats` (a shared machine)
        timing = {name: {"acoustic": 0.0, "total": 0.0, "audio": 0.0} for name in models}
        audio = {name: [] for name in models}
        for u, x in zip(utts, inputs):
            for name, m in models.items():
                best_a = best_t = float("inf")
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    mel = m.infer(x, u.speaker)["mel"].T.numpy()
                    t1 = time.perf_counter()
                    y = vocoders[name][1].vocode(mel)
                    t2 = time.perf_counter()
                    best_a, best_t = min(best_a, t1 - t0), min(best_t, t2 - t0)
                timing[name]["acoustic"] += best_a
                timing[name]["total"] += best_t
                timing[name]["audio"] += len(y) / u.sample_rate
                audio[name].append(y)
        n_rss = min(3, len(utts))
        rss_base = peak_rss_mb(None, inputs[:n_rss], [u.speaker for u in utts[:n_rss]])
        rss = {name: peak_rss_mb(str(found[name][0]), inputs[:n_rss], [u.speaker for u in utts[:n_rss]],
                                 vocoders[name][0]) for name in models}
    refs = [world_analysis(u.load_audio(), u.sample_rate) for u in utts]
    ref_f0 = [f0_pyin(u.load_audio(), u.sample_rate) for u in utts]  # F0 as deep_tts.py measures it (pYIN)
    rows = []
    for name, m in models.items():
        scores = [compare_analyses(ref, world_analysis(y, u.sample_rate), same_timing=False,
                                   f0_tracks={"pyin": (f0, f0_pyin(y, u.sample_rate))})
                  for ref, f0, y, u in zip(refs, ref_f0, audio[name], utts)]
        hyps = [judge.transcribe(y) for y in audio[name]]
        log = found[name][1]
        acoustic = name.split(" + ")[0]
        rows.append({"model": name, "method": log.get("method", "teacher" if acoustic == "teacher" else None),
                     "size": log.get("size"), "steps": log.get("steps_done"), "parameters": m.num_parameters(),
                     "vocoder": vocoders[name][0].partition("=")[0], "acoustic": acoustic,
                     "parameters_end_to_end": m.num_parameters() + vocoder_parameters(vocoders[name][1]),
                     "mcd_dtw_db": harness.finite_mean(s["mcd_dtw_db"] for s in scores),
                     "f0_rmse_hz": harness.finite_mean(s.get("f0_rmse_hz_pyin") for s in scores),
                     "vuv_error": harness.finite_mean(s.get("vuv_error_pyin") for s in scores),
                     "f0_rmse_hz_harvest": harness.finite_mean(s.get("f0_rmse_hz") for s in scores),
                     "per": corpus_phone_error_rate([list(u.phones) for u in utts], hyps),
                     "rtf_acoustic": timing[name]["acoustic"] / timing[name]["audio"],
                     "rtf_end_to_end": timing[name]["total"] / timing[name]["audio"],
                     "peak_rss_mb": rss[name][0], "rss_growth_mb": rss[name][1], "train_seconds": log.get("seconds"),
                     "train_device": log.get("device_name") or log.get("device"),
                     "train_cpu_seconds": log.get("cpu_seconds"),
                     "best_valid": log.get("best_valid")})
    add_goal_columns(rows)
    best = min(rows[1:], key=lambda r: (r["mcd_dtw_db"], r["per"]))
    return {"rows": rows, "sentences": len(utts), "speakers": list(STUDENT_SPEAKERS[mode]), "repeats": repeats,
            "vocoder_parameters": vocoder_parameters(vocoder), "vocoders": vocoder_info,
            "peak_rss_baseline_mb": rss_base[0], "goals": GOALS,
            "nix_tts": NIX_TTS, "summary": {"best_student": best["model"], "best_goals": best["goals"],
                                            **{k: best[k] for k in ("parameter_share", "speedup", "mcd_db_behind",
                                                                    "per_points_behind", "speedup_acoustic",
                                                                    "parameter_share_acoustic")}}}


def add_goal_columns(rows: list[dict]) -> list[dict]:
    """Ratios to the teacher (``rows[0]``) and issue 10's section-4 goals as booleans, added to every row:
    ``parameter_share`` = end-to-end parameters / the teacher's, ``speedup`` = teacher RTF / RTF (end to
    end; ``_acoustic``: without the vocoder), ``mcd_db_behind``, ``per_points_behind`` (PER in points)."""
    t = rows[0]
    for r in rows:
        r["parameter_share"] = r["parameters_end_to_end"] / t["parameters_end_to_end"]
        r["parameter_share_acoustic"] = r["parameters"] / t["parameters"]
        r["speedup"] = t["rtf_end_to_end"] / r["rtf_end_to_end"]
        r["speedup_acoustic"] = t["rtf_acoustic"] / r["rtf_acoustic"]
        r["mcd_db_behind"] = r["mcd_dtw_db"] - t["mcd_dtw_db"]
        r["per_points_behind"] = 100 * (r["per"] - t["per"])
        r["goals"] = {"parameter_share": r["parameter_share"] <= GOALS["parameter_share"],
                      "speedup": r["speedup"] >= GOALS["speedup"],
                      "mcd_db_behind": r["mcd_db_behind"] <= GOALS["mcd_db_behind"],
                      "per_points_behind": r["per_points_behind"] <= GOALS["per_points_behind"]}
    return rows


def vocoder_summary(log: dict) -> dict:
    """What a vocoder's training log says about how it was trained (``python -m ttslab.train.vocoder``)."""
    teacher = log.get("teacher")
    return {"trained_on": (f"{teacher['vocoder']}'s audio of {teacher['acoustic']}'s mels (distilled)" if teacher
                           else "recordings"),
            "steps": (log.get("history") or {}).get("steps_done") or (log.get("train_config") or {}).get("steps"),
            "train_seconds": log.get("seconds_training"),
            # the recipe logs its device since issue 10; the registered vocoder's older log predates that (a CPU run)
            "train_device": log.get("device_name") or log.get("device") or "CPU"}


#: Order of the section-3 methods in the ablation table: (a) scratch, (b) sequence, (c) kd, (d) sequence+kd.
METHOD_ORDER = ("scratch", "sequence", "kd", "sequence+kd")


def ablation_markdown(s: dict) -> list[str]:
    """Issue 10 section 3: every student with the registered vocoder (only the acoustic model differs),
    by size, then method (a)-(d); differences to the same size's scratch student in brackets."""
    rows = [r for r in s["rows"]
            if r["model"] != "teacher" and r.get("vocoder", "vocoder") == "vocoder" and r.get("size")]
    rank = lambda r: (-r["parameters"], METHOD_ORDER.index(r["method"]) if r["method"] in METHOD_ORDER else 9)  # noqa: E731
    scratch = {r["size"]: r for r in rows if r["method"] == "scratch"}
    teacher = s["rows"][0]
    lines = ["", "### Ablation (issue 10 section 3): size x method, each with the registered vocoder", "",
             "Same test sentences and measurements as the table above. In brackets: the difference to the scratch "
             "student of the same size trained the same number of steps (negative MCD / F0 / V/UV / PER: better). "
             "train s: wall-clock seconds of the recipe on the device named (CPU runs: one thread on a shared "
             "2-core machine).", "",
             "| size | method | steps | parameters | MCD-DTW dB | F0 RMSE Hz | V/UV % | PER % | train s (device) | "
             "best validation loss |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
             f"| teacher | teacher | {teacher.get('steps') or ''} | {teacher['parameters']:,} | "
             f"{teacher['mcd_dtw_db']:.2f} | {teacher['f0_rmse_hz']:.1f} | {100 * teacher['vuv_error']:.1f} | "
             f"{100 * teacher['per']:.1f} | {harness.fmt(teacher.get('train_seconds'), 0)} "
             f"({teacher.get('train_device') or '?'}) | {harness.fmt(teacher.get('best_valid'), 3)} |"]
    for r in sorted(rows, key=rank):
        base = scratch.get(r["size"])
        same = base is not None and base is not r and base.get("steps") == r.get("steps")

        def cell(key, digits, scale=1.0):
            text = f"{scale * r[key]:.{digits}f}"
            return text + (f" ({scale * (r[key] - base[key]):+.{digits}f})" if same else "")

        lines.append(f"| {r['size']} | {r['method']} | {r.get('steps') or '?'} | {r['parameters']:,} | "
                     f"{cell('mcd_dtw_db', 2)} | {cell('f0_rmse_hz', 1)} | {cell('vuv_error', 1, 100)} | "
                     f"{cell('per', 1, 100)} | {harness.fmt(r.get('train_seconds'), 0)} ({r.get('train_device') or '?'}) "
                     f"| {harness.fmt(r.get('best_valid'), 3)} |")
    return lines


def vocoders_markdown(s: dict) -> list[str]:
    """The vocoders side by side behind the same acoustic models (end to end)."""
    info = s.get("vocoders") or {}
    if len(info) < 2:
        return []
    lines = ["", "### Vocoders: the registered one vs the small ones, behind the same acoustic models", "",
             "| vocoder | trained on | parameters | steps | train s (device) | acoustic model | MCD-DTW dB | "
             "F0 RMSE Hz | V/UV % | PER % | RTF e2e |", "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    acoustic = sorted({r["acoustic"] for r in s["rows"] if r["vocoder"] != "vocoder"},
                      key=lambda a: [r["acoustic"] for r in s["rows"]].index(a))
    for vname, v in info.items():
        for r in (r for r in s["rows"] if r["vocoder"] == vname and r["acoustic"] in acoustic):
            lines.append(f"| {vname} | {v['trained_on']} | {v['parameters']:,} | {v.get('steps') or '?'} | "
                         f"{harness.fmt(v.get('train_seconds'), 0)} ({v.get('train_device') or '?'}) | {r['acoustic']} | "
                         f"{r['mcd_dtw_db']:.2f} | {r['f0_rmse_hz']:.1f} | {100 * r['vuv_error']:.1f} | "
                         f"{100 * r['per']:.1f} | {r['rtf_end_to_end']:.4f} |")
    return lines


def vocoder_parameters(vocoder) -> int:
    return int(sum(p.numel() for p in vocoder.parameters()))


def students_markdown(s: dict) -> list[str]:
    yes = lambda ok: "pass" if ok else "FAIL"  # noqa: E731
    lines = ["", "## TTS students vs the teacher, end to end (acoustic model + a registered neural vocoder)", "",
             f"{s['sentences']} held-out test sentences (speakers {', '.join(s['speakers'])}), each model's own "
             f"durations. MCD-DTW from WORLD analyses, F0 RMSE and V/UV from pYIN tracks, against the recording "
             f"(ttslab.vocoders.evaluate.compare_analyses, as benchmarks/deep_tts.py); PER: the shipped judge. "
             f"RTF: compute seconds per second of speech on ONE thread, phones -> audio, models run side by side "
             f"(best of {s['repeats']} per sentence); 'acoustic' leaves out the vocoder "
             f"(the registered vocoder, {s['vocoder_parameters'] / 1e6:.2f} M parameters, unless the model's name "
             f"says '+ <vocoder>'). Peak RSS: a fresh process "
             f"that loads the vocoder, then the model, and synthesizes 3 sentences (imports + vocoder alone: "
             f"{s['peak_rss_baseline_mb']:.0f} MB); '+' is the growth of its resident memory from loading the model "
             f"to the end of synthesis. Goals (issue 10 section 4, end to end): <= "
             f"{s['goals']['parameter_share']:.0%} of the parameters, >= {s['goals']['speedup']:g}x RTF, <= "
             f"{s['goals']['mcd_db_behind']:g} dB MCD and <= {s['goals']['per_points_behind']:g} PER points "
             f"behind the teacher.", "",
             "| model | method | parameters (acoustic) | share e2e (acoustic) | MCD-DTW dB | F0 RMSE Hz | V/UV % | "
             "PER % | RTF e2e | speed-up e2e (acoustic) | peak RSS MB (+model) | train s (device, steps) | params goal | "
             "speed goal | MCD goal | PER goal |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|---|"]
    for r in s["rows"]:
        g = r["goals"]
        train = ("" if r["train_seconds"] is None else
                 f"{r['train_seconds']:.0f} ({r['train_device'] or '?'}, {r.get('steps') or '?'} steps)")
        goals = ["", "", "", ""] if r["model"] == "teacher" else [yes(g[k]) for k in GOALS]
        lines.append(f"| {r['model']} | {r['method'] or ''} | {r['parameters']:,} | {r['parameter_share']:.1%} "
                     f"({r['parameter_share_acoustic']:.1%}) | {harness.fmt(r['mcd_dtw_db'], 2)} | "
                     f"{harness.fmt(r['f0_rmse_hz'], 1)} | {harness.fmt(r['vuv_error'], 1, 100)} | "
                     f"{harness.fmt(r['per'], 1, 100)} | {r['rtf_end_to_end']:.4f} | {r['speedup']:.2f}x "
                     f"({r['speedup_acoustic']:.2f}x) | {r['peak_rss_mb']:.0f} (+{r['rss_growth_mb']:.0f}) | {train} | " + " | ".join(goals) + " |")
    n = s["nix_tts"]
    lines.append(f"| Nix-TTS (reported, vs VITS) | | | {1 - n['parameter_reduction'][1]:.0%}-"
                 f"{1 - n['parameter_reduction'][0]:.0%} | | | | | | {n['cpu_speedup'][0]:g}-{n['cpu_speedup'][1]:g}x "
                 f"| | | | | | |")
    return lines + ablation_markdown(s) + vocoders_markdown(s)


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
    st = results.get("students")
    if st:
        lines += students_markdown(st) + measured_by(st)
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = harness.make_parser(__doc__, "distill")
    parser.add_argument("--part", choices=PARTS, action="append", default=None,
                        help="which part to run (repeatable; default: all)")
    parser.add_argument("--student", action="append", default=[], metavar="NAME=PATH",
                        help="students part: a student checkpoint besides the registered student_* (repeatable)")
    parser.add_argument("--per-speaker", type=int, default=None, help="students part: test sentences per speaker")
    parser.add_argument("--with-vocoder", action="append", default=[], metavar="NAME[=PATH]",
                        help="students part: also pair the students with this vocoder (registered NAME, e.g. "
                             "vocoder_small, or NAME=PATH; repeatable)")
    parser.add_argument("--pair", action="append", default=[], metavar="NAME",
                        help="students part: pair only these models with --with-vocoder (repeatable; default all "
                             "students)")
    args, run = harness.start("distill", parser, argv)
    parts = args.part or list(PARTS)
    results = carried_over(run.paths[0], parts)
    if "classic" in parts:
        results["classic"] = classic(args.mode)
    if "export" in parts:
        results["export"] = export(args.mode)
    if "students" in parts:
        results["students"] = students(args.mode, args.student, args.per_speaker, with_vocoder=args.with_vocoder,
                                       pair=args.pair)
    results["summary"] = {p: results[p]["summary"] for p in PARTS if p in results}
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main()
