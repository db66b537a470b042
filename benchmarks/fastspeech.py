"""FastSpeech-2-style acoustic model on the held-out English test sentences of the built-in corpus.

Model-only measures, on every test utterance of the model's speakers (cheap: one forward each):

* ``mel L1 (oracle durations)``  mean |log-mel error| with the recording's phone durations and the
  model's own pitch/energy predictions (frame by frame, same length as the recording);
* ``mel L1 (teacher forced)``     the same with the recording's pitch and energy too (the training loss);
* ``duration RMSE``               predicted vs true phone durations (frames and ms), and the ratio of
  predicted to true utterance length;
* ``RTF``                          acoustic model only (phone ids -> log-mel), one thread, after warm-up.

Audio measures on ``--per-speaker`` test sentences of each speaker, vocoded with Griffin-Lim (32
iterations) and compared with the recording as :mod:`ttslab.vocoders.evaluate` does (WORLD analysis,
Harvest F0, hop 256):

* ``griffin_lim``   ground-truth log-mel + Griffin-Lim: the floor of every log-mel model heard this way;
* ``oracle_dur``    the model with the recording's durations: same length, so MCD, F0 RMSE and V/UV
                    are frame by frame (MCD also with DTW);
* ``fastspeech``    the model on its own (predicted durations): MCD-DTW, and F0 / V/UV along the DTW path.

MCD is reported full band (c1..c39 of 22 kHz WORLD mel-cepstra) and 0-8 kHz (both signals resampled to
16 kHz): log-mel + Griffin-Lim has nothing above 8 kHz, which costs ~20 dB of full-band MCD whatever
the model does, so the 0-8 kHz figure is the one that tells models apart (see the vocoder floor).
Also: controllability (median F0 shift in semitones of audio synthesized with +-4 semitones, length
ratio at rate 1.5), parameters and checkpoint size. Results: ``<out>/fastspeech_<mode>.json`` / ``.md``::

    python benchmarks/fastspeech.py --mode full --checkpoint /tmp/ckpt/fastspeech_teacher.pt
    python benchmarks/fastspeech.py --mode ci        # trains the tiny CI model first (seconds)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

try:
    import harness  # run as `python benchmarks/fastspeech.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread, before numpy/torch start their pools: RTFs compare

import numpy as np  # noqa: E402
import torch  # noqa: E402

SYSTEMS = ("griffin_lim", "oracle_dur", "fastspeech")
GL_ITERATIONS = 32


def audio_metrics(ref, ref8k: np.ndarray, y: np.ndarray, sr: int, same_length: bool) -> dict:
    """MCD (DTW; also frame by frame when the lengths agree), 0-8 kHz MCD-DTW, F0 RMSE and V/UV of ``y``."""
    from ttslab.dsp.world import world_analysis
    from ttslab.metrics import mcd_dtw
    from ttslab.vocoders.evaluate import band_limited_mcep, compare_analyses

    out = compare_analyses(ref, world_analysis(y, sr), same_timing=same_length)
    out["mcd8k_dtw_db"] = mcd_dtw(ref8k, band_limited_mcep(y, sr))
    return {k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in out.items()}


def model_metrics(model, item: dict) -> dict:
    """Mel L1 (oracle durations; teacher forced), duration errors and acoustic-model time for one item."""
    ids = torch.from_numpy(item["phone_ids"])
    dur = torch.from_numpy(item["durations"])
    mel = torch.from_numpy(item["mel"])
    spk = item["speaker"]
    with torch.no_grad():
        oracle = model.infer(item, spk, durations=dur)["mel"]
        forced = model(ids[None], torch.tensor([spk]), durations=dur[None],
                       pitch=torch.from_numpy(item["pitch"])[None], energy=torch.from_numpy(item["energy_phone"])[None],
                       stress=torch.from_numpy(item["stress"])[None],
                       word_position=torch.from_numpy(item["word_position"])[None])["mel_postnet"][0]
        start, cpu = time.perf_counter(), time.process_time()
        free = model.infer(item, spk)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    pred = free["durations"].numpy().astype(np.float64)
    true = item["durations"].astype(np.float64)
    return {"mel_l1_oracle_dur": float((oracle - mel).abs().mean()),
            "mel_l1_teacher_forced": float((forced - mel).abs().mean()),
            "duration_sq_error": float(np.sum((pred - true) ** 2)), "n_phones": len(true),
            "length_ratio": float(pred.sum() / true.sum()),
            "model_seconds": seconds, "model_cpu_seconds": cpu, "synthesized_frames": int(pred.sum())}


def _median_f0(y: np.ndarray, sr: int) -> float:
    from ttslab.dsp.f0 import f0_pyworld

    f0 = f0_pyworld(y, sr, method="dio")
    return float(np.median(f0[f0 > 0])) if np.any(f0 > 0) else float("nan")


def evaluate(model, utterances, items: dict, per_speaker: int, progress: bool = True,
             partial: Path | None = None, key: str = "") -> list[dict]:
    """One row per test utterance: model metrics always, audio metrics for the first ``per_speaker``.

    With ``partial`` every row is appended to that JSON-lines file as it is done, and rows already
    there with the same ``key`` are reused: an interrupted run continues where it stopped.
    """
    import json

    from tqdm.auto import tqdm

    from ttslab.dsp.world import world_analysis
    from ttslab.vocoders import griffin_lim
    from ttslab.vocoders.evaluate import band_limited_mcep

    rows, counts, done = [], {}, {}
    if partial is not None and partial.is_file():
        for line in partial.read_text().splitlines():
            row = json.loads(line)
            if row.get("key") == key:
                done[row["utterance"]] = row
    model.infer(items[utterances[0].id], items[utterances[0].id]["speaker"])  # warm-up
    for utt in tqdm(utterances, desc="test utterances", disable=not progress):
        counts[utt.speaker] = counts.get(utt.speaker, 0) + 1
        if utt.id in done:
            rows.append(done[utt.id])
            continue
        item = items[utt.id]
        row = {"utterance": utt.id, "speaker": utt.speaker, "seconds": len(item["mel"]) * 256 / 22050,
               "key": key, **model_metrics(model, item)}
        if counts[utt.speaker] <= per_speaker:
            x = utt.load_audio()
            sr = utt.sample_rate
            ref, ref8k = world_analysis(x, sr), band_limited_mcep(x, sr)
            gl = lambda m: griffin_lim(m.T, n_iter=GL_ITERATIONS)
            ids, spk = item, item["speaker"]  # the item holds phone_ids, stress and word_position
            oracle = model.infer(ids, spk, durations=item["durations"])["mel"].numpy()
            free = model.infer(ids, spk)["mel"].numpy()
            fit_len = lambda y: np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]
            row["griffin_lim"] = audio_metrics(ref, ref8k, fit_len(gl(item["mel"])), sr, True)
            row["oracle_dur"] = audio_metrics(ref, ref8k, fit_len(gl(oracle)), sr, True)
            y = gl(free)
            row["fastspeech"] = audio_metrics(ref, ref8k, y, sr, False)
            if counts[utt.speaker] == 1:  # controllability, on one sentence per speaker
                base = _median_f0(y, sr)
                up = _median_f0(gl(model.infer(ids, spk, pitch_shift_semitones=4.0)["mel"].numpy()), sr)
                down = _median_f0(gl(model.infer(ids, spk, pitch_shift_semitones=-4.0)["mel"].numpy()), sr)
                fast = model.infer(ids, spk, rate=1.5)["mel"]
                row["control"] = {"semitones_up_4": float(12 * np.log2(up / base)),
                                  "semitones_down_4": float(12 * np.log2(down / base)),
                                  "length_ratio_rate_1_5": len(fast) / len(free)}
        rows.append(row)
        if partial is not None:
            with open(partial, "a") as f:
                f.write(json.dumps(row) + "\n")
    return rows


def summarize(rows: list[dict], frame_ms: float) -> dict:
    out = {k: harness.finite_mean(r[k] for r in rows) for k in ("mel_l1_oracle_dur", "mel_l1_teacher_forced", "length_ratio")}
    out["duration_rmse_frames"] = float(np.sqrt(sum(r["duration_sq_error"] for r in rows)
                                                / sum(r["n_phones"] for r in rows)))
    out["duration_rmse_ms"] = out["duration_rmse_frames"] * frame_ms
    audio_seconds = sum(r["synthesized_frames"] * frame_ms / 1000 for r in rows)
    out["rtf"] = sum(r["model_seconds"] for r in rows) / audio_seconds
    out["rtf_cpu"] = sum(r["model_cpu_seconds"] for r in rows) / audio_seconds
    for system in SYSTEMS:
        mine = [r[system] for r in rows if system in r]
        keys = sorted({k for m in mine for k in m})
        out[system] = {k: harness.finite_mean(m.get(k) for m in mine) for k in keys}
    ctrl = [r["control"] for r in rows if "control" in r]
    out["control"] = {k: harness.finite_mean(c[k] for c in ctrl) for k in (ctrl[0] if ctrl else {})}
    out["n_utterances"] = len(rows)
    out["n_audio_utterances"] = sum(1 for r in rows if "fastspeech" in r)
    return out


def to_markdown(results: dict) -> str:
    meta, s = results["meta"], results["summary"]
    text = (f"# FastSpeech-2-style acoustic model, `{meta['mode']}` mode\n\n"
            f"Checkpoint `{meta['checkpoint']}` ({meta['size']}; {meta['parameters'] / 1e6:.2f} M parameters, "
            f"{harness.fmt(meta['checkpoint_mb'], 1)} MB), trained {harness.fmt(meta.get('train_minutes'), 1)} min wall-clock "
            f"({harness.fmt(meta.get('train_cpu_minutes'), 1)} min CPU, one thread). Held-out English "
            f"test sentences: {s['n_utterances']} utterances for the model measures, {s['n_audio_utterances']} "
            f"({meta['per_speaker']} per speaker) vocoded with Griffin-Lim ({GL_ITERATIONS} iterations) for the "
            "audio measures (WORLD analysis, Harvest F0, as the vocoder floor). Machine: "
            f"{meta['machine']}, load average {meta['load_average_start']} at the start; on a shared machine the "
            "CPU-time figures (process time, one thread) are what a free core would take.\n\n")
    text += ("## Audio (Griffin-Lim)\n\n| system | MCD-DTW (dB) | MCD-DTW 0-8 kHz (dB) | MCD frames (dB) "
             "| F0 RMSE (Hz) | F0 RMSE (cents) | V/UV error (%) |\n|---|---:|---:|---:|---:|---:|---:|\n")
    labels = {"griffin_lim": "ground-truth mel + GL (floor)", "oracle_dur": "FastSpeech, oracle durations",
              "fastspeech": "FastSpeech (own durations; F0/VUV on DTW path)"}
    for system in SYSTEMS:
        m = s[system]
        vuv = None if m.get("vuv_error") is None else 100 * m["vuv_error"]
        text += (f"| {labels[system]} | {harness.fmt(m.get('mcd_dtw_db'), 2)} | {harness.fmt(m.get('mcd8k_dtw_db'), 2)} | "
                 f"{harness.fmt(m.get('mcd_db'), 2)} | {harness.fmt(m.get('f0_rmse_hz'), 1)} | {harness.fmt(m.get('f0_rmse_cents'), 0)} | "
                 f"{harness.fmt(vuv, 1)} |\n")
    text += ("\n## Model\n\n| mel L1, oracle durations | mel L1, teacher forced | duration RMSE (frames / ms) "
             "| length ratio | RTF (acoustic model, 1 thread): wall / CPU | parameters |\n|---:|---:|---:|---:|---:|---:|\n"
             f"| {harness.fmt(s['mel_l1_oracle_dur'], 3)} | {harness.fmt(s['mel_l1_teacher_forced'], 3)} | "
             f"{harness.fmt(s['duration_rmse_frames'], 2)} / {harness.fmt(s['duration_rmse_ms'], 1)} | {harness.fmt(s['length_ratio'], 3)} | "
             f"{harness.fmt(s['rtf'], 4)} / {harness.fmt(s['rtf_cpu'], 4)} | {meta['parameters']:,} |\n")
    c = s.get("control") or {}
    if c:
        text += ("\n## Control (Griffin-Lim audio, one sentence per speaker)\n\n"
                 f"- pitch shift +4 semitones -> median F0 moved {harness.fmt(c['semitones_up_4'], 2)} semitones; "
                 f"-4 -> {harness.fmt(c['semitones_down_4'], 2)}\n"
                 f"- rate 1.5 -> length ratio {harness.fmt(c['length_ratio_rate_1_5'], 3)} (ideal {1 / 1.5:.3f})\n")
    text += "\n## Per speaker\n\n| speaker | mel L1 oracle dur | dur RMSE (ms) | MCD-DTW 0-8 kHz (dB) | F0 RMSE oracle dur (Hz) |\n|---|---:|---:|---:|---:|\n"
    for spk, p in results["per_speaker"].items():
        text += (f"| {spk} | {harness.fmt(p['mel_l1_oracle_dur'], 3)} | {harness.fmt(p['duration_rmse_ms'], 1)} | "
                 f"{harness.fmt(p['fastspeech'].get('mcd8k_dtw_db'), 2)} | {harness.fmt(p['oracle_dur'].get('f0_rmse_hz'), 1)} |\n")
    return text


def _minutes(seconds) -> float | None:
    return None if seconds is None else seconds / 60


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "fastspeech")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (CI mode: trained here when absent)")
    parser.add_argument("--per-speaker", type=int, default=None,
                        help="test sentences per speaker vocoded for the audio measures (ci: 2, full: 6)")
    args, run = harness.start("fastspeech", parser, argv)

    from ttslab.data import load_builtin
    from ttslab.dsp.spectral import HOP, SAMPLE_RATE
    from ttslab.models.fastspeech import FastSpeech, fastspeech_items

    mode = args.mode
    per_speaker = args.per_speaker if args.per_speaker is not None else (2 if mode == "ci" else 6)
    corpus = load_builtin(mode)
    started = time.perf_counter()
    meta = {"mode": mode, "per_speaker": per_speaker}
    if args.checkpoint:
        from ttslab.checkpoint import load_checkpoint

        from ttslab.io import sha256_file

        model = FastSpeech.from_checkpoint(args.checkpoint)
        extra = load_checkpoint(args.checkpoint)["extra"]
        meta["checkpoint_sha256"] = sha256_file(args.checkpoint)
        meta.update(checkpoint=str(args.checkpoint), checkpoint_mb=Path(args.checkpoint).stat().st_size / 1e6,
                    size=extra.get("size", "?"), train_minutes=_minutes(extra.get("train_seconds")),
                    train_cpu_minutes=_minutes(extra.get("train_cpu_seconds")))
    else:
        if mode != "ci":
            parser.error("--checkpoint is required in full mode (train one with python -m ttslab.train.fastspeech)")
        from ttslab.train.fastspeech import TRAIN_CONFIGS, model_config, train_fastspeech

        model, history = train_fastspeech(corpus, model_config("tiny"), TRAIN_CONFIGS["ci"], valid_prompts=2,
                                          progress=False)
        meta.update(checkpoint="(trained here)", checkpoint_mb=None, size="tiny", train_minutes=history.seconds / 60)
    model.eval()
    meta["parameters"] = model.num_parameters()
    tests = [u for u in corpus.filter(split="test", language="en") if u.speaker in model.speakers]
    if not tests:
        raise SystemExit("no English test utterances for the model's speakers; build the corpus first")
    items = {it["utt_id"]: it for it in fastspeech_items(tests, model.speakers)}
    from ttslab.config import data_home

    partial = data_home() / "benchmarks" / f"fastspeech_{mode}.partial.jsonl"  # resume after an interruption
    partial.parent.mkdir(parents=True, exist_ok=True)
    key = f"{meta.get('checkpoint_sha256', 'trained-here')}:{per_speaker}"
    rows = evaluate(model, tests, items, per_speaker, partial=partial if args.checkpoint else None, key=key)
    frame_ms = 1000 * HOP / SAMPLE_RATE
    speakers = list(dict.fromkeys(r["speaker"] for r in rows))
    results = {"meta": meta, "summary": summarize(rows, frame_ms),
               "per_speaker": {s: summarize([r for r in rows if r["speaker"] == s], frame_ms) for s in speakers},
               "rows": rows}
    meta.update(evaluation_seconds=time.perf_counter() - started)
    run.write(results, to_markdown)
    partial.unlink(missing_ok=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
