"""What espeak-ng should say for one sentence: ``normalize``.

Numbers, dates, times, amounts and abbreviations as words, typography plain, markup, comments and footnote marks
gone, and no period that espeak-ng would take for a sentence end ("Dr." becomes "Doctor", "a.m." becomes "AM").
Abbreviations and the words that shape a reading are in the table in engine.text.lexicon; numbers are read by
engine.text.numbers, roman numerals and list labels by engine.text.roman. Pure functions, no I/O.
"""

# Typography is this module's subject: curly quotes, dashes and primes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from .comments import HTML_COMMENT
from .lexicon import LEXICON, SLASHED, Abbreviation, Sense, street_sense
from .numbers import read_amounts, read_copyright, read_dates_and_times, read_numbers
from .roman import read_list_labels, read_roman

Rule = tuple[re.Pattern[str], str]
"""A pattern and what replaces it (a ``re.sub`` template); a step is rules applied in order."""


def _rewrite(text: str, rules: Sequence[Rule]) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


# Typography and markup.
_VULGAR_FRACTION = re.compile(r"(\d?)([¼½¾⅐-⅞])")
_SUPERSCRIPT_MARK = re.compile(r"[¹²³⁰⁴-⁹]+")  # footnote marks ("word¹"); read before NFKC turns them into digits
_PLAIN = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'"}
    | {"‐": "-", "‑": "-", "−": "-", "‒": "–", "⁄": "/"}
)
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029]")
_MARKUP: tuple[Rule, ...] = (
    (HTML_COMMENT, " "),
    (re.compile(r"^[ \t]*([=\-*_~])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE), ""),  # a rule line: "* * *", "----"
    (re.compile(r"^[ \t]*#{1,6}[ \t]+|[ \t]+#+[ \t]*$", re.MULTILINE), ""),  # "## Heading ##"
    (re.compile(r"!?\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*\)"), r"\1"),  # [text](url): the text
    (re.compile(r"^[ \t]*[-*•+‣◦][ \t]+", re.MULTILINE), ""),  # a bullet
    (re.compile(r"^[ \t]*(\d{1,3})[.)][ \t]+", re.MULTILINE), r"\1: "),  # "1. Step", "1) Step": "1: Step", as "a)"
    (re.compile(r"\[(?:\d{1,3}|[a-z]|\*+)\]|[*†‡]+"), ""),  # footnote marks: "[1]", "*", "†"
    (re.compile(r"(?<!\w)_+(?=\w)|(?<=\w)_+(?!\w)"), ""),  # _emphasis_
)
_TYPOGRAPHY: tuple[Rule, ...] = (
    (re.compile(r"(?<=\d)[ \t]*[–—][ \t]*(?=\d)"), " to "),  # a dash between numbers reads "to"
    (re.compile(r"\s*(?:[–—―]|--+)\s*|\s+-\s+"), ", "),  # a dash is a pause
    # espeak-ng runs words together across "..." ("Wait... what" is one word): a comma gives the pause.
    (re.compile(r"\.(?:[ \t]?\.){2,}"), "..."),  # ". . ." is "..."
    (re.compile(r"\.\.\.(?=[\"')\]\s]*$)"), "."),  # at the end: a period
    (re.compile(r"\.\.\.(?=\s*[!?,;:])"), ""),  # before a mark: the mark is the pause
    (re.compile(r"\.\.\."), ", "),  # anywhere else: a comma
)


def _prepare(sentence: str) -> str:
    text = _VULGAR_FRACTION.sub(_say_vulgar_fraction, sentence)
    text = _SUPERSCRIPT_MARK.sub("", text)
    text = unicodedata.normalize("NFKC", text).translate(_PLAIN)  # NFKC: "…" -> "...", "ﬁ" -> "fi", "℃" -> "°C"
    return _NEWLINES.sub("\n", text)


def _say_vulgar_fraction(match: re.Match[str]) -> str:
    fraction = unicodedata.normalize("NFKC", match.group(2)).replace("⁄", "/")
    return f"{match.group(1)} {fraction}" if match.group(1) else fraction


def _markup(text: str) -> str:
    return read_list_labels(_rewrite(text, _MARKUP))


def _typography(text: str) -> str:
    return _rewrite(text, _TYPOGRAPHY)


# URLs are read as their host ("example dot com"): scheme, "www.", path and query would be long and useless aloud.
_URL = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\"]+", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DOMAIN = re.compile(
    r"(?<![\w@.-])(?:[a-z0-9][a-z0-9-]*\.)+"
    r"(?:com|org|net|edu|gov|io|ai|co|uk|us|de|fr|eu|info|biz|dev|app|me|tv|ly|ca|au)(?:/[^\s<>\"]*)?(?![\w-])",
    re.IGNORECASE,
)
_TRAILING_MARKS = re.compile(r"[.,;:!?)\]'\"]+$")
_URL_HOST = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:www\.)?([^/?#:]*)", re.IGNORECASE)


def _web(text: str) -> str:
    text = _URL.sub(_say_url, text)
    text = _EMAIL.sub(_say_email, text)
    return _DOMAIN.sub(_say_url, text)


def _say_url(match: re.Match[str]) -> str:
    url = match.group()
    trailing = _TRAILING_MARKS.search(url)
    tail = trailing.group() if trailing else ""
    host_match = _URL_HOST.match(url[: len(url) - len(tail)])
    host = host_match.group(1) if host_match else ""
    return _say_dots(host) + tail


def _say_email(match: re.Match[str]) -> str:
    local, _, domain = match.group().partition("@")
    return f"{_say_dots(local.replace('+', '.plus.'))} at {_say_dots(domain)}"


def _say_dots(name: str) -> str:
    return " dot ".join(part for part in name.split(".") if part)


# Abbreviations, all read from the one table (engine.text.lexicon), in this order: dotted forms ("e.g."), words
# before a number ("No. 4"), St./Dr., the rest with their period, titles without one ("Mr Smith"), "Sat."/"Sun.".
class _Forms:
    """The written forms of the abbreviations one step reads: a regex alternation, and what each says."""

    def __init__(self, keep: Callable[[str, Abbreviation], bool]) -> None:
        self.entries = {written: entry for written, entry in LEXICON.items() if keep(written, entry)}
        self._folded = {written.lower(): entry for written, entry in self.entries.items() if entry.any_case}

    @property
    def alternation(self) -> str:
        """Longest first; a form read in any letter case as ``(?i:...)``."""
        forms = sorted(self.entries, key=len, reverse=True)
        return "|".join(f"(?i:{re.escape(f)})" if self.entries[f].any_case else re.escape(f) for f in forms)

    def __getitem__(self, written: str) -> Abbreviation:
        return self.entries.get(written) or self._folded[written.lower()]


def _dotted(written: str, entry: Abbreviation) -> re.Pattern[str]:
    """ "e.g" (and "e.g.", and with ``spaced`` "e. g."), as a word of its own."""
    body = (r"\.[ \t]?" if entry.spaced else r"\.").join(map(re.escape, written.split(".")))
    return re.compile(rf"(?<![\w.]){body}\.?(?!\w)", re.IGNORECASE if entry.any_case else 0)


_DOTTED_FORMS: tuple[Rule, ...] = tuple(
    (_dotted(written, entry), entry.spoken) for written, entry in LEXICON.items() if "." in written
)
_BEFORE_NUMBER = _Forms(lambda _, entry: entry.sense is Sense.BEFORE_NUMBER)
_STREET = _Forms(lambda _, entry: entry.street is not None)
_WITH_PERIOD = _Forms(
    lambda written, entry: (
        "." not in written and entry.sense is not Sense.BEFORE_NUMBER and entry.street is None and entry.after_the
    )
)
_BARE = _Forms(lambda _, entry: entry.bare)
_NOT_AFTER_THE = _Forms(lambda _, entry: not entry.after_the)
_BEFORE_NUMBER_ABBREVIATION = re.compile(rf"(?<![\w.])({_BEFORE_NUMBER.alternation})\.[ \t]?(?=\d)")
_SAINT_OR_STREET = re.compile(rf"(?<![\w.])({_STREET.alternation})(?:\.(?!\w)|(?=[ \t]+\w))")
_ABBREVIATION = re.compile(rf"(?<![\w.])({_WITH_PERIOD.alternation})\.(?!\w)")
_BARE_TITLE = re.compile(rf"(?<![\w.])({_BARE.alternation})(?=[ \t]+\w)")
_UNLESS_AFTER_THE = re.compile(rf"(?<![Tt]he )(?<![\w.])({_NOT_AFTER_THE.alternation})\.(?!\w)")
_DOTTED_ACRONYM = re.compile(r"(?<![\w.])((?:[A-Za-z]\.)+[A-Za-z])\.?(?!\w)")
_INITIAL = re.compile(r"(?<![\w.])([A-Z])\.(?=[ \t]+[A-Z])")


def _abbreviations(text: str) -> str:
    text = _rewrite(text, _DOTTED_FORMS)
    text = _BEFORE_NUMBER_ABBREVIATION.sub(lambda m: _BEFORE_NUMBER[m[1]].spoken + " ", text)
    text = _SAINT_OR_STREET.sub(_say_saint_or_street, text)
    text = _ABBREVIATION.sub(lambda m: _WITH_PERIOD[m[1]].spoken, text)
    text = _BARE_TITLE.sub(lambda m: _BARE[m[1]].spoken, text)
    text = _UNLESS_AFTER_THE.sub(lambda m: _NOT_AFTER_THE[m[1]].spoken, text)
    text = _DOTTED_ACRONYM.sub(lambda m: m[1].replace(".", "").upper(), text)
    # espeak-ng reads a lone capital "A" as the article ("uh"); "Eh" gets the letter's name.
    return _INITIAL.sub(lambda m: "Eh" if m[1] == "A" else m[1], text)


def _say_saint_or_street(match: re.Match[str]) -> str:
    following = match.string[match.end() :].lstrip()
    street = street_sense(match.string[: match.start()], next_capitalised=following[:1].isupper())
    entry = _STREET[match[1]]
    return entry.street if street and entry.street else entry.spoken


# Leftover symbols and clean-up. Words joined by a slash: a phrase from the table ("and/or"), else a pause
# ("he/him" -> "he, him"); espeak-ng would say "slash". Paths of more than two parts keep it ("usr/local/bin").
_SLASHED = re.compile(rf"(?<![\w/.])({'|'.join(map(re.escape, SLASHED))})(?![\w/])", re.IGNORECASE)
_WORD_SLASH = re.compile(r"(?<![\w/.:])([^\W\d_]{2,})/([^\W\d_]{2,})(?![\w/]|\.\w)")
_SYMBOLS: tuple[Rule, ...] = (
    (re.compile(r"[ \t]*&[ \t]*"), " and "),
    (re.compile(r"\s*\|\s*"), ", "),
    (re.compile(r"@"), " at "),
    (re.compile(r"%"), " percent"),
)
_ENDS_SENTENCE = re.compile(r"[.!?…][\"'”’»)\]]*\s*$")
_SPOKEN_END = re.compile(r"[.!?][\"')\]]*$")
_TIDY: tuple[Rule, ...] = (
    (re.compile(r"\(\s*\)|\[\s*\]"), ""),  # brackets emptied by the steps
    (re.compile(r"\s+"), " "),  # one space
    (re.compile(r"\s+([,.;:!?])"), r"\1"),  # none before a mark
    (re.compile(r"([,;:])(?:\s*[,;:])+"), r"\1"),  # one clause mark, not a run
    (re.compile(r"[,;:]\s*([.!?])"), r"\1"),  # none before the end
)


def _symbols(text: str) -> str:
    text = _SLASHED.sub(lambda m: SLASHED[m[1].lower()], text)
    return _rewrite(_WORD_SLASH.sub(r"\1, \2", text), _SYMBOLS)


# A heading that starts with a number: "0. Definitions." is "Section zero: Definitions." (a list marker otherwise).
_NUMBERED_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+)?(\d{1,3})\.[ \t]+(?=\S)")
_CLAUSE_END_TRIM = "\"')].!?,;: "


def _finish(text: str, original: str, clause_end: bool) -> str:
    text = _rewrite(text, _TIDY).strip(" ,;:")
    if not any(ch.isalnum() for ch in text):
        return ""
    if clause_end:
        # The sentence goes on in the next chunk: end on its clause mark (a comma where the cut had none), never a
        # full stop, so the voice keeps a continuing tone rather than a sentence's falling close.
        last = original.rstrip()[-1:]
        return text.rstrip(_CLAUSE_END_TRIM) + (last if last in ";:" else ",")
    # An abbreviation's period that also ended the sentence went with the abbreviation ("at 7 a.m.").
    if _ENDS_SENTENCE.search(original) and not _SPOKEN_END.search(text):
        text += "."
    return text


_STEPS: tuple[Callable[[str], str], ...] = (
    read_copyright,  # first: "(C) 2007-2009" before list labels read "(C)" and dashes become "to"
    _markup,
    _typography,
    _web,
    read_dates_and_times,
    read_roman,  # before abbreviations: "James E. King III" is an ordinal after the initial "E."
    _abbreviations,
    read_amounts,
    read_numbers,
    _symbols,
)


def normalize(sentence: str, *, heading: bool = False, clause_end: bool = False) -> str:
    """What espeak-ng should say for one English sentence: numbers, amounts and abbreviations as words.

    ``heading``: the sentence is a heading, so a number that starts it is a section's ("Section zero: ...").
    ``clause_end``: the sentence goes on in the next chunk (a piece of an over-long one): end on a clause mark."""
    text = _prepare(sentence)
    if heading:
        text = _NUMBERED_HEADING.sub(r"Section \1: ", text)
    for step in _STEPS:
        text = step(text)
    return _finish(text, sentence, clause_end)
