"""Model checkpoints: written atomically, checksummed, and loaded with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values::

    {"format": 1, "model": state_dict, "model_config": {...}, "extra": {...}, ...training state...}

and a sidecar ``<file>.sha256`` with the SHA-256 of the file's bytes. :func:`load_checkpoint` refuses a
file whose bytes do not match (a truncated download, a half-copied file, an edited checkpoint) and
unpickles it with ``weights_only=True``, so a checkpoint can never run code on load.

``half=True`` stores floating-point weights as float16 (half the size; what ships in the repository);
:func:`load_checkpoint` hands them back as float32, so callers never see the difference.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from ttslab.io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match its checksum; the message says what to do."""


def sidecar(path: str | Path) -> Path:
    """The checksum file next to a checkpoint: ``model.pt`` -> ``model.pt.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _cast_state(state: dict, dtype: torch.dtype) -> dict:
    return {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module | dict, *, model_config: dict | None = None,
                    extra: dict | None = None, half: bool = False, **state) -> str:
    """Write ``model``'s weights (a module or a state dict) and ``state`` atomically; return the SHA-256.

    ``state`` may hold optimizer/scheduler state dicts, the step, the training history, RNG state:
    anything ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, lists, dicts).
    """
    weights = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
    weights = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in weights.items()}
    if half:
        weights = _cast_state(weights, torch.float16)
    payload = {"format": FORMAT, "model": weights, "model_config": dict(model_config or {}),
               "extra": dict(extra or {}), "half": bool(half), **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    try:  # fail now, not at load time, if something cannot be loaded with weights_only=True
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TypeError(f"checkpoint content must be tensors and plain Python values (no numpy arrays or "
                        f"custom objects): {exc}") from exc
    digest = sha256_bytes(data)
    path = Path(path)
    atomic_write_bytes(path, data)
    atomic_write_text(sidecar(path), f"{digest}  {path.name}\n")
    return digest


def read_sidecar(path: str | Path) -> str | None:
    """The checksum recorded next to ``path``, or None when there is no sidecar."""
    side = sidecar(path)
    if not side.is_file():
        return None
    text = side.read_text().split()
    if not text or len(text[0]) != 64:
        raise CheckpointError(f"{side} is not a SHA-256 file; delete it and the checkpoint, then re-create them")
    return text[0]


def load_checkpoint(path: str | Path, *, sha256: str | None = None, map_location: str = "cpu") -> dict:
    """Load a checkpoint after checking its SHA-256 (``sha256``, else the sidecar); floats come back float32.

    Raises :class:`CheckpointError` when the file is missing, does not match, or cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; train it first (see the README's training "
                              f"commands) or check the path")
    expected = sha256 or read_sidecar(path)
    if expected is not None:
        actual = sha256_file(path)
        if actual != expected:
            raise CheckpointError(f"checkpoint {path} is corrupt or was changed: SHA-256 {actual[:12]}... "
                                  f"does not match the recorded {expected[:12]}...; delete it and train or copy "
                                  f"it again")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path} ({exc}); delete it and train or copy it again") from exc
    if not isinstance(payload, dict) or "model" not in payload:
        raise CheckpointError(f"{path} is not a ttslab checkpoint (no 'model' entry)")
    if payload.get("half"):
        payload["model"] = _cast_state(payload["model"], torch.float32)
    payload.setdefault("model_config", {})
    payload.setdefault("extra", {})
    return payload
