"""Per-dimension feature normalisation, fitted over a whole training set of ``(T, D)`` arrays.

:class:`Normalizer` (z-score): ``z = (x - mean) / std``, ``x = z * std + mean``.
:class:`MinMaxNormalizer`: ``z = lo + (x - min) * (hi - lo) / (max - min)``.

Both fit in one streaming pass (running sums, float64), floor the scale so constant dimensions
(e.g. an always-zero aperiodicity band) do not divide by zero, and save to a plain dict
(``to_dict`` / ``from_dict``) that ``json`` can write.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def _frames(x, name: str = "features", dim: int | None = None) -> np.ndarray:
    """``x`` as a float64 ``(T, D)`` array (1-D means D = 1), or a clear error."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, D) with T > 0, got {x.shape}")
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN; find where it came from (e.g. pyin F0 or log of 0) before normalising")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains infinite values; clamp before log (log(max(x, eps)))")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} dimensions but the normaliser was fitted on {dim}")
    return x


def _as_list(arrays) -> Iterable:
    # A single (T, D) array is one utterance, not a list of T frames.
    return [arrays] if isinstance(arrays, np.ndarray) else arrays


class Normalizer:
    """Z-score normalisation: ``mean = sum x / N``, ``std = max(sqrt(sum x^2 / N - mean^2), std_floor)``.

    >>> n = Normalizer().fit([np.array([[1., 10.], [3., 10.]])])
    >>> n.mean.tolist(), n.std.tolist()
    ([2.0, 10.0], [1.0, 1e-05])
    >>> n.inverse_transform(n.transform([[5., 10.]])).tolist()
    [[5.0, 10.0]]
    """

    def __init__(self, std_floor: float = 1e-5):
        if std_floor <= 0:
            raise ValueError(f"std_floor must be > 0, got {std_floor}")
        self.std_floor = float(std_floor)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, arrays: Iterable[np.ndarray]) -> "Normalizer":
        """Fit over every frame of every ``(T, D)`` array (utterances of any lengths)."""
        n, s, s2, dim = 0, 0.0, 0.0, None
        for i, a in enumerate(_as_list(arrays)):
            a = _frames(a, f"array {i}", dim)
            dim = a.shape[1]
            # Shift by the first frame seen so the sums stay small (avoids cancellation in var).
            if n == 0:
                shift = a[0].copy()
            d = a - shift
            n, s, s2 = n + len(a), s + d.sum(0), s2 + (d * d).sum(0)
        if n == 0:
            raise ValueError("cannot fit a normaliser on no data; pass a non-empty list of (T, D) arrays")
        m = s / n
        self.mean = shift + m
        self.std = np.maximum(np.sqrt(np.maximum(s2 / n - m * m, 0.0)), self.std_floor)
        return self

    def _check_fitted(self) -> int:
        if self.mean is None:
            raise RuntimeError("normaliser is not fitted; call fit(train_arrays) or from_dict(saved) first")
        return len(self.mean)

    def transform(self, x) -> np.ndarray:
        """``(x - mean) / std`` as float32."""
        x = _frames(x, dim=self._check_fitted())
        return ((x - self.mean) / self.std).astype(np.float32)

    def inverse_transform(self, z) -> np.ndarray:
        """``z * std + mean`` as float32."""
        z = _frames(z, "normalised features", dim=self._check_fitted())
        return (z * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        self._check_fitted()
        return {"kind": "zscore", "mean": self.mean.tolist(), "std": self.std.tolist(), "std_floor": self.std_floor}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        if d.get("kind") != "zscore":
            raise ValueError(f"not a saved Normalizer (kind={d.get('kind')!r}); use the matching class's from_dict")
        n = cls(d["std_floor"])
        n.mean, n.std = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64)
        return n


class MinMaxNormalizer:
    """Map each dimension's ``[min, max]`` to ``feature_range`` (Merlin uses ``(0.01, 0.99)``).

    >>> n = MinMaxNormalizer().fit([np.array([[0.], [4.]])])
    >>> n.transform([[1.]]).tolist(), n.inverse_transform([[0.5]]).tolist()
    ([[0.25]], [[2.0]])
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0), range_floor: float = 1e-5):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"feature_range must be (lo, hi) with lo < hi, got {feature_range}")
        self.lo, self.hi, self.range_floor = float(lo), float(hi), float(range_floor)
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None

    def fit(self, arrays: Iterable[np.ndarray]) -> "MinMaxNormalizer":
        lo = hi = dim = None
        for i, a in enumerate(_as_list(arrays)):
            a = _frames(a, f"array {i}", dim)
            dim = a.shape[1]
            lo = a.min(0) if lo is None else np.minimum(lo, a.min(0))
            hi = a.max(0) if hi is None else np.maximum(hi, a.max(0))
        if lo is None:
            raise ValueError("cannot fit a normaliser on no data; pass a non-empty list of (T, D) arrays")
        self.min, self.max = lo, hi
        return self

    def _scale(self) -> np.ndarray:
        if self.min is None:
            raise RuntimeError("normaliser is not fitted; call fit(train_arrays) or from_dict(saved) first")
        return (self.hi - self.lo) / np.maximum(self.max - self.min, self.range_floor)

    def transform(self, x) -> np.ndarray:
        scale = self._scale()
        return (self.lo + (_frames(x, dim=len(self.min)) - self.min) * scale).astype(np.float32)

    def inverse_transform(self, z) -> np.ndarray:
        scale = self._scale()
        return ((_frames(z, "normalised features", dim=len(self.min)) - self.lo) / scale + self.min).astype(np.float32)

    def to_dict(self) -> dict:
        self._scale()
        return {"kind": "minmax", "min": self.min.tolist(), "max": self.max.tolist(),
                "feature_range": [self.lo, self.hi], "range_floor": self.range_floor}

    @classmethod
    def from_dict(cls, d: dict) -> "MinMaxNormalizer":
        if d.get("kind") != "minmax":
            raise ValueError(f"not a saved MinMaxNormalizer (kind={d.get('kind')!r}); "
                             "use the matching class's from_dict")
        n = cls(tuple(d["feature_range"]), d["range_floor"])
        n.min, n.max = np.asarray(d["min"], dtype=np.float64), np.asarray(d["max"], dtype=np.float64)
        return n
