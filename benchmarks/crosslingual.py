"""Cross-lingual, low-resource: the English FastSpeech teacher fine-tuned to a Spanish and a German
speaker with few utterances, against the same architecture trained from scratch on the same data.

For each target speaker (default es_f and de_m: one language each, both sexes) and each data size
``k`` (full: 10, 30 and all 50 training utterances; CI: 2, 5 and all 10), two models are trained
for the same number of steps (:data:`ttslab.train.crosslingual.TRAIN_CONFIGS`):

* ``transfer``: the teacher, phones it never heard initialised from their nearest English phone by
  articulatory features (:mod:`ttslab.transfer.crosslingual`), a new speaker row;
* ``scratch``: the teacher's architecture with fresh weights.

Also: ``zero_shot`` (the mapped teacher with the new speaker row and the pitch/energy statistics of its
first 10 training utterances, no training: k = 0),
``recording`` (the judge's floor) and ``vocoder`` (the neural vocoder from the recording's mel: the
MCD floor of every system here). All mels go through the shipped neural vocoder.

Metrics on held-out test sentences of each target speaker: MCD-DTW of WORLD analyses, F0 RMSE (Hz,
along the DTW path) and V/UV error of pYIN tracks (as ``benchmarks/deep_tts.py``), and the phone error rate of a judge.
The shipped judge was trained on English only: its PER on Spanish/German recordings is reported
(``english_judge_per``), and the PER column uses a copy fine-tuned on the train recordings of every
language (:func:`ttslab.train.crosslingual.adapt_judge`), whose floor is the ``recording`` row::

    python benchmarks/crosslingual.py --mode ci
    python benchmarks/crosslingual.py --mode full                 # ~12 min of CPU on one thread
    python benchmarks/crosslingual.py --mode full --steps 200     # longer fine-tuning
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

try:
    import harness  # run as `python benchmarks/crosslingual.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()

SPEAKERS = ("es_f", "de_m")
SIZES = {"full": (10, 30, None), "ci": (2, 5, None)}
TEST_PER_SPEAKER = {"full": 4, "ci": 2}


_REFERENCES: dict = {}


def reference_analysis(utt):
    """WORLD analysis and pYIN F0 of a recording, computed once per utterance (every system is compared with it)."""
    from ttslab.dsp.f0 import f0_pyin
    from ttslab.dsp.world import world_analysis

    if utt.id not in _REFERENCES:
        x = utt.load_audio()
        _REFERENCES[utt.id] = (world_analysis(x, utt.sample_rate), f0_pyin(x, utt.sample_rate))
    return _REFERENCES[utt.id]


def score(utt, y, same_timing: bool) -> dict:
    """MCD-DTW (WORLD), F0 RMSE and V/UV from pYIN tracks (as ``benchmarks/deep_tts.py``; Harvest's kept
    as ``*_harvest``) of ``y`` against the recording of ``utt``."""
    from ttslab.dsp.f0 import f0_pyin
    from ttslab.dsp.world import world_analysis
    from ttslab.vocoders.evaluate import compare_analyses

    ref, ref_f0 = reference_analysis(utt)
    row = compare_analyses(ref, world_analysis(y, utt.sample_rate), same_timing,
                           f0_tracks={"pyin": (ref_f0, f0_pyin(y, utt.sample_rate))})
    for key in ("f0_rmse_hz", "f0_rmse_cents", "vuv_error"):
        row[f"{key}_harvest"], row[key] = row[key], row.pop(f"{key}_pyin")
    return row


def evaluate(model, speaker: str, utts, vocoder, judge) -> list[dict]:
    """Per test utterance: MCD-DTW, F0 RMSE, V/UV (:func:`score`) and the judge's transcription of the audio."""
    from ttslab.models.fastspeech import utterance_inputs

    rows = []
    for utt in utts:
        mel = model.infer(utterance_inputs(utt), speaker)["mel"].T.numpy()
        y = vocoder.vocode(mel)
        row = score(utt, y, same_timing=False)
        row.update(utterance=utt.id, hyp=judge.transcribe(y), ref=list(utt.phones))
        rows.append(row)
    return rows


def summarize(rows: list[dict]) -> dict:
    from ttslab.metrics import corpus_phone_error_rate

    out = {k: harness.finite_mean(r.get(k) for r in rows) for k in ("mcd_dtw_db", "f0_rmse_hz", "vuv_error")}
    out["per"] = corpus_phone_error_rate([r["ref"] for r in rows], [r["hyp"] for r in rows])
    return out


def recording_rows(utts, vocoder, judges: dict) -> dict[str, list[dict]]:
    from ttslab.dsp.spectral import log_mel

    out = {"recording": [], "vocoder": []}
    for utt in utts:
        x = utt.load_audio()
        out["recording"].append({"utterance": utt.id, "ref": list(utt.phones), "hyp": judges["all"].transcribe(x),
                                 "hyp_english_judge": judges["en"].transcribe(x)})
        y = vocoder.vocode(log_mel(x), length=len(x))
        row = score(utt, y, same_timing=True)
        row.update(utterance=utt.id, ref=list(utt.phones), hyp=judges["all"].transcribe(y))
        out["vocoder"].append(row)
    return out


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    text = (f"# Cross-lingual, low-resource: English teacher -> {', '.join(meta['speakers'])}, `{meta['mode']}` mode\n\n"
            f"Teacher: {meta['teacher']}. Each model trains every weight for {meta['train_config']['steps']} steps "
            f"(batches of {meta['train_config']['batch_size']}, lr {meta['train_config']['lr']}) on the first k "
            f"training utterances of the target speaker; tested on {meta['test_per_speaker']} held-out sentences "
            "each, audio through the shipped neural vocoder. MCD-DTW from WORLD analyses (Harvest), F0 RMSE "
            "(DTW path) / V/UV from pYIN tracks (as deep_tts.py, whose docstring says why not Harvest). "
            "PER: the judge fine-tuned on every language's train recordings "
            f"({meta['judge_steps']} steps from the English judge); the English-only judge's PER on the same "
            f"recordings is {', '.join(f'{s} {100 * v:.1f} %' for s, v in meta['english_judge_per'].items())} "
            f"(after adaptation: {', '.join(f'{s} {100 * v:.1f} %' for s, v in meta['judge_per'].items())}).\n\n")
    for spk in meta["speakers"]:
        s = results["summary"][spk]
        text += (f"## {spk}\n\n| system | k | MCD-DTW (dB) | F0 RMSE (Hz) | V/UV (%) | PER (%) | train (s) |\n"
                 "|---|---:|---:|---:|---:|---:|---:|\n")
        for name, r in s.items():
            text += (f"| {r['system']} | {r['k'] if r['k'] is not None else ''} | {harness.fmt(r['mcd_dtw_db'], 2)} | "
                     f"{harness.fmt(r['f0_rmse_hz'], 1)} | {harness.fmt(r['vuv_error'], 1, 100)} | "
                     f"{harness.fmt(r['per'], 1, 100)} | {harness.fmt(r.get('seconds'), 0)} |\n")
        text += "\n"
    text += "Phones the teacher never heard and their initialisation (nearest English phone by articulatory features):\n\n"
    for lang, mapping in meta["mappings"].items():
        text += f"- {lang}: " + ", ".join(f"{p} -> {q}" for p, q in mapping.items()) + "\n"
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "crosslingual")
    parser.add_argument("--speakers", default=",".join(SPEAKERS))
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the recipe's)")
    parser.add_argument("--judge-steps", type=int, default=None)
    parser.add_argument("--per-speaker", type=int, default=None, help="test sentences per speaker")
    args, run = harness.start("crosslingual", parser, argv)

    import torch

    from ttslab import pretrained
    from ttslab.data import load_builtin
    from ttslab.models.fastspeech import fastspeech_items, speaker_stats_from_items
    from ttslab.train import crosslingual as recipe
    from ttslab.transfer.crosslingual import transfer_model

    torch.set_num_threads(args.threads)
    mode, speakers = args.mode, args.speakers.split(",")
    corpus = load_builtin(mode)
    teacher = recipe.load_teacher(mode)
    tc = replace(recipe.TRAIN_CONFIGS[mode], threads=args.threads, **({"steps": args.steps} if args.steps else {}))
    jc = replace(recipe.JUDGE_CONFIGS[mode], threads=args.threads,
                 **({"steps": args.judge_steps} if args.judge_steps else {}))
    english_judge, vocoder = pretrained.load("judge"), pretrained.load("vocoder")
    languages = sorted({next(iter(corpus.filter(speakers=s))).language for s in speakers})
    t0 = time.perf_counter()
    judge, _ = recipe.adapt_judge(english_judge, corpus, languages, jc)
    judge_seconds = time.perf_counter() - t0
    known = recipe.teacher_phones(corpus, teacher.speakers)
    n_test = args.per_speaker or TEST_PER_SPEAKER[mode]
    rows, summary, meta_mappings, judge_per, en_judge_per = {}, {}, {}, {}, {}
    from ttslab.metrics import corpus_phone_error_rate

    for spk in speakers:
        test = list(corpus.filter(speakers=spk, split="test"))[:n_test]
        lang = test[0].language
        meta_mappings[lang] = recipe.language_mapping(corpus, lang, known)
        rows[spk] = recording_rows(test, vocoder, {"all": judge, "en": english_judge})
        rec = rows[spk]["recording"]
        judge_per[spk] = corpus_phone_error_rate([r["ref"] for r in rec], [r["hyp"] for r in rec])
        en_judge_per[spk] = corpus_phone_error_rate([r["ref"] for r in rec], [r["hyp_english_judge"] for r in rec])
        summary[spk] = {"recording": {"system": "recording (judge floor)", "k": None, **summarize(rec)},
                        "vocoder": {"system": "neural vocoder on the recording's mel", "k": None,
                                    **summarize(rows[spk]["vocoder"])}}
        all_utts = recipe.target_utterances(corpus, spk)
        stats = speaker_stats_from_items(fastspeech_items(all_utts[:10], speakers=(spk,)), (spk,))[spk]
        zero = transfer_model(teacher, spk, stats, meta_mappings[lang]).eval()
        rows[spk]["zero_shot"] = evaluate(zero, spk, test, vocoder, judge)
        summary[spk]["zero_shot"] = {"system": "teacher, mapped phones, no training", "k": 0,
                                     **summarize(rows[spk]["zero_shot"])}
        for k in SIZES[mode]:
            for init in ("transfer", "scratch"):
                model, history, info = recipe.train_crosslingual(teacher, corpus, spk, k, init, tc, known_phones=known)
                name = f"{init}_{info['n_utterances']}"
                rows[spk][name] = evaluate(model, spk, test, vocoder, judge)
                summary[spk][name] = {"system": "teacher fine-tuned" if init == "transfer" else "from scratch",
                                      "k": info["n_utterances"], "seconds": info["seconds"],
                                      "final_loss": info["final_loss"], **summarize(rows[spk][name])}
                print(spk, name, {k2: round(v, 3) for k2, v in summary[spk][name].items()
                                  if isinstance(v, float)}, flush=True)
    teacher_name = ("registered fastspeech_teacher (" + f"{teacher.num_parameters() / 1e6:.2f} M parameters)"
                    if mode == "full" else f"cached CI tiny FastSpeech ({teacher.num_parameters():,} parameters)")
    results = {"meta": {"speakers": speakers, "teacher": teacher_name, "train_config": tc.to_dict(),
                        "judge_steps": jc.steps, "judge_seconds": round(judge_seconds, 1), "test_per_speaker": n_test,
                        "mappings": meta_mappings, "judge_per": judge_per, "english_judge_per": en_judge_per,
                        "known_phones": known},
               "summary": summary, "rows": rows}
    run.write(results, to_markdown)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
