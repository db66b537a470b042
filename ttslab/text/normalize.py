"""English text normalization for TTS: turn written text into the words a reader would say.

:func:`normalize_text` runs a fixed chain of small passes (each usable on its own)::

    check characters -> currency -> dates -> exponents -> ranges -> times -> percentages -> units -> ordinals
    -> fractions -> abbreviations -> decades -> letters|digits -> acronyms -> numbers -> cleanup

The words for a number, an amount, a time or a date come from :mod:`ttslab.text.numbers`; the
abbreviation, acronym and unit tables and their passes live in :mod:`ttslab.text.abbreviations`.
Both are re-exported here, so ``from ttslab.text.normalize import number_to_words`` works.

Conventions (US English, chosen so that the CMU dictionary has every output word):

* Numbers are written as separate words without "and" or hyphens: 121 -> "one hundred twenty one".
  Integers are read up to the trillions; longer digit strings are read digit by digit, and so are
  strings with a leading zero ("007" -> "zero zero seven").
* Four-digit integers from 1000 to 2099 without a comma are read as years ("1984" -> "nineteen
  eighty four"); write "1,984" for the cardinal.
* Numeric dates are month/day/year by default (``date_order="mdy"``, US); pass ``"dmy"`` for
  day/month/year. ``5/3/2021`` is then "may third, twenty twenty one" (mdy) or "march fifth, ..."
  (dmy). ISO dates (2021-03-05) are always year-month-day. Two-part ``a/b`` is a fraction.
  Numbers that look like a date but are not one (month 0 or 13, day 0, "2/30", "2/29" outside a
  leap year) are read as the numbers they are, with the separator spoken: "3/0/2020" -> "three
  slash zero slash twenty twenty" (a reader sees a typo or a code, not a fraction or a date).
* A minus sign before or after a currency symbol is read first: "-$5" and "$-5" -> "minus five
  dollars", "-$0.50" -> "minus fifty cents".
* Exponent notation is read as a power of ten: "1e-5" -> "one times ten to the minus five",
  "6.02e23" -> "six point zero two times ten to the twenty three".
* ``St.`` is "saint" before a capitalized name unless it follows a name or a number (then
  "street"); ``Dr.`` is "drive" after a capitalized word when no name follows, else "doctor".
* Words of two or more capital letters are spelled letter by letter ("FBI" -> "f b i") unless they
  are in :data:`WORD_ACRONYMS` (NASA ...) or the whole text is shouted (mostly capitals).
* Sentence punctuation ``. , ; : ? !`` is kept (a phrase break for later stages); quotes,
  brackets and other symbols are removed or spoken (``&`` -> "and", ``%`` -> "percent" ...).

Errors are ValueError subclasses: :class:`EmptyTextError` (nothing to speak),
:class:`TextTooLongError` (over :data:`MAX_CHARS`; use :func:`split_sentences`) and
:class:`UnknownCharacterError` (emoji, control characters, non-Latin scripts ...).

>>> normalize_text("Dr. Smith paid $5.50 for 3 apples on March 5, 2021.")
'doctor smith paid five dollars and fifty cents for three apples on march fifth, twenty twenty one.'
"""

from __future__ import annotations

import re
import unicodedata

# Imported for the passes, and re-exported (a name that moved is still importable from here).
from ttslab.text.abbreviations import (
    ABBREVIATIONS,
    MID_SENTENCE_ABBREVIATIONS,
    UNITS,
    WORD_ACRONYMS,
    ends_sentence_after,
    expand_abbreviations,
    expand_units,
    spell_acronyms,
    spell_letters,
)
from ttslab.text.numbers import (
    CURRENCIES,
    MAX_CARDINAL_DIGITS,
    MONTHS,
    WRITTEN_NUMBER,
    currency_to_words,
    date_to_words,
    digits_to_words,
    fraction_to_words,
    number_to_words,
    ordinal_to_words,
    scientific_to_words,
    time_to_words,
    year_to_words,
)

#: Longest text :func:`normalize_text` accepts; longer text must be split into sentences first.
MAX_CHARS = 5000


class EmptyTextError(ValueError):
    """The text is empty or has nothing speakable (only whitespace/punctuation/symbols)."""


class TextTooLongError(ValueError):
    """The text is longer than :data:`MAX_CHARS`; split it with :func:`split_sentences`."""


class UnknownCharacterError(ValueError):
    """The text has characters that cannot be spoken; ``.characters`` is a list of (char, position)."""

    def __init__(self, message: str, characters: list[tuple[str, int]]):
        super().__init__(message)
        self.characters = characters


# ----------------------------------------------------------------------------------------------
# Currency, times, dates
# ----------------------------------------------------------------------------------------------

_SCALE_WORDS = "thousand|million|billion|trillion"
_MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)}


def _is_date(month: int, day: int, year: int | None = None) -> bool:
    """Whether ``day`` exists in ``month`` (of ``year``; without a year February 29th is allowed).

    A two-digit year is its own leap-year test ("24" like 2024: ``year % 4`` decides below 100).

    >>> _is_date(2, 29, 2024), _is_date(2, 29, 2021), _is_date(2, 29), _is_date(4, 31), _is_date(0, 5)
    (True, False, True, False, False)
    """
    import calendar

    if not 1 <= month <= 12:
        return False
    last = calendar.monthrange(2000 if year is None else year, month)[1]  # 2000 is a leap year
    return 1 <= day <= last


def _two_digit_year(y: str) -> str:
    return f"oh {digits_to_words(y[1])}" if len(y) == 2 and y[0] == "0" else year_to_words(int(y))


#: A minus sign: "-" or "−" at the start or after whitespace, a bracket, a quote or "=" ("x=-5"), so
#: that the hyphen in "a-5" or the range dash in "5-$3" is not read as "minus".
_SIGN = r"(?<![^\s(\[\"'=])[-−]"


#: Scale letters glued to money amounts ($1.2M, €2.5bn, $10K).
SCALE_ABBREVIATIONS = {"k": "thousand", "m": "million", "b": "billion", "bn": "billion", "tn": "trillion"}


def expand_currency(text: str) -> str:
    """Money amounts with a currency symbol before (``$5``) or after (``5€``) the number.

    >>> expand_currency("It costs $5.50, or £3, or 2€, or $1.2 billion.")
    'It costs five dollars and fifty cents, or three pounds, or two euros, or one point two billion dollars.'
    >>> expand_currency("$1.2M, €2.5bn and $10K")
    'one point two million dollars, two point five billion euros and ten thousand dollars'

    A minus sign before the symbol or between symbol and number is read:

    >>> expand_currency("-$0.50, $-0.5 and -5€")
    'minus fifty cents, minus zero point five dollars and minus five euros'
    """
    syms = re.escape("".join(CURRENCIES))
    lead = rf"({_SIGN})?([{syms}])\s?([-−])?"  # groups: sign before, symbol, sign after the symbol

    def sign(m) -> str:
        return "-" if m.group(1) or m.group(3) else ""

    def before(m):
        return currency_to_words(sign(m) + m.group(4), m.group(2), m.group(5))

    def after(m):
        return currency_to_words((m.group(1) or "") + m.group(2), m.group(4))

    def before_abbreviated(m):  # $1.2M, €2.5bn, $10K: a scale letter glued to the number
        return currency_to_words(sign(m) + m.group(4), m.group(2), SCALE_ABBREVIATIONS[m.group(5).lower()])

    text = re.sub(rf"{lead}({WRITTEN_NUMBER})(k|m|bn|b|tn)\b", before_abbreviated, text, flags=re.IGNORECASE)
    text = re.sub(rf"{lead}({WRITTEN_NUMBER})(?:\s+({_SCALE_WORDS})\b)?", before, text)
    return re.sub(rf"({_SIGN})?(?<![\w.])({WRITTEN_NUMBER})(\s?)([{syms}])", after, text)


def _final_period(m: re.Match) -> str:
    """"." when the match swallowed a period that also ends the sentence ("at 5 p.m. Then")."""
    return "." if m.group(0).endswith(".") and ends_sentence_after(m.string, m.end()) else ""


def expand_times(text: str) -> str:
    """Clock times ``h:mm`` with optional am/pm, and ``10 am``/``10pm``.

    >>> expand_times("Meet at 10:30 am or 7:05 P.M., not 9pm, at 14:00.")
    "Meet at ten thirty a m or seven oh five p m, not nine p m, at fourteen o'clock."
    >>> expand_times("Come at 9 p.m. Then leave at 11 pm.")
    'Come at nine p m. Then leave at eleven p m.'
    """
    ampm = r"([AaPp])\.?\s?[Mm]\b\.?"

    def hm(m):
        h, mi = int(m.group(1)), int(m.group(2))
        if h > 24 or mi > 59:
            return m.group(0)
        return time_to_words(h, mi, m.group(3) and m.group(3) + "m") + _final_period(m)

    def h_only(m):
        h = int(m.group(1))
        if not 1 <= h <= 12:
            return m.group(0)
        return time_to_words(h, 0, m.group(2) + "m") + _final_period(m)

    text = re.sub(rf"\b(\d{{1,2}}):(\d{{2}})\b(?:\s?{ampm})?", hm, text)
    return re.sub(rf"\b(\d{{1,2}})\s?{ampm}", h_only, text)


def expand_dates(text: str, date_order: str = "mdy") -> str:
    """Dates: "March 5, 2021", "5 March 2021", "Mar. 5th", "5/3/2021" and ISO "2021-03-05".

    ``date_order`` ("mdy" US default, or "dmy") says how to read numeric d/m/y dates. A numeric
    date that is not a date in that order (month 0 or over 12, day 0 or past the month's last day,
    February 29th outside a leap year) is read as its numbers with the separator spoken, since a
    reader would not invent a date for it; a month name with an impossible day keeps its number
    ("Feb 30" -> "february 30").

    >>> expand_dates("3/0/2020, 2/30/21, 2021-13-05 and 2/29/2024")
    '3 slash 0 slash 2020, 2 slash 30 slash 21, 2021 dash 13 dash 05 and february twenty ninth, twenty twenty four'

    >>> expand_dates("On March 5, 2021 and 4 July 1776.")
    'On march fifth, twenty twenty one and the fourth of july seventeen seventy six.'
    >>> expand_dates("The 21st of June.")
    'The twenty first of june.'
    >>> expand_dates("5/3/2021"), expand_dates("5/3/2021", "dmy"), expand_dates("2021-03-05")
    ('may third, twenty twenty one', 'march fifth, twenty twenty one', 'march fifth, twenty twenty one')
    """
    if date_order not in ("mdy", "dmy"):
        raise ValueError(f"date_order must be 'mdy' or 'dmy', got {date_order!r}")
    month_re = (r"(?:(?:January|February|March|April|May|June|July|August|September|October|November|December)\b"
                r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\b\.?)")

    def month_num(name: str) -> int:
        return _MONTH_ABBR[name.rstrip(".").lower()[:3]]

    def iso(m):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not _is_date(mo, d, y):
            return " dash ".join(m.groups())
        return date_to_words(mo, d, y)

    def numeric(m):
        a, b, y = int(m.group(1)), int(m.group(2)), m.group(3)
        mo, d = (a, b) if date_order == "mdy" else (b, a)
        if not _is_date(mo, d, int(y)):
            return " slash ".join(m.groups())
        return f"{date_to_words(mo, d)}, {_two_digit_year(y) if len(y) == 2 else year_to_words(int(y))}"

    def month_day(m):
        d = int(m.group(2))
        y = int(m.group(3)) if m.group(3) else None
        if not _is_date(month_num(m.group(1)), d, y):  # "Feb 30": the month is still named in full
            return MONTHS[month_num(m.group(1)) - 1] + m.group(0)[len(m.group(1)):]
        return date_to_words(month_num(m.group(1)), d, y)

    def day_month(m):
        d = int(m.group(1))
        y = int(m.group(3)) if m.group(3) else None
        if not _is_date(month_num(m.group(2)), d, y):  # "30 Feb": the month is still named in full
            whole, a, b = m.group(0), m.start(2) - m.start(), m.end(2) - m.start()
            return whole[:a] + MONTHS[month_num(m.group(2)) - 1] + whole[b:]
        words = date_to_words(month_num(m.group(2)), d, y, day_first=True)
        # "on the 21st of June" already has its article
        return words[4:] if re.search(r"\bthe\s+$", m.string[:m.start()], re.I) else words

    text = re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", iso, text)
    text = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b", numeric, text)
    text = re.sub(rf"\b({month_re})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?", month_day, text)
    text = re.sub(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({month_re})(?:,?\s+(\d{{4}})\b)?", day_month, text)
    return text


# ----------------------------------------------------------------------------------------------
# Percentages, ordinals, fractions, numbers
# ----------------------------------------------------------------------------------------------

def expand_percent(text: str) -> str:
    """Percentages.

    >>> expand_percent("Up 50% or -2.5 %.")
    'Up fifty percent or minus two point five percent.'
    """
    return re.sub(rf"(?<![\w.])(-?(?:{WRITTEN_NUMBER}))\s?%", lambda m: number_to_words(m.group(1)) + " percent", text)


def expand_ordinals(text: str) -> str:
    """Ordinals written with a suffix.

    >>> expand_ordinals("the 21st and 2nd and 100th time")
    'the twenty first and second and one hundredth time'
    """
    return re.sub(r"\b(\d{1,3}(?:,\d{3})+|\d+)(?:st|nd|rd|th)\b",
                  lambda m: ordinal_to_words(int(m.group(1).replace(",", ""))), text, flags=re.I)


def expand_fractions(text: str) -> str:
    """Fractions ``a/b`` of integers (dates were expanded before); ``a/0`` is no fraction, so its
    slash is spoken.

    >>> expand_fractions("add 1/2 cup and 3/4 spoon, not 3/0")
    'add one half cup and three quarters spoon, not 3 slash 0'
    """
    return re.sub(r"(?<![\w./])(\d+)/(\d+)(?![\w/])",
                  lambda m: (fraction_to_words(int(m.group(1)), int(m.group(2))) if int(m.group(2))
                             else f"{m.group(1)} slash {m.group(2)}"),
                  text)


def expand_scientific(text: str) -> str:
    """Numbers in exponent notation ("1e-5", "2.5E+3", "6.02e23"), read by :func:`scientific_to_words`.

    Runs before units and letter/digit splitting, which would otherwise read "1e-5" as "one e five".

    >>> expand_scientific("c is 3e8 m/s, eps=-1e-5 and N = 6.02E+23.")
    'c is three times ten to the eight m/s, eps=minus one times ten to the minus five and N = six point zero two times ten to the twenty three.'
    """
    def repl(m):
        return ("minus " if m.group(1) else "") + scientific_to_words(m.group(2), m.group(3))

    return re.sub(rf"({_SIGN})?(?<![\w.])(\d+(?:\.\d+)?|\.\d+)[eE]([-+−]?\d+)(?!\w|\.\d)", repl, text)


def split_letters_digits(text: str) -> str:
    """Put a space where letters and digits touch ("MP3" -> "MP 3"), after ordinals/units are read.

    >>> split_letters_digits("WW2 and 3D")
    'WW 2 and 3 D'
    """
    return re.sub(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)", " ", text)


def expand_ranges(text: str) -> str:
    """A dash between two numbers is "to" (ranges, scores).

    >>> expand_ranges("pages 10-12, 1990 – 1995")
    'pages 10 to 12, 1990 to 1995'
    """
    return re.sub(r"(?<=\d)\s?[-–]\s?(?=\d)", " to ", text)


def _plural_number_words(words: str) -> str:
    last = words.rsplit(" ", 1)[-1]
    plural = last[:-1] + "ies" if last.endswith("y") else last + ("es" if last.endswith("x") else "s")
    return words[: len(words) - len(last)] + plural


def expand_decades(text: str) -> str:
    """Decades and centuries written as plural years.

    >>> expand_decades("the 1990s, the 1800s and the '80s")
    'the nineteen nineties, the eighteen hundreds and the eighties'
    """
    text = re.sub(r"(?<![\w.])(\d{3}0)'?s\b", lambda m: _plural_number_words(year_to_words(int(m.group(1)))), text)
    return re.sub(r"(?<![\w.])'?([1-9]0)'?s\b", lambda m: _plural_number_words(number_to_words(m.group(1))), text)


def expand_numbers(text: str) -> str:
    """Remaining numbers: ranges "1990-1995" ("to"), years, cardinals, negatives, decimals.

    Four-digit integers 1000..2099 without a comma are years; leading zeros are read digit by
    digit; digits glued to letters are split ("3D" -> "three D"); decades are plural years ("the
    1990s", "the '80s"); dotted versions are read with "point" ("2.0.1").

    >>> expand_numbers("In 1984, 1,984 people paid -5 or 3.14 for item 007, pages 10-12, 3D.")
    'In nineteen eighty four, one thousand nine hundred eighty four people paid minus five or three point one four for item zero zero seven, pages ten to twelve, three D.'
    >>> expand_numbers("the 1990s and version 2.0.1")
    'the nineteen nineties and version two point zero point one'
    """

    def number(m: re.Match) -> str:
        sign, s = m.group(1), m.group(2)
        if "," not in s and "." not in s:
            if len(s) > 1 and s[0] == "0":
                return ("minus " if sign else "") + digits_to_words(s)
            if len(s) == 4 and 1000 <= int(s) <= 2099 and not sign:
                return year_to_words(int(s))
        return ("minus " if sign else "") + number_to_words(s)

    text = expand_ranges(text)
    text = expand_decades(text)
    text = re.sub(r"(?<![\w.])\d+(?:\.\d+){2,}(?![\w.]\w)",
                  lambda m: " point ".join(number_to_words(p) for p in m.group(0).split(".")), text)
    text = split_letters_digits(text)
    text = re.sub(rf"({_SIGN})?(?<![\w.])({WRITTEN_NUMBER})", number, text)  # _SIGN: not the hyphen of "a-5"
    # digits no rule above could read (e.g. "1.2.") are read one by one rather than dropped
    return re.sub(r"\d+", lambda m: " " + digits_to_words(m.group(0)) + " ", text)


# ----------------------------------------------------------------------------------------------
# Characters and cleanup
# ----------------------------------------------------------------------------------------------

# Non-ASCII characters we can read or safely rewrite.
_CHAR_MAP = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2033": '"',
    "\u2013": " - ", "\u2014": " - ", "\u2015": " - ", "\u2012": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-",
    "\u2026": "...", "\u00a1": "", "\u00bf": "", "\u00d7": " times ", "\u00f7": " divided by ",
    "\u00bd": " 1/2 ", "\u00bc": " 1/4 ", "\u00be": " 3/4 ", "\u00b2": " squared ", "\u00b3": " cubed ",
    "\u00a2": " cents ", "\u00a7": " section ", "\u00b1": " plus or minus ",
    "\u00df": "ss", "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE", "\u00f8": "o",
    "\u00d8": "O", "\u0142": "l", "\u0141": "L", "\u0111": "d", "\u0110": "D", "\u00f0": "d", "\u00fe": "th",
}
_KEEP = set("£€¥°")  # read later by the currency/unit passes
_IGNORABLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"}


def check_characters(text: str, on_unknown: str = "raise") -> str:
    """Map or drop every character normalization cannot read; raise or drop the rest.

    Readable: ASCII, whitespace, curly quotes/dashes/ellipsis, £ € ¥ ° and a few symbols, and
    Latin letters with diacritics (accents are stripped: "café" -> "cafe"). Zero-width
    characters and soft hyphens are dropped silently. Anything else (emoji, control characters,
    CJK, Cyrillic ...) raises :class:`UnknownCharacterError` naming each character and its
    position in ``text``, or is replaced by a space with ``on_unknown="drop"``.

    >>> check_characters("“Café” – naïve…")
    '"Cafe"  -  naive...'
    >>> check_characters("hi 🙂 there\\x07")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ttslab.text.normalize.UnknownCharacterError: cannot speak 2 character(s): '🙂' (U+1F642) at position 3, '\\x07' (U+0007) at position 10; ...
    >>> check_characters("hi 🙂 there", on_unknown="drop")
    'hi   there'
    """
    if on_unknown not in ("raise", "drop"):
        raise ValueError(f"on_unknown must be 'raise' or 'drop', got {on_unknown!r}")
    out, unknown = [], []
    for i, ch in enumerate(text):
        if ch in "\t\n\r" or " " <= ch <= "~":
            out.append(ch)
        elif ch in _CHAR_MAP:
            out.append(_CHAR_MAP[ch])
        elif ch in _KEEP or ch in CURRENCIES:
            out.append(ch)
        elif ch in _IGNORABLE:
            continue
        elif ch.isspace():
            out.append(" ")
        else:
            base = unicodedata.normalize("NFD", ch)[0]
            if base.isascii() and base.isalpha():
                out.append(base)
            else:
                unknown.append((ch, i))
                out.append(" ")
    if unknown and on_unknown == "raise":
        listed = ", ".join(f"{c!r} (U+{ord(c):04X}) at position {i}" for c, i in unknown[:20])
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise UnknownCharacterError(
            f"cannot speak {len(unknown)} character(s): {listed}{more}; remove them, or pass "
            "on_unknown='drop' to replace them by spaces (this normalizer reads English in Latin script)",
            unknown)
    return "".join(out)


_PUNCT_STRENGTH = "?!.;:,"


def _merge_punctuation(m: re.Match) -> str:
    marks = re.sub(r"\s", "", m.group(0))
    return min(marks, key=_PUNCT_STRENGTH.index)


def clean_text(text: str) -> str:
    """Final cleanup: speak or drop leftover symbols, keep ``. , ; : ? !`` and in-word apostrophes.

    Brackets become commas (a phrase break), hyphens and slashes between words become a space and
    "or", runs of punctuation keep the strongest mark (? ! . ; : ,), whitespace is collapsed.

    >>> clean_text('He said: "rock & roll (mostly)" -- well-known; he/she loved... right?!')
    'He said: rock and roll, mostly, well known; he or she loved. right?'
    """
    text = re.sub(r"(?<=[A-Za-z])/(?=[A-Za-z])", " or ", text)
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", " dot ", text)  # example.com
    text = text.replace("&", " and ").replace("@", " at ").replace("+", " plus ").replace("=", " equals ")
    text = re.sub(r"#(?=\s*\d)", " number ", text)
    text = text.replace("%", " percent ").replace("°", " degrees ")
    text = re.sub(r"[()\[\]{}]", ",", text)
    text = re.sub(r"\s-+\s|--+", ", ", text)  # a spaced or double dash is a phrase break
    # apostrophes survive only inside words (don't, o'clock); quotes and others go
    text = re.sub(r"(?<![A-Za-z])'|'(?![A-Za-z])", " ", text)
    text = re.sub(r"[^A-Za-z' .,;:?!\n\t]", " ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"(?:\s*[.,;:?!])+", _merge_punctuation, text)
    text = re.sub(r"^[\s.,;:?!]+", "", text)
    text = re.sub(r"([.,;:?!])(?=[A-Za-z])", r"\1 ", text)
    return text.strip()


# ----------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------

def normalize_text(text: str, *, lowercase: bool = True, on_unknown: str = "raise", date_order: str = "mdy") -> str:
    """Normalize English ``text`` for TTS (see the module docstring for the conventions).

    Raises :class:`TextTooLongError` over :data:`MAX_CHARS` characters, :class:`EmptyTextError`
    when nothing speakable remains, and :class:`UnknownCharacterError` for unreadable characters
    (``on_unknown="drop"`` replaces them by spaces instead).

    >>> normalize_text("On 5/3/2021 at 10:30 am, the FBI paid 50% of $1,000,000.")
    'on may third, twenty twenty one at ten thirty a m, the f b i paid fifty percent of one million dollars.'
    >>> normalize_text("It's the 21st century; Dr. Who lives at 221B Baker St.", lowercase=False)
    "It's the twenty first century; doctor Who lives at two hundred twenty one B Baker street."
    >>> normalize_text("?!...")
    Traceback (most recent call last):
    ...
    ttslab.text.normalize.EmptyTextError: nothing to speak in '?!...': the text is empty or only punctuation, symbols or whitespace
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise TextTooLongError(
            f"text has {len(text)} characters, more than MAX_CHARS={MAX_CHARS}; split it into sentences "
            "with ttslab.text.split_sentences(text) and normalize/synthesize them one by one")
    if not text.strip():
        raise EmptyTextError(f"nothing to speak in {text!r}: the text is empty or only whitespace")
    out = check_characters(text, on_unknown)
    out = re.sub(r"[ \t\r\n]+", " ", out).strip()
    out = expand_currency(out)
    out = expand_dates(out, date_order)
    out = expand_scientific(out)
    out = expand_ranges(out)
    out = expand_times(out)
    out = expand_percent(out)
    out = expand_units(out)
    out = expand_ordinals(out)
    out = expand_fractions(out)
    out = expand_abbreviations(out)
    out = expand_decades(out)
    out = split_letters_digits(out)
    out = spell_acronyms(out)
    out = expand_numbers(out)
    out = clean_text(out)
    if lowercase:
        out = out.lower()
    if not re.search(r"[A-Za-z]", out):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise EmptyTextError(f"nothing to speak in {shown!r}: the text is empty or only punctuation, "
                             "symbols or whitespace")
    return out


# ----------------------------------------------------------------------------------------------
# Sentence splitting
# ----------------------------------------------------------------------------------------------

_NO_SPLIT_AFTER = ({a.rstrip(".").lower() for a in ABBREVIATIONS if a in MID_SENTENCE_ABBREVIATIONS}
                   | {"dr", "st", "no", "mt"})


def split_sentences(text: str, max_chars: int = MAX_CHARS) -> list[str]:
    """Split ``text`` into sentences (at ``. ! ?`` before a capital/digit/quote, and blank lines).

    A period after a title abbreviation (Mr., Dr., St., e.g. ...) or a single initial ("J.")
    does not end a sentence. A sentence still longer than ``max_chars`` is cut at the last
    whitespace before the limit, so every piece can be passed to :func:`normalize_text`.

    >>> split_sentences("Hello there! Dr. Smith met J. Doe at 5 p.m. today. Is it 3.5? Yes.")
    ['Hello there!', 'Dr. Smith met J. Doe at 5 p.m. today.', 'Is it 3.5?', 'Yes.']
    >>> [len(s) for s in split_sentences("word " * 10, max_chars=12)]
    [9, 9, 9, 9, 9]
    """
    if max_chars < 1:
        raise ValueError("max_chars must be >= 1")
    pieces: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        start = 0
        for m in re.finditer(r"[.!?]+[\"')\]]*(?=\s+[A-Z0-9\"'(\[]|\s*$)", block):
            if m.group(0).startswith("."):
                prev = re.search(r"(\S+)$", block[start:m.start()])
                token = prev.group(1).lower() if prev else ""
                if token in _NO_SPLIT_AFTER or re.fullmatch(r"[a-z]", token) and prev.group(1).isupper():
                    continue
            pieces.append(block[start:m.end()])
            start = m.end()
        pieces.append(block[start:])
    sentences = [" ".join(p.split()) for p in pieces]
    out = []
    for s in sentences:
        while len(s) > max_chars:
            cut = s.rfind(" ", 0, max_chars + 1)
            cut = cut if cut > 0 else max_chars
            out.append(s[:cut].strip())
            s = s[cut:].strip()
        if s:
            out.append(s)
    return out
