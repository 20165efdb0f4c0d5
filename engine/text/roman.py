"""Roman numerals and list labels read as words: "Chapter IV", "Henry VIII", "(iii)", "a) The work".

Steps of ``engine.text.normalize``. Which words make a numeral a number or an ordinal (``NUMBERED``,
``REGNAL_NAMES``) are in the one table, ``engine.text.lexicon``; espeak-ng on its own says "roman three" for "III"
and spells "VI" letter by letter (issue 16).
"""

# Typography is part of the subject: curly apostrophes and dashes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re

from num2words import num2words

from .lexicon import NUMBERED, REGNAL_NAMES, takes_number

_ROMAN = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def roman_value(numeral: str) -> int | None:
    """The value of a well-formed roman numeral written in one letter case ("XIV" 14, "iii" 3), else None
    ("IIII", "Mix", "")."""
    if not numeral or not (numeral.isupper() or numeral.islower()):
        return None
    upper = numeral.upper()
    if not _ROMAN.fullmatch(upper):
        return None
    total = 0
    for letter, following in zip(upper, [*upper[1:], ""], strict=True):
        value = _VALUES[letter]
        total += -value if following and _VALUES[following] > value else value
    return total


def _cardinal(value: int) -> str:
    return num2words(value).replace(",", "")


def _numeral_value(label: str) -> int | None:
    """A label's value as a roman numeral: two letters or more ("ii", "IV"), or one of i, v, x alone. A list of
    letters rarely reaches v or x, and roman lists ("(i)", "(ii)") are the more common guess for i in contracts."""
    if len(label) == 1 and label.lower() not in "ivx":
        return None
    return roman_value(label)


# --- list labels: "a) The work", "(b) ...", "(iii) ...", "iv. ..." --------------------------------------------

# At a line's start; a digit label ("1.") is read by the normaliser's markup step.
_LABEL = re.compile(
    r"^([ \t]*)(?:\(([A-Za-z]|[ivx]{2,6}|[IVX]{2,6})\)|([A-Za-z]|[ivx]{2,6}|[IVX]{2,6})\)|([a-z]|[ivx]{2,6})\.)"
    r"[ \t]+(?=\S)",
    re.MULTILINE,
)
# Inside a sentence: "subsection (b)(iii)", "(IV)", "clause (a)".
_IN_BRACKETS = re.compile(r"(?<![^\W\d(])\(([ivx]{1,6}|[IVX]{1,6}|[aA])\)(?![\w)])")


def read_list_labels(text: str) -> str:
    """A list item's label as its letter or number and a colon: "a) The work" -> "A: The work", "(iii)" ->
    "three: ..." (the colon: a short pause, and espeak-ng then says the letter's name, not the article "uh")."""
    text = _LABEL.sub(_say_label, text)
    return _IN_BRACKETS.sub(_say_bracketed, text)


def _say_label(match: re.Match[str]) -> str:
    if match.start() and takes_number(match.string[: match.start()]):
        return match.group()  # "... under paragraph\n(b) above": the sentence runs on (read in brackets below)
    label = match[2] or match[3] or match[4]
    value = _numeral_value(label)
    return f"{match[1]}{_cardinal(value) if value else label.upper()}: "


def _say_bracketed(match: re.Match[str]) -> str:
    value = _numeral_value(match[1])
    spoken = _cardinal(value) if value else "Eh"  # "(a)" alone is the article to espeak-ng; "Eh" is the letter
    glued = match.start() and not match.string[match.start() - 1].isspace()
    return " " + spoken if glued else spoken  # "4(a)", "(b)(iii)": a word of its own


# --- numerals in running text ----------------------------------------------------------------------------------

# Capitals of any roman letter, or lower case i, v, x (in lower case "mix" and "dim" are words); a possessive is kept.
_NUMERAL = re.compile(r"(?<![\w.'’&/-])([IVXLCDM]+|[ivx]{2,6})(?![\w&/-]|['’](?!s\b)|\.\w)")
_WORDS_BEFORE = re.compile(r"(?:(\S+)[ \t]+)?(\S+)[ \t]+$")
_INITIAL = re.compile(r"[A-Z]\.")
_BEFORE_NAME = re.compile(r"\.[ \t]+[A-Z]")


def read_roman(text: str) -> str:
    """Roman numerals as words: an ordinal after a name ("Henry VIII" -> "Henry the Eighth"), a number after a word
    that takes one ("Chapter IV" -> "Chapter four") and elsewhere when written in I, V and X alone ("Paris VI" ->
    "Paris six"). Others ("XL", "CD", the pronoun "I") are left as they are."""
    return _NUMERAL.sub(_say_numeral, text)


def _say_numeral(match: re.Match[str]) -> str:
    numeral = match[1]
    value = roman_value(numeral)
    if value is None or (len(numeral) == 1 and _BEFORE_NAME.match(match.string, match.end())):
        return numeral  # not a numeral, or an initial: "J. I. Packer"
    before = _WORDS_BEFORE.search(match.string, max(0, match.start() - 80), match.start())
    earlier, previous = (before[1] or "", before[2]) if before else ("", "")
    single = len(numeral) == 1
    if previous.lower() == "an":
        return numeral  # "an IV drip", "an XL shirt": read as letters
    name = previous in REGNAL_NAMES or (
        not single and previous.isalpha() and (earlier in REGNAL_NAMES or _INITIAL.fullmatch(earlier) is not None)
    )
    if numeral.isupper() and previous[:1].isupper() and name:
        return "the " + num2words(value, to="ordinal").replace(",", "").capitalize()
    if previous.lower() in NUMBERED and (not single or _ends_phrase(match.string, match.end(), previous)):
        return _cardinal(value)
    if numeral.isupper() and not single and set(numeral) <= set("IVX"):
        return _cardinal(value)
    return numeral


def _ends_phrase(text: str, end: int, previous: str) -> bool:
    """ "Part I." or "Chapter V:" (a single-letter numeral after a capitalised word, then no word): not the pronoun
    of "the best part I remember"."""
    rest = text[end:].lstrip(" \t")
    return previous[0].isupper() and (not rest or rest[0] in ".,:;)]\n\r—–-")
