"""Train the full-mode models with the project's own recipes and register them in ttslab/pretrained.

    python scripts/train_pretrained.py judge vocoder fastspeech_teacher dnn     # train + register
    python scripts/train_pretrained.py judge --build /tmp/ckpt --register-only  # register a finished run
    python scripts/train_pretrained.py hmm_en_us_m                               # an HTS-style HMM voice

Each name runs its recipe (``python -m ttslab.train.<model> --mode full ...``, one torch thread by
default) into the build folder, then copies the float16 checkpoint to ``ttslab/pretrained/weights/``,
its training log to ``ttslab/pretrained/logs/`` and records the SHA-256, size, parameter count,
training time and the exact command in ``ttslab/pretrained/registry.json``. ``--register-only`` skips
training and registers what the same command left in the build folder earlier.

``hmm_<speaker>`` trains an HTS-style HMM voice with its recipe, ``python -m ttslab.train.hmm_voice``
(:func:`ttslab.classical.hts.train_voice`, full mode, the default :class:`~ttslab.classical.hts.HTSConfig`
that notebook 04 uses, one feature process), and ships the voice file (``Voice.save``: an ``.npz``
with its own checksum, float64 trees; shipped with its members deflated) as
``weights/hmm_<speaker>.npz``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ttslab import pretrained  # noqa: E402
from ttslab.checkpoint import load_checkpoint, sidecar  # noqa: E402
from ttslab.io import atomic_write_json, sha256_file  # noqa: E402

# name -> (registry kind, recipe module, recipe arguments, checkpoint file in build dir, log file in build dir)
RECIPES = {
    "judge": ("judge", "ttslab.train.judge", ["--mode", "full", "--out", "{build}/judge_full.pt"],
              "judge_full.pt", "judge_full.json"),
    "vocoder": ("vocoder", "ttslab.train.vocoder", ["--mode", "full", "--out", "{build}/vocoder_full.pt"],
                "vocoder_full.pt", "vocoder_full.json"),
    "fastspeech_teacher": ("fastspeech", "ttslab.train.fastspeech",
                           ["--mode", "full", "--size", "teacher", "--steps", "5000",
                            "--out", "{build}/fastspeech_teacher.pt"],
                           "fastspeech_teacher.pt", "fastspeech_teacher.pt.log.json"),
    "dnn": ("dnn_voice", "ttslab.train.dnn_spss", ["--mode", "full", "--out", "{build}/dnn"],
            None, "dnn/dnn_full_training_log.json"),
}
HMM_SPEAKERS = ("en_us_m",)  # notebook 04's voice; any speaker of the built-in corpus would do
for _speaker in HMM_SPEAKERS:
    RECIPES[f"hmm_{_speaker}"] = ("hmm_voice", "ttslab.train.hmm_voice",
                                  ["--mode", "full", "--speaker", _speaker, "--jobs", "1",
                                   "--out", "{build}/hmm_%s.npz" % _speaker],
                                  f"hmm_{_speaker}.npz", f"hmm_{_speaker}.json")
# Distilled students of fastspeech_teacher (ttslab.train.distill_fastspeech; the teacher must be registered
# first). "student_<size>" is the method the students benchmark (benchmarks/distill.py --part students)
# found best; "student_<size>_scratch" is the same size without a teacher, the baseline of notebook 08.
# (size, method, name suffix, steps): the small ones 2000 steps on a GPU (~15-30 min on one CPU thread); the tiny
# ones 1000 steps on one CPU thread (what a session without a GPU could afford), by sequence-level KD, the method
# that costs no teacher forward per step (output/feature KD runs the 5.9 M teacher at every step, as slow as a small
# student's whole step on a CPU).
STUDENTS = (("small", "kd", "", "2000"), ("small", "scratch", "_scratch", "2000"),
            ("tiny", "sequence", "", "1000"), ("tiny", "scratch", "_scratch", "1000"))
for _size, _method, _suffix, _steps in STUDENTS:
    RECIPES[f"student_{_size}{_suffix}"] = (
        "fastspeech", "ttslab.train.distill_fastspeech",
        ["--mode", "full", "--size", _size, "--method", _method, "--steps", _steps,
         "--out", "{build}/student_%s%s.pt" % (_size, _suffix)],
        f"student_{_size}{_suffix}.pt", f"student_{_size}{_suffix}.pt.log.json")
# The compressed vocoder for the embedded student (VocoderConfig.small, 0.2 M parameters), same recipe.
RECIPES["vocoder_small"] = ("vocoder", "ttslab.train.vocoder",
                            ["--mode", "full", "--size", "small", "--steps", "3000", "--out", "{build}/vocoder_small.pt"],
                            "vocoder_small.pt", "vocoder_small.json")
# The same small vocoder distilled from the registered one: trained on fastspeech_teacher's generated mels with the
# registered vocoder's audio of them as the target (ttslab.train.vocoder --teacher-vocoder; both must be registered).
RECIPES["vocoder_small_distilled"] = ("vocoder", "ttslab.train.vocoder",
                                      ["--mode", "full", "--size", "small", "--steps", "3000", "--teacher-vocoder",
                                       "vocoder", "--teacher-acoustic", "fastspeech_teacher",
                                       "--out", "{build}/vocoder_small_distilled.pt"],
                                      "vocoder_small_distilled.pt", "vocoder_small_distilled.json")


def command(name: str, build: Path, threads: int) -> list[str]:
    _, module, args, _, _ = RECIPES[name]
    return ["python", "-m", module, *[a.format(build=build) for a in args], "--threads", str(threads)]


def parameters(kind: str, path: Path, digest: str) -> int:
    model = pretrained.loader(kind)(path, sha256=digest)
    return int(sum(p.numel() for p in model.parameters()))


def register_file(name: str, kind: str, src: Path, log: dict, log_name: str, cmd: str, registry: dict) -> None:
    pretrained.WEIGHTS.mkdir(parents=True, exist_ok=True)
    pretrained.LOGS.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(src)  # verifies the sidecar written by the recipe
    if not state.get("half"):
        raise SystemExit(f"{src} holds float32 weights; the shipped checkpoints are float16 (drop --fp32)")
    dst = pretrained.WEIGHTS / f"{name}.pt"
    shutil.copyfile(src, dst)
    shutil.copyfile(sidecar(src), sidecar(dst))
    digest = sha256_file(dst)
    registry[name] = {"kind": kind, "file": dst.name, "sha256": digest, "bytes": dst.stat().st_size,
                      "parameters": parameters(kind, dst, digest), "command": cmd, "log": log_name,
                      "threads": log.get("threads"),
                      "train_seconds": _seconds(log.get("seconds_training", log.get("seconds", log.get("model_seconds"))))}
    # where it was trained: the recipe picks a GPU when there is one (--device auto), so the same command
    # runs on a CPU; a GPU-trained entry says which device and what the CPU would need
    for key in ("device", "device_name", "cpu_seconds_estimate", "cpu_estimate_basis"):
        if log.get(key) is not None:
            registry[name][key] = log[key]


def _seconds(value) -> float | None:
    """Training seconds as one number (a DNN voice logs one per network: their sum)."""
    if isinstance(value, dict):
        return round(sum(value.values()), 1)
    return None if value is None else round(float(value), 1)


def deflate_npz(src: Path, dst: Path) -> None:
    """Copy an ``.npz`` with its members deflated (what ``np.savez_compressed`` writes; ``np.load`` and so
    ``Voice.load`` read both). The arrays, and so the voice's own checksum, are unchanged: a full-mode
    voice's float64 trees shrink by a third (6.4 -> 4.3 MB). Fixed timestamps: same voice, same bytes."""
    import zipfile

    tmp = dst.with_name(dst.name + ".tmp")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for info in zin.infolist():
            member = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            zout.writestr(member, zin.read(info.filename), compresslevel=9)
    tmp.replace(dst)


def register_voice(name: str, kind: str, src: Path, log: dict, cmd: str, registry: dict) -> None:
    """Ship an HMM voice file: it carries its own content checksum; the registry adds the file's SHA-256."""
    pretrained.WEIGHTS.mkdir(parents=True, exist_ok=True)
    pretrained.LOGS.mkdir(parents=True, exist_ok=True)
    dst = pretrained.WEIGHTS / src.name
    deflate_npz(src, dst)
    digest = sha256_file(dst)
    voice = pretrained.loader(kind)(dst, sha256=digest)  # loads, so it is readable
    leaves = sum(t.n_leaves for trees in voice.trees.values() for t in trees) + voice.duration_tree.n_leaves
    atomic_write_json(pretrained.LOGS / f"{name}.json", log)
    registry[name] = {"kind": kind, "file": dst.name, "sha256": digest, "bytes": dst.stat().st_size,
                      "leaves": leaves, "command": cmd, "log": f"{name}.json", "threads": log.get("threads"),
                      "train_seconds": _seconds(log.get("seconds"))}


def register(name: str, build: Path, threads: int, registry: dict) -> None:
    kind, _, _, ckpt, log_file = RECIPES[name]
    log_path = build / log_file
    log = json.loads(log_path.read_text())
    cmd = " ".join(command(name, Path("BUILD"), threads))
    if kind == "hmm_voice":
        register_voice(name, kind, build / ckpt, log, cmd, registry)
    elif name == "dnn":
        for speaker, info in log["voices"].items():
            entry = f"dnn_{speaker}"
            register_file(entry, kind, log_path.parent / info["path"], {"threads": log["threads"], **info},
                          "dnn.json", cmd, registry)
        atomic_write_json(pretrained.LOGS / "dnn.json", log)
    else:
        atomic_write_json(pretrained.LOGS / f"{name}.json", log)
        register_file(name, kind, build / ckpt, log, f"{name}.json", cmd, registry)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", choices=sorted(RECIPES))
    parser.add_argument("--build", type=Path, default=Path("/tmp/ttslab-pretrained-build"),
                        help="folder for the recipes' outputs (not the repository)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--register-only", action="store_true")
    args = parser.parse_args(argv)
    args.build.mkdir(parents=True, exist_ok=True)
    registry = pretrained.registry()
    for name in args.names:
        if not args.register_only:
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS="1")
            run = [sys.executable, *command(name, args.build, args.threads)[1:]]  # this interpreter, not PATH's python
            subprocess.run(run, check=True, env=env, cwd=REPO)
        register(name, args.build, args.threads, registry)
        atomic_write_json(pretrained.REGISTRY, registry)
        print(f"registered {name}")
    total = sum(e["bytes"] for e in registry.values())
    print(f"{len(registry)} checkpoints, {total / 1e6:.1f} MB in {pretrained.WEIGHTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
