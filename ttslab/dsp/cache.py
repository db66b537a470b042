"""A disk cache of per-utterance feature arrays, keyed by the exact settings that made them.

Layout::

    root/name/<key>/config.json        the settings (so a human can tell folders apart)
    root/name/<key>/<utt_id>.npy       one array per utterance

``root=None`` means ``ttslab.config.data_home() / "features"``.

``key = sha256(canonical JSON of {"config": config, "version": version})[:16]``. Change any
setting (hop, F0 range, ...) and the features land in a new folder instead of silently mixing
with stale ones; bump ``version`` when the feature *code* changes. Files are written atomically
and loaded with ``allow_pickle=False``; an unreadable file is recomputed with a warning.
"""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from ttslab.io import atomic_write_bytes, atomic_write_json, sha256_bytes

CACHE_VERSION = "1"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def canonical_json(obj) -> str:
    """JSON with sorted keys and no spaces: equal settings always give equal text.

    >>> canonical_json({"hop": 256, "fmax": 8000.0, "name": "mel"})
    '{"fmax":8000.0,"hop":256,"name":"mel"}'
    """
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cache config must be plain JSON (str, int, float, bool, None, list, dict) without NaN: "
                        f"{exc}; convert numpy values with int()/float()/.tolist()") from exc


def config_key(config: dict, version: str = CACHE_VERSION) -> str:
    """First 16 hex digits of ``sha256(canonical_json({"config": config, "version": version}))``."""
    return sha256_bytes(canonical_json({"config": config, "version": version}).encode("ascii"))[:16]


class FeatureCache:
    """``get_or_compute(utt_id, fn)`` returns the cached array, or computes, stores and returns ``fn()``."""

    def __init__(self, root, name: str, config: dict, version: str = CACHE_VERSION):
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict of the settings that define the features, "
                            f"got {type(config).__name__}")
        if not _SAFE_ID.match(name):
            raise ValueError(f"cache name {name!r} must be a simple folder name (letters, digits, . _ -)")
        self.name, self.config, self.version = name, config, version
        self.key = config_key(config, version)
        if root is None:
            from ttslab.config import data_home

            root = data_home() / "features"
        self.dir = Path(root) / name / self.key

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.dir)!r})"

    def path(self, utt_id: str) -> Path:
        if not isinstance(utt_id, str) or not _SAFE_ID.match(utt_id):
            raise ValueError(f"utterance id {utt_id!r} cannot be a file name; use letters, digits, '.', '_' or '-'")
        return self.dir / f"{utt_id}.npy"

    def __contains__(self, utt_id: str) -> bool:
        return self.path(utt_id).is_file()

    def _write_config(self) -> None:
        cfg = self.dir / "config.json"
        if not cfg.is_file():
            atomic_write_json(cfg, {"name": self.name, "version": self.version, "config": self.config})

    def save(self, utt_id: str, array) -> Path:
        """Store ``array`` (numeric, not object dtype) atomically."""
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"cannot cache {utt_id!r}: object arrays would need pickle; return a numeric array")
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        self._write_config()
        return atomic_write_bytes(self.path(utt_id), buf.getvalue())

    def load(self, utt_id: str) -> np.ndarray:
        """Load a stored array (raises ``FileNotFoundError`` / ``ValueError`` if missing or corrupt)."""
        return np.load(self.path(utt_id), allow_pickle=False)

    def get_or_compute(self, utt_id: str, fn: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(utt_id)
        if path.is_file():
            try:
                return self.load(utt_id)
            except (ValueError, OSError, EOFError) as exc:
                warnings.warn(f"corrupt cache file {path} ({exc}); recomputing it", RuntimeWarning, stacklevel=2)
        array = fn()
        self.save(utt_id, array)
        return np.asarray(array)
