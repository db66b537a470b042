"""Reading numbers as English words: cardinals, digits, ordinals, years, fractions, exponents,
money, clock times and dates.

These functions take a number (or its digits) that the caller has already found and return the
words a reader would say; finding numbers in running text is the job of the passes of
:mod:`ttslab.text.normalize`. Conventions (US English, chosen so that the CMU dictionary has every
output word): no "and" and no hyphens ("one hundred twenty one"), integers up to the trillions
(longer digit strings are read digit by digit), years in pairs of digits ("nineteen eighty four").

>>> number_to_words(121), ordinal_to_words(21), year_to_words(1984)
('one hundred twenty one', 'twenty first', 'nineteen eighty four')
>>> currency_to_words("5.50"), time_to_words(10, 30, "am"), date_to_words(3, 5, 2021)
('five dollars and fifty cents', 'ten thirty a m', 'march fifth, twenty twenty one')
"""

from __future__ import annotations

import re

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
#: A number as written in running text (a regular expression): "1,234.5", "42", ".5"; no sign.
WRITTEN_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
#: Integers with this many digits or more are read digit by digit.
MAX_CARDINAL_DIGITS = 16
_ORDINAL_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}


def _under_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n:
        words.append(_ONES[n])
    return words


def digits_to_words(digits: str) -> str:
    """Read a digit string one digit at a time.

    >>> digits_to_words("007")
    'zero zero seven'
    """
    if not digits.isdigit():
        raise ValueError(f"digits_to_words expects only digits, got {digits!r}")
    return " ".join(_ONES[int(d)] for d in digits)


def number_to_words(number: int | float | str) -> str:
    """Cardinal number in words: integers (to the trillions), negatives, decimals, "1,234" commas.

    Decimals read the fraction digit by digit ("3.14" -> "three point one four"); integers of
    :data:`MAX_CARDINAL_DIGITS` digits or more are read digit by digit.

    >>> number_to_words(0), number_to_words(15), number_to_words(121)
    ('zero', 'fifteen', 'one hundred twenty one')
    >>> number_to_words(2_000_340_007)
    'two billion three hundred forty thousand seven'
    >>> number_to_words("-1,250"), number_to_words("3.14"), number_to_words(".5")
    ('minus one thousand two hundred fifty', 'three point one four', 'point five')

    Exponent notation (strings, or floats Python writes that way) is read by
    :func:`scientific_to_words`:

    >>> number_to_words("2.5E+3"), number_to_words(1e-05)
    ('two point five times ten to the three', 'one times ten to the minus five')
    """
    if isinstance(number, bool):
        raise TypeError("number_to_words got a bool")
    if isinstance(number, float):
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"cannot read {number!r} as a number")
        number = repr(number)
    s = str(number).strip().replace(",", "")
    if s.startswith(("-", "−")):
        return "minus " + number_to_words(s[1:])
    exp = re.fullmatch(r"(\d+(?:\.\d+)?|\.\d+)[eE]([-+−]?\d+)", s)
    if exp:
        return scientific_to_words(exp.group(1), exp.group(2))
    m = re.fullmatch(r"(\d*)(?:\.(\d+))?", s)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"not a number: {number!r}")
    int_part, frac_part = m.group(1), m.group(2)
    words = []
    if int_part:
        if len(int_part) >= MAX_CARDINAL_DIGITS:
            words.append(digits_to_words(int_part))
        else:
            n = int(int_part)
            if n == 0:
                words.append("zero")
            for scale, name in _SCALES:
                if n >= scale:
                    words += _under_thousand(n // scale) + [name]
                    n %= scale
            words += _under_thousand(n)
    if frac_part:
        words += ["point", digits_to_words(frac_part)]
    return " ".join(words)


def scientific_to_words(mantissa: str, exponent: str | int) -> str:
    """A number in exponent notation, ``mantissa`` x 10^``exponent``, as people read it aloud.

    The exponent keeps its sign (``1e-5`` is 10^-5, a hundred thousandth, not 10^5) and loses its
    padding zeros ("e-05" is "minus five"); a "+" is not read.

    >>> scientific_to_words("1", "-5"), scientific_to_words("6.02", "23"), scientific_to_words("2.5", "+03")
    ('one times ten to the minus five', 'six point zero two times ten to the twenty three', 'two point five times ten to the three')
    """
    exponent = str(exponent).strip().replace("−", "-")
    if not re.fullmatch(r"[-+]?\d+", exponent):
        raise ValueError(f"exponent must be an integer like '-5' or '+3', got {exponent!r}")
    sign = "minus " if exponent.startswith("-") else ""
    return f"{number_to_words(mantissa)} times ten to the {sign}{number_to_words(int(exponent.lstrip('+-')))}"


def ordinal_to_words(n: int) -> str:
    """Ordinal number in words.

    >>> ordinal_to_words(1), ordinal_to_words(12), ordinal_to_words(21), ordinal_to_words(40)
    ('first', 'twelfth', 'twenty first', 'fortieth')
    >>> ordinal_to_words(100)
    'one hundredth'
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"no ordinal for a negative number: {n}")
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year_to_words(year: int) -> str:
    """A year as people say it: pairs of digits, "hundred", "oh" and "two thousand ...".

    >>> year_to_words(1984), year_to_words(2005), year_to_words(1905), year_to_words(1900)
    ('nineteen eighty four', 'two thousand five', 'nineteen oh five', 'nineteen hundred')
    >>> year_to_words(2021), year_to_words(2000), year_to_words(1066), year_to_words(476)
    ('twenty twenty one', 'two thousand', 'ten sixty six', 'four hundred seventy six')
    """
    year = int(year)
    if year < 0:
        raise ValueError(f"year must be >= 0, got {year}")
    if year < 1000 or year >= 10000 or year % 1000 == 0 or 2000 <= year < 2010:
        return number_to_words(year)
    hi, lo = divmod(year, 100)
    if lo == 0:
        return f"{number_to_words(hi)} hundred"
    if lo < 10:
        return f"{number_to_words(hi)} oh {_ONES[lo]}"
    return f"{number_to_words(hi)} {number_to_words(lo)}"


_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}


def fraction_to_words(numerator: int, denominator: int) -> str:
    """A fraction: "one half", "three quarters", "five eighths"; denominators over 10 use "over".

    >>> fraction_to_words(1, 2), fraction_to_words(3, 4), fraction_to_words(2, 3), fraction_to_words(7, 16)
    ('one half', 'three quarters', 'two thirds', 'seven over sixteen')
    """
    if denominator == 0:
        raise ValueError("denominator is zero")
    num = number_to_words(numerator)
    if 2 <= denominator <= 10:
        if denominator in _FRACTION_NAMES:
            one, many = _FRACTION_NAMES[denominator]
        else:
            one = ordinal_to_words(denominator)
            many = one + "s"
        return f"{num} {one if numerator == 1 else many}"
    return f"{num} over {number_to_words(denominator)}"


# ----------------------------------------------------------------------------------------------
# Money, clock times, dates
# ----------------------------------------------------------------------------------------------

#: symbol -> (unit singular, unit plural, subunit singular, subunit plural)
CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", None, None),
}
def currency_to_words(amount: str, symbol: str = "$", scale: str | None = None) -> str:
    """An amount of money: "$5.50" -> "five dollars and fifty cents".

    Two decimals are read as the subunit (cents/pence); other decimals as a plain decimal.
    ``scale`` ("million" ...) follows the number: "$2.5 million" -> "two point five million
    dollars".

    >>> currency_to_words("5.50"), currency_to_words("1", "£"), currency_to_words("0.99", "€")
    ('five dollars and fifty cents', 'one pound', 'ninety nine cents')
    >>> currency_to_words("1,000"), currency_to_words("2.5", "$", "million")
    ('one thousand dollars', 'two point five million dollars')

    A leading minus sign is read first, and the rest is read as without it (a debt of half a
    dollar is "minus zero point five dollars" when written "-0.5", "minus fifty cents" when "-0.50"):

    >>> currency_to_words("-0.50"), currency_to_words("-0.5"), currency_to_words("-5")
    ('minus fifty cents', 'minus zero point five dollars', 'minus five dollars')
    """
    if symbol not in CURRENCIES:
        raise ValueError(f"unknown currency symbol {symbol!r}; known: {sorted(CURRENCIES)}")
    one, many, sub_one, sub_many = CURRENCIES[symbol]
    amount = amount.strip().replace(",", "")
    if amount.startswith(("-", "−")):
        return "minus " + currency_to_words(amount[1:], symbol, scale)
    if scale:
        return f"{number_to_words(amount)} {scale} {many}"
    whole, _, frac = amount.partition(".")
    whole = whole or "0"
    if frac and (len(frac) != 2 or sub_one is None):
        return f"{number_to_words(amount)} {many}"
    units, cents = int(whole), int(frac or 0)
    parts = []
    if units or not cents:
        parts.append(f"{number_to_words(whole)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def time_to_words(hour: int, minute: int = 0, suffix: str | None = None) -> str:
    """A clock time: "10:30 am" -> "ten thirty a m"; ":00" is "o'clock" without am/pm.

    >>> time_to_words(10, 30, "am"), time_to_words(7, 5), time_to_words(9, 0), time_to_words(9, 0, "pm")
    ('ten thirty a m', 'seven oh five', "nine o'clock", 'nine p m')
    >>> time_to_words(14, 45)
    'fourteen forty five'
    """
    if not (0 <= hour <= 24 and 0 <= minute <= 59):
        raise ValueError(f"not a time: {hour}:{minute:02d}")
    words = [number_to_words(hour)]
    if minute == 0:
        if not suffix:
            words.append("o'clock")
    elif minute < 10:
        words += ["oh", _ONES[minute]]
    else:
        words.append(number_to_words(minute))
    if suffix:
        words.append(" ".join(suffix.lower().replace(".", "")))
    return " ".join(words)


MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
def date_to_words(month: int, day: int | None = None, year: int | None = None, day_first: bool = False) -> str:
    """A date: "march fifth, twenty twenty one" (or "the fifth of march ..." with ``day_first``).

    >>> date_to_words(3, 5, 2021)
    'march fifth, twenty twenty one'
    >>> date_to_words(12, 25), date_to_words(7, 4, 1776, day_first=True)
    ('december twenty fifth', 'the fourth of july seventeen seventy six')
    """
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, got {month}")
    if day is not None and not 1 <= day <= 31:
        raise ValueError(f"day must be 1..31, got {day}")
    name = MONTHS[month - 1]
    if day is None:
        text = name
    elif day_first:
        text = f"the {ordinal_to_words(day)} of {name}"
    else:
        text = f"{name} {ordinal_to_words(day)}"
    if year is not None:
        text += ("," if day is not None and not day_first else "") + " " + year_to_words(year)
    return text
