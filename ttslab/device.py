"""Where tensors live: one rule for choosing the device, one helper for moving batches there.

The rule (:func:`resolve_device`): ``"auto"`` is the first CUDA GPU when PyTorch sees one, else the
CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (and any other device string torch knows, e.g. ``"meta"``) or
a :class:`torch.device` name one explicitly. Asking for CUDA where there is none is an error that
says how to fix it, not a silent fallback: a run that was meant for the GPU should not quietly take
hours on the CPU.

Defaults, and why they differ:

* training recipes (``train_judge``, ``train_vocoder``, ``train_fastspeech``, ``train_dnn_voice``)
  default to ``device="auto"``: training is where a GPU pays off;
* loaders (``load_checkpoint``, ``FastSpeech.from_checkpoint``, ``PhoneRecognizer.from_checkpoint``,
  ``DNNVoice.load``, ``NeuralVocoder.from_checkpoint``, ``ttslab.pretrained.load``) default to
  ``device="cpu"``: a loaded model then behaves the same on every machine (the judge's scores, the
  notebooks' plots), and a checkpoint written on a GPU still loads on a laptop (``map_location``);
* :func:`ttslab.train.fit` defaults to ``device=None``: it trains the model where the model already is.

Inference methods (``FastSpeech.infer``, ``PhoneRecognizer.transcribe``, ``DNNVoice.synthesize``,
``NeuralVocoder.vocode``) run on the model's device: they move their inputs there and return CPU
tensors or numpy arrays.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["resolve_device", "to_device", "module_device", "DeviceError"]


class DeviceError(RuntimeError):
    """The requested device is unknown or not available here; the message says what to do."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The :class:`torch.device` for ``device`` (see the module docstring for the rule).

    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device(torch.device("cpu"))
    device(type='cpu')
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}")
    try:
        resolved = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = (f"this PyTorch ({torch.__version__}) was built without CUDA" if torch.version.cuda is None
                     else "PyTorch sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)")
            raise DeviceError(f"device {str(device)!r} asked for CUDA, but {build}. Pass device='cpu' (or 'auto', "
                              f"which uses the GPU only when there is one; on the command line --device cpu), or "
                              f"install a CUDA build of PyTorch (https://pytorch.org/get-started/locally/)")
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(f"device {str(device)!r}: there are only {count} CUDA device(s), cuda:0..cuda:{count - 1}")
        if resolved.index is None:  # name the GPU, so that a tensor's device compares equal to it
            resolved = torch.device("cuda", torch.cuda.current_device())
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(device)!r}: the Apple MPS backend is not available here; pass device='cpu'")
    return resolved


def to_device(obj: Any, device: str | torch.device) -> Any:
    """``obj`` with every tensor moved to ``device``: tensors, and dicts, lists and tuples of them
    (nested, returned as plain dicts, lists and tuples; a namedtuple keeps its type); anything else (numbers, strings, numpy arrays, None) is
    returned as it is, because a batch may carry ids and lengths the model never sees on the device.

    ``device`` is taken as given (a name or a :class:`torch.device`); resolve ``"auto"`` first.

    >>> to_device({"x": torch.zeros(2), "id": "utt1", "n": [torch.ones(1), 3]}, "meta")["n"][0].device
    device(type='meta')
    """
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(to_device(v, device) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (or buffer); CPU for a module with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")
