"""Checksummed checkpoints of the full-mode models, shipped with the package, and how they were made.

``registry.json`` lists every checkpoint in ``weights/``: its SHA-256 and size, the command that
trained it (the project's own scripts, see ``scripts/train_pretrained.py``), its configuration, and
the training time; ``logs/<name>.json`` holds the training log (losses per step, validation).

>>> all((WEIGHTS / registry()[name]["file"]).is_file() for name in available())
True

``load(name)`` verifies the checksum against the registry (not just the sidecar next to the file,
which a corrupted copy could carry along) and builds the model with its class's ``from_checkpoint``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ttslab.checkpoint import CheckpointError, load_checkpoint

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
    "hmm_voice": "ttslab.pretrained:load_hmm_voice",
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
    if e["kind"] == "hmm_voice":
        _verify(p, e["sha256"])
    else:
        load_checkpoint(p, sha256=e["sha256"])  # raises CheckpointError with advice when missing/corrupt
    return p


def _verify(p: Path, sha256: str) -> None:
    """A file that is not a torch checkpoint (an HMM voice): present, and its SHA-256 as registered."""
    from ttslab.io import sha256_file

    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} not found; train it first (scripts/train_pretrained.py) "
                              f"or check the path")
    actual = sha256_file(p)
    if actual != sha256:
        raise CheckpointError(f"checkpoint {p} is corrupt or was changed: SHA-256 {actual[:12]}... does not "
                              f"match the recorded {sha256[:12]}...; delete it and train or copy it again")


def load_hmm_voice(p, *, sha256: str):
    """An HTS-style HMM voice (:class:`ttslab.classical.hts.Voice`) after checking its SHA-256."""
    from ttslab.classical import hts

    _verify(Path(p), sha256)
    return hts.Voice.load(p)


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load(name: str):
    """The model of a registered checkpoint, ready for inference (eval mode)."""
    e = entry(name)
    if e["kind"] not in LOADERS:
        raise CheckpointError(f"registry entry {name!r} has unknown kind {e['kind']!r}")
    p = WEIGHTS / e["file"]
    return _resolve(LOADERS[e["kind"]])(p, sha256=e["sha256"])


def training_log(name: str) -> dict:
    """The training log written by the training command (config, history, seconds, threads)."""
    e = entry(name)
    log = LOGS / e.get("log", f"{name}.json")
    if not log.is_file():
        raise FileNotFoundError(f"no training log for {name!r} at {log}")
    return json.loads(log.read_text())
