"""Run modes and locations shared by the notebooks, scripts and tests.

``TTSLAB_CI=1`` selects the small, fast CI mode; anything else (or unset) is full mode.
``TTSLAB_DATA`` overrides where corpora and caches live (default ``~/.cache/ttslab``).
``TTSLAB_THREADS`` sets the torch/BLAS thread count used by :func:`set_threads`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def ci_mode() -> bool:
    """True when ``TTSLAB_CI`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get("TTSLAB_CI", "").strip().lower() in {"1", "true", "yes", "on"}


def mode() -> str:
    """``"ci"`` or ``"full"``."""
    return "ci" if ci_mode() else "full"


def data_home() -> Path:
    """Root folder for built corpora and feature caches (``TTSLAB_DATA`` or ``~/.cache/ttslab``)."""
    env = os.environ.get("TTSLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ttslab"


def set_threads(n: int | None = None, *, blas: int | None = None) -> int:
    """Set torch's intra-op thread count (default ``TTSLAB_THREADS`` or 2) and cap the BLAS
    pools numpy/scipy use (``blas``, default 1); return the torch count.

    Why BLAS gets one thread: the classical algorithms multiply many small matrices, and on a
    2-core laptop a second BLAS thread makes those calls tens of times slower, not faster.
    """
    if n is None:
        n = int(os.environ.get("TTSLAB_THREADS", "2"))
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=1 if blas is None else blas, user_api="blas")
    return n


@contextmanager
def thread_limit(n: int, *, blas: int | None = 1):
    """Within the block, torch uses ``n`` intra-op threads and the BLAS pools ``blas`` (see
    :func:`set_threads`); both are restored on exit, so a library call leaves the caller's settings
    as it found them.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with thread_limit(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n < 1:
        raise ValueError(f"thread count must be >= 1, got {n}")
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(limits=blas, user_api="blas"):
        torch.set_num_threads(n)
        try:
            yield n
        finally:
            torch.set_num_threads(before)
