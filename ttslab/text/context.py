"""Linguistic context of each phone: syllables, HTS-style full-context labels, questions, features.

From a phone sequence with word indices and stress (a corpus utterance's segments, or
:meth:`ttslab.text.lexicon.Lexicon.transcribe`) this module builds

* syllables, by the maximal onset principle (:func:`syllabify`, :data:`LEGAL_ONSETS`);
* one context dict per phone (:func:`phone_contexts`, keys in :data:`CONTEXT_FIELDS`);
* full-context labels in a simplified HTS format and their parser (:func:`full_context_labels`,
  :func:`parse_full_context`);
* the question set for decision-tree state clustering (:func:`question_set`);
* numeric feature matrices for DNNs, per phone and per frame (:func:`linguistic_features`,
  :func:`frame_features`), as in Zen et al. (2013) and Merlin.

Structure: a *phrase* is a maximal run of non-silence phones (``pau``/``sil`` separate phrases);
a *word* is a run of phones with the same word index inside a phrase; *syllables* split a word.
Silence phones belong to no syllable, word or phrase: those fields are None ("xx" in labels).

>>> ctx = phone_contexts(["sil", "hh", "ah", "l", "ow", "sil"], [-1, 0, 0, 0, 0, -1], [0, 0, 0, 0, 1, 0])
>>> ctx[3]["C"], ctx[3]["syl_fw"], ctx[3]["syl_stress"], ctx[3]["word_num_syls"]
('l', 2, 1, 2)
>>> full_context_labels(ctx)[3]
'hh^ah-l+ow=sil@1_2/A:0/B:1-2@2-1&ow/C:xx/E:2@1-1/H:2-1@1-1/J:2-1-1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ttslab.text.phoneset import PHONES, SILENCES, VOWELS, phone_classes, validate_phones

_VOWEL_SET = frozenset(VOWELS)
_SILENCE_SET = frozenset(SILENCES)
#: Written in labels for a field that does not apply (no "x": that is a phone here).
NA = "xx"
#: Vowel identity of a syllable without a vowel (syllabic consonants such as "hmm").
NO_VOWEL = "novowel"

# ----------------------------------------------------------------------------------------------
# Syllabification
# ----------------------------------------------------------------------------------------------

_ENGLISH_ONSET_CLUSTERS = """
    p r, p l, b r, b l, t r, d r, k r, k l, g r, g l, f r, f l, th r, sh r, v r,
    t w, d w, k w, g w, th w, s w, hh w,
    p y, b y, k y, g y, m y, f y, v y, hh y,
    s p, s t, s k, s m, s n, s l, s f,
    s p r, s p l, s t r, s k r, s k w, s k l, s p y, s k y
"""
# German and Spanish clusters over the extra phones (Spanish "pr" has a tap, German "zw" is /tsv/).
_EXTRA_ONSET_CLUSTERS = """
    sh t, sh p, sh l, sh m, sh n, sh w, sh v, sh t r, sh p r, k n, g n, ts v, pf l, pf r,
    p dx, b dx, t dx, d dx, k dx, g dx, f dx, p l, b l, k l, g l, f l
"""


def _parse_clusters(text: str) -> set[tuple[str, ...]]:
    return {tuple(c.split()) for c in text.replace("\n", " ").split(",") if c.strip()}


#: Legal syllable onsets: every single consonant except ``ng``, plus the English clusters
#: (Kenstowicz 1994; Giegerich 1992: stop/fricative + liquid, C + w/y, s + stop/nasal/l/w/f,
#: s + stop + liquid/glide) and a few German/Spanish clusters of the extra phones.
LEGAL_ONSETS: frozenset[tuple[str, ...]] = frozenset(
    {(p,) for p in PHONES if p not in _VOWEL_SET and p not in _SILENCE_SET and p != "ng"}
    | _parse_clusters(_ENGLISH_ONSET_CLUSTERS) | _parse_clusters(_EXTRA_ONSET_CLUSTERS) | {()}
)


def syllabify(phones: Sequence[str]) -> list[tuple[str, ...]]:
    """Split one word's phones into syllables by the maximal onset principle.

    Every vowel is a syllable nucleus. Consonants between two vowels go to the second syllable
    as long as they form a legal onset (:data:`LEGAL_ONSETS`), the rest close the first
    syllable. Word-initial consonants are the first onset and word-final ones the last coda,
    legal or not; a word without a vowel is one syllable.

    >>> syllabify("eh k s t r ah".split())
    [('eh', 'k'), ('s', 't', 'r', 'ah')]
    >>> syllabify("s t r eh ng k th s".split())
    [('s', 't', 'r', 'eh', 'ng', 'k', 'th', 's')]
    >>> syllabify("ae t l ae n t ih k".split())
    [('ae', 't'), ('l', 'ae', 'n'), ('t', 'ih', 'k')]
    >>> syllabify(["hh", "m"])
    [('hh', 'm')]
    """
    phones = list(phones)
    nuclei = [i for i, p in enumerate(phones) if p in _VOWEL_SET]
    if len(nuclei) <= 1:
        return [tuple(phones)] if phones else []
    starts = [0]
    for v, v_next in zip(nuclei, nuclei[1:]):
        cluster = phones[v + 1:v_next]
        k = next(k for k in range(len(cluster) + 1) if tuple(cluster[k:]) in LEGAL_ONSETS)
        starts.append(v + 1 + k)
    ends = starts[1:] + [len(phones)]
    return [tuple(phones[s:e]) for s, e in zip(starts, ends)]


# ----------------------------------------------------------------------------------------------
# Per-phone context
# ----------------------------------------------------------------------------------------------

#: Keys of a context dict, in label order. Positions are 1-based; "fw"/"bw" count from the
#: start/end of the enclosing unit (syllable, word, phrase, utterance).
CONTEXT_FIELDS: tuple[str, ...] = (
    "LL", "L", "C", "R", "RR",              # quinphone identities
    "phone_fw", "phone_bw",                 # position of the phone in its syllable
    "prev_syl_stress",                      # stress of the previous syllable (in the utterance)
    "syl_stress", "syl_num_phones",         # current syllable: stress 0/1/2, number of phones
    "syl_fw", "syl_bw",                     # position of the syllable in its word
    "syl_vowel",                            # vowel of the current syllable (or "novowel")
    "next_syl_stress",                      # stress of the next syllable
    "word_num_syls", "word_fw", "word_bw",  # syllables in the word; word position in the phrase
    "phrase_num_syls", "phrase_num_words",  # size of the current phrase
    "phrase_fw", "phrase_bw",               # position of the phrase in the utterance
    "utt_num_syls", "utt_num_words", "utt_num_phrases",
)
_PHONE_FIELDS = ("LL", "L", "C", "R", "RR")
_STRING_FIELDS = frozenset(_PHONE_FIELDS + ("syl_vowel",))

#: The label format: ``{field}`` placeholders between fixed separators.
LABEL_FORMAT = (
    "{LL}^{L}-{C}+{R}={RR}@{phone_fw}_{phone_bw}"
    "/A:{prev_syl_stress}"
    "/B:{syl_stress}-{syl_num_phones}@{syl_fw}-{syl_bw}&{syl_vowel}"
    "/C:{next_syl_stress}"
    "/E:{word_num_syls}@{word_fw}-{word_bw}"
    "/H:{phrase_num_syls}-{phrase_num_words}@{phrase_fw}-{phrase_bw}"
    "/J:{utt_num_syls}-{utt_num_words}-{utt_num_phrases}"
)


def _label_regex() -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", LABEL_FORMAT)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part in _STRING_FIELDS:
            out.append(rf"(?P<{part}>[a-z]+)")
        else:
            out.append(rf"(?P<{part}>\d+|{NA})")
    return re.compile("^" + "".join(out) + "$")


_LABEL_RE = _label_regex()


def phone_contexts(phones: Sequence[str], word_index: Sequence[int] | None = None,
                   stress: Sequence[int] | None = None) -> list[dict]:
    """One context dict (keys :data:`CONTEXT_FIELDS`) per phone.

    ``word_index[i]`` says which word phone ``i`` belongs to (any ids; a change of id starts a
    new word; -1 for silences). Without it each phrase counts as one word. ``stress[i]`` is the
    phone's stress (vowels 0/1/2; default all 0); a syllable's stress is its vowel's.
    Quinphone neighbours beyond the ends and every field that does not apply are None.

    >>> ctx = phone_contexts(["sil", "k", "ae", "t", "pau", "d", "ao", "g", "z", "sil"],
    ...                      [-1, 0, 0, 0, -1, 1, 1, 1, 1, -1], [0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
    >>> [(c["C"], c["word_fw"], c["phrase_fw"], c["phrase_bw"]) for c in ctx[:3]]
    [('sil', None, None, None), ('k', 1, 1, 2), ('ae', 1, 1, 2)]
    >>> ctx[0]["LL"], ctx[0]["R"], ctx[7]["phone_bw"], ctx[7]["utt_num_phrases"]
    (None, 'k', 2, 2)
    """
    phones = validate_phones(phones)
    n = len(phones)
    if n == 0:
        raise ValueError("phone_contexts needs at least one phone")
    stress = [0] * n if stress is None else [int(s) for s in stress]
    if len(stress) != n:
        raise ValueError(f"{n} phones but {len(stress)} stress values")
    if word_index is not None and len(word_index) != n:
        raise ValueError(f"{n} phones but {len(word_index)} word indices")

    # group phone positions: phrases -> words -> phone positions
    phrase_words: list[list[list[int]]] = []
    prev_key = None
    for i, p in enumerate(phones):
        if p in _SILENCE_SET:
            continue
        key = None if word_index is None else word_index[i]
        if i == 0 or phones[i - 1] in _SILENCE_SET:
            phrase_words.append([[i]])
        elif key != prev_key:
            phrase_words[-1].append([i])
        else:
            phrase_words[-1][-1].append(i)
        prev_key = key
    # phrases -> words -> syllables -> phone positions
    phrases: list[list[list[list[int]]]] = []
    for words in phrase_words:
        phrase = []
        for word in words:
            sylls, pos = [], 0
            for syl in syllabify([phones[i] for i in word]):
                sylls.append(word[pos:pos + len(syl)])
                pos += len(syl)
            phrase.append(sylls)
        phrases.append(phrase)

    syllables = [syl for phrase in phrases for word in phrase for syl in word]  # utterance order
    syl_stress = [max((stress[i] for i in syl if phones[i] in _VOWEL_SET), default=0) for syl in syllables]
    utt_syls, utt_words = len(syllables), sum(len(phrase) for phrase in phrases)

    ctx: list[dict] = [dict.fromkeys(CONTEXT_FIELDS) for _ in range(n)]
    s_index = 0  # index of the current syllable in the utterance
    for f, phrase in enumerate(phrases):
        phrase_num_syls = sum(len(word) for word in phrase)
        for w, sylls in enumerate(phrase):
            for s, syl in enumerate(sylls):
                vowel = next((phones[i] for i in syl if phones[i] in _VOWEL_SET), NO_VOWEL)
                for k, i in enumerate(syl):
                    ctx[i].update(
                        phone_fw=k + 1, phone_bw=len(syl) - k,
                        prev_syl_stress=syl_stress[s_index - 1] if s_index > 0 else None,
                        syl_stress=syl_stress[s_index], syl_num_phones=len(syl),
                        syl_fw=s + 1, syl_bw=len(sylls) - s, syl_vowel=vowel,
                        next_syl_stress=syl_stress[s_index + 1] if s_index + 1 < utt_syls else None,
                        word_num_syls=len(sylls), word_fw=w + 1, word_bw=len(phrase) - w,
                        phrase_num_syls=phrase_num_syls, phrase_num_words=len(phrase),
                        phrase_fw=f + 1, phrase_bw=len(phrases) - f)
                s_index += 1
    for i, c in enumerate(ctx):
        for off, key in zip((-2, -1, 0, 1, 2), _PHONE_FIELDS):
            j = i + off
            c[key] = phones[j] if 0 <= j < n else None
        c.update(utt_num_syls=utt_syls, utt_num_words=utt_words, utt_num_phrases=len(phrases))
    return ctx


def contexts_from_segments(segments: Iterable) -> list[dict]:
    """:func:`phone_contexts` from :class:`ttslab.data.corpus.Segment` s (label, word, stress).

    >>> from types import SimpleNamespace as S
    >>> segs = [S(label="sil", word=-1, stress=0), S(label="hh", word=0, stress=0),
    ...         S(label="ay", word=0, stress=1), S(label="sil", word=-1, stress=0)]
    >>> [c["syl_stress"] for c in contexts_from_segments(segs)]
    [None, 1, 1, None]
    """
    segments = list(segments)
    return phone_contexts([s.label for s in segments], [s.word for s in segments], [s.stress for s in segments])


def utterance_contexts(utterance) -> list[dict]:
    """Contexts of a corpus :class:`~ttslab.data.corpus.Utterance` (needs its ``segments``)."""
    if utterance.segments is None:
        raise ValueError(f"utterance {utterance.id} has no segments (phone timings); "
                         "transcribe its text with ttslab.text.lexicon.Lexicon().transcribe instead")
    return contexts_from_segments(utterance.segments)


# ----------------------------------------------------------------------------------------------
# Full-context labels
# ----------------------------------------------------------------------------------------------

def format_full_context(context: dict) -> str:
    """One context dict as a label in :data:`LABEL_FORMAT` (None is written "xx")."""
    try:
        return LABEL_FORMAT.format(**{k: NA if context[k] is None else context[k] for k in CONTEXT_FIELDS})
    except KeyError as e:
        raise ValueError(f"context is missing the field {e.args[0]!r}; expected {CONTEXT_FIELDS}") from None


def full_context_labels(contexts: Sequence[dict]) -> list[str]:
    """Labels of the form (simplified HTS; "xx" = not applicable)::

        LL^L-C+R=RR@phone_fw_phone_bw
        /A:prev_syl_stress
        /B:syl_stress-syl_num_phones@syl_fw-syl_bw&syl_vowel
        /C:next_syl_stress
        /E:word_num_syls@word_fw-word_bw
        /H:phrase_num_syls-phrase_num_words@phrase_fw-phrase_bw
        /J:utt_num_syls-utt_num_words-utt_num_phrases

    written on one line. As in HTS, A/B/C are the previous/current/next syllable, E the word,
    H the phrase and J the utterance; positions are 1-based.

    >>> ctx = phone_contexts(["sil", "ay", "sil"], [-1, 0, -1], [0, 1, 0])
    >>> full_context_labels(ctx)[0]
    'xx^xx-sil+ay=sil@xx_xx/A:xx/B:xx-xx@xx-xx&xx/C:xx/E:xx@xx-xx/H:xx-xx@xx-xx/J:1-1-1'
    """
    return [format_full_context(c) for c in contexts]


def parse_full_context(label: str) -> dict:
    """Parse a label of :func:`full_context_labels` back into its context dict.

    >>> ctx = phone_contexts(["sil", "k", "ae", "t", "sil"], [-1, 0, 0, 0, -1], [0, 0, 1, 0, 0])
    >>> all(parse_full_context(lab) == c for lab, c in zip(full_context_labels(ctx), ctx))
    True
    >>> parse_full_context("k-ae+t")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: not a ttslab full-context label: 'k-ae+t'; expected the format ...
    """
    m = _LABEL_RE.match(label.strip())
    if not m:
        raise ValueError(f"not a ttslab full-context label: {label!r}; expected the format {LABEL_FORMAT}")
    out = {}
    for key in CONTEXT_FIELDS:
        v = m.group(key)
        out[key] = None if v == NA else (v if key in _STRING_FIELDS else int(v))
    return out


# ----------------------------------------------------------------------------------------------
# Questions
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Question:
    """A yes/no question about one context field, for decision-tree clustering.

    Either a membership test (``values``: the answer is yes when ``context[field] in values``)
    or an integer test (``threshold``: yes when ``context[field] <= threshold``). A field that
    does not apply (None) always answers no.

    >>> q = Question("C-Vowel", "C", values=frozenset({"aa", "iy"}))
    >>> q.matches({"C": "aa"}), q.matches({"C": "k"}), q.mask([{"C": "iy"}, {"C": None}]).tolist()
    (True, False, [True, False])
    >>> Question("Pos_C-Syl_in_Word(Fw)<=2", "syl_fw", threshold=2).mask([{"syl_fw": 1}, {"syl_fw": 3}]).tolist()
    [True, False]
    """

    name: str
    field: str
    values: frozenset | None = None
    threshold: int | None = None

    def __post_init__(self):
        if (self.values is None) == (self.threshold is None):
            raise ValueError(f"question {self.name!r} needs exactly one of values / threshold")

    def matches(self, context: dict) -> bool:
        """The answer for one context dict."""
        v = context[self.field]
        if v is None:
            return False
        return v in self.values if self.values is not None else v <= self.threshold

    test = matches  # the question's test, under its usual name in HTS texts

    def mask(self, contexts: Sequence[dict]) -> np.ndarray:
        """Answers for many contexts at once: a bool array of shape (len(contexts),)."""
        return self.answer(_Columns(contexts))

    def answer(self, columns: "_Columns") -> np.ndarray:
        if self.values is not None:
            codes, vocab = columns.categorical(self.field)
            table = np.array([v in self.values for v in vocab] + [False], dtype=bool)  # last code: None
            return table[codes]
        values = columns.numeric(self.field)
        with np.errstate(invalid="ignore"):
            return values <= self.threshold  # NaN (None) compares False

    def __repr__(self) -> str:
        test = (f"in {{{', '.join(sorted(map(str, self.values)))}}}" if self.values is not None
                else f"<= {self.threshold}")
        return f"Question({self.name!r}: {self.field} {test})"


class _Columns:
    """Per-field columns of a list of contexts, extracted once and shared by many questions."""

    def __init__(self, contexts: Sequence[dict]):
        self.contexts = list(contexts)
        self._cat: dict[str, tuple[np.ndarray, list]] = {}
        self._num: dict[str, np.ndarray] = {}

    def categorical(self, field: str) -> tuple[np.ndarray, list]:
        if field not in self._cat:
            vocab: dict = {}
            raw = [c[field] for c in self.contexts]
            for v in raw:
                if v is not None and v not in vocab:
                    vocab[v] = len(vocab)
            none_code = len(vocab)
            codes = np.fromiter((none_code if v is None else vocab[v] for v in raw), dtype=np.int64, count=len(raw))
            self._cat[field] = (codes, list(vocab))
        return self._cat[field]

    def numeric(self, field: str) -> np.ndarray:
        if field not in self._num:
            self._num[field] = np.array([np.nan if c[field] is None else c[field] for c in self.contexts],
                                        dtype=np.float64)
        return self._num[field]


_POSITION_NAMES = {"LL": "LL", "L": "L", "C": "C", "R": "R", "RR": "RR"}
_STRESS_FIELDS = (("prev_syl_stress", "L-Syl"), ("syl_stress", "C-Syl"), ("next_syl_stress", "R-Syl"))

#: Integer fields: (field, question stem, thresholds, scale). Questions ask ``stem<=t`` for each
#: threshold; :func:`linguistic_features` divides by ``scale`` and clips to [0, 1].
NUMERIC_FIELDS: tuple[tuple[str, str, tuple[int, ...], float], ...] = (
    ("phone_fw", "Pos_C-Phone_in_Syl(Fw)", tuple(range(1, 8)), 8.0),
    ("phone_bw", "Pos_C-Phone_in_Syl(Bw)", tuple(range(1, 8)), 8.0),
    ("syl_num_phones", "Num_Phones_in_C-Syl", tuple(range(1, 8)), 8.0),
    ("syl_fw", "Pos_C-Syl_in_Word(Fw)", tuple(range(1, 7)), 7.0),
    ("syl_bw", "Pos_C-Syl_in_Word(Bw)", tuple(range(1, 7)), 7.0),
    ("word_num_syls", "Num_Syls_in_C-Word", tuple(range(1, 7)), 7.0),
    ("word_fw", "Pos_C-Word_in_Phrase(Fw)", tuple(range(1, 11)), 20.0),
    ("word_bw", "Pos_C-Word_in_Phrase(Bw)", tuple(range(1, 11)), 20.0),
    ("phrase_num_syls", "Num_Syls_in_C-Phrase", (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30), 40.0),
    ("phrase_num_words", "Num_Words_in_C-Phrase", (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 15, 20), 20.0),
    ("phrase_fw", "Pos_C-Phrase_in_Utt(Fw)", tuple(range(1, 6)), 10.0),
    ("phrase_bw", "Pos_C-Phrase_in_Utt(Bw)", tuple(range(1, 6)), 10.0),
    ("utt_num_syls", "Num_Syls_in_Utt", (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50, 75, 100), 100.0),
    ("utt_num_words", "Num_Words_in_Utt", (1, 2, 3, 5, 8, 10, 15, 20, 30, 40, 50), 50.0),
    ("utt_num_phrases", "Num_Phrases_in_Utt", tuple(range(1, 7)), 10.0),
)

_QUESTIONS_CACHE: dict[str, list[Question]] = {}


def categorical_questions() -> list[Question]:
    """The yes/no questions that are also binary DNN features (no integer thresholds).

    For each of LL, L, C, R, RR: phone identity (``C-Phone_aa``) and phone class
    (``C-Vowel``, ``R-Stop`` ... from :func:`ttslab.text.phoneset.phone_classes`); the vowel of
    the current syllable (``C-Syl_Vowel==aa``); stress of the previous/current/next syllable
    (``C-Syl_Stress==1``, ``C-Syl_Stressed``).
    """
    if "categorical" not in _QUESTIONS_CACHE:
        qs = []
        classes = phone_classes()
        for pos in _PHONE_FIELDS:
            qs += [Question(f"{pos}-Phone_{p}", pos, values=frozenset({p})) for p in PHONES]
            qs += [Question(f"{pos}-{name}", pos, values=members) for name, members in classes.items()]
        qs += [Question(f"C-Syl_Vowel=={v}", "syl_vowel", values=frozenset({v})) for v in VOWELS + (NO_VOWEL,)]
        for field, stem in _STRESS_FIELDS:
            qs += [Question(f"{stem}_Stress=={s}", field, values=frozenset({s})) for s in (0, 1, 2)]
            qs.append(Question(f"{stem}_Stressed", field, values=frozenset({1, 2})))
        _QUESTIONS_CACHE["categorical"] = qs
    return list(_QUESTIONS_CACHE["categorical"])


def question_set() -> list[Question]:
    """All clustering questions: :func:`categorical_questions` plus integer ``<=`` questions.

    Integer questions come from :data:`NUMERIC_FIELDS`, e.g. ``Pos_C-Syl_in_Word(Fw)<=2``.
    Names are unique and the order is fixed.

    >>> qs = question_set()
    >>> len(qs), len({q.name for q in qs}) == len(qs)
    (607, True)
    >>> [q.name for q in qs if q.name.startswith("Pos_C-Syl_in_Word(Fw)")][:2]
    ['Pos_C-Syl_in_Word(Fw)<=1', 'Pos_C-Syl_in_Word(Fw)<=2']
    """
    qs = categorical_questions()
    for field, stem, thresholds, _ in NUMERIC_FIELDS:
        qs += [Question(f"{stem}<={t}", field, threshold=t) for t in thresholds]
    return qs


def answer_matrix(questions: Sequence[Question], contexts: Sequence[dict]) -> np.ndarray:
    """Answers of every question for every context: bool array (len(contexts), len(questions)).

    Faster than calling :meth:`Question.mask` one by one: each field is extracted only once.
    """
    columns = _Columns(contexts)
    out = np.zeros((len(columns.contexts), len(questions)), dtype=bool)
    for j, q in enumerate(questions):
        out[:, j] = q.answer(columns)
    return out


# ----------------------------------------------------------------------------------------------
# Numeric features for DNNs
# ----------------------------------------------------------------------------------------------

def feature_names() -> list[str]:
    """Names of the :func:`linguistic_features` columns: question names, then numeric fields.

    >>> names = feature_names()
    >>> len(names), names[0], names[-1]
    (498, 'LL-Phone_aa', 'utt_num_phrases/10')
    """
    return [q.name for q in categorical_questions()] + [f"{field}/{scale:g}" for field, _, _, scale in NUMERIC_FIELDS]


def linguistic_features(contexts: Sequence[dict]) -> np.ndarray:
    """Phone-level input features for DNN acoustic/duration models: float32 (num_phones, 498).

    Columns (see :func:`feature_names`): the 0/1 answers to :func:`categorical_questions`
    (phone identities and classes of the quinphone, syllable vowel, stress), then each integer
    field of :data:`NUMERIC_FIELDS` as ``min(value / scale, 1)``, with 0 where the field does
    not apply (positions start at 1, so 0 is unambiguous). Deterministic: the same contexts give
    the same matrix.

    >>> ctx = phone_contexts(["sil", "k", "ae", "t", "sil"], [-1, 0, 0, 0, -1], [0, 0, 1, 0, 0])
    >>> x = linguistic_features(ctx)
    >>> x.shape, x.dtype, float(x.min()), float(x.max())
    ((5, 498), dtype('float32'), 0.0, 1.0)
    >>> int(x[2, feature_names().index("C-Phone_ae")]), float(x[2, feature_names().index("phone_fw/8")])
    (1, 0.25)
    """
    contexts = list(contexts)
    columns = _Columns(contexts)
    cats = categorical_questions()
    # column-major while filling column by column (much faster), row-major on return
    out = np.zeros((len(contexts), len(cats) + len(NUMERIC_FIELDS)), dtype=np.float32, order="F")
    for j, q in enumerate(cats):
        out[:, j] = q.answer(columns)
    for k, (field, _, _, scale) in enumerate(NUMERIC_FIELDS):
        v = np.nan_to_num(columns.numeric(field), nan=0.0)
        out[:, len(cats) + k] = np.minimum(v / scale, 1.0)
    return np.ascontiguousarray(out)


#: Names of the columns :func:`frame_features` appends.
FRAME_FEATURE_NAMES = ("frame_fraction_elapsed", "frames_remaining/scale", "phone_duration/scale")


def frame_features(phone_features: np.ndarray, durations_in_frames: Sequence[int],
                   duration_scale: float = 50.0) -> np.ndarray:
    """Frame-level features: each phone's row repeated for its frames plus 3 position columns.

    For frame ``i`` (0-based) of a phone lasting ``n`` frames the appended columns are
    (Zen et al. 2013; Merlin's frame position features):

    * ``(i + 0.5) / n``: fraction of the phone elapsed at the frame centre, in (0, 1);
    * ``min((n - 1 - i) / duration_scale, 1)``: frames still to come in the phone;
    * ``min(n / duration_scale, 1)``: the phone's duration.

    ``duration_scale`` (default 50 frames = 250 ms at a 5 ms hop) maps frame counts to [0, 1].
    Phones of 0 frames contribute no rows. Output: float32 (sum(durations), D + 3).

    >>> x = frame_features(np.eye(2, dtype=np.float32), [2, 1], duration_scale=10)
    >>> x.shape
    (3, 5)
    >>> x.astype(float).round(2).tolist()
    [[1.0, 0.0, 0.25, 0.1, 0.2], [1.0, 0.0, 0.75, 0.0, 0.2], [0.0, 1.0, 0.5, 0.0, 0.1]]
    """
    phone_features = np.asarray(phone_features)
    if phone_features.ndim != 2:
        raise ValueError(f"phone_features must be 2-D (num_phones, D), got shape {phone_features.shape}")
    durations = np.asarray(durations_in_frames)
    if durations.ndim != 1 or len(durations) != len(phone_features):
        raise ValueError(f"need one duration per phone: {len(phone_features)} phones, durations shape {durations.shape}")
    if not np.issubdtype(durations.dtype, np.integer):
        if not np.all(np.equal(np.mod(durations, 1), 0)):
            raise ValueError("durations must be whole numbers of frames (round them first)")
        durations = durations.astype(np.int64)
    if np.any(durations < 0):
        raise ValueError("durations must be >= 0")
    if duration_scale <= 0:
        raise ValueError("duration_scale must be > 0")
    total = int(durations.sum())
    rows = np.repeat(np.arange(len(durations)), durations)
    starts = np.repeat(np.cumsum(durations) - durations, durations)
    n = durations[rows].astype(np.float64)
    i = np.arange(total) - starts
    extra = np.stack([(i + 0.5) / n,
                      np.minimum((n - 1 - i) / duration_scale, 1.0),
                      np.minimum(n / duration_scale, 1.0)], axis=1) if total else np.zeros((0, 3))
    return np.concatenate([phone_features[rows].astype(np.float32), extra.astype(np.float32)], axis=1)
