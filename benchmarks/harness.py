"""The one harness every script in ``benchmarks/`` runs on: arguments, threads, provenance, output.

A benchmark script uses it in four steps::

    try:
        import harness                      # run as `python benchmarks/<name>.py`: this folder is on the import path
    except ModuleNotFoundError:
        from benchmarks import harness      # imported from the repository root (tests)

    if __name__ == "__main__":
        harness.pin_blas_env()              # before numpy/torch start their thread pools

    def main(argv=None):
        parser = harness.make_parser(__doc__, "my_bench")      # --mode, --threads, --out
        parser.add_argument("--jobs", type=int, default=2)     # the script's own options
        args, run = harness.start("my_bench", parser, argv)   # parses, applies threads, notes the start
        ...                                                    # measure, using run.mode
        run.write({"summary": ..., "meta": {...}}, to_markdown)

What each piece does:

* :func:`pin_blas_env` sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` to
  1 in the environment (inherited by worker processes): the classical algorithms multiply many small
  matrices, where a second BLAS thread is slower, and timings then compare across runs.
* :func:`make_parser` adds ``--mode ci|full`` (default: ``TTSLAB_CI``, via :func:`ttslab.config.mode`),
  ``--threads N`` (torch intra-op threads; default ``TTSLAB_THREADS`` or 1) and ``--out`` (default
  ``benchmarks/results``). Environment variables are read here, at the edge, and nowhere else.
* :func:`start` parses, applies the thread count with :func:`ttslab.config.set_threads` (BLAS stays at
  one thread) and returns a :class:`Run`: mode, threads, output folder, the exact command line, the
  start time and the load average at the start.
* :meth:`Run.write` adds the provenance (:meth:`Run.provenance`: git commit and whether the code was
  dirty, command, mode, threads, CPU model, core count, Python/numpy/torch versions, load average at
  the start and the end, wall time; no hostname) to ``results["meta"]``, renders the Markdown, appends
  a provenance footer to it, and writes ``<out>/<bench>_<mode>.json`` and ``.md`` atomically
  (:mod:`ttslab.io`): both texts are built before either file is touched, so a failure leaves the
  previous results as they were and never a partial file. CI and full results never overwrite each
  other because the mode is part of every file name.

Small helpers several scripts share: :func:`finite_mean` (mean of the finite values, ``None`` if there
are none) and :func:`fmt` (a number with ``digits`` decimals, or ``n/a``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

#: Environment variables that size numpy's / scipy's / torch's native thread pools.
BLAS_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MODES = ("ci", "full")
BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS_DIR.parent
RESULTS_DIR = BENCHMARKS_DIR / "results"


# ----------------------------------------------------------------------------- environment, arguments


def pin_blas_env(threads: int = 1, environ: dict | None = None) -> None:
    """Set every variable of :data:`BLAS_ENV_VARS` to ``threads`` (call it before numpy is imported).

    ``environ`` defaults to ``os.environ``; worker processes inherit the setting.
    """
    env = os.environ if environ is None else environ
    for var in BLAS_ENV_VARS:
        env[var] = str(threads)


def make_parser(doc: str | None, bench: str) -> argparse.ArgumentParser:
    """An argument parser with the shared options ``--mode``, ``--threads`` and ``--out``.

    The description is the first paragraph of ``doc`` (the script's docstring).
    """
    description = (doc or bench).strip().split("\n\n")[0]
    p = argparse.ArgumentParser(prog=f"python benchmarks/{bench}.py", description=description)
    p.add_argument("--mode", choices=MODES, default=None,
                   help="corpus size and settings: ci or full (default: full, or ci when TTSLAB_CI is set)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: TTSLAB_THREADS, else 1); BLAS always gets one")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder (default: benchmarks/results)")
    return p


def default_mode(environ: dict | None = None) -> str:
    """``"ci"`` when ``TTSLAB_CI`` is true in ``environ`` (default ``os.environ``), else ``"full"``."""
    from ttslab import config

    if environ is None:
        return config.mode()
    return "ci" if str(environ.get("TTSLAB_CI", "")).strip().lower() in {"1", "true", "yes", "on"} else "full"


def default_threads(environ: dict | None = None) -> int:
    """``TTSLAB_THREADS`` from ``environ`` (default ``os.environ``), else 1."""
    env = os.environ if environ is None else environ
    value = str(env.get("TTSLAB_THREADS", "")).strip()
    return int(value) if value else 1


def command_line(bench: str, argv: list[str] | None) -> str:
    """The command that reproduces this run: ``python benchmarks/<bench>.py <arguments>``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", f"benchmarks/{bench}.py", *map(shlex.quote, map(str, args))])


def start(bench: str, parser: argparse.ArgumentParser, argv: list[str] | None = None, *,
          environ: dict | None = None, apply_threads: bool = True) -> tuple[argparse.Namespace, "Run"]:
    """Parse ``argv`` (default ``sys.argv[1:]``), resolve mode and threads, apply the thread count.

    Returns ``(args, run)``; ``args.mode`` and ``args.threads`` are filled in with the resolved values.
    """
    args = parser.parse_args(argv)
    args.mode = args.mode or default_mode(environ)
    args.threads = args.threads if args.threads is not None else default_threads(environ)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if apply_threads:
        from ttslab.config import set_threads

        set_threads(args.threads, blas=1)
    run = Run(bench=bench, mode=args.mode, threads=args.threads, out=Path(args.out),
              command=command_line(bench, argv))
    return args, run


# ----------------------------------------------------------------------------- machine and code facts


def load_average() -> str:
    """The 1, 5 and 15 minute load averages as ``"0.5 0.7 0.9"``, or ``"n/a"``."""
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except (OSError, AttributeError):
        return "n/a"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts() -> dict:
    """CPU model, cores, architecture, OS, Python / numpy / torch versions (no hostname)."""
    facts = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "architecture": platform.machine(),
             "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}
    for module in ("numpy", "torch"):
        mod = sys.modules.get(module)
        if mod is None:
            try:
                mod = __import__(module)
            except ImportError:
                mod = None
        facts[module] = getattr(mod, "__version__", None)
    facts["machine"] = (f"{facts['cpu_model']}, {facts['cpu_count']} CPUs, Python {facts['python']}"
                        + (f", torch {facts['torch']}" if facts["torch"] else ""))
    return facts


def git_state(root: Path = REPO_ROOT) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository at ``root``.

    ``dirty`` is about the code: changes to tracked files outside ``benchmarks/results`` (results that a
    run rewrites do not count; untracked files do not count).
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


# ----------------------------------------------------------------------------- output


def result_paths(out: str | os.PathLike, bench: str, mode: str) -> tuple[Path, Path]:
    """``(<out>/<bench>_<mode>.json, <out>/<bench>_<mode>.md)``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    out = Path(out)
    return out / f"{bench}_{mode}.json", out / f"{bench}_{mode}.md"


def provenance_markdown(meta: dict) -> str:
    """The footer every results Markdown ends with: command, commit, mode, threads, machine, load."""
    commit = meta.get("commit")
    code = "unknown" if not commit else f"`{commit[:12]}`" + (" (uncommitted changes)" if meta.get("dirty") else "")
    parts = [f"Command: `{meta.get('command', '?')}`", f"mode `{meta.get('mode', '?')}`", f"commit {code}",
             f"{meta.get('threads', '?')} torch thread(s), 1 BLAS thread", f"machine: {meta.get('machine', '?')}"]
    if "load_average_start" in meta:
        parts.append(f"load average {meta['load_average_start']} at the start, "
                     f"{meta.get('load_average_end', '?')} at the end")
    if meta.get("wall_seconds") is not None:
        parts.append(f"{meta['wall_seconds'] / 60:.1f} min wall-clock")
    return "\n---\n\n" + "; ".join(parts) + ".\n"


def write_results(out: str | os.PathLike, bench: str, mode: str, results: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results`` (JSON) and ``markdown`` to :func:`result_paths` atomically.

    Both texts are serialised before either file is written, so a result that cannot be written (e.g. an
    object JSON does not know) leaves no file behind and the previous results untouched.
    """
    from ttslab.io import atomic_write_bytes

    json_path, md_path = result_paths(out, bench, mode)
    data = (json.dumps(results, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
    text = markdown.encode("utf-8")
    atomic_write_bytes(json_path, data)
    atomic_write_bytes(md_path, text)
    return json_path, md_path


@dataclass
class Run:
    """One benchmark run: what :func:`start` resolved, and when it started."""

    bench: str
    mode: str
    threads: int
    out: Path
    command: str
    started: float = field(default_factory=time.perf_counter)
    started_utc: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    load_average_start: str = field(default_factory=load_average)
    code: dict = field(default_factory=git_state)  #: the commit that ran, read at the start

    @property
    def paths(self) -> tuple[Path, Path]:
        return result_paths(self.out, self.bench, self.mode)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def provenance(self) -> dict:
        """Everything needed to trust and reproduce the numbers (the commit as of the start)."""
        return {"bench": self.bench, "mode": self.mode, "command": self.command, "threads": self.threads,
                "blas_threads": 1, **self.code, **machine_facts(),
                "started_utc": self.started_utc, "wall_seconds": round(self.elapsed(), 1),
                "load_average_start": self.load_average_start, "load_average_end": load_average()}

    def write(self, results: dict, render: Callable[[dict], str] | None = None) -> dict:
        """Add :meth:`provenance` to ``results["meta"]`` (the script's own keys are kept unless they
        clash), render the Markdown with ``render(results)`` plus :func:`provenance_markdown`, write both
        atomically to :attr:`paths` and print the Markdown. Returns ``results``."""
        results["meta"] = {**results.get("meta", {}), **self.provenance()}
        body = render(results) if render is not None else ""
        markdown = body.rstrip("\n") + "\n" + provenance_markdown(results["meta"])
        write_results(self.out, self.bench, self.mode, results, markdown)
        print(markdown)
        return results


# ----------------------------------------------------------------------------- small shared helpers


def finite_mean(values: Iterable) -> float | None:
    """Mean of the values that are neither ``None`` nor NaN/inf; ``None`` when there are none."""
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def fmt(value, digits: int, scale: float = 1.0) -> str:
    """``value * scale`` with ``digits`` decimals, or ``"n/a"`` for ``None``."""
    return "n/a" if value is None else f"{value * scale:.{digits}f}"
