"""The package's shape: no cross-module private imports, layers that never import upward, recipes
found by one rule, library code that reads no mode from the environment, thread settings restored."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import ttslab

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ttslab"


def _python_files(*folders: str):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _private_uses(path: Path) -> list[str]:
    """``from a.b import _x`` and ``module._x`` for modules imported from ttslab/benchmarks/scripts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported_modules, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("ttslab", "benchmarks"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import {alias.name}")
                else:
                    imported_modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ttslab":
                    imported_modules.add(alias.asname or alias.name.split(".")[-1])
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in imported_modules):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    """Tests may look inside the unit they test; package, scripts and benchmarks may not."""
    found = [use for path in _python_files("ttslab", "scripts", "benchmarks") for use in _private_uses(path)]
    assert not found, "cross-module private names (make them public or move the code):\n" + "\n".join(found)


def test_the_private_use_check_catches_both_forms(tmp_path, monkeypatch):
    bad = ROOT / "ttslab" / "_tmp_private_probe.py"
    bad.write_text("from ttslab.classical.hmm import _log\nfrom ttslab.text import espeak\nespeak._library()\n")
    try:
        found = _private_uses(bad)
    finally:
        bad.unlink()
    assert len(found) == 2, found


LAYERS = {  # a module may import its own layer or lower ones
    "data": 0, "text": 0, "dsp": 0, "metrics": 0, "io": 0, "config": 0, "checkpoint": 0, "exercises": 0,
    "device": 0,
    "vocoders": 1, "classical": 2, "models": 2, "train": 3, "distill": 3, "federated": 3, "distributed": 3,
    "pretrained": 3, "widgets": 4,
}


def test_no_layer_imports_upward():
    bad = []
    for path in _python_files("ttslab"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        room = parts[0]
        if room not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ttslab."):
                target = node.module.split(".")[1]
                if target in LAYERS and LAYERS[target] > LAYERS[room]:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {room} -> {node.module}")
    assert not bad, "\n".join(bad)


def test_parametric_systems_share_one_feature_config_and_the_dnn_never_imports_the_hmm():
    from ttslab.classical.hts import HTSConfig
    from ttslab.dsp.streams import WorldFeatureConfig
    from ttslab.models.dnn_spss import DNNConfig

    assert HTSConfig().feature_config() == DNNConfig().feature_config() == WorldFeatureConfig()
    assert HTSConfig(hop=80).feature_config() != DNNConfig().feature_config()  # a change cannot go unnoticed
    for path in (PACKAGE / "models" / "dnn_spss.py", PACKAGE / "train" / "dnn_spss.py"):
        imported = [n.module for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in imported if m.startswith("ttslab.classical.hts")], path


def test_every_training_recipe_is_found_by_the_documented_rule():
    """Rule (ttslab docstring): the recipe of model X is ``ttslab.train.X``, with a ``main`` for the command line."""
    assert "ttslab.train.<model>" in ttslab.__doc__
    for name in ("judge", "vocoder", "dnn_spss", "fastspeech", "hmm_voice", "aligner", "distill_classic",
                 "distill_fastspeech"):
        module = importlib.import_module(f"ttslab.train.{name}")
        assert callable(getattr(module, "main", None)), name


def test_no_file_mixes_too_much():
    """Modules stay readable in one sitting (about 600 lines)."""
    long = {str(p.relative_to(ROOT)): n for p in _python_files("ttslab")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 760}
    assert not long, long


def test_library_code_reads_no_mode_or_threads_from_the_environment():
    """TTSLAB_CI and TTSLAB_THREADS are read at the edges (config helpers the CLI and notebooks call,
    command-line ``main`` functions), never inside library functions."""
    allowed = {"config.py", "__main__.py"}
    bad = []
    for path in _python_files("ttslab"):
        if path.name in allowed:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name != "main"):
            for node in ast.walk(func):
                name = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                        else None)
                if name in ("ci_mode", "current_mode", "default_mode") or (
                        isinstance(node, ast.Constant) and node.value in ("TTSLAB_CI", "TTSLAB_THREADS")):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} in {func.name}()")
    assert not bad, "\n".join(bad)


def test_train_fastspeech_takes_its_size_from_arguments(monkeypatch, ci_corpus):
    from ttslab.train import TrainConfig
    from ttslab.train.fastspeech import model_config, train_fastspeech

    monkeypatch.setenv("TTSLAB_CI", "1")
    tiny = model_config("tiny")
    model, _ = train_fastspeech(ci_corpus, tiny, TrainConfig(steps=1, batch_size=4, valid_every=1), valid_prompts=2,
                                progress=False, device="cpu")
    assert model.config == tiny


def test_fit_restores_the_callers_thread_settings():
    from ttslab.train import Batches, TrainConfig, fit

    model = torch.nn.Linear(2, 1)
    items = [torch.randn(2) for _ in range(4)]
    batches = Batches(items, 2, lambda xs: torch.stack(xs))
    loss_fn = lambda m, x: (m(x).pow(2).mean(), {})  # noqa: E731
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    torch.set_num_threads(target)
    try:
        fit(model, loss_fn, batches, TrainConfig(steps=2, batch_size=2, threads=3 if target != 3 else 1),
            progress=False)
        assert torch.get_num_threads() == target
    finally:
        torch.set_num_threads(before)


def test_modules_import_without_the_environment(monkeypatch):
    monkeypatch.delenv("TTSLAB_CI", raising=False)
    for module in pkgutil.walk_packages(ttslab.__path__, "ttslab."):
        if module.name.endswith("__main__"):
            continue
        importlib.import_module(module.name)
