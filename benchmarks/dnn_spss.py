"""DNN-SPSS (feed-forward and LSTM) against the HMM system, on the same speakers and sentences.

For every speaker: the HTS-style HMM voice (:func:`ttslab.classical.hts.train_voice`) and a DNN voice
(:func:`ttslab.train.dnn_spss.train_dnn_voice`: duration model + FF + LSTM acoustic models) are
trained on the same ``train`` utterances, from the same WORLD features (the shared feature cache:
both training times below exclude WORLD analysis), and every held-out English test sentence is
synthesized from its labels by both. The DNN voice is evaluated as it ships: saved with float16
weights and loaded back.

Evaluation is the HMM benchmark's, reused as is (:func:`benchmarks.hmm_system.evaluate_utterance`
for the HMM systems, the floor and the mean-spectrum baseline;
:func:`ttslab.vocoders.evaluate.compare_synthesis`, which it uses, for the DNN systems): WORLD
analysis (Harvest, hop 256, c1..c39) of the recording vs of the synthetic audio.
Systems, each with the three settings of the HMM benchmark:

* ``hts`` / ``dnn_ff`` / ``dnn_lstm``: own durations and GV (what a user hears); MCD by DTW, F0 and
  V/UV along the DTW path; phone-duration RMSE against the recording;
* ``*_oracle``: the recording's phone durations, GV; frame by frame (and MCD-DTW);
* ``*_nogv``: oracle durations, no GV (MLPG only: the setting of Zen et al. 2013's comparison).

Also: parameters, checkpoint size, training time (wall and CPU, one thread for the DNN), synthesis
real-time factor on one thread (labels -> audio, and text -> audio with the eSpeak front-end).
Results: ``<out>/dnn_spss_<mode>.json`` and ``.md``::

    python benchmarks/dnn_spss.py --mode ci                        # 10 speakers x (40 train, 10 test)
    python benchmarks/dnn_spss.py --mode full                      # en_us_m,en_us_f,en_gb_m,en_rp_f x (330, 40)
    python benchmarks/dnn_spss.py --mode full --dnn-voices /tmp/ckpt/dnn   # reuse (or keep) trained voices

With ``--dnn-voices`` the rows of each evaluated sentence are kept there too, so a run that is
interrupted (evaluation takes ~15-20 s a sentence on 2 busy cores) resumes where it stopped.

The corpus must be built first (``python -m ttslab build-corpus --mode ...``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

try:  # run as `python benchmarks/dnn_spss.py`: this folder is on the import path
    import harness
    import hmm_system  # the HMM benchmark's evaluation, reused so both systems are measured alike
except ModuleNotFoundError:  # imported from the repository root (tests)
    from benchmarks import harness, hmm_system

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread, before numpy/torch start their pools: RTFs compare

import numpy as np  # noqa: E402

KINDS = ("ff", "lstm")
FULL_DEFAULT_SPEAKERS = hmm_system.FULL_DEFAULT_SPEAKERS
HMM_SYSTEMS = hmm_system.SYSTEMS                       # floor, hts, hts_oracle, hts_nogv, mean_mcep


def dnn_systems(kinds=KINDS) -> list[str]:
    return [f"dnn_{k}{suffix}" for k in kinds for suffix in ("", "_oracle", "_nogv")]


# ----------------------------------------------------------------------------- one utterance


_DNN: dict = {}


def _dnn_voice(path: str):
    """The DNN voice at ``path``, loaded once per process and warmed up (torch, contexts)."""
    if path not in _DNN:
        import torch

        from ttslab.models.dnn_spss import DNNVoice

        torch.set_num_threads(1)
        _DNN[path] = DNNVoice.load(path)
        for kind in _DNN[path].kinds:
            _DNN[path].synthesize(["sil", "ah", "sil"], kind=kind)
    return _DNN[path]


def evaluate_utterance(args) -> dict:
    """Worker: the HMM benchmark's systems plus every DNN system on one test utterance
    (``args = (hmm_path, dnn_path, utterance)``)."""
    hmm_path, dnn_path, utt = args
    from ttslab.dsp.world import world_analysis
    from ttslab.vocoders.evaluate import compare_synthesis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        row = hmm_system.evaluate_utterance((hmm_path, utt))
    voice = _dnn_voice(dnn_path)
    x = utt.load_audio()
    sr = utt.sample_rate
    ref = world_analysis(x, sr)
    oracle = voice.oracle_durations(utt)
    frame_ms = voice.config.frame_shift_ms
    for kind in voice.kinds:
        name = f"dnn_{kind}"
        start = time.perf_counter()
        feats = voice.generate_features(utt, kind=kind)
        y = voice.vocode(feats)
        seconds = time.perf_counter() - start
        row[name] = compare_synthesis(ref, world_analysis(y, sr), same_timing=False)
        row[name].update(length_ratio=len(y) / len(x), synthesis_seconds=seconds, synthesized_seconds=len(y) / sr,
                         phone_duration_rmse_ms=float(frame_ms * np.sqrt(np.mean((feats["durations"] - oracle) ** 2))))
        start = time.perf_counter()
        y_text, _ = voice.synthesize(utt.text, kind=kind)
        row[name].update(text_synthesis_seconds=time.perf_counter() - start, text_synthesized_seconds=len(y_text) / sr)
        for suffix, use_gv in (("_oracle", True), ("_nogv", False)):
            feats = voice.generate_features(utt, oracle, kind=kind, use_gv=use_gv)
            row[name + suffix] = compare_synthesis(ref, world_analysis(voice.vocode(feats, n_samples=len(x)), sr),
                                                   same_timing=True)
    return row


# ----------------------------------------------------------------------------- summaries


def _rtf(rows: list[dict], system: str, prefix: str = "") -> float:
    return (sum(r[system][f"{prefix}synthesis_seconds"] for r in rows)
            / sum(r[system][f"{prefix}synthesized_seconds"] for r in rows))


def summarize(rows: list[dict], systems: list[str]) -> dict:
    out = {}
    for system in systems:
        keys = sorted({k for r in rows for k in r[system]})
        out[system] = {k: hmm_system.system_mean(rows, system, k) for k in keys if not k.endswith("seconds")}
        if "synthesis_seconds" in rows[0][system]:
            out[system].update(rtf=_rtf(rows, system), rtf_text=_rtf(rows, system, "text_"))
    for kind in {s.split("_")[1] for s in systems if s.startswith("dnn_")}:
        for suffix, hmm in (("", "hts"), ("_oracle", "hts_oracle"), ("_nogv", "hts_nogv")):
            dnn = f"dnn_{kind}{suffix}"
            out[dnn]["sentences_better_mcd_than_hmm"] = int(sum(r[dnn]["mcd_dtw_db"] < r[hmm]["mcd_dtw_db"]
                                                                 for r in rows))
    out["ref_median_f0_hz"] = float(np.mean([r["ref_median_f0_hz"] for r in rows]))
    out["n_utterances"] = len(rows)
    return out


def hmm_parameters(voice) -> int:
    """Numbers an HMM voice stores per leaf: means, variances (and MSD weights) of every tree."""
    trees = [t for ts in voice.trees.values() for t in ts] + [voice.duration_tree]
    return int(sum(t.means.size + t.variances.size + (0 if t.weights is None else t.weights.size) for t in trees))


# ----------------------------------------------------------------------------- report


LABELS = {"floor": "WORLD resynthesis (floor)", "hts": "HMM", "dnn_ff": "DNN-FF", "dnn_lstm": "DNN-LSTM",
          "mean_mcep": "mean spectrum (baseline)"}


def _label(system: str) -> str:
    base = system.replace("_oracle", "").replace("_nogv", "")
    return LABELS.get(base, base) + (", oracle dur." if "_oracle" in system or "_nogv" in system else "") + (
        ", no GV" if system.endswith("_nogv") else "")


def _differences(s: dict, kinds) -> str:
    """DNN minus HMM per setting (negative: the DNN is better), computed from the summary."""
    text = "\nDNN minus HMM (negative = DNN better), own durations + GV / oracle + GV / oracle, no GV:\n\n"
    for k in kinds:
        parts = []
        for key, unit, digits in (("mcd_dtw_db", "dB MCD-DTW", 2), ("f0_rmse_hz", "Hz F0 RMSE", 1),
                                  ("vuv_error", "V/UV (fraction)", 3)):
            diffs = [s[f"dnn_{k}{x}"][key] - s[h][key] for x, h in (("", "hts"), ("_oracle", "hts_oracle"),
                                                                        ("_nogv", "hts_nogv"))]
            parts.append(" / ".join(f"{d:+.{digits}f}" for d in diffs) + f" {unit}")
        text += f"- DNN-{k.upper()}: " + "; ".join(parts) + "\n"
    return text


def to_markdown(results: dict) -> str:
    meta, s, train = results["meta"], results["summary"], results["training"]
    kinds = meta["kinds"]
    text = (f"# DNN-SPSS vs the HMM system, `{meta['mode']}` mode\n\n"
            f"Speakers {', '.join(meta['speakers'])}; per speaker one HMM voice and one DNN voice (duration + "
            f"{' + '.join(k.upper() for k in kinds)} acoustic models) trained on the same {meta['train_per_speaker']} "
            f"utterances (the DNN holds {meta['dnn_valid_per_speaker']} of them out for validation) from the same "
            f"WORLD features (5 ms frames, mcep order 34, Harvest F0), tested on the same "
            f"{meta['test_per_speaker']} held-out sentences each ({s['n_utterances']} in all). Metrics exactly as in "
            "`hmm_system.py`: WORLD analysis (Harvest, hop 256, c1..c39) of the recording vs of the synthetic audio; "
            "own durations: MCD by DTW, F0 / V/UV along the DTW path; oracle durations: frame by frame. DNN voices "
            "are evaluated as shipped (float16 weights). Machine: "
            f"{meta['machine']}; load average {meta['load_average_start']} at the start, {meta['load_average_end']} "
            "at the end (a shared box: wall-clock times are pessimistic; CPU times are not).\n\n")
    text += ("## Mean over all test sentences\n\n| system | MCD DTW (dB) | MCD frames (dB) | F0 RMSE (Hz / cents) "
             "| V/UV error (%) | phone dur. RMSE (ms) | better MCD than HMM (sentences) |\n|---|" + "---:|" * 6 + "\n")
    order = (["floor", "hts"] + [f"dnn_{k}" for k in kinds] + ["hts_oracle"] + [f"dnn_{k}_oracle" for k in kinds]
             + ["hts_nogv"] + [f"dnn_{k}_nogv" for k in kinds] + ["mean_mcep"])
    for system in order:
        r = s[system]
        vuv = None if r.get("vuv_error") is None else 100 * r["vuv_error"]
        better = r.get("sentences_better_mcd_than_hmm")
        better = "" if better is None else f"{better}/{s['n_utterances']}"
        text += (f"| {_label(system)} | {harness.fmt(r.get('mcd_dtw_db'), 2)} | {harness.fmt(r.get('mcd_db'), 2)} | "
                 f"{harness.fmt(r.get('f0_rmse_hz'), 1)} / {harness.fmt(r.get('f0_rmse_cents'), 0)} | {harness.fmt(vuv, 1)} | "
                 f"{harness.fmt(r.get('phone_duration_rmse_ms'), 1)} | {better} |\n")
    text += _differences(s, kinds)
    text += ("\n## Per speaker: MCD DTW (dB) and F0 RMSE (Hz), own durations with GV | oracle durations, no GV\n\n"
             "| speaker | HMM | " + " | ".join(f"DNN-{k.upper()}" for k in kinds) + " | HMM (oracle, no GV) | "
             + " | ".join(f"DNN-{k.upper()} (oracle, no GV)" for k in kinds) + " |\n|---|"
             + "---:|" * (2 + 2 * len(kinds)) + "\n")
    for spk, ps in list(results["per_speaker"].items()) + [("**mean**", s)]:
        cells = [f"{harness.fmt(ps[x]['mcd_dtw_db'], 2)} / {harness.fmt(ps[x]['f0_rmse_hz'], 1)}"
                 for x in ["hts"] + [f"dnn_{k}" for k in kinds] + ["hts_nogv"] + [f"dnn_{k}_nogv" for k in kinds]]
        text += f"| {spk} | " + " | ".join(cells) + " |\n"
    text += ("\n## Size, training time, speed (per voice, mean over speakers)\n\n| system | parameters | checkpoint "
             "| training wall (s) | training CPU (s) | RTF (labels, 1 thread) | RTF (text, with eSpeak) |\n|---|"
             + "---:|" * 6 + "\n")
    n = len(train)
    hmm_params = np.mean([t["hmm"]["parameters"] for t in train.values()])
    text += (f"| HMM (trees: means, variances, MSD weights) | {hmm_params:,.0f} | "
             f"{np.mean([t['hmm']['bytes'] for t in train.values()]) / 1e6:.2f} MB (.npz, float64) | "
             f"{np.mean([t['hmm']['model_seconds'] for t in train.values()]):.0f} | "
             f"{np.mean([t['hmm']['model_cpu_seconds'] for t in train.values()]):.0f} | {harness.fmt(s['hts']['rtf'], 3)} | "
             f"{harness.fmt(s['hts']['rtf_text'], 3)} |\n")
    for k in kinds:
        p = np.mean([t["dnn"]["parameters"][k] + t["dnn"]["parameters"]["duration"] for t in train.values()])
        wall = np.mean([t["dnn"]["seconds"][k] + t["dnn"]["seconds"]["duration"] for t in train.values()])
        cpu = np.mean([t["dnn"]["cpu_seconds"][k] + t["dnn"]["cpu_seconds"]["duration"] for t in train.values()])
        text += (f"| DNN-{k.upper()} (duration + acoustic) | {p:,.0f} | | {wall:.0f} | {cpu:.0f} | "
                 f"{harness.fmt(s[f'dnn_{k}']['rtf'], 3)} | {harness.fmt(s[f'dnn_{k}']['rtf_text'], 3)} |\n")
    dnn_bytes = sum(t["dnn"]["bytes"] for t in train.values())
    text += (f"\nDNN checkpoints (duration + {' + '.join(kinds)} in one file per speaker, float16): "
             f"{dnn_bytes / n / 1e6:.2f} MB a speaker, {dnn_bytes / 1e6:.2f} MB for the {n} voices. Training all "
             f"{n} DNN voices took {meta['dnn_total_seconds'] / 60:.1f} min wall-clock, "
             f"{meta['dnn_total_cpu_seconds'] / 60:.1f} min CPU on one thread; the HMM voices "
             f"{meta['hmm_total_seconds'] / 60:.1f} min wall, {meta['hmm_total_cpu_seconds'] / 60:.1f} min CPU (models "
             "only: features came from the shared cache; `hmm_system_*.md` times WORLD analysis from a cold cache). "
             f"The whole run took {meta['total_wall_seconds'] / 60:.1f} min.\n")
    return text


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "dnn_spss")
    parser.add_argument("--speakers", default=None, help="comma-separated speaker ids (ci default: all English; "
                        "full default: " + ",".join(FULL_DEFAULT_SPEAKERS) + ")")
    parser.add_argument("--kinds", default=",".join(KINDS), help="DNN acoustic models (default ff,lstm)")
    parser.add_argument("--dnn-voices", type=Path, default=None, help="folder of DNN voices dnn_<mode>_<speaker>.pt: "
                        "used when present, else trained and saved there (default: a temporary folder)")
    parser.add_argument("--hmm-voices", type=Path, default=None,
                        help="the same for HMM voices hts_<mode>_<speaker>.npz")
    parser.add_argument("--jobs", type=int, default=2, help="processes (feature extraction, evaluation)")
    parser.add_argument("--limit-test", type=int, default=None, help="evaluate only N test sentences per speaker")
    parser.add_argument("--markdown-from", type=Path, default=None, help="only rewrite the .md of a results JSON")
    args, run = harness.start("dnn_spss", parser, argv)
    if args.markdown_from is not None:
        from ttslab.io import atomic_write_text

        results = json.loads(args.markdown_from.read_text())
        text = to_markdown(results).rstrip("\n") + "\n" + harness.provenance_markdown(results["meta"])
        return atomic_write_text(args.markdown_from.with_suffix(".md"), text)

    import multiprocessing

    from tqdm.auto import tqdm

    from ttslab.classical.hts import HTSConfig, Voice, train_voice
    from ttslab.data import load_builtin
    from ttslab.io import atomic_write_json, sha256_file
    from ttslab.models.dnn_spss import DNNConfig, DNNVoice
    from ttslab.train.dnn_spss import default_train_configs, train_dnn_voice

    mode = args.mode
    kinds = args.kinds.split(",")
    from ttslab.data.speakers import ENGLISH_SPEAKERS

    corpus = load_builtin(mode).filter(speakers=list(ENGLISH_SPEAKERS))  # the source speakers, not the adaptation ones
    speakers = args.speakers.split(",") if args.speakers else (corpus.speakers if mode == "ci"
                                                               else list(FULL_DEFAULT_SPEAKERS))
    workdir = tempfile.TemporaryDirectory(prefix="dnn_spss_")
    dnn_dir = args.dnn_voices or Path(workdir.name) / "dnn"
    hmm_dir = args.hmm_voices or Path(workdir.name) / "hmm"
    hts_config = HTSConfig(jobs=args.jobs)            # default cache: the features the DNN uses too
    meta = {"mode": mode, "speakers": speakers, "kinds": kinds, "dnn_config": asdict(DNNConfig.full(kinds[0])),
            "dnn_train_configs": {k: v.to_dict() for k, v in default_train_configs(mode).items()}}

    training, rows, started = {}, [], time.perf_counter()
    systems = list(HMM_SYSTEMS) + dnn_systems(kinds)
    for speaker in speakers:
        hmm_path = Path(hmm_dir) / f"hts_{mode}_{speaker}.npz"
        if hmm_path.is_file():
            hmm = Voice.load(hmm_path)
        else:
            hmm = train_voice(corpus, speaker, hts_config)
            hmm.save(hmm_path)
        dnn_path = Path(dnn_dir) / f"dnn_{mode}_{speaker}.pt"
        if not dnn_path.is_file():
            voice = train_dnn_voice(corpus, speaker, DNNConfig.full(kinds[0]), kinds=kinds, mode=mode, jobs=args.jobs,
                                    progress=False)
            voice.save(dnn_path)
        dnn = DNNVoice.load(dnn_path)
        missing = set(kinds) - set(dnn.kinds)
        if missing:
            raise SystemExit(f"{dnn_path} has no {sorted(missing)} model; delete it or pass --kinds "
                             + ",".join(dnn.kinds))
        training[speaker] = {"hmm": {**hmm.info, "parameters": hmm_parameters(hmm), "bytes": hmm_path.stat().st_size},
                             "dnn": {**dnn.info, "bytes": dnn_path.stat().st_size}}
        print(f"{speaker}: HMM {hmm.info['model_cpu_seconds']:.0f} s CPU; DNN {dnn.info['model_cpu_seconds']:.0f} s "
              f"CPU ({dnn.info['cpu_seconds']}); {dnn}", flush=True)
        tests = list(corpus.filter(speakers=speaker, split="test"))[: args.limit_test]
        # rows are kept next to the DNN voice after every sentence, keyed by both voices and the sentences:
        # an interrupted run picks up where it stopped
        rows_path = Path(dnn_dir) / f"rows_{mode}_{speaker}.json"
        key = {"hmm": sha256_file(hmm_path), "dnn": sha256_file(dnn_path), "tests": [u.id for u in tests],
               "kinds": kinds}
        saved = json.loads(rows_path.read_text()) if rows_path.is_file() else {}
        done = saved.get("rows", []) if saved.get("key") == key else []
        todo = [(str(hmm_path), str(dnn_path), u) for u in tests[len(done):]]
        bar = dict(total=len(tests), initial=len(done), desc=f"evaluating {speaker}", unit="utt")
        if args.jobs > 1:
            with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
                for row in tqdm(pool.imap(evaluate_utterance, todo), **bar):
                    done.append(row)
                    atomic_write_json(rows_path, {"key": key, "rows": done})
        else:  # in this process: nothing for a worker crash to hang
            for work in tqdm(todo, **bar):
                done.append(evaluate_utterance(work))
                atomic_write_json(rows_path, {"key": key, "rows": done})
        rows += done
    results = {"meta": meta, "training": training, "rows": rows, "summary": summarize(rows, systems),
               "per_speaker": {s: summarize([r for r in rows if r["speaker"] == s], systems) for s in speakers}}
    meta.update(total_wall_seconds=time.perf_counter() - started,
                train_per_speaker=training[speakers[0]]["hmm"]["n_utterances"],
                dnn_valid_per_speaker=training[speakers[0]]["dnn"]["n_valid_utterances"],
                test_per_speaker=len([r for r in rows if r["speaker"] == speakers[0]]),
                dnn_total_seconds=sum(t["dnn"]["model_seconds"] for t in training.values()),
                dnn_total_cpu_seconds=sum(t["dnn"]["model_cpu_seconds"] for t in training.values()),
                hmm_total_seconds=sum(t["hmm"]["model_seconds"] for t in training.values()),
                hmm_total_cpu_seconds=sum(t["hmm"]["model_cpu_seconds"] for t in training.values()))
    run.write(results, to_markdown)
    workdir.cleanup()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
