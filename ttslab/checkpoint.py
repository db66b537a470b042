"""Model checkpoints: written atomically, checksummed, and loaded with ``weights_only=True``.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values::

    {"format": 1, "model": state_dict, "model_config": {...}, "extra": {...}, ...training state...}

and a sidecar ``<file>.sha256`` with the SHA-256 of the file's bytes. :func:`load_checkpoint` refuses a
file whose bytes do not match (a truncated download, a half-copied file, an edited checkpoint) and
unpickles it with ``weights_only=True``, so a checkpoint can never run code on load.

Every model loader in ttslab (``load_checkpoint``, ``PhoneRecognizer.from_checkpoint``,
``DNNVoice.load``, ``FastSpeech.from_checkpoint``/``load_fastspeech``,
``NeuralVocoder.from_checkpoint``, the HMM ``Voice.load``, ``VoiceConverter.load``,
``ttslab.pretrained.load``) takes the same two keywords and follows one rule, :func:`verify_file`:

* ``sha256="<64 hex digits>"``: the file must have this SHA-256 (it outranks the sidecar, which a
  damaged copy may carry along);
* otherwise the sidecar ``<file>.sha256`` must be there and match;
* a file with neither is refused (:class:`CheckpointError` saying how to fix it), unless its format
  carries its own checksum (the ``.npz`` voices), or the caller passes ``verify=False`` to load it
  unchecked at their own risk.

``half=True`` stores floating-point weights as float16 (half the size; what ships in the repository);
:func:`load_checkpoint` hands them back as float32, so callers never see the difference.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from ttslab.io import atomic_write_bytes, atomic_write_text, sha256_bytes, sha256_file

# torch is imported inside the functions that need it: the checksum rule (verify_file) is shared with
# the numpy-only HMM and voice-conversion loaders, which should not pay for importing torch.

FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or does not match its checksum; the message says what to do."""


def sidecar(path: str | Path) -> Path:
    """The checksum file next to a checkpoint: ``model.pt`` -> ``model.pt.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _cast_state(state: dict, dtype: torch.dtype) -> dict:
    import torch

    return {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in state.items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module | dict, *, model_config: dict | None = None,
                    extra: dict | None = None, half: bool = False, **state) -> str:
    """Write ``model``'s weights (a module or a state dict) and ``state`` atomically; return the SHA-256.

    ``state`` may hold optimizer/scheduler state dicts, the step, the training history, RNG state:
    anything ``torch.load(weights_only=True)`` accepts (tensors, numbers, strings, lists, dicts).
    """
    import torch

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


def write_sidecar(path: str | Path) -> str:
    """Record the SHA-256 of ``path`` as it is now in ``<path>.sha256``; return it.

    Do this only for a file you trust (you trained it, or checked it against a published checksum):
    from then on every loader refuses the file if its bytes change.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"cannot write a checksum for {path}: no such file")
    digest = sha256_file(path)
    atomic_write_text(sidecar(path), f"{digest}  {path.name}\n")
    return digest


def verify_file(path: str | Path, sha256: str | None = None, *, verify: bool = True, self_checked: bool = False,
                what: str = "checkpoint", error: type[Exception] = CheckpointError) -> str | None:
    """Check ``path``'s bytes before a loader reads them; return the SHA-256 compared, or None.

    The rule every ttslab loader shares (see the module docstring): ``sha256`` if given, else the
    sidecar ``<path>.sha256``, must equal the file's SHA-256. With neither, the file is refused unless
    ``self_checked`` (its format holds its own checksum, which the loader checks) or ``verify=False``
    (the caller's explicit choice to load an unverifiable file). ``error`` is the exception class raised
    for a missing or mismatching file, so a loader keeps its own error type; the missing-checksum refusal
    is always a :class:`CheckpointError`.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "model.pt"
    >>> _ = p.write_bytes(b"weights")
    >>> verify_file(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ttslab.checkpoint.CheckpointError: cannot verify checkpoint ...model.pt: there is no checksum file model.pt.sha256 beside it and no sha256= was given...
    >>> verify_file(p, verify=False) is None
    True
    >>> verify_file(p, sha256=write_sidecar(p)) == verify_file(p) == sha256_bytes(b"weights")
    True
    """
    path = Path(path)
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    if sha256 is not None:
        if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256.strip()):
            raise ValueError(f"sha256 must be the file's SHA-256 as 64 hexadecimal digits, got {sha256!r}")
        if not verify:
            raise ValueError("sha256= and verify=False contradict each other: pass the checksum to check the file, "
                             "or verify=False to skip the check, not both")
        sha256 = sha256.strip().lower()
    if not path.is_file():
        raise error(f"{what} {path} not found; train it first (see the README's training commands) or check the path")
    if not verify:
        return None
    expected = sha256 or read_sidecar(path)
    if expected is None:
        if self_checked:
            return None
        raise CheckpointError(
            f"cannot verify {what} {path}: there is no checksum file {sidecar(path).name} beside it and no sha256= "
            f"was given, so a damaged or edited file would load without notice. Pass sha256='<its 64-digit "
            f"SHA-256 from where you got it>'; or, if you trust this copy (you made it), record its checksum with "
            f"ttslab.checkpoint.write_sidecar({str(path)!r}); or pass verify=False to load it unchecked at your "
            f"own risk")
    actual = sha256_file(path)
    if actual != expected:
        source = "the sha256= given" if sha256 else f"the one in {sidecar(path).name}"
        raise error(f"{what} {path} is corrupt or was changed: its SHA-256 {actual[:12]}... does not match "
                    f"{source} ({expected[:12]}...); delete it and train or copy it again")
    return expected


def load_checkpoint(path: str | Path, *, sha256: str | None = None, verify: bool = True,
                    map_location: str = "cpu") -> dict:
    """Load a checkpoint after checking its SHA-256 (:func:`verify_file`); floats come back float32.

    Raises :class:`CheckpointError` when the file is missing, has no checksum to check it against
    (neither ``sha256`` nor a sidecar; ``verify=False`` loads it anyway), does not match, or cannot be
    read.
    """
    import torch

    path = Path(path)
    verify_file(path, sha256, verify=verify)
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
