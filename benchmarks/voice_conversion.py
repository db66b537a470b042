"""GMM voice conversion: mel-cepstral distortion to the target before and after conversion, on held-out prompts.

For each ``source:target`` pair, :func:`ttslab.classical.vc.train_vc` trains a joint-density GMM on the
pair's parallel training prompts and :func:`ttslab.classical.vc.evaluate_vc` scores the held-out test
prompts: MCD-DTW (dB, c0 excluded, speech frames) of source vs target ("before") and converted vs target
("after", with the model's global-variance scaling and without it), F0 RMSE in cents and median F0.
Training time is split into WORLD analysis (``--jobs`` processes) and alignment + EM (one thread).

Results go to ``<out>/voice_conversion_<mode>.json`` and ``.md``::

    python benchmarks/voice_conversion.py --mode ci                 # 40 training prompts per pair: ~40 s/pair
    python benchmarks/voice_conversion.py --mode full --jobs 2      # 330 prompts per pair: ~5-6 min/pair
    python benchmarks/voice_conversion.py --mode full --pairs en_us_m:en_us_f --components 32

WORLD analysis of the 660 training utterances takes most of a full-mode pair's time (4-5 min on 2 busy
cores); alignment + EM takes 1-2 min because full mode trains on at most ``--max-frames`` aligned frames
per pass (30 000 by default, drawn at random with the config's seed out of ~80 000): EM costs
``O(frames * K * D^2)`` per iteration with ``D = 96``. 32 components instead of 16 gave 4.12 instead of
4.22 dB for en_us_m -> en_us_f, for 3x the EM time (264 s).
The corpus must be built first (``python -m ttslab build-corpus --mode ci``).
"""

from __future__ import annotations

import dataclasses
import sys
import time

try:
    import harness  # run as `python benchmarks/voice_conversion.py`: this folder is on the import path
except ModuleNotFoundError:
    from benchmarks import harness  # imported from the repository root (tests)

if __name__ == "__main__":
    harness.pin_blas_env()  # one BLAS thread, before numpy starts its pool, so timings compare

#: male -> female (same accent), and two accent -> accent conversions (male and female).
DEFAULT_PAIRS = ("en_us_m:en_us_f", "en_gb_m:en_sc_m", "en_rp_f:en_ca_f")


def run_pair(corpus, source: str, target: str, config, jobs: int) -> dict:
    from ttslab.classical.vc import evaluate_vc, train_vc

    t0 = time.perf_counter()
    converter = train_vc(corpus, source, target, config, jobs=jobs)
    train_wall = time.perf_counter() - t0
    scores = evaluate_vc(converter, corpus, jobs=jobs)
    no_gv = evaluate_vc(converter.replace(gv="none"), corpus, jobs=jobs, progress=False)
    m, m0 = scores["mean"], no_gv["mean"]
    summary = {
        "pair": f"{source}:{target}", "source": source, "target": target, "gv": config.gv,
        "n_train_utterances": converter.info["n_utterances"], "n_test_utterances": len(scores["rows"]),
        "aligned_frames": converter.info["passes"][-1]["aligned_frames"],
        "training_frames": converter.info["passes"][-1]["training_frames"],
        "em_iterations": [p["em_iterations"] for p in converter.info["passes"]],
        "mcd_before": m["mcd_before"], "mcd_after": m["mcd_after"], "mcd_after_no_gv": m0["mcd_after"],
        "f0_rmse_before_cents": m["f0_rmse_before"], "f0_rmse_after_cents": m["f0_rmse_after"],
        "median_f0_source": m["median_f0_source"], "median_f0_target": m["median_f0_target"],
        "median_f0_converted": m["median_f0_converted"],
        "features_seconds": converter.info["features_seconds"],
        "gmm_seconds": converter.info["training_seconds"], "train_wall_seconds": round(train_wall, 2),
    }
    print(f"{source} -> {target}: MCD {m['mcd_before']:.2f} -> {m['mcd_after']:.2f} dB "
          f"(no GV {m0['mcd_after']:.2f}), trained in {train_wall:.0f} s", flush=True)
    return {"summary": summary, "rows": scores["rows"], "passes": converter.info["passes"]}


def to_markdown(results: dict) -> str:
    meta = results["meta"]
    cfg = meta["config"]
    lines = [
        f"# GMM voice conversion ({meta['mode']} mode)", "",
        f"Joint-density GMM over [x, dx, y, dy] of c1..c{cfg['mcep_order']} ({4 * cfg['mcep_order']} dims, "
        f"full covariances), {cfg['n_components']} components, {cfg['alignment_passes']} DTW passes, "
        f"at most {cfg['max_frames']} training frames per pass, {cfg['max_iter']} EM iterations at most, "
        f"mixture `{cfg['mixture']}`, GV `{cfg['gv']}`, F0 `{cfg['f0_method']}`. Scores are means over the held-out "
        "test prompts: MCD-DTW in dB (c0 excluded, speech frames, converted features, no resynthesis), "
        "F0 RMSE in cents on frames voiced in both, along the DTW path.", "",
        "| pair | train utts | frames | MCD before | MCD after | MCD after, no GV | F0 RMSE before | F0 RMSE after "
        "| median F0 src / tgt / conv (Hz) | WORLD (s) | align + EM (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in (p["summary"] for p in results["pairs"]):
        lines.append(
            f"| {r['source']} → {r['target']} | {r['n_train_utterances']} | {r['training_frames']} "
            f"| {r['mcd_before']:.2f} | **{r['mcd_after']:.2f}** | {r['mcd_after_no_gv']:.2f} "
            f"| {r['f0_rmse_before_cents']:.0f} | {r['f0_rmse_after_cents']:.0f} "
            f"| {r['median_f0_source']:.0f} / {r['median_f0_target']:.0f} / {r['median_f0_converted']:.0f} "
            f"| {r['features_seconds']:.0f} | {r['gmm_seconds']:.0f} |")
    lines += ["", f"WORLD analysis with {meta['jobs']} process(es); alignment and EM in one thread.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = harness.make_parser(__doc__, "voice_conversion")
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="source:target speaker pairs")
    parser.add_argument("--components", type=int, default=None, help="GMM components (ci: 4, full: 16)")
    parser.add_argument("--max-frames", type=int, default=None, help="training frames per pass (default 10k/30k)")
    parser.add_argument("--jobs", type=int, default=2, help="processes for WORLD analysis")
    args, run = harness.start("voice_conversion", parser, argv)

    from ttslab.classical.vc import VCConfig
    from ttslab.data import load_builtin

    mode = args.mode
    overrides = {k: v for k, v in (("n_components", args.components), ("max_frames", args.max_frames)) if v}
    config = VCConfig.for_mode(mode, **overrides)
    corpus = load_builtin(mode)
    pairs = [p.split(":") for p in args.pairs]
    if any(len(p) != 2 for p in pairs):
        parser.error(f"--pairs takes source:target, got {args.pairs}")

    results = {"pairs": [run_pair(corpus, s, t, config, args.jobs) for s, t in pairs]}
    results["meta"] = {"mode": mode, "config": dataclasses.asdict(config), "jobs": args.jobs}
    return run.write(results, to_markdown)


if __name__ == "__main__":
    main(sys.argv[1:])
