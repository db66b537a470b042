"""Corpora: the Utterance/Corpus types, the built-in eSpeak NG corpus and real-corpus readers."""

from ttslab.data.corpus import Corpus, CorpusNotFoundError, Segment, Utterance

__all__ = ["Corpus", "CorpusNotFoundError", "Segment", "Utterance", "load_builtin", "read_corpus"]


def load_builtin(mode: str, root=None) -> Corpus:
    """Load the built-in corpus of ``mode``: "ci" (the small slice) or "full" (notebooks pass
    :func:`ttslab.config.mode`, which reads ``TTSLAB_CI``)."""
    from ttslab.data.builtin import load_builtin as _load

    return _load(mode=mode, root=root)


def read_corpus(name: str, root, **options) -> Corpus:
    """Read a real corpus ("ljspeech", "vctk", "libritts", "arctic") from its published layout."""
    from ttslab.data.readers import read_corpus as _read

    return _read(name, root, **options)
