"""Numbers read as words: cardinals, ordinals, years, decimals and fractions, dates and times, amounts and units.

Steps of ``engine.text.normalize``: each rewrites a sentence's digits and symbols into what espeak-ng should say.
"""

# Dashes between numbers are part of the subject: the en dashes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re

from num2words import num2words

from .lexicon import US_STATES

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_NUM = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)"
# Longer digit strings are read digit by digit (num2words would read them, but nobody says "quadrillion").
_MAX_READ_DIGITS = 15


def _words(spelled: str) -> str:
    return spelled.replace(",", "")  # num2words' commas would make espeak-ng pause inside a number


def _digits(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[int(ch)] for ch in digits if ch.isdecimal())


def _cardinal(number: str) -> str:
    digits = number.replace(",", "")
    if len(digits) > _MAX_READ_DIGITS or (len(digits) > 1 and digits.startswith("0")):
        return _digits(digits)
    return _words(num2words(int(digits)))


def _number(whole: str | None, fraction: str | None = None) -> str:
    """ "3", "5" -> "three point five"; a missing whole part (".5") is "point five"."""
    spoken = _cardinal(whole) if whole else ""
    if fraction:
        spoken = f"{spoken} point {_digits(fraction)}".strip()
    return spoken


def _ordinal(number: str) -> str:
    digits = number.replace(",", "")
    if len(digits) > _MAX_READ_DIGITS:
        return _digits(digits)
    return _words(num2words(int(digits), to="ordinal"))


def _year(number: str) -> str:
    return _words(num2words(int(number), to="year"))


def _plain_year(number: str) -> str:
    """A year without num2words' "and": "two thousand seven" (US usage, as a copyright line is read)."""
    return _year(number).replace("thousand and", "thousand")


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


# A copyright line: "Copyright (C) 2007", "© 2007-2009", "(c) 2007, 2008". The sign is the word "copyright" (or
# nothing after the word itself: "Copyright (C)" is not "copyright see"); its years read without "and" (issue 16:
# only the copyright line changed; other years keep num2words' "two thousand and seven").
_YEAR4 = r"(?:1[5-9]\d\d|20\d\d)"
_COPYRIGHT = re.compile(
    rf"(?:\b([Cc]opyright|COPYRIGHT)\b(?:[ \t]*(?:\([Cc]\)|©))?|©|\([Cc]\)(?=[ \t]*{_YEAR4}))"
    rf"((?:[ \t]*,?[ \t]*{_YEAR4}(?:[ \t]*[-–—][ \t]*{_YEAR4})?(?![\w%]|[.,]\d))*)"
)
_COPYRIGHT_YEAR = re.compile(rf"{_YEAR4}|[ \t]*[-–—][ \t]*")


def read_copyright(text: str) -> str:
    return _COPYRIGHT.sub(_say_copyright, text)


def _say_copyright(match: re.Match[str]) -> str:
    years = _COPYRIGHT_YEAR.sub(lambda m: _plain_year(m[0]) if m[0].isdigit() else " to ", match[2])
    return (match[1] or "copyright") + years


# Dates, times, phone numbers, ZIP codes.
_ISO_DATE = re.compile(r"(?<![\w-])(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?![\w-])")
_PHONE = re.compile(r"(?<![\w-])(?:\(\d{3}\)[ \t]?|\d{3}[-.])\d{3}[-.]\d{4}(?![\w-])")
_TIME = re.compile(
    r"(?<![\w:.])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?:[ \t]?([ap])\.?m\b\.?)?(?![\w:])", re.IGNORECASE
)
_HOUR_WITH_PERIOD = re.compile(r"(?<![\w:.])(1[0-2]|0?[1-9])[ \t]?([ap])\.?m\b\.?", re.IGNORECASE)
# "Call 555-1234": a local number (its exchange starts with 2-9), not a range; "500-1000" (both round) stays a range.
_LOCAL_PHONE = re.compile(r"(?<![\w.,-])([2-9]\d\d)-(\d{4})(?![\w-]|[.,]\d)")
# "Indiana 46202", "Boston, MA 02115-3242": five digits after a state are a ZIP code, read digit by digit.
_STATE = "|".join(re.escape(state) for state in sorted(US_STATES, key=len, reverse=True))
_ZIP = re.compile(rf"(?<![\w.])({_STATE})(,?[ \t]+)(\d{{5}})(?:-(\d{{4}}))?(?![\w-]|[.,]\d)")


def read_dates_and_times(text: str) -> str:
    text = _ISO_DATE.sub(lambda m: f"{_MONTHS[int(m[2]) - 1]} {_ordinal(m[3])}, {_year(m[1])}", text)
    text = _PHONE.sub(lambda m: ", ".join(_digits(group) for group in re.findall(r"\d+", m.group())), text)
    text = _ZIP.sub(lambda m: f"{m[1]}{m[2]}{_digits(m[3])}" + (f", {_digits(m[4])}" if m[4] else ""), text)
    text = _LOCAL_PHONE.sub(_say_local_phone, text)
    text = _TIME.sub(_say_time, text)
    return _HOUR_WITH_PERIOD.sub(lambda m: f"{_cardinal(m[1])} {m[2].upper()}M", text)


def _say_local_phone(match: re.Match[str]) -> str:
    if match[1].endswith("0") and match[2].endswith("0"):
        return match.group()  # "500-1000 people": a range of round numbers
    return f"{_digits(match[1])}, {_digits(match[2])}"


def _say_time(match: re.Match[str]) -> str:
    hour, minutes, seconds, period = match.groups()
    spoken = _cardinal(str(int(hour)))
    if minutes == "00" and not period:
        spoken += " o'clock" if 1 <= int(hour) <= 12 else " hundred"
    elif minutes != "00":
        spoken += f" oh {_DIGIT_WORDS[int(minutes)]}" if minutes[0] == "0" else f" {_cardinal(minutes)}"
    if seconds:
        spoken += f" and {_cardinal(str(int(seconds)))} second" + ("" if int(seconds) == 1 else "s")
    if period:
        spoken += f" {period.upper()}M"  # "AM" reads "ay em"; "a m" would read "uh em"
    return spoken


# Amounts.
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
_SCALES = {"k": "thousand", "m": "million", "mn": "million", "b": "billion", "bn": "billion", "tn": "trillion"}
_MONEY = re.compile(
    rf"([$£€¥₹])[ \t]?({_NUM})(?:\.(\d+))?(?:[ \t]?((?i:thousand|million|billion|trillion))\b|((?i:k|m|mn|bn|b|tn))\b)?"
)
_PENCE = re.compile(r"(?<![\w.])(\d{1,2})p\b")  # "40p"; longer numbers are more likely "1080p"
_PERCENT = re.compile(rf"(?<![\w.])({_NUM})(?:\.(\d+))?[ \t]?%")
_DEGREES = re.compile(rf"(?<![\w.])({_NUM})(?:\.(\d+))?[ \t]?°[ \t]?([CF](?![a-zA-Z]))?")
_UNITS = {
    "km": "kilometer", "kg": "kilogram", "cm": "centimeter", "mm": "millimeter", "mph": "mile per hour",
    "km/h": "kilometer per hour", "kph": "kilometer per hour", "lb": "pound", "lbs": "pound", "oz": "ounce",
    "ft": "foot", "ml": "milliliter", "GB": "gigabyte", "MB": "megabyte", "TB": "terabyte", "kHz": "kilohertz",
    "MHz": "megahertz", "GHz": "gigahertz", "kW": "kilowatt", "kWh": "kilowatt hour", "m": "meter", "g": "gram",
    "mg": "milligram", "ms": "millisecond",
}  # fmt: skip
_UNIT_PLURALS = {"foot": "feet", "mile per hour": "miles per hour", "kilometer per hour": "kilometers per hour"}
_UNIT = re.compile(
    rf"(?<![\w.])({_NUM})(?:\.(\d+))?[ \t]?({'|'.join(sorted(map(re.escape, _UNITS), key=len, reverse=True))})"
    r"\.?(?![\w/])"
)


def read_amounts(text: str) -> str:
    text = _NEGATIVE.sub("minus ", text)  # before degrees: "-5°C"
    text = _BETWEEN.sub(r"\1\2 and ", text)  # "between 500-1000": "between five hundred and one thousand"
    text = _RANGE.sub(r"\1 to ", text)  # before percentages: "50-60%"
    text = _MONEY.sub(_say_money, text)
    text = _PENCE.sub(lambda m: "one penny" if m[1] == "1" else f"{_cardinal(m[1])} pence", text)
    text = _PERCENT.sub(lambda m: f"{_number(m[1], m[2])} percent", text)
    text = _DEGREES.sub(_say_degrees, text)
    return _UNIT.sub(_say_unit, text)


def _say_money(match: re.Match[str]) -> str:
    symbol, whole, fraction, scale_word, scale_letters = match.groups()
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    scale = scale_word.lower() if scale_word else _SCALES.get((scale_letters or "").lower())
    if scale:
        return f"{_number(whole, fraction)} {scale} {many}"  # "$1.2 million" -> "one point two million dollars"
    if fraction and (len(fraction) > 2 or not sub_one):
        return f"{_number(whole, fraction)} {many}"
    units = int(whole.replace(",", ""))
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if units or not cents:
        parts.append(f"{_cardinal(whole)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{_cardinal(str(cents))} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _say_degrees(match: re.Match[str]) -> str:
    scale = {"C": " Celsius", "F": " Fahrenheit"}.get(match[3] or "", "")
    unit = "degree" if match[1] == "1" and not match[2] else "degrees"
    return f"{_number(match[1], match[2])} {unit}{scale}"


def _say_unit(match: re.Match[str]) -> str:
    unit = _UNITS[match[3]]
    if match[1] != "1" or match[2]:
        unit = _UNIT_PLURALS.get(unit, unit + "s")
    return f"{_number(match[1], match[2])} {unit}"


# Numbers.
_SYMBOLS_BEFORE_NUMBERS = ((re.compile(r"#(?=\d)"), "number "), (re.compile(r"§+[ \t]?"), "section "))
_MONTH_DAY = re.compile(rf"\b({'|'.join(_MONTHS)})[ \t]+(\d{{1,2}})(?:st|nd|rd|th)?(?![\w:]|[.,]\d)")
_DAY_MONTH = re.compile(
    rf"(?:\b([Tt]he)[ \t]+)?(?<![\w.])(\d{{1,2}})(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?({'|'.join(_MONTHS)})\b"
)
_SHORT_YEAR = re.compile(r"(?<![\w'])'(\d\d)(?![\w'])")  # "in '85"
_DECADE = re.compile(r"(?<![\w'])'?(1[1-9]\d0|20\d0)'?s\b")
_SHORT_DECADE = re.compile(r"(?<![\w'])'?([2-9]0)'?s\b")
_ORDINAL = re.compile(rf"(?<![\w.])({_NUM})(?:st|nd|rd|th)\b", re.IGNORECASE)
_MIXED_FRACTION = re.compile(r"(?<![\w./])(\d+)[ \t]+(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)")
_FRACTION = re.compile(r"(?<![\w./])(\d{1,2})/(\d{1,2})(?![\w/]|\.\d)")
_VERSION = re.compile(r"(?<![\w.])(?:v(\d+(?:\.\d+)+)|(\d+(?:\.\d+){2,}))(?!\w|\.\d)")
_RANGE = re.compile(r"(?<![\w.,-])(\d[\d,]*(?:\.\d+)?)-(?=\d[\d,]*(?:\.\d+)?(?![\w-]))")
# After "between" a range's dash (an en dash is " to " by now) reads "and".
_BETWEEN = re.compile(r"(\b[Bb]etween[ \t]+)(\d[\d,]*(?:\.\d+)?)(?:-|[ \t]+to[ \t]+)(?=\d[\d,]*(?:\.\d+)?(?![\w-]))")
_NUMBER_SLASH = re.compile(r"(?<=\d)/(?=\d)")  # "24/7", "9/11": read as two numbers
_YEAR = re.compile(r"(?<![\w.,])(1[1-9]\d\d|20\d\d)(?![\w%]|[.,]\d)")
_DECIMAL = re.compile(rf"(?<![\w.])(?:({_NUM})\.|\.)(\d+)(?!\.\d)")  # "1.5x faster" too
_NEGATIVE = re.compile(r"(?<![\w.])-(?=\d)")
_CARDINAL = re.compile(rf"(?<![\w.])({_NUM})(?!\w)")


def read_numbers(text: str) -> str:
    for pattern, spoken in _SYMBOLS_BEFORE_NUMBERS:
        text = pattern.sub(spoken, text)
    text = _MONTH_DAY.sub(_say_month_day, text)
    text = _DAY_MONTH.sub(_say_day_month, text)
    text = _DECADE.sub(lambda m: _plural(_year(m[1])), text)
    text = _SHORT_DECADE.sub(lambda m: _plural(_cardinal(m[1])), text)
    text = _SHORT_YEAR.sub(lambda m: _cardinal(m[1]), text)
    text = _ORDINAL.sub(lambda m: _ordinal(m[1]), text)
    text = _MIXED_FRACTION.sub(lambda m: _say_fraction(m[2], m[3], m.group(), whole=m[1]), text)
    text = _FRACTION.sub(lambda m: _say_fraction(m[1], m[2], m.group()), text)
    text = _VERSION.sub(_say_version, text)
    text = _NUMBER_SLASH.sub(" ", text)
    text = _YEAR.sub(lambda m: _year(m[1]), text)
    text = _DECIMAL.sub(_say_decimal, text)
    return _CARDINAL.sub(lambda m: _cardinal(m[1]), text)


def _say_decimal(match: re.Match[str]) -> str:
    spoken = _number(match[1], match[2])
    following = match.string[match.end() : match.end() + 1]
    return spoken + " " if following.isalpha() else spoken  # "1.5x" -> "one point five x"


def _say_month_day(match: re.Match[str]) -> str:
    day = int(match[2])
    return f"{match[1]} {_ordinal(match[2])}" if 1 <= day <= 31 else match.group()


def _say_day_month(match: re.Match[str]) -> str:
    article, day, month = match.groups()
    if not 1 <= int(day) <= 31:
        return match.group()
    return f"{article or 'the'} {_ordinal(day)} of {month}"  # "31 Dec." -> "the thirty-first of December"


def _say_fraction(numerator: str, denominator: str, original: str, whole: str | None = None) -> str:
    top, bottom = int(numerator), int(denominator)
    if not 0 < top < bottom <= 10:
        return original  # "9/11", "24/7": not a fraction; read later as two numbers
    names = {2: ("half", "halves"), 4: ("quarter", "quarters")}
    ordinal = _ordinal(denominator)
    singular, plural = names.get(bottom, (ordinal, ordinal + "s"))
    fraction = f"{_cardinal(numerator)} {singular if top == 1 else plural}"
    return f"{_cardinal(whole)} and {fraction}" if whole else fraction


def _say_version(match: re.Match[str]) -> str:
    parts = " point ".join(_cardinal(part) for part in (match[1] or match[2]).split("."))
    return f"version {parts}" if match[1] else parts
