"""HTS-style HMM synthesis system: train per speaker, synthesize the held-out sentences, measure.

For every speaker: :func:`ttslab.classical.hts.train_voice` on the ``train`` split (features from
audio, timed: by default into an empty feature cache, so the training time includes WORLD analysis),
then each held-out English test sentence is synthesized from its labels and compared with the
recording the way the vocoder floor is (:mod:`ttslab.vocoders.evaluate`): WORLD analysis (Harvest,
hop 256, 40 mel-cepstral coefficients) of the original and of the synthetic audio.

Systems per sentence, all against the original recording:

* ``floor``        WORLD analysis-resynthesis of the original (the best any WORLD-based model can do)
* ``hts``          the voice with its own durations (duration trees) and GV: what a user hears.
                   The timing differs from the recording, so MCD is DTW-aligned and F0 / V/UV are
                   compared along the same DTW path
* ``hts_oracle``   the voice with the recording's phone durations (oracle durations) and GV: the
                   same length, so F0, V/UV and MCD (also without DTW) are frame by frame as for the floor
* ``hts_nogv``     oracle durations, without GV (GV usually costs a little MCD and buys liveliness)
* ``mean_mcep``    trivial baseline: the oracle system's F0 and aperiodicity, but the speaker's global
                   mean mel-cepstrum in every frame (what the spectrum model adds over "no model")

Also: phone-duration RMSE (ms) of the duration model against the recording, length ratio, median
F0, training time (features + models), synthesis real-time factor (labels -> audio, one thread;
``rtf_text`` adds the eSpeak front-end). Results: ``<out>/hmm_system_<mode>.json`` and ``.md``::

    python benchmarks/hmm_system.py --mode ci                          # 10 speakers x (40 train, 10 test)
    python benchmarks/hmm_system.py --mode full --speakers en_us_m,en_us_f,en_gb_m,en_rp_f
    python benchmarks/hmm_system.py --mode full --warm                 # reuse cached features

The corpus must be built first (``python -m ttslab build-corpus --mode ...``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

try:
    import harness  # run as `python benchmarks/hmm_system.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy starts its pool: RTFs compare

import numpy as np  # noqa: E402

#: Speakers a full-mode run trains by default: what fits the 30-minute training budget on 2 cores with
#: room to spare (two male, two female, two accents). Measured: 22.5 min of wall-clock time on a
#: shared, busy 2-core box; from CPU time, ~3 min a voice on 2 free cores, so all ten English
#: speakers (``--speakers`` with every id) would take about 30 min.
FULL_DEFAULT_SPEAKERS = ("en_us_m", "en_us_f", "en_gb_m", "en_rp_f")
SYSTEMS = ("floor", "hts", "hts_oracle", "hts_nogv", "mean_mcep")


# ----------------------------------------------------------------------------- one utterance


_VOICES: dict = {}


def _voice(path: str):
    """The voice at ``path``, loaded once per process and warmed up (imports, question tables), so
    the timed syntheses measure synthesis only."""
    if path not in _VOICES:
        from ttslab.classical.hts import Voice

        _VOICES[path] = Voice.load(path)
        _VOICES[path].synthesize(["sil", "ah", "sil"])
    return _VOICES[path]


def evaluate_utterance(args) -> dict:
    """Worker: every system on one test utterance (``args = (voice_path, utterance)``)."""
    voice_path, utt = args
    from ttslab.classical.hts import phone_frame_ranges
    from ttslab.dsp.spectral import num_frames
    from ttslab.dsp.world import world_analysis
    from ttslab.vocoders.evaluate import compare_synthesis
    from ttslab.vocoders.world import world_vocoder_resynthesize

    voice = _voice(voice_path)
    x = utt.load_audio()
    sr = utt.sample_rate
    ref = world_analysis(x, sr)
    row = {"utterance": utt.id, "speaker": utt.speaker, "seconds": len(x) / sr,
           "ref_median_f0_hz": float(np.median(ref.f0[ref.f0 > 0]))}

    row["floor"] = compare_synthesis(ref, world_analysis(world_vocoder_resynthesize(x, sr), sr), same_timing=True)

    start = time.perf_counter()
    feats = voice.generate_features(utt)
    y = voice.vocode(feats)
    seconds = time.perf_counter() - start
    row["hts"] = compare_synthesis(ref, world_analysis(y, sr), same_timing=False)
    row["hts"].update(length_ratio=len(y) / len(x), synthesis_seconds=seconds, synthesized_seconds=len(y) / sr)
    true_frames = np.diff(phone_frame_ranges(utt.segments, num_frames(len(x), voice.config.hop), voice.config.hop),
                          axis=1)[:, 0]
    frame_ms = voice.config.frame_shift_ms
    row["hts"]["phone_duration_rmse_ms"] = float(frame_ms * np.sqrt(np.mean((feats["durations"].sum(axis=1)
                                                                                - true_frames) ** 2)))
    start = time.perf_counter()
    y_text, _ = voice.synthesize(utt.text)
    row["hts"]["text_synthesis_seconds"] = time.perf_counter() - start
    row["hts"]["text_synthesized_seconds"] = len(y_text) / sr

    oracle = voice.oracle_durations(utt)
    for name, use_gv in (("hts_oracle", True), ("hts_nogv", False)):
        f = voice.generate_features(utt, use_gv=use_gv, durations=oracle)
        row[name] = compare_synthesis(ref, world_analysis(voice.vocode(f, n_samples=len(x)), sr), same_timing=True)
        if name == "hts_oracle":
            f["mcep"] = np.broadcast_to(voice.global_means["mcep"], f["mcep"].shape)
            baseline = voice.vocode(f, n_samples=len(x))
    row["mean_mcep"] = compare_synthesis(ref, world_analysis(baseline, sr), same_timing=True)
    return row


# ----------------------------------------------------------------------------- summaries


def system_mean(rows: list[dict], system: str, key: str) -> float | None:
    """Mean of ``row[system][key]`` over the rows where it is a finite number (``None`` if none is)."""
    return harness.finite_mean(r[system].get(key) for r in rows)


def summarize(rows: list[dict]) -> dict:
    out = {}
    for system in SYSTEMS:
        keys = sorted({k for r in rows for k in r[system]})
        out[system] = {k: system_mean(rows, system, k) for k in keys if not k.endswith("seconds")}
    hts = [r["hts"] for r in rows]
    out["hts"]["rtf"] = sum(h["synthesis_seconds"] for h in hts) / sum(h["synthesized_seconds"] for h in hts)
    out["hts"]["rtf_text"] = (sum(h["text_synthesis_seconds"] for h in hts)
                              / sum(h["text_synthesized_seconds"] for h in hts))
    out["ref_median_f0_hz"] = float(np.mean([r["ref_median_f0_hz"] for r in rows]))
    out["n_utterances"] = len(rows)
    return out


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    text = (f"# HMM (HTS-style) synthesis system, `{meta['mode']}` mode\n\n"
            f"Per speaker: trained on {meta['train_per_speaker']} utterances, tested on {meta['test_per_speaker']} "
            f"held-out sentences; {meta['frame_shift_ms']:.2f} ms frames, mcep order {meta['config']['mcep_order']}, "
            f"F0 by {meta['config']['f0_method']}. Metrics as in the vocoder floor: WORLD analysis (Harvest, hop "
            "256, c1..c39) of the original vs of the synthetic audio. `hts`: own durations (MCD-DTW; F0 and V/UV "
            "along the DTW path); `oracle`: the recording's phone durations (frame by frame); `mean mcep`: "
            "oracle F0/aperiodicity with the global mean spectrum (trivial baseline). Training time includes "
            f"WORLD feature extraction {'from a cold cache' if meta['cold_cache'] else '(features from the cache)'}"
            f" with {meta['config']['jobs']} processes. Machine: {meta['machine']}; load average "
            f"{meta['load_average_start']} at the start, {meta['load_average_end']} at the end (a shared box: "
            "times are pessimistic).\n\n")
    rows = list(results["per_speaker"].items()) + [("**mean**", results["summary"])]

    def f0(s, system):
        return f"{harness.fmt(s[system]['f0_rmse_hz'], 1)} / {harness.fmt(s[system]['f0_rmse_cents'], 0)}"

    def vuv(s, system):
        return harness.fmt(None if s[system]["vuv_error"] is None else 100 * s[system]["vuv_error"], 1)

    text += ("## Spectrum: MCD (dB)\n\n| speaker | hts (DTW) | oracle (DTW) | oracle, no GV (DTW) | oracle (frames) "
             "| mean mcep (DTW) | floor (DTW) | floor (frames) |\n|---|" + "---:|" * 7 + "\n")
    for label, s in rows:
        text += (f"| {label} | {harness.fmt(s['hts']['mcd_dtw_db'], 2)} | {harness.fmt(s['hts_oracle']['mcd_dtw_db'], 2)} | "
                 f"{harness.fmt(s['hts_nogv']['mcd_dtw_db'], 2)} | {harness.fmt(s['hts_oracle']['mcd_db'], 2)} | "
                 f"{harness.fmt(s['mean_mcep']['mcd_dtw_db'], 2)} | {harness.fmt(s['floor']['mcd_dtw_db'], 2)} | "
                 f"{harness.fmt(s['floor']['mcd_db'], 2)} |\n")
    text += ("\n## F0 RMSE (Hz / cents) and V/UV error (%)\n\n| speaker | F0 hts (DTW path) | F0 oracle | F0 floor "
             "| V/UV hts (DTW path) | V/UV oracle | V/UV floor | median F0 hts / recording (Hz) |\n|---|"
             + "---:|" * 7 + "\n")
    for label, s in rows:
        text += (f"| {label} | {f0(s, 'hts')} | {f0(s, 'hts_oracle')} | {f0(s, 'floor')} | {vuv(s, 'hts')} | "
                 f"{vuv(s, 'hts_oracle')} | {vuv(s, 'floor')} | {harness.fmt(s['hts']['median_f0_hz'], 0)} / "
                 f"{harness.fmt(s['ref_median_f0_hz'], 0)} |\n")
    text += ("\n## Durations, training time, speed\n\n| speaker | phone duration RMSE (ms) | length ratio "
             "| training wall (s): features + models | training CPU (s): features + models | RTF (labels) "
             "| RTF (text, with eSpeak) |\n|---|" + "---:|" * 6 + "\n")
    for label, s in rows:
        t = results["training"].get(label)
        if t:
            wall = f"{t['training_seconds']:.0f}: {t['feature_seconds']:.0f} + {t['model_seconds']:.0f}"
            cpu = (f"{t['feature_cpu_seconds']:.0f} + {t['model_cpu_seconds']:.0f}" if "model_cpu_seconds" in t
                   else "n/a")
        else:
            wall = f"{meta['total_training_seconds']:.0f} in all"
            cpu = f"{harness.fmt(meta.get('total_training_cpu_seconds'), 0)} in all"
        text += (f"| {label} | {harness.fmt(s['hts']['phone_duration_rmse_ms'], 1)} | {harness.fmt(s['hts']['length_ratio'], 2)} | "
                 f"{wall} | {cpu} | {harness.fmt(s['hts']['rtf'], 3)} | {harness.fmt(s['hts']['rtf_text'], 3)} |\n")
    n = len(results["training"])
    text += (f"\nTraining the {n} voice{'s' if n > 1 else ''} took {meta['total_training_seconds'] / 60:.1f} min of "
             f"wall-clock time in all (budget: 30 min on 2 cores); the whole run {meta['total_wall_seconds'] / 60:.1f} "
             "min. CPU time does not grow when other programs share the cores: on 2 free cores training takes "
             "about features CPU / 2 + models CPU")
    if meta.get("estimated_free_training_seconds") is not None:
        text += f" = {meta['estimated_free_training_seconds'] / 60:.1f} min for these voices"
    text += ".\n"
    text += "\nTree sizes (leaves per state, mcep / lf0 / bap; duration):\n\n"
    for spk, t in results["training"].items():
        leaves = t["leaves"]
        text += (f"- {spk}: {leaves['mcep']} / {leaves['lf0']} / {leaves['bap']}; {t['duration_leaves']} "
                 f"({t['n_utterances']} utterances, {t['n_frames']} frames)\n")
    return text


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "hmm_system")
    parser.add_argument("--speakers", default=None,
                        help="comma-separated speaker ids (ci default: all English; full default: "
                             + ",".join(FULL_DEFAULT_SPEAKERS) + ")")
    parser.add_argument("--voices", type=Path, default=None, help="where to keep the trained voices "
                        "(default: a temporary folder)")
    parser.add_argument("--warm", action="store_true", help="reuse the shared feature cache (training time "
                        "then excludes WORLD analysis)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (feature extraction, evaluation)")
    parser.add_argument("--limit-test", type=int, default=None, help="evaluate only N test sentences per speaker")
    args, run = harness.start("hmm_system", parser, argv)

    import multiprocessing

    from tqdm.auto import tqdm

    from ttslab.classical.hts import HTSConfig, train_voice
    from ttslab.data import load_builtin

    mode = args.mode
    from ttslab.data.speakers import ENGLISH_SPEAKERS

    corpus = load_builtin(mode).filter(speakers=list(ENGLISH_SPEAKERS))  # the source speakers, not the adaptation ones
    if args.speakers:
        speakers = args.speakers.split(",")
    else:
        speakers = corpus.speakers if mode == "ci" else list(FULL_DEFAULT_SPEAKERS)
    workdir = tempfile.TemporaryDirectory(prefix="hmm_system_")
    voices_dir = args.voices or Path(workdir.name) / "voices"
    cache_root = None if args.warm else str(Path(workdir.name) / "features")
    config = HTSConfig(jobs=args.jobs, cache_root=cache_root)
    meta = {"mode": mode, "speakers": speakers, "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "frame_shift_ms": config.frame_shift_ms, "cold_cache": not args.warm}
    meta["config"]["cache_root"] = None

    training, rows, started = {}, [], time.perf_counter()
    for speaker in speakers:
        voice = train_voice(corpus, speaker, config)
        path = voice.save(Path(voices_dir) / f"hts_{mode}_{speaker}.npz")
        training[speaker] = dict(voice.info)
        print(f"{speaker}: trained in {voice.info['training_seconds']:.0f} s "
              f"({voice.info['feature_seconds']:.0f} s features); {voice}", flush=True)
        tests = list(corpus.filter(speakers=speaker, split="test"))[: args.limit_test]
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows += list(tqdm(pool.imap(evaluate_utterance, [(str(path), u) for u in tests]), total=len(tests),
                              desc=f"evaluating {speaker}", unit="utt"))
    results = {
        "meta": meta, "training": training, "rows": rows, "summary": summarize(rows),
        "per_speaker": {s: summarize([r for r in rows if r["speaker"] == s]) for s in speakers},
    }
    if all("model_cpu_seconds" in t for t in training.values()):
        meta["total_training_cpu_seconds"] = sum(t["feature_cpu_seconds"] + t["model_cpu_seconds"]
                                                 for t in training.values())
        meta["estimated_free_training_seconds"] = sum(t["feature_cpu_seconds"] / min(args.jobs, 2)
                                                      + t["model_cpu_seconds"] for t in training.values())
    meta.update(total_training_seconds=sum(t["training_seconds"] for t in training.values()),
                total_wall_seconds=time.perf_counter() - started,
                train_per_speaker=training[speakers[0]]["n_utterances"],
                test_per_speaker=len([r for r in rows if r["speaker"] == speakers[0]]))
    run.write(results, to_markdown)
    workdir.cleanup()
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
