"""Corpora: the Utterance/Corpus types, the built-in eSpeak NG corpus and real-corpus readers."""

from ttslab.data.corpus import Corpus, CorpusNotFoundError, Segment, Utterance

__all__ = ["Corpus", "CorpusNotFoundError", "Segment", "Utterance", "load_builtin"]


def load_builtin(mode: str | None = None, root=None) -> Corpus:
    """Load the built-in corpus (``mode`` "ci" or "full"; default from ``TTSLAB_CI``)."""
    from ttslab.data.builtin import load_builtin as _load

    return _load(mode=mode, root=root)
