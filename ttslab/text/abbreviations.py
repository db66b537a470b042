"""Abbreviations, acronyms and units: the tables of short written forms and the passes that expand them.

:func:`expand_abbreviations` reads "Mr." as "mister" (from :data:`ABBREVIATIONS`) and decides the
ambiguous "St." (saint/street), "Dr." (doctor/drive) and "No." (number) from their neighbours;
:func:`spell_acronyms` spells all-caps words letter by letter ("FBI" -> "f b i") unless they are
read as words (:data:`WORD_ACRONYMS`) or the whole text is shouted; :func:`expand_units` reads a
unit symbol of :data:`UNITS` after a number ("2.5kg" -> "two point five kilograms"). All three are
passes of :func:`ttslab.text.normalize.normalize_text`.

>>> spell_acronyms(expand_abbreviations("Mr. Jones of the FBI lives on Main St."))
'mister Jones of the f b i lives on Main street.'
"""

from __future__ import annotations

import re

from ttslab.text.numbers import WRITTEN_NUMBER, number_to_words

#: Abbreviations that are always expanded the same way (case-sensitive; the period is part of it).
ABBREVIATIONS = {
    "Mr.": "mister", "Mrs.": "missus", "Ms.": "miz", "Prof.": "professor", "Jr.": "junior",
    "Sr.": "senior", "Ave.": "avenue", "Rd.": "road", "Blvd.": "boulevard", "Mt.": "mount",
    "Pl.": "place", "Ln.": "lane", "Ct.": "court", "Hwy.": "highway", "Pres.": "president",
    "Ft.": "fort", "Co.": "company", "Corp.": "corporation", "Inc.": "incorporated", "Ltd.": "limited",
    "Dept.": "department", "Univ.": "university", "Gov.": "governor", "Gen.": "general",
    "Capt.": "captain", "Sgt.": "sergeant", "Lt.": "lieutenant", "Col.": "colonel", "Rev.": "reverend",
    "Hon.": "honorable", "Fig.": "figure", "Vol.": "volume", "approx.": "approximately",
    "vs.": "versus", "etc.": "et cetera", "e.g.": "for example", "i.e.": "that is",
    "a.m.": "a m", "p.m.": "p m", "E.g.": "for example", "I.e.": "that is", "Etc.": "et cetera", "Vs.": "versus",
}
#: Abbreviations that never end a sentence (titles, "e.g." ...): their period is dropped when they are
#: expanded, and :func:`ttslab.text.normalize.split_sentences` does not split after them. The others
#: keep a period that also ends the sentence.
MID_SENTENCE_ABBREVIATIONS = {
    "Mr.", "Mrs.", "Ms.", "Prof.", "Mt.", "Ft.", "Gov.", "Gen.", "Capt.", "Sgt.", "Lt.", "Col.", "Rev.",
    "Hon.", "Fig.", "Vol.", "Pres.", "e.g.", "i.e.", "approx.", "vs.", "E.g.", "I.e.", "Vs.",
}
#: All-caps words read as words, not letter by letter.
WORD_ACRONYMS = frozenset({
    "NASA", "NATO", "UNESCO", "UNICEF", "NAFTA", "OPEC", "FIFA", "UEFA", "AIDS", "LASER", "RADAR",
    "SCUBA", "SONAR", "COVID", "PIN", "RAM", "ROM", "JPEG", "GIF", "ASAP", "IKEA", "LEGO", "SWAT",
    "CAPTCHA", "ASCII", "NASDAQ", "INTERPOL", "OK",
})
_SPECIAL_ACRONYMS = {"OK": "okay"}


def _word_before(text: str, start: int) -> tuple[str, bool]:
    """(previous token, whether it starts a sentence)."""
    m = re.search(r"(\S+)\s*$", text[:start])
    if not m:
        return "", True
    before = text[:m.start()].rstrip()
    return m.group(1), (not before or before[-1] in ".!?")


def _word_after(text: str, end: int) -> str:
    m = re.match(r"\s*([^\s]+)", text[end:])
    return m.group(1) if m else ""


def _is_name(token: str) -> bool:
    return bool(re.match(r"^[A-Z][a-z]", token))


def ends_sentence_after(text: str, end: int) -> bool:
    """Whether the sentence ends at position ``end``: only whitespace follows, or whitespace and then a
    capital letter or a quote. The passes use it to keep a period that is also the full stop.

    >>> text = "at 5 p.m. Then at 6 p.m. today"
    >>> ends_sentence_after(text, 9), ends_sentence_after(text, 24), ends_sentence_after(text, len(text))
    (True, False, True)
    """
    rest = text[end:]
    return not rest.strip() or bool(re.match(r"\s+[A-Z\"']", rest))


def expand_abbreviations(text: str) -> str:
    """Abbreviations of :data:`ABBREVIATIONS`, plus the context-dependent St., Dr. and No.

    ``St.`` is "saint" when a capitalized name follows and the word before is not a capitalized
    word inside the sentence (the street name of "Main St."); otherwise "street". ``Dr.`` is
    "drive" after a capitalized word when no name follows; otherwise "doctor". ``No.`` before a
    digit is "number". A period that also ends the sentence is kept.

    >>> expand_abbreviations("Dr. Smith met Mr. Jones on Main St. in St. Louis, e.g. today.")
    'doctor Smith met mister Jones on Main street in saint Louis, for example today.'
    >>> expand_abbreviations("Tickets #1 and No. 5, i.e. two. I.e. two.")
    'Tickets number 1 and number 5, that is two. that is two.'
    >>> expand_abbreviations("Visit St. Mary at 10 Baker St. Then turn onto Mulholland Dr.")
    'Visit saint Mary at 10 Baker street. Then turn onto Mulholland drive.'
    """

    def fixed(m):
        abbr = m.group(0)
        word = ABBREVIATIONS[abbr]
        keep_period = abbr not in MID_SENTENCE_ABBREVIATIONS and ends_sentence_after(text_ref[0], m.end())
        return word + ("." if keep_period else "")

    def saint_street(m):
        prev, initial = _word_before(text_ref[0], m.start())
        nxt = _word_after(text_ref[0], m.end())
        if _is_name(nxt) and not (_is_name(prev) and not initial):
            return "saint"
        return "street" + ("." if ends_sentence_after(text_ref[0], m.end()) else "")

    def doctor_drive(m):
        prev, _ = _word_before(text_ref[0], m.start())
        nxt = _word_after(text_ref[0], m.end())
        if _is_name(prev) and not _is_name(nxt):
            return "drive" + ("." if ends_sentence_after(text_ref[0], m.end()) else "")
        return "doctor"

    names = "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
    text_ref = [text]
    # each pass looks at the text as it was before that pass (contexts are read, not rewritten)
    text = re.sub(r"(?<![\w.])No\.\s*(?=\d)|#\s*(?=\d)", "number ", text)
    text_ref[0] = text
    text = re.sub(rf"(?<![\w.])(?:{names})(?!\w)", fixed, text)
    text_ref[0] = text
    text = re.sub(r"(?<![\w.])St\.(?!\w)", saint_street, text)
    text_ref[0] = text
    return re.sub(r"(?<![\w.])Dr\.(?!\w)", doctor_drive, text)


def spell_letters(word: str) -> str:
    """Spell a word letter by letter (lowercase letters separated by spaces).

    >>> spell_letters("FBI"), spell_letters("U.S.")
    ('f b i', 'u s')
    """
    return " ".join(ch.lower() for ch in word if ch.isalpha())


def _is_shouted(text: str) -> bool:
    words = re.findall(r"[A-Za-z]{2,}", text)
    caps = [w for w in words if w.isupper()]
    return len(caps) >= 3 and len(caps) >= 0.6 * len(words)


def spell_acronyms(text: str) -> str:
    """Spell all-caps words letter by letter, except :data:`WORD_ACRONYMS` and shouted text.

    Dotted acronyms ("U.S.A.") are spelled too; a plural/possessive "s" stays on the last letter.
    Text that is mostly capitals (three or more all-caps words making up 60% of the words) is
    shouting, not acronyms: its words are lowercased instead.

    >>> spell_acronyms("The FBI and NASA met the CEOs in the U.S. today, OK?")
    "The f b i and nasa met the c e o's in the u s today, okay?"
    >>> spell_acronyms("STOP SHOUTING AT ME")
    'stop shouting at me'
    """
    if _is_shouted(text):
        return re.sub(r"\b[A-Z]{2,}\b", lambda m: m.group(0).lower(), text)

    def repl(m):
        word, plural = m.group(1), m.group(2)
        if word in _SPECIAL_ACRONYMS:
            return _SPECIAL_ACRONYMS[word]
        if word in WORD_ACRONYMS:
            return word.lower() + (plural or "")
        return spell_letters(word) + ("'s" if plural else "")

    def dotted(m):
        return spell_letters(m.group(1)) + ("." if ends_sentence_after(m.string, m.end()) else "")

    text = re.sub(r"(?<![\w.])((?:[A-Z]\.){2,})", dotted, text)
    return re.sub(r"\b([A-Z]{2,})('?s)?\b", repl, text)


#: unit abbreviation (case-sensitive, after a number) -> (singular, plural)
UNITS = {
    "km": ("kilometer", "kilometers"), "m": ("meter", "meters"), "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
    "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"), "L": ("liter", "liters"), "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "kph": ("kilometer per hour", "kilometers per hour"),
    "mph": ("mile per hour", "miles per hour"),
    "ms": ("millisecond", "milliseconds"), "sec": ("second", "seconds"), "min": ("minute", "minutes"),
    "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"), "MHz": ("megahertz", "megahertz"),
    "GHz": ("gigahertz", "gigahertz"), "dB": ("decibel", "decibels"),
    "kB": ("kilobyte", "kilobytes"), "KB": ("kilobyte", "kilobytes"), "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"), "TB": ("terabyte", "terabytes"),
    "°C": ("degree celsius", "degrees celsius"), "°F": ("degree fahrenheit", "degrees fahrenheit"),
    "°": ("degree", "degrees"),
}


def expand_units(text: str) -> str:
    """Measurements: a number followed by a unit of :data:`UNITS` ("1 km", "2.5kg", "20 °C").

    >>> expand_units("Run 1 km, lift 2.5kg, cut 30 cm at 20 °C.")
    'Run one kilometer, lift two point five kilograms, cut thirty centimeters at twenty degrees celsius.'
    """
    names = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))

    def repl(m):
        one, many = UNITS[m.group(2)]
        number = m.group(1)
        return f"{number_to_words(number)} {one if number.replace(',', '') in ('1', '-1') else many}"

    return re.sub(rf"(?<![\w.])(-?(?:{WRITTEN_NUMBER}))\s?({names})(?![\w/])", repl, text)
