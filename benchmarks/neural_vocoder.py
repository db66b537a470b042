"""Neural vocoder vs Griffin-Lim: ground-truth-mel resynthesis of the held-out English test utterances.

Both vocoders get the same input, ``log_mel(x)`` of the original recording (what a perfect acoustic
model would predict), and are scored with :func:`ttslab.vocoders.evaluate.evaluate_vocoders` (MCD-DTW
full band and 0-8 kHz, mel LSD, F0 RMSE, V/UV error; the metrics are explained there). On top of
that: the neural vocoder's synthesis-only real-time factor on ONE thread (log-mel in, audio out,
best of ``--repeats`` passes over the test mels; the target is RTF <= 0.05), its parameter count and
the size of its checkpoint.

Results go to ``<out>/neural_vocoder_<mode>.json`` and ``.md``::

    python benchmarks/neural_vocoder.py --mode full --checkpoint /tmp/ckpt/vocoder_full.pt   # 400 utts
    python benchmarks/neural_vocoder.py --mode full --checkpoint PATH --per-speaker 10         # 100 utts
    python benchmarks/neural_vocoder.py --mode ci --limit 20        # trains the tiny CI model first

Without ``--checkpoint`` the model is trained first with ``ttslab.train.vocoder``'s settings for the
mode (seconds in CI mode; ~15 min in full mode).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

try:
    import harness  # run as `python benchmarks/neural_vocoder.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one thread everywhere, before numpy/torch start their pools, so RTFs compare

import numpy as np  # noqa: E402

from ttslab.dsp.spectral import SAMPLE_RATE, log_mel  # noqa: E402
from ttslab.vocoders.evaluate import evaluate_vocoders, to_markdown  # noqa: E402
from ttslab.vocoders.griffin_lim import mel_resynthesize  # noqa: E402


def synthesis_rtf(model, mels: list[np.ndarray], repeats: int = 3) -> tuple[float, float]:
    """``(wall, cpu)`` seconds to vocode every mel / seconds of audio produced, best of ``repeats`` passes.

    The CPU-time RTF (``time.process_time``) is what one thread costs even when other processes
    share the cores (it excludes time spent waiting for a core); the wall-clock one is what a
    listener waits.
    """
    hop = model.config.hop
    audio_seconds = sum(m.shape[1] * hop for m in mels) / model.config.sample_rate
    model.vocode(mels[0])  # warm-up: first-call allocations are not the steady state
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for m in mels:
            model.vocode(m)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall / audio_seconds, cpu / audio_seconds


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "neural_vocoder")
    parser.add_argument("--checkpoint", type=Path, default=None, help="trained vocoder (default: train one now)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N test utterances")
    parser.add_argument("--per-speaker", type=int, default=None, help="only the first N test utterances of each speaker")
    parser.add_argument("--repeats", type=int, default=3, help="passes for the synthesis RTF")
    args, run = harness.start("neural_vocoder", parser, argv)

    from ttslab.config import set_threads
    from ttslab.data import load_builtin
    from ttslab.vocoders.neural import NeuralVocoder, VocoderConfig

    mode = args.mode
    corpus = load_builtin(mode)
    if args.checkpoint is not None:
        model = NeuralVocoder.from_checkpoint(args.checkpoint)
        from ttslab.io import sha256_file

        source = {"checkpoint": str(args.checkpoint), "bytes": args.checkpoint.stat().st_size,
                  "sha256": sha256_file(args.checkpoint)}
    else:
        from ttslab.train.vocoder import default_train_config, train_vocoder

        train_config, data_config = default_train_config(mode)
        config = VocoderConfig.full() if mode == "full" else VocoderConfig.tiny()
        model, history = train_vocoder(corpus.filter(split="train", language="en"), config, train_config,
                                       data_config)
        source = {"trained_now": True, "train_seconds": history.seconds, "steps": history.steps_done}
    set_threads(args.threads, blas=1)  # training may have changed the thread count
    model.eval()

    utterances = sorted(corpus.filter(split="test", language="en"), key=lambda u: u.id)
    if args.per_speaker:
        utterances = [u for s in sorted({u.speaker for u in utterances})
                      for u in [v for v in utterances if v.speaker == s][: args.per_speaker]]
    utterances = utterances[: args.limit] if args.limit else utterances
    vocoders = {"neural": model.resynthesize, "griffin_lim_32": partial(mel_resynthesize, n_iter=32)}
    results = evaluate_vocoders(utterances, vocoders)
    mels = [log_mel(u.load_audio()) for u in utterances]
    rtf, rtf_cpu = synthesis_rtf(model, mels, args.repeats)
    neural, gl = results["summary"]["neural"]["mean"], results["summary"]["griffin_lim_32"]["mean"]
    results["meta"] = {
        "mode": mode, "n_utterances": len(utterances), "per_speaker": args.per_speaker, "limit": args.limit,
        "sample_rate": SAMPLE_RATE,
        "audio_seconds": sum(r["seconds"] for r in results["rows"]) / len(vocoders),
    }
    results["neural_vocoder"] = {
        "model_config": asdict(model.config), "parameters": model.num_parameters(),
        **source, "synthesis_rtf_1thread": rtf, "synthesis_rtf_1thread_cpu_time": rtf_cpu, "rtf_target": 0.05,
        "beats_griffin_lim": {m: neural[m] < gl[m] for m in ("mcd_dtw_db", "mcd8k_dtw_db", "mel_lsd_db")},
    }
    return run.write(results, render)


def render(results: dict) -> str:
    meta = results["meta"]
    mode = meta["mode"]
    per_speaker = meta["per_speaker"]
    rtf, rtf_cpu = (results["neural_vocoder"][k] for k in ("synthesis_rtf_1thread", "synthesis_rtf_1thread_cpu_time"))
    table = to_markdown({"summary": results["summary"]}, per_speaker=False)
    table = table.split("## Mean over utterances\n\n", 1)[1]
    nv = results["neural_vocoder"]
    if "bytes" in nv:
        size = f", checkpoint {nv['bytes'] / 1e6:.2f} MB"
    else:
        size = f", trained just now for {nv['steps']} steps" + (
            " (CI mode: the tiny config exercises the code; its quality means nothing)" if mode == "ci" else "")
    subset = f" (the first {per_speaker} of each speaker)" if per_speaker else ""
    text = (f"# Neural vocoder vs Griffin-Lim (32 iterations): ground-truth log-mel resynthesis\n\n"
            f"Corpus mode `{mode}`, {meta['n_utterances']} held-out English utterances{subset} "
            f"({meta['audio_seconds']:.1f} s). Both vocoders get `log_mel(x)` of the original. "
            f"Neural vocoder: {nv['parameters']:,} parameters{size}; synthesis RTF on one thread "
            f"{rtf:.4f} wall clock, {rtf_cpu:.4f} CPU time (target <= 0.05). The RTF column below times the whole call (log-mel analysis + "
            f"synthesis), {meta['threads']} thread(s).\n\n"
            + table)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
