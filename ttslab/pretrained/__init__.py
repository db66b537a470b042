"""Checksummed checkpoints of the full-mode models, shipped with the package, and how they were made.

``registry.json`` lists every checkpoint in ``weights/``: its SHA-256 and size, the command that
trained it (the project's own scripts, see ``scripts/train_pretrained.py``), its configuration, and
the training time; ``logs/<name>.json`` holds the training log (losses per step, validation).

>>> all((WEIGHTS / registry()[name]["file"]).is_file() for name in available())
True

``load(name)`` verifies the checksum against the registry (not just the sidecar next to the file,
which a corrupted copy could carry along: the registry's ``sha256`` is passed as the loader's
``sha256=``) and builds the model with its class's ``from_checkpoint``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ttslab.checkpoint import CheckpointError, verify_file

ROOT = Path(__file__).resolve().parent
WEIGHTS = ROOT / "weights"
LOGS = ROOT / "logs"
REGISTRY = ROOT / "registry.json"

#: registry "kind" -> "module:callable" that turns a checkpoint path (+ sha256) into a ready model
LOADERS = {
    "judge": "ttslab.models.judge:PhoneRecognizer.from_checkpoint",
    "vocoder": "ttslab.vocoders.neural:NeuralVocoder.from_checkpoint",
    "fastspeech": "ttslab.models.fastspeech:FastSpeech.from_checkpoint",
    "dnn_voice": "ttslab.models.dnn_spss:DNNVoice.load",
    "hmm_voice": "ttslab.classical.hts:Voice.load",
}


def registry() -> dict:
    """The parsed ``registry.json`` (empty when no checkpoint has been registered)."""
    if not REGISTRY.is_file():
        return {}
    return json.loads(REGISTRY.read_text())


def available() -> list[str]:
    """Names of the registered checkpoints."""
    return sorted(registry())


def entry(name: str) -> dict:
    reg = registry()
    if name not in reg:
        raise KeyError(f"no pretrained checkpoint named {name!r}; available: {sorted(reg)}. Train it with "
                       f"`python scripts/train_pretrained.py {name}` or check the name")
    return reg[name]


def path(name: str) -> Path:
    """Path of a registered checkpoint after checking its SHA-256 against the registry."""
    e = entry(name)
    p = WEIGHTS / e["file"]
    verify_file(p, e["sha256"])  # raises CheckpointError with advice when missing/corrupt
    return p


def loader(kind: str):
    """The function that loads checkpoints of ``kind`` (``loader(kind)(path, sha256=...)``)."""
    if kind not in LOADERS:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; known: {sorted(LOADERS)}")
    module, _, attr = LOADERS[kind].partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load(name: str):
    """The model of a registered checkpoint, ready for inference (eval mode)."""
    e = entry(name)
    return loader(e["kind"])(WEIGHTS / e["file"], sha256=e["sha256"])


def training_log(name: str) -> dict:
    """The training log written by the training command (config, history, seconds, threads)."""
    e = entry(name)
    log = LOGS / e.get("log", f"{name}.json")
    if not log.is_file():
        raise FileNotFoundError(f"no training log for {name!r} at {log}")
    return json.loads(log.read_text())
