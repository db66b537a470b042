"""Shared fixtures: the CI-mode built-in corpus, built once per machine (reused when present)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TTSLAB_CI", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def ci_corpus():
    """The CI-mode built-in corpus in TTSLAB_DATA (built here if the test command did not)."""
    from ttslab.data import builtin

    try:
        return builtin.load_builtin("ci")
    except builtin.CorpusNotFoundError:
        return builtin.build_corpus("ci", progress=False)
