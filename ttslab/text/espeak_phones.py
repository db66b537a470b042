"""eSpeak NG phone names -> the fixed ttslab phone inventory (:mod:`ttslab.text.phoneset`).

eSpeak names phones with ASCII mnemonics of its own (``D`` for /ð/, ``aI`` for /aɪ/, ``3`` for the
r-coloured schwa ...), and each accent has its own phoneme table. The built-in corpus maps every
phone onto one inventory: ARPAbet for English, a few extra symbols for other languages, and
``pau``/``sil`` for silence. The mapping is many-to-one and deliberately lossy where ARPAbet has
no symbol, e.g. the centring diphthongs of British English (``e@`` in *square*, ``i@`` in *near*,
``U@`` in *cure*) map to their first element (``eh``, ``ih``, ``uh``) and the r-less *start* and
*north* vowels (``A@``, ``O@``) to ``aa`` and ``ao``.

Markers that are not sounds (``_|``, ``;`` and zero-length events) are dropped; the German glottal
onset ``_!`` before a vowel-initial word is merged into that vowel. An eSpeak phone missing from
these tables is an error, so a new voice or language cannot silently produce unknown labels.
"""

from __future__ import annotations

#: eSpeak pauses (``_:`` a clause pause, ``_`` the end of a clause).
PAUSES = frozenset({"_", "_:", "__"})
#: Events that mark something without being a sound of their own: dropped.
MARKERS = frozenset({"_|", ";", "_^_", "_#"})
#: Events merged into the following phone (a glottal onset before a vowel).
MERGE_WITH_NEXT = frozenset({"_!"})

ENGLISH = {
    # consonants
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "f": "f", "v": "v",
    "T": "th", "D": "dh", "s": "s", "z": "z", "S": "sh", "Z": "zh", "h": "hh", "m": "m", "n": "n",
    "N": "ng", "l": "l", "r": "r", "w": "w", "j": "y", "tS": "ch", "dZ": "jh",
    "t#": "dx", "d#": "d", "t[": "t", "d[": "d", "t2": "t", "d2": "d", "n-": "n", "m-": "m", "l-": "l", "l/": "l", "l/2": "l",
    "r-": "r", "w#": "w", "z#": "z", "z/2": "z", "x": "x", "?": "t", "C": "hh", "j2": "y", "h#": "hh",
    # vowels
    "@": "ah", "@2": "ah", "@5": "ah", "@-": "ah", "V": "ah", "@L": "l", "a#": "ah",
    "3": "er", "3:": "er", "@r": "er", "VR": "er",
    "a": "ae", "aa": "ae", "a2": "ae",
    "A:": "aa", "A#": "aa", "A@": "aa", "0": "aa", "0#": "aa", "A": "aa",
    "O:": "ao", "O": "ao", "O2": "ao", "O@": "ao", "o@": "ao", "Q": "ao",
    "aI": "ay", "aI2": "ay", "aI@": "ay", "aI3": "ay", "aU": "aw", "aU@": "aw", "OI": "oy",
    "eI": "ey", "e": "ey", "E": "eh", "E2": "eh", "E3": "eh", "e@": "eh",
    "I": "ih", "I2": "ih", "I#": "ih", "i@": "ih", "i@3": "ih", "i": "iy", "i:": "iy", "IR": "ih",
    "oU": "ow", "oU#": "ow", "o": "ow", "o:": "ow", "@U": "ow",
    "U": "uh", "U@": "uh", "u:": "uw", "u": "uw", "U:": "uw",
}

SPANISH = {
    "p": "p", "b": "b", "B": "b", "t": "t", "d": "d", "D": "dh", "k": "k", "g": "g", "Q": "g",
    "f": "f", "T": "th", "s": "s", "z": "z", "x": "x", "tS": "ch", "J": "y", "J^": "y", "j": "y",
    "m": "m", "n": "n", "N": "ng", "n^": "ny", "l": "l", "l^": "y", "r": "dx", "**": "dx", "R": "rr", "R2": "rr",
    "w": "w", "aI": "ay", "eI": "ey", "eU": "e", "oI": "oy", "aU": "aw",
    "a": "a", "e": "e", "E": "e", "i": "iy", "o": "o", "O": "o", "u": "uw",
}

GERMAN = {
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "f": "f", "v": "v", "s": "s", "z": "z",
    "S": "sh", "Z": "zh", "C": "cc", "x": "x", "h": "hh", "j": "y", "m": "m", "n": "n", "N": "ng",
    "l": "l", "r": "r", "R": "r", "ts": "ts", "pF": "pf", "tS": "ch", "dZ": "jh",
    "a": "a", "a:": "a", "A:": "a", "A": "a", "UR": "uh", "IR": "ih", "OR": "ao", "aR": "a", "e:": "e", "E": "eh", "E:": "eh", "I": "ih", "i:": "iy", "i": "iy",
    "O": "ao", "o:": "o", "U": "uh", "u:": "uw", "y": "ue", "y:": "ue", "Y": "ue", "Y:": "oe", "W": "oe",
    "2:": "oe", "9": "oe", "@": "ah", "3": "er", "6": "er", "aI": "ay", "aU": "aw", "OY": "oy", "@L": "l", "@N": "n",
}

TABLES = {"en": ENGLISH, "es": SPANISH, "de": GERMAN}


def split_stress(name: str) -> tuple[str, int]:
    """Strip eSpeak's stress prefix: ``'`` primary (1), ``,`` secondary (2).

    >>> split_stress("'aI"), split_stress(",oU"), split_stress("t")
    (('aI', 1), ('oU', 2), ('t', 0))
    """
    stress = 0
    while name[:1] in ("'", ","):
        stress = max(stress, 1 if name[0] == "'" else 2)
        name = name[1:]
    return name, stress


def to_inventory(name: str, language: str) -> str:
    """Map one eSpeak phone (stress already stripped) of ``language`` to the inventory.

    >>> to_inventory("D", "en"), to_inventory("aI", "en"), to_inventory("R2", "es")
    ('dh', 'ay', 'rr')
    """
    if name in PAUSES:
        return "pau"
    try:
        table = TABLES[language]
    except KeyError:
        raise ValueError(f"no eSpeak phone table for language {language!r}; known: {sorted(TABLES)}") from None
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"eSpeak phone {name!r} ({language}) has no entry in ttslab.text.espeak_phones; "
            f"add it to the {language} table with the nearest inventory phone"
        ) from None
