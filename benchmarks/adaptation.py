"""Speaker adaptation of the FastSpeech teacher: learning curves against k and trainable parameters, forgetting, time.

For a new speaker (an adaptation speaker no registered model has heard) and every method of
:mod:`ttslab.transfer.adapt` (finetune_all, decoder_variance, speaker_embedding, lora, l2sp), adapt
the teacher with the first k training utterances (k = 0: the nearest source speaker's row) and score
the held-out test sentences through the neural vocoder: MCD-DTW (dB), F0 RMSE (Hz, along the DTW
path) and the judge's PER. Also:

* **forgetting**: at one k, the change of MCD-DTW on source speakers' test sentences (adapted model
  speaking as the source speaker minus the teacher doing the same);
* **adaptation time** on one thread (the machine has 2 cores shared with others; wall seconds);
* **full-data reference**: ``finetune_all`` with every training utterance of the speaker and
  ``FULL_DATA_STEP_FACTOR`` times the steps, for the goal "at k = 20 the best method is within
  0.5 dB of a model trained on all of that speaker's data". It is the teacher fine-tuned on all the
  speaker's data, not a model trained from scratch (not measured here).

Finished rows are cached (:func:`row_cache`), so a run stopped by a time limit resumes where it stopped.

F0 RMSE compares pYIN tracks, as ``benchmarks/deep_tts.py`` does (its docstring says why not Harvest).
The WORLD analyses behind MCD use DIO (``--f0 harvest`` for deep_tts' Harvest): it is several times
faster, and this benchmark analyses ~200 synthesized sentences.

    python benchmarks/adaptation.py --mode full                  # tgt_us_f, tgt_rp_m; k = 0, 5, 10, 20, 50
    TTSLAB_CI=1 python benchmarks/adaptation.py --mode ci

Results: ``benchmarks/results/adaptation_<mode>.json`` and ``.md``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

try:
    import harness  # run as `python benchmarks/adaptation.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()

SETTINGS = {
    "full": {"speakers": "tgt_us_f,tgt_rp_m", "ks": (0, 5, 10, 20, 50), "n_test": 4, "forget_k": 20,
             "forget_speakers": ("en_us_m", "en_us_f"), "forget_n": 2},
    "ci": {"speakers": "tgt_us_f", "ks": (0, 2, 5), "n_test": 1, "forget_k": 5, "forget_speakers": ("en_us_f",),
           "forget_n": 1},
}
FULL_DATA_STEP_FACTOR = 4


def row_cache(mode: str, speaker: str, config, teacher):
    """``(get, put)`` of finished rows in ``data_home()/benchmarks/adaptation/``, keyed by everything a row
    depends on (mode, speaker, method, k, settings, the teacher's weights): an interrupted run resumes."""
    import hashlib
    import json

    from ttslab import config as ttslab_config
    from ttslab.io import atomic_write_json

    digest = hashlib.sha256(b"".join(v.detach().cpu().numpy().tobytes() for v in teacher.state_dict().values()))
    folder = ttslab_config.data_home() / "benchmarks" / "adaptation"

    def path(method, k):
        key = json.dumps([mode, speaker, method, k, config.to_dict(), SETTINGS[mode], FULL_DATA_STEP_FACTOR,
                          digest.hexdigest(), "pitch: pyin"], sort_keys=True, default=str)
        return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"

    def get(method, k):
        p = path(method, k)
        return json.loads(p.read_text()) if p.is_file() else None

    def put(method, k, row):
        atomic_write_json(path(method, k), row)
        return row

    return get, put


def run(mode: str, speaker: str, methods, f0_method: str, ks=None) -> dict:
    import torch

    from ttslab import pretrained
    from ttslab.data import load_builtin
    from ttslab.models.fastspeech import fastspeech_items
    from ttslab.train.adapt import ADAPT_CONFIGS, load_teacher, nearest_source
    from ttslab.transfer import adapt_speaker, adaptation_utterances, evaluate_voice

    torch.set_num_threads(1)
    s = SETTINGS[mode]
    corpus = load_builtin(mode)
    teacher, vocoder, judge = load_teacher(mode), pretrained.load("vocoder"), pretrained.load("judge")
    config = ADAPT_CONFIGS[mode]
    test = list(corpus.filter(speakers=speaker, split="test"))[: s["n_test"]]
    src_test = {spk: list(corpus.filter(speakers=spk, split="test"))[: s["forget_n"]] for spk in s["forget_speakers"]}
    cache: dict = {}
    score = lambda model, who, utts: evaluate_voice(model, who, utts, vocoder, judge, f0_method=f0_method,
                                                    reference_cache=cache)
    near, dist = nearest_source(corpus, teacher, speaker, mode)
    speakers = list(teacher.speakers) + [speaker]
    all_train = list(corpus.filter(speakers=speaker, split="train"))
    items_all = fastspeech_items(all_train, speakers)
    get, put = row_cache(mode, speaker, config, teacher)
    teacher_src = get("teacher", "sources") or put("teacher", "sources",
                                                   {spk: score(teacher, spk, u) for spk, u in src_test.items()})
    rows = []
    for k in (ks or s["ks"]):
        for method in (methods if k else ["nearest"]):
            if (row := get(method, k)) is not None:
                rows.append(row)
                continue
            model, info = adapt_speaker(teacher, speaker, adaptation_utterances(corpus, speaker, k),
                                        method if k else "finetune_all", config, init_from=near, items=items_all[:k])
            row = {"method": method, "k": k, "trainable_parameters": info["trainable_parameters"],
                   "seconds": info["seconds"], "steps": info["steps"], **score(model, speaker, test)}
            if k == s["forget_k"]:
                row["forgetting_db"] = harness.finite_mean(score(model, spk, u)["mcd_dtw_db"] - teacher_src[spk]["mcd_dtw_db"]
                                                           for spk, u in src_test.items())
            rows.append(put(method, k, row))
            print(f"{method:18s} k={k:3d}: MCD {row['mcd_dtw_db']:.2f} dB, F0 {row['f0_rmse_hz']:.1f} Hz, "
                  f"PER {100 * row['per']:.1f}%, {row['seconds']:.0f} s", flush=True)
    full = get("full_data", len(all_train))
    if full is None:
        full_cfg = replace(config, steps=FULL_DATA_STEP_FACTOR * config.steps)
        model, info = adapt_speaker(teacher, speaker, all_train, "finetune_all", full_cfg, init_from=near,
                                    items=items_all)
        full = put("full_data", len(all_train), {
            "method": "full_data", "k": len(all_train), "trainable_parameters": info["trainable_parameters"],
            "seconds": info["seconds"], "steps": info["steps"], **score(model, speaker, test)})
    return {"speaker": speaker, "nearest": near, "distances": dist, "rows": rows, "full_data": full,
            "teacher_on_sources": teacher_src, "config": config.to_dict(), "n_test": len(test)}


def summarize(result: dict, goal_k: int = 20) -> dict:
    rows = [r for r in result["rows"] if r["k"] == goal_k]
    if not rows:
        return {"goal_k": goal_k, "best_method": None}
    best = min(rows, key=lambda r: r["mcd_dtw_db"])
    gap = best["mcd_dtw_db"] - result["full_data"]["mcd_dtw_db"]
    return {"goal_k": goal_k, "best_method": best["method"], "best_mcd_db": best["mcd_dtw_db"],
            "full_data_mcd_db": result["full_data"]["mcd_dtw_db"], "gap_db": gap, "within_0_5_db": gap <= 0.5}


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    text = (f"# Speaker adaptation benchmark, `{meta['mode']}` mode\n\nTeacher: {meta['teacher']}; new speakers "
            f"{', '.join(r['speaker'] for r in results['speakers'])}; {meta['steps']} Adam steps of up to "
            f"{meta['batch_size']} utterances per run, one torch thread; scored on held-out test sentences through "
            f"the neural vocoder (F0 RMSE: pYIN tracks; WORLD analyses for MCD: {meta['f0']}). "
            "k = 0 is the nearest source speaker's row.\n")
    for res in results["speakers"]:
        text += (f"\n## {res['speaker']} ({res['n_test']} test sentences; nearest source speaker: {res['nearest']})\n\n"
                 "| method | k | trainable parameters | MCD-DTW (dB) | F0 RMSE (Hz) | PER (%) | adaptation (s, 1 thread) "
                 "| forgetting (dB) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for r in res["rows"] + [res["full_data"]]:
            text += (f"| {r['method']} | {r['k']} | {r['trainable_parameters']:,} | {harness.fmt(r['mcd_dtw_db'], 2)} | "
                     f"{harness.fmt(r['f0_rmse_hz'], 1)} | {harness.fmt(r['per'], 1, 100)} | {r['seconds']:.0f} | "
                     f"{harness.fmt(r.get('forgetting_db'), 2)} |\n")
        g = res["summary"]
        if g.get("best_method"):
            text += (f"\nAt k = {g['goal_k']} the best method is **{g['best_method']}** ({g['best_mcd_db']:.2f} dB) "
                     f"against {g['full_data_mcd_db']:.2f} dB for the full-data model: a gap of {g['gap_db']:+.2f} dB "
                     f"({'within' if g['within_0_5_db'] else 'NOT within'} 0.5 dB).\n")
    text += ("\nForgetting: mean change of MCD-DTW on source speakers' test sentences "
             f"({', '.join(meta['forget_speakers'])}), adapted model minus teacher, at k = {meta['forget_k']}. "
             "The full-data row is the teacher fine-tuned on all the speaker's training sentences "
             f"({FULL_DATA_STEP_FACTOR}x the steps).\n")
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "adaptation")
    parser.add_argument("--speakers", default=None, help="comma-separated adaptation speakers (default per mode)")
    parser.add_argument("--methods", default="finetune_all,decoder_variance,speaker_embedding,lora,l2sp")
    parser.add_argument("--f0", choices=("dio", "harvest"), default="dio")
    parser.add_argument("--ks", default=None, help="comma-separated k values (default per mode)")
    args, run_info = harness.start("adaptation", parser, argv)

    from ttslab.train.adapt import ADAPT_CONFIGS

    mode = args.mode
    speakers = (args.speakers or SETTINGS[mode]["speakers"]).split(",")
    t0 = time.perf_counter()
    per_speaker = []
    for spk in speakers:
        ks = [int(k) for k in args.ks.split(",")] if args.ks else None
        res = run(mode, spk, args.methods.split(","), args.f0, ks)
        res["summary"] = summarize(res, 20 if mode == "full" else SETTINGS[mode]["ks"][-1])
        per_speaker.append(res)
    cfg = ADAPT_CONFIGS[mode]
    results = {"meta": {"mode": mode, "teacher": "registered fastspeech_teacher" if mode == "full" else
                        "tiny CI model (cached_fastspeech('ci'))", "steps": cfg.steps, "batch_size": cfg.batch_size,
                        "f0": args.f0, "forget_k": SETTINGS[mode]["forget_k"],
                        "forget_speakers": list(SETTINGS[mode]["forget_speakers"]),
                        "seconds": round(time.perf_counter() - t0, 1)},
               "speakers": per_speaker}
    run_info.write(results, to_markdown)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
