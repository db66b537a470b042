"""The fixed ttslab phone inventory, its IPA and its articulatory features.

Every phone label in the project (corpus segments, lexicon output, model inputs) is one of
:data:`PHONES`:

* :data:`ENGLISH_PHONES`: the 39 phones of ARPAbet (as in the CMU Pronouncing Dictionary),
  lowercase and without stress digits (stress is kept separately, 0/1/2 on vowels);
* :data:`EXTRA_PHONES`: 12 phones that other languages and accents need (Spanish, German, the
  US English flap ``dx``);
* :data:`SILENCES`: ``pau`` (a pause inside an utterance) and ``sil`` (leading/trailing silence).

Phone ids (for embedding tables) reserve **0 for padding** (:data:`PAD` = ``"<pad>"``), so
``phone_id(PHONES[i]) == i + 1`` and an embedding table needs ``NUM_PHONE_IDS = len(PHONES) + 1``
rows. The order of :data:`PHONES` is part of the on-disk format of trained models: only append.

>>> len(ENGLISH_PHONES), len(EXTRA_PHONES), len(PHONES), NUM_PHONE_IDS
(39, 12, 53, 54)
>>> phone_id("<pad>"), phone_id("aa"), ID_TO_PHONE[phone_id("sil")]
(0, 1, 'sil')
>>> features("iy")["height"], features("k")["place"], is_vowel("er")
('high', 'velar', True)
"""

from __future__ import annotations

import re
from typing import Iterable

#: ARPAbet-39, lowercase: 15 vowels (5 diphthongs) then 24 consonants.
ENGLISH_PHONES: tuple[str, ...] = (
    "aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw",
    "b", "ch", "d", "dh", "f", "g", "hh", "jh", "k", "l", "m", "n", "ng", "p", "r", "s", "sh",
    "t", "th", "v", "w", "y", "z", "zh",
)
#: Phones for other languages/accents (5 vowels, 7 consonants).
EXTRA_PHONES: tuple[str, ...] = ("a", "e", "o", "ue", "oe", "x", "cc", "rr", "dx", "ny", "ts", "pf")
#: ``pau``: pause inside an utterance (phrase break); ``sil``: leading/trailing silence.
SILENCES: tuple[str, ...] = ("pau", "sil")
#: The whole inventory in its fixed order (English, extras, silences).
PHONES: tuple[str, ...] = ENGLISH_PHONES + EXTRA_PHONES + SILENCES

#: Padding symbol; its id is 0 so that zero-padded id tensors need no special casing.
PAD = "<pad>"
PHONE_TO_ID: dict[str, int] = {PAD: 0, **{p: i + 1 for i, p in enumerate(PHONES)}}
ID_TO_PHONE: tuple[str, ...] = (PAD,) + PHONES
#: Rows an embedding table over phone ids needs (padding included).
NUM_PHONE_IDS = len(ID_TO_PHONE)

#: IPA for each phone. English values are General American; ``ah`` is written /ʌ/ (it is /ə/
#: when unstressed). Silences get ``‖`` (pau, a major break) and ``_`` (sil, not IPA).
IPA: dict[str, str] = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ay": "aɪ", "eh": "ɛ", "er": "ɝ",
    "ey": "eɪ", "ih": "ɪ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u",
    "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "f": "f", "g": "ɡ", "hh": "h", "jh": "dʒ", "k": "k",
    "l": "l", "m": "m", "n": "n", "ng": "ŋ", "p": "p", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t",
    "th": "θ", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
    "a": "a", "e": "e", "o": "o", "ue": "y", "oe": "ø", "x": "x", "cc": "ç", "rr": "r", "dx": "ɾ",
    "ny": "ɲ", "ts": "ts", "pf": "pf",
    "pau": "‖", "sil": "_",
}

HEIGHTS = ("high", "mid-high", "mid", "mid-low", "low")
BACKNESSES = ("front", "central", "back")
MANNERS = ("stop", "fricative", "affricate", "nasal", "liquid", "glide", "tap", "trill")
PLACES = ("bilabial", "labiodental", "dental", "alveolar", "postalveolar", "palatal", "velar", "glottal")

# Vowels: (height, backness, rounded, diphthong). Heights are the IPA chart's five levels
# close/close-mid/mid/open-mid/open; near-close (ɪ ʊ) counts as high and near-open (æ) as low.
# Diphthongs are described by their first element.
_VOWELS: dict[str, tuple[str, str, bool, bool]] = {
    "aa": ("low", "back", False, False),
    "ae": ("low", "front", False, False),
    "ah": ("mid-low", "central", False, False),
    "ao": ("mid-low", "back", True, False),
    "aw": ("low", "central", False, True),
    "ay": ("low", "central", False, True),
    "eh": ("mid-low", "front", False, False),
    "er": ("mid", "central", False, False),
    "ey": ("mid-high", "front", False, True),
    "ih": ("high", "front", False, False),
    "iy": ("high", "front", False, False),
    "ow": ("mid-high", "back", True, True),
    "oy": ("mid-low", "back", True, True),
    "uh": ("high", "back", True, False),
    "uw": ("high", "back", True, False),
    "a": ("low", "central", False, False),
    "e": ("mid-high", "front", False, False),
    "o": ("mid-high", "back", True, False),
    "ue": ("high", "front", True, False),
    "oe": ("mid-high", "front", True, False),
}
# Consonants: (manner, place, voiced). /w/ is labial-velar; it is filed under bilabial.
# /r/ (English approximant) and /l/ are "liquid"; /w/ and /j/ are "glide".
_CONSONANTS: dict[str, tuple[str, str, bool]] = {
    "b": ("stop", "bilabial", True), "ch": ("affricate", "postalveolar", False),
    "d": ("stop", "alveolar", True), "dh": ("fricative", "dental", True),
    "f": ("fricative", "labiodental", False), "g": ("stop", "velar", True),
    "hh": ("fricative", "glottal", False), "jh": ("affricate", "postalveolar", True),
    "k": ("stop", "velar", False), "l": ("liquid", "alveolar", True),
    "m": ("nasal", "bilabial", True), "n": ("nasal", "alveolar", True),
    "ng": ("nasal", "velar", True), "p": ("stop", "bilabial", False),
    "r": ("liquid", "alveolar", True), "s": ("fricative", "alveolar", False),
    "sh": ("fricative", "postalveolar", False), "t": ("stop", "alveolar", False),
    "th": ("fricative", "dental", False), "v": ("fricative", "labiodental", True),
    "w": ("glide", "bilabial", True), "y": ("glide", "palatal", True),
    "z": ("fricative", "alveolar", True), "zh": ("fricative", "postalveolar", True),
    "x": ("fricative", "velar", False), "cc": ("fricative", "palatal", False),
    "rr": ("trill", "alveolar", True), "dx": ("tap", "alveolar", True),
    "ny": ("nasal", "palatal", True), "ts": ("affricate", "alveolar", False),
    "pf": ("affricate", "labiodental", False),
}

_PHONE_SET = frozenset(PHONES)
_STRESS_SUFFIX = re.compile(r"^([A-Za-z]+)([012])$")


def _build_features() -> dict[str, dict]:
    table = {}
    for p in PHONES:
        f = {"phone": p, "ipa": IPA[p], "kind": None, "height": None, "backness": None, "rounded": None,
             "diphthong": None, "manner": None, "place": None, "voiced": None}
        if p in _VOWELS:
            h, b, r, d = _VOWELS[p]
            f.update(kind="vowel", height=h, backness=b, rounded=r, diphthong=d, voiced=True)
        elif p in _CONSONANTS:
            m, pl, v = _CONSONANTS[p]
            f.update(kind="consonant", manner=m, place=pl, voiced=v)
        else:
            f.update(kind="silence", voiced=False)
        table[p] = f
    return table


_FEATURES = _build_features()
VOWELS: tuple[str, ...] = tuple(p for p in PHONES if _FEATURES[p]["kind"] == "vowel")
CONSONANTS: tuple[str, ...] = tuple(p for p in PHONES if _FEATURES[p]["kind"] == "consonant")


def phone_id(phone: str) -> int:
    """Integer id of ``phone`` for embedding tables: ``PHONES.index(phone) + 1``; ``"<pad>"`` is 0.

    >>> phone_id("aa"), phone_id("zh"), phone_id("pf"), phone_id("sil")
    (1, 39, 51, 53)
    >>> phone_id("AA1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown phone(s) ['AA1'] ...
    """
    if isinstance(phone, str) and phone in PHONE_TO_ID:
        return PHONE_TO_ID[phone]
    validate_phones([phone])  # raises with the inventory in the message
    raise AssertionError("unreachable")


def is_vowel(phone: str) -> bool:
    """True for the 20 vowels (monophthongs and diphthongs) of the inventory.

    >>> is_vowel("ay"), is_vowel("ue"), is_vowel("y"), is_vowel("pau")
    (True, True, False, False)
    """
    return features(phone)["kind"] == "vowel"


def is_silence(phone: str) -> bool:
    """True for ``pau`` and ``sil``.

    >>> is_silence("pau"), is_silence("sil"), is_silence("s")
    (True, True, False)
    """
    return phone in SILENCES


def features(phone: str) -> dict:
    """Articulatory features of ``phone`` as a new dict.

    Keys: ``phone, ipa, kind`` (vowel/consonant/silence); vowels fill ``height`` (high, mid-high,
    mid, mid-low, low), ``backness`` (front, central, back), ``rounded``, ``diphthong``;
    consonants fill ``manner`` (stop, fricative, affricate, nasal, liquid, glide, tap, trill) and
    ``place`` (bilabial ... glottal). ``voiced`` is True for vowels and voiced consonants, False
    for voiceless consonants and silences. Keys that do not apply are None.

    >>> f = features("ow")
    >>> f["kind"], f["height"], f["backness"], f["rounded"], f["diphthong"], f["manner"]
    ('vowel', 'mid-high', 'back', True, True, None)
    >>> f = features("zh")
    >>> f["kind"], f["manner"], f["place"], f["voiced"], f["ipa"]
    ('consonant', 'fricative', 'postalveolar', True, 'ʒ')
    """
    if isinstance(phone, str) and phone in _FEATURES:
        return dict(_FEATURES[phone])
    validate_phones([phone])  # raises with the inventory in the message
    raise AssertionError("unreachable")


def split_stress(symbol: str) -> tuple[str, int]:
    """Split an ARPAbet symbol with an optional stress digit into (lowercase phone, stress).

    Accepts CMUdict style (``"AH0"``) as well as lowercase (``"ah1"``); no digit means stress 0.
    The phone is not validated here.

    >>> split_stress("AH0"), split_stress("ey1"), split_stress("K")
    (('ah', 0), ('ey', 1), ('k', 0))
    """
    m = _STRESS_SUFFIX.match(symbol)
    if m:
        return m.group(1).lower(), int(m.group(2))
    return symbol.lower(), 0


def validate_phones(phones: Iterable[str]) -> list[str]:
    """Return ``phones`` as a list, or raise ValueError naming every symbol not in :data:`PHONES`.

    >>> validate_phones(["k", "ae", "t"])
    ['k', 'ae', 't']
    >>> validate_phones(["k", "AE1", "t", "q"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown phone(s) ['AE1', 'q'] ...
    """
    if isinstance(phones, str):
        raise TypeError("validate_phones expects a sequence of phone symbols, not one string; "
                        "use text.split() for a space-separated phone string")
    phones = list(phones)
    unknown = list(dict.fromkeys(p for p in phones if not (isinstance(p, str) and p in _PHONE_SET)))
    if unknown:
        hints = []
        for p in unknown:
            if isinstance(p, str):
                base, _ = split_stress(p)
                if base != p and base in _PHONE_SET:
                    hints.append(f"{p!r} -> {base!r}")
        hint = ("; strip stress digits and lowercase (" + ", ".join(hints) + "), stress is kept separately"
                if hints else "")
        raise ValueError(
            f"unknown phone(s) {unknown} (positions {[i for i, p in enumerate(phones) if p in unknown][:20]})"
            f"{hint}. The inventory is ttslab.text.phoneset.PHONES: {' '.join(PHONES)} "
            "(see inventory_table())")
    return phones


def phone_classes() -> dict[str, frozenset[str]]:
    """Named phone classes derived from :func:`features`, in a fixed order (for questions/features).

    Classes: the three kinds; each vowel height and backness; Rounded and Diphthong vowels; each
    consonant manner and place; Voiced (vowels + voiced consonants), Voiced_Consonant,
    Unvoiced_Consonant; and the groupings Obstruent (stop/fricative/affricate),
    Sonorant_Consonant (nasal/liquid/glide/tap/trill), Labial, Coronal (dental to postalveolar)
    and Dorsal (palatal, velar).

    >>> c = phone_classes()
    >>> len(c), sorted(c["Nasal"]), sorted(c["Affricate"])
    (37, ['m', 'n', 'ng', 'ny'], ['ch', 'jh', 'pf', 'ts'])
    >>> sorted(c["Silence"]), "w" in c["Labial"], "hh" in c["Voiced"]
    (['pau', 'sil'], True, False)
    """
    F = _FEATURES

    def members(pred) -> frozenset[str]:
        return frozenset(p for p in PHONES if pred(F[p]))

    def title(s: str) -> str:
        return s.replace("-", "_").title()

    out: dict[str, frozenset[str]] = {}
    for kind in ("vowel", "consonant", "silence"):
        out[kind.title()] = members(lambda f, k=kind: f["kind"] == k)
    for h in HEIGHTS:
        out[title(h)] = members(lambda f, h=h: f["height"] == h)
    for b in BACKNESSES:
        out[b.title()] = members(lambda f, b=b: f["backness"] == b)
    out["Rounded"] = members(lambda f: f["rounded"] is True)
    out["Diphthong"] = members(lambda f: f["diphthong"] is True)
    for m in MANNERS:
        out[m.title()] = members(lambda f, m=m: f["manner"] == m)
    for pl in PLACES:
        out[pl.title()] = members(lambda f, pl=pl: f["place"] == pl)
    out["Voiced"] = members(lambda f: f["voiced"] is True)
    out["Voiced_Consonant"] = members(lambda f: f["kind"] == "consonant" and f["voiced"])
    out["Unvoiced_Consonant"] = members(lambda f: f["kind"] == "consonant" and not f["voiced"])
    out["Obstruent"] = members(lambda f: f["manner"] in ("stop", "fricative", "affricate"))
    out["Sonorant_Consonant"] = members(lambda f: f["manner"] in ("nasal", "liquid", "glide", "tap", "trill"))
    out["Labial"] = members(lambda f: f["place"] in ("bilabial", "labiodental"))
    out["Coronal"] = members(lambda f: f["place"] in ("dental", "alveolar", "postalveolar"))
    out["Dorsal"] = members(lambda f: f["place"] in ("palatal", "velar"))
    return out


def inventory_table() -> str:
    """The inventory as a Markdown table (id, phone, IPA, kind, features) for docs and notebooks.

    >>> lines = inventory_table().splitlines()
    >>> lines[0]
    '| id | phone | IPA | kind | features |'
    >>> lines[2]
    '| 1 | aa | ɑ | vowel | low back unrounded |'
    >>> len(lines) == 2 + len(PHONES)
    True
    """
    rows = ["| id | phone | IPA | kind | features |", "|---:|---|---|---|---|"]
    for p in PHONES:
        f = _FEATURES[p]
        if f["kind"] == "vowel":
            desc = [f["height"], f["backness"], "rounded" if f["rounded"] else "unrounded"]
            if f["diphthong"]:
                desc.append("diphthong")
        elif f["kind"] == "consonant":
            desc = ["voiced" if f["voiced"] else "voiceless", f["place"], f["manner"]]
        else:
            desc = ["pause inside an utterance" if p == "pau" else "leading/trailing silence"]
        rows.append(f"| {PHONE_TO_ID[p]} | {p} | {f['ipa']} | {f['kind']} | {' '.join(desc)} |")
    return "\n".join(rows)
