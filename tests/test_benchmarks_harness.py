"""Tests of benchmarks/harness.py, the shared harness of every benchmark script, and that the scripts use it."""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if p.name not in ("harness.py", "__init__.py"))


def _load_harness():
    spec = importlib.util.spec_from_file_location("benchmarks_harness_under_test", BENCHMARKS / "harness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


harness = _load_harness()


def _parser(extra: bool = False):
    p = harness.make_parser("A test benchmark.\n\nMore text.", "toy")
    if extra:
        p.add_argument("--jobs", type=int, default=2)
    return p


# ----------------------------------------------------------------------------- arguments


def test_mode_and_threads_defaults_come_from_the_environment():
    args, run = harness.start("toy", _parser(), [], environ={}, apply_threads=False)
    assert (args.mode, args.threads, run.mode, run.threads) == ("full", 1, "full", 1)
    env = {"TTSLAB_CI": "1", "TTSLAB_THREADS": "3"}
    args, run = harness.start("toy", _parser(), [], environ=env, apply_threads=False)
    assert (args.mode, args.threads) == ("ci", 3)
    assert harness.default_mode({"TTSLAB_CI": "no"}) == "full"


def test_command_line_arguments_win_over_the_environment():
    env = {"TTSLAB_CI": "1", "TTSLAB_THREADS": "3"}
    args, run = harness.start("toy", _parser(extra=True), ["--mode", "full", "--threads", "2", "--jobs", "4"],
                              environ=env, apply_threads=False)
    assert (args.mode, args.threads, args.jobs) == ("full", 2, 4)
    assert run.command == "python benchmarks/toy.py --mode full --threads 2 --jobs 4"


def test_bad_mode_and_threads_are_rejected():
    with pytest.raises(SystemExit):
        harness.start("toy", _parser(), ["--mode", "fast"], environ={}, apply_threads=False)
    with pytest.raises(SystemExit):
        harness.start("toy", _parser(), ["--threads", "0"], environ={}, apply_threads=False)


def test_threads_are_applied_with_set_threads():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        harness.start("toy", _parser(), ["--threads", "1"], environ={})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_pin_blas_env_sets_every_pool_variable():
    env = {"OMP_NUM_THREADS": "8"}
    harness.pin_blas_env(environ=env)
    assert env == {v: "1" for v in harness.BLAS_ENV_VARS}


# ----------------------------------------------------------------------------- output


def test_result_files_are_named_per_mode(tmp_path):
    assert harness.result_paths(tmp_path, "toy", "ci") == (tmp_path / "toy_ci.json", tmp_path / "toy_ci.md")
    assert harness.result_paths(tmp_path, "toy", "full")[0].name == "toy_full.json"
    with pytest.raises(ValueError):
        harness.result_paths(tmp_path, "toy", "fast")
    for mode in ("ci", "full"):
        _, run = harness.start("toy", _parser(), ["--mode", mode, "--out", str(tmp_path)], environ={},
                               apply_threads=False)
        run.write({"value": mode}, lambda r: f"# {r['value']}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_ci.json", "toy_ci.md", "toy_full.json", "toy_full.md"]
    assert json.loads((tmp_path / "toy_ci.json").read_text())["value"] == "ci"  # not overwritten by full


def test_results_record_commit_command_mode_and_machine(tmp_path):
    _, run = harness.start("toy", _parser(), ["--mode", "ci", "--out", str(tmp_path)], environ={},
                           apply_threads=False)
    run.write({"meta": {"n": 3, "machine": "overridden"}, "x": 1.5}, lambda r: "| a |\n|---|\n| 1 |\n")
    data = json.loads((tmp_path / "toy_ci.json").read_text())
    meta = data["meta"]
    assert meta["n"] == 3 and data["x"] == 1.5  # the script's own keys are kept
    assert meta["mode"] == "ci" and meta["bench"] == "toy" and meta["threads"] == 1
    assert meta["command"] == f"python benchmarks/toy.py --mode ci --out {tmp_path}"
    assert "dirty" in meta and (meta["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["commit"]))
    if (ROOT / ".git").exists():
        assert meta["commit"] is not None and isinstance(meta["dirty"], bool)
    for key in ("cpu_model", "cpu_count", "python", "load_average_start", "load_average_end", "wall_seconds"):
        assert key in meta
    assert meta["machine"] != "overridden"
    md = (tmp_path / "toy_ci.md").read_text()
    assert md.startswith("| a |") and f"Command: `{meta['command']}`" in md and "mode `ci`" in md
    assert (meta["commit"] or "unknown")[:12] in md


def test_no_hostname_in_the_provenance(tmp_path):
    import socket

    host = socket.gethostname()
    _, run = harness.start("toy", _parser(), ["--mode", "ci", "--out", str(tmp_path)], environ={},
                           apply_threads=False)
    run.write({}, lambda r: "")
    if len(host) > 3:
        assert host not in (tmp_path / "toy_ci.json").read_text().replace(str(tmp_path), "")


def test_a_failed_write_leaves_no_partial_file(tmp_path):
    _, run = harness.start("toy", _parser(), ["--mode", "ci", "--out", str(tmp_path)], environ={},
                           apply_threads=False)
    run.write({"value": "old"}, lambda r: "old\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(TypeError):
        run.write({"value": object()}, lambda r: "new\n")  # JSON cannot serialise it

    def broken_render(results):
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError):
        run.write({"value": "new"}, broken_render)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # previous results intact, no temporary files left behind
    harness.write_results(tmp_path / "fresh", "toy", "ci", {"ok": True}, "ok\n")
    with pytest.raises(TypeError):
        harness.write_results(tmp_path / "other", "toy", "ci", {"bad": {1, 2}}, "x\n")
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_small_helpers():
    assert harness.finite_mean([1.0, None, float("nan"), 3.0, math.inf]) == 2.0
    assert harness.finite_mean([None, float("nan")]) is None
    assert harness.fmt(None, 2) == "n/a" and harness.fmt(0.1234, 1, 100) == "12.3"
    assert harness.load_average() == "n/a" or len(harness.load_average().split()) == 3


# ----------------------------------------------------------------------------- the scripts use it


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_scripts_use_the_harness_and_do_not_edit_sys_path(script):
    text = script.read_text()
    tree = ast.parse(text)
    assert not re.search(r"sys\.path\s*(\.(insert|append|extend)|\[[^\]]*\]\s*=|\+=|=)", text), \
        f"{script.name} edits sys.path"
    assert '"--mode"' not in text and "'--mode'" not in text, f"{script.name} defines its own --mode"
    assert "OPENBLAS_NUM_THREADS" not in text and "getloadavg" not in text and "_load_average" not in text
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}
    assert {"harness.make_parser", "harness.start", "harness.pin_blas_env"} <= calls, script.name
    # results are written by the harness (per-mode file names), never by hand
    assert not re.search(r"\{(a\.|args\.)?mode\}\.(json|md)", text), f"{script.name} names its own result files"


def test_scripts_call_no_private_function_of_another_benchmark():
    names = {p.stem for p in SCRIPTS} | {"harness"}
    for script in SCRIPTS:
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in names:
                assert not node.attr.startswith("_"), f"{script.name} uses {node.value.id}.{node.attr}"
