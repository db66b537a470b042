"""The multi-speaker DNN (shared hidden layers + speaker codes) against the per-speaker DNNs and the
HMM voices, on the same held-out sentences of the same speakers.

Systems (all feed-forward DNNs have the shipped sizes: duration 2 x 64, acoustic 3 x 256):

* ``hmm``: the HTS-style voices (per speaker, all 330 training utterances): the registered
  ``hmm_<speaker>`` when there is one (full mode: en_us_m), else ``deep_tts.py``'s cached voice (trained
  on first use: WORLD features of 330 utterances, an hour of CPU on a busy box);
* ``dnn_ff``: the registered per-speaker DNN voices ``dnn_<speaker>`` (330 utterances each);
* ``dnn_ff_n``: per-speaker DNNs trained here on the first ``n`` utterances of their speaker;
* ``dnn_multi_n``: ONE multi-speaker DNN trained here on the first ``n`` utterances of each of the
  ten English speakers (:mod:`ttslab.train.dnn_multispeaker`, one-hot speaker codes).

So ``dnn_multi_n`` vs ``dnn_ff_n`` is the data-matched test of sharing (each speaker brings ``n``
utterances; the shared model also hears nine other speakers), and the rows trained on 330 utterances
show what a speaker's full data buys. Metrics as ``deep_tts.py``: MCD-DTW, F0 RMSE and V/UV error
along the DTW path of WORLD analyses (Harvest, hop 256) of recording and synthesis, and the shipped
judge's PER (corpus level)::

    python benchmarks/dnn_multispeaker.py --mode full                  # en_us_m, 40 utt./speaker, 4 test
    python benchmarks/dnn_multispeaker.py --mode full --speakers en_us_m,en_rp_f --test 10
    python benchmarks/dnn_multispeaker.py --mode ci
"""

from __future__ import annotations

import sys
import time

try:
    import deep_tts
    import harness
except ModuleNotFoundError:
    from benchmarks import deep_tts, harness

if __name__ == "__main__":
    harness.pin_blas_env()

DEFAULTS = {"full": {"speakers": ("en_us_m",), "n": 40, "test": 4},
            "ci": {"speakers": ("en_us_m", "en_rp_f"), "n": 5, "test": 1}}


def evaluate(voices: dict, utts, judge) -> list[dict]:
    from ttslab.dsp.world import world_analysis
    from ttslab.vocoders.evaluate import compare_analyses

    rows = []
    for utt in utts:
        ref = world_analysis(utt.load_audio(), utt.sample_rate)
        row = {"utterance": utt.id, "speaker": utt.speaker, "ref": list(utt.phones)}
        for name, voice in voices[utt.speaker].items():
            y = voice.synthesize_utterance(utt, kind="ff")[0] if name != "hmm" else voice.synthesize_utterance(utt)[0]
            row[name] = compare_analyses(ref, world_analysis(y, utt.sample_rate), same_timing=False)
            row[name]["hyp"] = judge.transcribe(y)
        rows.append(row)
    return rows


def summarize(rows: list[dict], systems) -> dict:
    from ttslab.metrics import corpus_phone_error_rate

    out = {}
    for name in systems:
        s = {k: harness.finite_mean(r[name].get(k) for r in rows) for k in ("mcd_dtw_db", "f0_rmse_hz", "vuv_error")}
        s["per"] = corpus_phone_error_rate([r["ref"] for r in rows], [r[name]["hyp"] for r in rows])
        out[name] = s
    return out


def to_markdown(results: dict) -> str:
    meta, n = results["meta"], results["meta"]["n"]
    labels = {"hmm": "HMM (HTS-style), 330 utt./speaker", "dnn_ff": "DNN-FF per speaker, 330 utt./speaker",
              f"dnn_ff_{n}": f"DNN-FF per speaker, {n} utt./speaker",
              f"dnn_multi_{n}": f"multi-speaker DNN-FF (shared layers, one-hot codes), {n} utt. x 10 speakers"}
    text = (f"# Multi-speaker DNN-SPSS vs per-speaker DNNs and HMM voices, `{meta['mode']}` mode\n\n"
            f"Evaluated speakers {', '.join(meta['speakers'])}, {meta['test']} held-out sentences each "
            f"({meta['n_utterances']} in all). MCD-DTW / F0 RMSE / V/UV along the DTW path of WORLD analyses; PER "
            "of the shipped judge. The multi-speaker model was trained on the first "
            f"{n} training utterances of each of the ten English speakers ({meta['multi']['n_utterances']} after "
            "holding 5 % out).\n\n| system | MCD-DTW (dB) | F0 RMSE (Hz) | V/UV (%) | PER (%) | training CPU (s) |\n"
            "|---|---:|---:|---:|---:|---:|\n")
    for name, s in results["summary"].items():
        text += (f"| {labels.get(name, name)} | {harness.fmt(s['mcd_dtw_db'], 2)} | {harness.fmt(s['f0_rmse_hz'], 1)} | "
                 f"{harness.fmt(s['vuv_error'], 1, 100)} | {harness.fmt(s['per'], 1, 100)} | "
                 f"{harness.fmt(meta['train_cpu_seconds'].get(name), 0)} |\n")
    text += "\nPer speaker, MCD-DTW (dB) / F0 RMSE (Hz):\n\n| speaker | " + " | ".join(results["summary"]) + " |\n|---|"
    text += "---:|" * len(results["summary"]) + "\n"
    for spk, ps in results["per_speaker"].items():
        text += f"| {spk} | " + " | ".join(f"{harness.fmt(ps[k]['mcd_dtw_db'], 2)} / {harness.fmt(ps[k]['f0_rmse_hz'], 1)}"
                                           for k in results["summary"]) + " |\n"
    text += ("\nTraining CPU seconds: the per-speaker row is per voice; the HMM and registered DNN voices were "
             "trained elsewhere (their registry / deep_tts records).\n")
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "dnn_multispeaker")
    parser.add_argument("--speakers", default=None, help="speakers to evaluate (comma-separated)")
    parser.add_argument("--per-speaker-train", type=int, default=None, help="training utterances per speaker")
    parser.add_argument("--test", type=int, default=None, help="held-out sentences per evaluated speaker")
    parser.add_argument("--no-hmm", action="store_true", help="leave the HMM voices out")
    args, run = harness.start("dnn_multispeaker", parser, argv)

    from ttslab import pretrained
    from ttslab.data import load_builtin
    from ttslab.data.speakers import ENGLISH_SPEAKERS
    from ttslab.models.dnn_spss import DNNConfig
    from ttslab.train.dnn_multispeaker import train_multispeaker_dnn
    from ttslab.train.dnn_spss import train_dnn_voice

    mode, d = args.mode, DEFAULTS[args.mode]
    speakers = args.speakers.split(",") if args.speakers else list(d["speakers"])
    n, n_test = args.per_speaker_train or d["n"], args.test or d["test"]
    corpus = load_builtin(mode).filter(language="en")
    cpu = time.process_time()
    multi = train_multispeaker_dnn(corpus, ENGLISH_SPEAKERS, mode=mode, per_speaker=n, progress=False, device="cpu")
    train_cpu = {f"dnn_multi_{n}": round(time.process_time() - cpu, 1)}
    voices, per_cpu = {}, []
    for spk in speakers:
        cpu = time.process_time()
        single = train_dnn_voice(corpus, spk, DNNConfig.full(), kinds=("ff",), mode=mode, max_utterances=n,
                                 progress=False, device="cpu")
        per_cpu.append(time.process_time() - cpu)
        voices[spk] = {"dnn_ff": pretrained.load(f"dnn_{spk}"), f"dnn_ff_{n}": single,
                       f"dnn_multi_{n}": multi.voice(spk)}
        if not args.no_hmm:  # the registered HMM voice when there is one, else deep_tts.py's cached one
            hmm = (pretrained.load(f"hmm_{spk}") if mode == "full" and f"hmm_{spk}" in pretrained.available()
                   else deep_tts.hmm_voice(mode, spk))
            voices[spk] = {"hmm": hmm, **voices[spk]}
    train_cpu[f"dnn_ff_{n}"] = round(sum(per_cpu) / len(per_cpu), 1)
    judge = pretrained.load("judge")
    utts = [u for spk in speakers for u in list(corpus.filter(speakers=spk, split="test"))[:n_test]]
    rows = evaluate(voices, utts, judge)
    systems = list(voices[speakers[0]])
    results = {"meta": {"speakers": speakers, "n": n, "test": n_test, "n_utterances": len(rows),
                        "train_cpu_seconds": train_cpu,
                        "multi": {k: multi.info[k] for k in ("n_utterances", "n_valid_utterances", "seconds",
                                                              "cpu_seconds", "parameters", "train_configs")}},
               "summary": summarize(rows, systems),
               "per_speaker": {s: summarize([r for r in rows if r["speaker"] == s], systems) for s in speakers},
               "rows": rows}
    run.write(results, to_markdown)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
