"""Text front end for narration: long text to paragraph-aware sentence chunks, and each chunk read out as words.

``split_text`` cuts ``clean_text(text)`` into paragraphs (a blank line starts one) and sentences, one chunk per
sentence (short sentences are not merged: the pause between chunks is then always a sentence pause), with a hard
fallback that keeps every chunk's source within ``max_chars``. ``normalize`` writes what espeak-ng should say for a
chunk: numbers, dates, times, amounts and abbreviations as words, typography plain, markup and footnote marks gone,
and no period that espeak-ng would take for a sentence end ("Dr." becomes "Doctor", "a.m." becomes "AM").
Pure functions, no I/O.
"""

# Typography is this module's subject: curly quotes, dashes and primes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from num2words import num2words

from .text import clean_text

MAX_CHUNK_CHARS = 400
"""A chunk's source never exceeds this many characters: one inference stays short."""
HEADING_MAX_CHARS = 80
"""A one-line paragraph longer than this is never taken for a heading."""


@dataclass(frozen=True)
class Chunk:
    """One sentence of the input (or a piece of an over-long one) and what to say for it."""

    source: str
    """The exact substring of ``clean_text(text)`` this chunk covers, without surrounding whitespace."""
    spoken: str
    """What to speak (``normalize(source)``); empty when there is nothing to say, as for "* * *"."""
    paragraph: int
    """0-based index of the paragraph, counting only paragraphs with something in them."""
    heading: bool
    """The paragraph is a heading ("# Title", "Chapter 3", a short line without a sentence end, ALL CAPS)."""
    start: int
    """Offset of ``source`` in ``clean_text(text)``."""


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of ``clean_text(text)`` in order, one per sentence; none has a source longer than ``max_chars``."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
    cleaned = clean_text(text)
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(_paragraphs(cleaned)):
        heading = _is_heading(cleaned[start:end])
        for sentence_start, sentence_end in _sentences(cleaned, start, end):
            for piece_start, piece_end in _fit(cleaned, sentence_start, sentence_end, max_chars):
                source = cleaned[piece_start:piece_end]
                chunks.append(Chunk(source, normalize(source), index, heading, piece_start))
    return chunks


# --- paragraphs ------------------------------------------------------------------------------------------------

# "\r" alone is a line break too, but "\r\n" is one break, not a blank line.
_LINE_BREAK = r"(?:\r\n|\r(?!\n)|[\n\u2028])"
_PARAGRAPH_BREAK = re.compile(rf"{_LINE_BREAK}(?:[^\S\r\n\u2028\u2029]*{_LINE_BREAK})+|\u2029")
# Markdown headings and "Chapter 3" lines are paragraphs of their own even without a blank line around them.
_OWN_PARAGRAPH_LINE = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+\S[^\r\n\u2028]*|(?:chapter|part|book)[ \t]+(?:\d+|[ivxlcdm]+)[.:]?[ \t]*\r?$)",
    re.MULTILINE | re.IGNORECASE,
)
_MD_HEADING = re.compile(r"#{1,6}[ \t]+\S")
_SETEXT_HEADING = re.compile(r"[^\r\n\u2028]+(?:\r\n|[\r\n\u2028])[ \t]*(?:=+|-+)")
_HEADING_WORD = re.compile(
    r"(?:chapter|part|book|section|prologue|epilogue|appendix|introduction|preface|foreword|afterword|contents)\b",
    re.IGNORECASE,
)
_LIST_MARKER = re.compile(r"(?:[-*•+‣◦]|\d{1,3}[.)])\s")
_NOT_HEADING_END = ".!?,;:…\"'”’»)]"
_OPENERS = "\"'“‘«([{"


def _paragraphs(text: str) -> Iterator[tuple[int, int]]:
    """Stripped spans of the non-empty paragraphs."""
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        yield from _blocks(text, start, match.start())
        start = match.end()
    yield from _blocks(text, start, len(text))


def _blocks(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """A paragraph's span, with heading lines inside it split off as paragraphs of their own."""
    block = text[start:end]
    done = 0
    for match in _OWN_PARAGRAPH_LINE.finditer(block):
        yield from _stripped(text, start + done, start + match.start())
        yield from _stripped(text, start + match.start(), start + match.end())
        done = match.end()
    yield from _stripped(text, start + done, end)


def _stripped(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The span without surrounding whitespace, if anything is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _is_heading(paragraph: str) -> bool:
    if _MD_HEADING.match(paragraph) or _SETEXT_HEADING.fullmatch(paragraph):
        return True
    if len(paragraph) > HEADING_MAX_CHARS or any(ch in paragraph for ch in "\r\n\u2028"):
        return False
    letters = [ch for ch in paragraph if ch.isalpha()]
    if not letters or paragraph[0] in _OPENERS or _LIST_MARKER.match(paragraph):
        return False
    if _HEADING_WORD.match(paragraph):
        return True
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return paragraph[-1] not in "!?"  # "STOP!" alone is a shout, not a title
    return paragraph[-1] not in _NOT_HEADING_END


# --- sentences -------------------------------------------------------------------------------------------------

# A sentence mark, then closing quotes, brackets or footnote marks, then whitespace. Each character can match only
# one way and a match starts only at the first mark of a run, so a long run of marks costs linear time.
_BOUNDARY = re.compile(r"(?<![.!?…])([.!?…]+)(?:[\"'”’»)\]}*†‡¹²³⁰⁴-⁹]|\[\d{1,3}\])*(?=\s)")
# A list item on its own line starts a sentence even when the line before has no full stop.
_LIST_ITEM = re.compile(r"(?:\r\n|[\r\n\u2028])[ \t]*(?:[-*•+‣◦]|\d{1,3}[.)]|[a-z][.)])[ \t]+(?=\S)")
_QUOTE_CHAR = re.compile("[\"“”«»'‘’]")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
# Always followed by a name or a noun: their period never ends a sentence.
_TITLES = frozenset({
    "mr", "mrs", "ms", "mx", "messrs", "dr", "prof", "rev", "fr", "capt", "gen", "lt", "col", "sgt", "gov", "sen",
    "rep", "hon", "pres", "st", "mt", "ft", "vs", "e.g", "i.e", "cf", "viz", "approx", "a.k.a",
})  # fmt: skip
_BEFORE_NUMBER = frozenset({"no", "nos", "fig", "figs", "p", "pp", "vol", "ch", "sec", "eq", "art", "ca", "c"})
_MONTH_ABBREVIATIONS = frozenset({"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"})
# Case matters here: "She sat. Then ..." ends a sentence.
_WEEKDAY_ABBREVIATIONS = frozenset({"Mon", "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun"})
# These can end a sentence ("... at Acme Inc.") as well as sit inside one ("Acme Inc. Headquarters").
_AMBIGUOUS = frozenset({"etc", "inc", "ltd", "co", "corp", "jr", "sr", "bros", "al", "dept", "univ", "esq", "ph.d"})
# Words that start a sentence far more often than they follow an abbreviation inside one.
_STARTERS = frozenset({
    "the", "a", "an", "he", "she", "it", "they", "we", "i", "you", "this", "that", "these", "those", "there", "here",
    "but", "and", "so", "then", "in", "on", "at", "when", "if", "as", "my", "his", "her", "our", "their", "its",
    "what", "why", "how", "who", "where", "after", "before", "yes", "no", "now", "meanwhile", "however", "still",
    "later", "today", "one", "some", "many", "all", "each", "every", "both", "to", "for", "with", "from", "by",
    "while", "although", "though", "because", "since", "once", "nor", "or", "yet", "not", "perhaps", "maybe",
    "even", "also", "only", "just", "let", "please", "well", "oh",
})  # fmt: skip


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Stripped spans of the sentences of the paragraph ``text[start:end]``."""
    quoted = _merged(_quoted_spans(text, start, end))
    quote_opens = [opened for opened, _ in quoted]
    list_cuts = [match.start() for match in _LIST_ITEM.finditer(text, start, end)]
    cuts = list(list_cuts)
    last_cut = start
    for match in _BOUNDARY.finditer(text, start, end):
        cut = match.end()
        following = _next_visible(text, cut, end)
        if following is None or not _may_start_sentence(text[following]):
            continue
        inside = bisect.bisect_left(quote_opens, cut) - 1  # the last quotation opened before the cut
        if inside >= 0 and cut <= quoted[inside][1]:
            continue
        earlier_items = bisect.bisect_left(list_cuts, match.start())
        sentence_start = max(last_cut, list_cuts[earlier_items - 1] if earlier_items else start)
        if match.group(1) == "." and not _period_ends_sentence(text, sentence_start, match.start(), following, end):
            continue
        cuts.append(cut)
        last_cut = cut
    bounds = [start, *sorted(set(cuts)), end]
    for left, right in itertools.pairwise(bounds):
        yield from _stripped(text, left, right)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping (open, close) spans joined, sorted, so that one bisection finds the span around a point."""
    merged: list[tuple[int, int]] = []
    for opened, closed in sorted(spans):
        if merged and opened <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closed))
        else:
            merged.append((opened, closed))
    return merged


def _next_visible(text: str, index: int, end: int) -> int | None:
    """Index of the next character that is not whitespace or markdown emphasis, if the paragraph has one."""
    while index < end and (text[index].isspace() or text[index] in "*_"):
        index += 1
    return index if index < end else None


def _may_start_sentence(ch: str) -> bool:
    return ch.isupper() or ch.isdigit() or ch in _OPENERS or (ch.isalpha() and not ch.islower())


def _period_ends_sentence(text: str, sentence_start: int, dot: int, following: int, end: int) -> bool:
    """Whether the period at ``dot`` (followed by a capital, digit or quote at ``following``) ends a sentence."""
    token_start = dot
    while token_start > sentence_start and not text[token_start - 1].isspace():
        token_start -= 1
    token = text[token_start:dot].lstrip(_OPENERS + "*_")
    word = token.lower()
    if word in ("st", "dr") and _street_sense(text[sentence_start:token_start], next_capitalised=True):
        return True  # like "Ave.", "Rd.": a capital after a street name starts a sentence ("12 Elm St. The shop")
    if word in _TITLES:
        return False
    if word in _BEFORE_NUMBER and text[following].isdigit():
        return False
    if len(token) == 1 and token.isupper():
        # An initial ("J. R. R. Tolkien", "George W. Bush"), unless a sentence plainly starts: "Plan B. Then ..."
        next_is_initial = following + 1 < end and text[following + 1] == "."
        return not next_is_initial and _next_is_starter(text, following, end)
    if word in _MONTH_ABBREVIATIONS:
        return not text[following].isdigit() and _next_is_starter(text, following, end)
    if word in _AMBIGUOUS or token in _WEEKDAY_ABBREVIATIONS or _DOTTED.fullmatch(token):
        return _next_is_starter(text, following, end)
    # A number at the start of a line is a list marker: "1. Preheat the oven."
    return not (token.isdigit() and len(token) <= 3 and _at_line_start(text, sentence_start, token_start))


def _next_is_starter(text: str, index: int, end: int) -> bool:
    if text[index] in _OPENERS:
        return True
    stop = index
    while stop < end and (text[stop].isalpha() or text[stop] == "'"):
        stop += 1
    return text[index:stop].lower() in _STARTERS


def _at_line_start(text: str, limit: int, index: int) -> bool:
    while index > limit and text[index - 1] in " \t":
        index -= 1
    return index == limit or text[index - 1] in "\r\n\u2028"


def _street_sense(before: str, next_capitalised: bool) -> bool:
    """Whether "St."/"Dr." after ``before`` reads Street/Drive ("12 Elm St.") rather than Saint/Doctor."""
    words = before.split()
    if not words or words[-1][-1] in ",;:(\"'“‘":
        return False
    previous = words[-1].strip(_OPENERS)
    if any(ch.isdigit() for ch in previous):
        return True
    # A capitalised word before it names the street, unless it is just the sentence's first word ("In St. Louis").
    return previous[:1].isupper() and (len(words) > 1 or not next_capitalised)


def _quoted_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """(open, close) indices of quotations inside which no sentence ends: those that sit mid-sentence."""
    spans: list[tuple[int, int]] = []
    double: int | None = None
    single: int | None = None
    for match in _QUOTE_CHAR.finditer(text, start, end):
        i = match.start()
        ch = text[i]
        before = text[i - 1] if i > start else " "
        after = text[i + 1] if i + 1 < end else " "
        if ch in "“«" or (ch == '"' and double is None):
            double = i if double is None else double
        elif ch in '”»"':
            if double is not None:
                spans.append((double, i))
                double = None
        elif ch in "'‘" and single is None and not before.isalnum() and after.isalpha():
            single = i
        elif ch in "'’" and single is not None and not before.isspace() and not after.isalnum():
            spans.append((single, i))
            single = None
    return [(opened, closed) for opened, closed in spans if _mid_sentence(text, start, end, opened, closed)]


def _mid_sentence(text: str, start: int, end: int, opened: int, closed: int) -> bool:
    """The quotation opens after a word or comma ("He said, 'Stop.'") or the sentence goes on after it."""
    before = opened - 1
    while before >= start and text[before].isspace():
        before -= 1
    if before >= start and (text[before].isalnum() or text[before] in ",;:—–-"):
        return True
    after = closed + 1
    while after < end and text[after].isspace():
        after += 1
    return after < end and (text[after].islower() or text[after] in ",;:—–")


# --- the hard fallback -----------------------------------------------------------------------------------------

# Preferred cuts, best first: a sentence mark, a clause mark or dash, a comma (each followed by a space).
_CUT_TIERS = (
    re.compile(r"(?<![.!?…])[.!?…]+[\"'”’»)\]]*(?=\s)"),
    re.compile(r"[;:][\"'”’»)\]]*(?=\s)|[—–]|\s-{1,2}(?=\s)"),
    re.compile(r",[\"'”’»)\]]*(?=\s)"),
)


def _fit(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """The span, cut into pieces of at most ``max_chars``."""
    while end - start > max_chars:
        cut = _cut(text, start, start + max_chars, max_chars)
        yield from _stripped(text, start, cut)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    yield from _stripped(text, start, end)


def _cut(text: str, low: int, high: int, max_chars: int) -> int:
    """Where to end a piece starting at ``low``: the best mark in the window, else the last space, else ``high``."""
    floor = low + max_chars // 3  # a clause cut this early would leave a very short piece
    for tier in _CUT_TIERS:
        # One character past the window, so that a mark right at the limit is seen with its following space.
        ends = [match.end() for match in tier.finditer(text, low, high + 1) if match.end() <= high]
        if ends and ends[-1] > floor:
            return ends[-1]
    for index in range(high, low, -1):
        if text[index].isspace():
            return index
    return high  # one word longer than max_chars: cut it


# --- normalisation ---------------------------------------------------------------------------------------------

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


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


# Typography and markup.
_VULGAR_FRACTION = re.compile(r"(\d?)([¼½¾⅐-⅞])")
_SUPERSCRIPT_MARK = re.compile(r"[¹²³⁰⁴-⁹]+")  # footnote marks ("word¹"); read before NFKC turns them into digits
_PLAIN = str.maketrans(
    {"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'"}
    | {"‐": "-", "‑": "-", "−": "-", "‒": "–", "⁄": "/"}
)
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029]")
_RULE_LINE = re.compile(r"^[ \t]*([=\-*_~])(?:[ \t]*\1){2,}[ \t]*$", re.MULTILINE)
_MD_HEADING_MARKS = re.compile(r"^[ \t]*#{1,6}[ \t]+|[ \t]+#+[ \t]*$", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*\)")
_BULLET = re.compile(r"^[ \t]*[-*•+‣◦][ \t]+", re.MULTILINE)
_NUMBERED_ITEM = re.compile(r"^[ \t]*(\d{1,3})[.)][ \t]+", re.MULTILINE)
_FOOTNOTE = re.compile(r"\[(?:\d{1,3}|[a-z]|\*+)\]|[*†‡]+")
_EMPHASIS = re.compile(r"(?<!\w)_+(?=\w)|(?<=\w)_+(?!\w)")
_NUMBER_DASH = re.compile(r"(?<=\d)[ \t]*[–—][ \t]*(?=\d)")
_DASH = re.compile(r"\s*(?:[–—―]|--+)\s*|\s+-\s+")
_ELLIPSIS = re.compile(r"\.(?:[ \t]?\.){2,}")
_ELLIPSIS_AT_END = re.compile(r"\.\.\.(?=[\"')\]\s]*$)")
_ELLIPSIS_BEFORE_MARK = re.compile(r"\.\.\.(?=\s*[!?,;:])")


def _prepare(sentence: str) -> str:
    text = _VULGAR_FRACTION.sub(_say_vulgar_fraction, sentence)
    text = _SUPERSCRIPT_MARK.sub("", text)
    text = unicodedata.normalize("NFKC", text).translate(_PLAIN)  # NFKC: "…" -> "...", "ﬁ" -> "fi", "℃" -> "°C"
    return _NEWLINES.sub("\n", text)


def _say_vulgar_fraction(match: re.Match[str]) -> str:
    fraction = unicodedata.normalize("NFKC", match.group(2)).replace("⁄", "/")
    return f"{match.group(1)} {fraction}" if match.group(1) else fraction


def _markup(text: str) -> str:
    text = _RULE_LINE.sub("", text)
    text = _MD_HEADING_MARKS.sub("", text)
    text = _MD_LINK.sub(r"\1", text)
    text = _BULLET.sub("", text)
    text = _NUMBERED_ITEM.sub(r"\1. ", text)
    text = _FOOTNOTE.sub("", text)
    return _EMPHASIS.sub("", text)


def _typography(text: str) -> str:
    text = _NUMBER_DASH.sub(" to ", text)
    text = _DASH.sub(", ", text)
    # espeak-ng runs words together across "..." ("Wait... what" is one word): a comma gives the pause.
    text = _ELLIPSIS.sub("...", text)
    text = _ELLIPSIS_AT_END.sub(".", text)
    text = _ELLIPSIS_BEFORE_MARK.sub("", text)
    return text.replace("...", ", ")


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


# Dates, times, phone numbers.
_ISO_DATE = re.compile(r"(?<![\w-])(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?![\w-])")
_PHONE = re.compile(r"(?<![\w-])(?:\(\d{3}\)[ \t]?|\d{3}[-.])\d{3}[-.]\d{4}(?![\w-])")
_TIME = re.compile(
    r"(?<![\w:.])([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?:[ \t]?([ap])\.?m\b\.?)?(?![\w:])", re.IGNORECASE
)
_HOUR_WITH_PERIOD = re.compile(r"(?<![\w:.])(1[0-2]|0?[1-9])[ \t]?([ap])\.?m\b\.?", re.IGNORECASE)


def _dates_and_times(text: str) -> str:
    text = _ISO_DATE.sub(lambda m: f"{_MONTHS[int(m[2]) - 1]} {_ordinal(m[3])}, {_year(m[1])}", text)
    text = _PHONE.sub(lambda m: ", ".join(_digits(group) for group in re.findall(r"\d+", m.group())), text)
    text = _TIME.sub(_say_time, text)
    return _HOUR_WITH_PERIOD.sub(lambda m: f"{_cardinal(m[1])} {m[2].upper()}M", text)


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


# Abbreviations.
_EXPANSIONS = {
    "Mr": "Mister", "Mrs": "Missus", "Ms": "Miz", "Mx": "Mix", "Messrs": "Messieurs", "Prof": "Professor",
    "Rev": "Reverend", "Fr": "Father", "Capt": "Captain", "Gen": "General", "Lt": "Lieutenant", "Col": "Colonel",
    "Sgt": "Sergeant", "Gov": "Governor", "Sen": "Senator", "Rep": "Representative", "Hon": "Honorable",
    "Pres": "President", "Mt": "Mount", "Ft": "Fort", "Jr": "Junior", "Sr": "Senior", "Ave": "Avenue",
    "Rd": "Road", "Blvd": "Boulevard", "Inc": "Incorporated", "Ltd": "Limited", "Co": "Company",
    "Corp": "Corporation", "Bros": "Brothers", "Dept": "Department", "Univ": "University", "Esq": "Esquire",
    "approx": "approximately", "Approx": "approximately", "vs": "versus", "etc": "et cetera", "cf": "compare",
    "viz": "namely", "Jan": "January", "Feb": "February", "Mar": "March", "Apr": "April", "Jun": "June",
    "Jul": "July", "Aug": "August", "Sep": "September", "Sept": "September", "Oct": "October",
    "Nov": "November", "Dec": "December", "Mon": "Monday", "Tue": "Tuesday", "Tues": "Tuesday",
    "Wed": "Wednesday", "Thu": "Thursday", "Thur": "Thursday", "Thurs": "Thursday", "Fri": "Friday",
    "Ctr": "Center",
}  # fmt: skip
_BEFORE_NUMBER_WORDS = {
    "no": "number", "nos": "numbers", "fig": "figure", "figs": "figures", "p": "page", "pp": "pages",
    "vol": "volume", "ch": "chapter", "sec": "section", "eq": "equation", "art": "article", "ca": "circa",
    "c": "circa",
}  # fmt: skip
_ABBREVIATION = re.compile(rf"(?<![\w.])({'|'.join(sorted(_EXPANSIONS, key=len, reverse=True))})\.(?!\w)")
_BARE_TITLE = re.compile(r"(?<![\w.])(Mr|Mrs|Ms|vs)(?=[ \t]+\w)")
_BEFORE_NUMBER_ABBREVIATION = re.compile(rf"(?<![\w.])({'|'.join(_BEFORE_NUMBER_WORDS)})\.[ \t]?(?=\d)", re.IGNORECASE)
_SAINT_OR_STREET = re.compile(r"(?<![\w.])(St|Dr)(?:\.(?!\w)|(?=[ \t]+\w))")
_LATIN = (
    (re.compile(r"(?<![\w.])e\.[ \t]?g\.?(?!\w)", re.IGNORECASE), "for example"),
    (re.compile(r"(?<![\w.])i\.[ \t]?e\.?(?!\w)", re.IGNORECASE), "that is"),
    (re.compile(r"(?<![\w.])a\.k\.a\.?(?!\w)", re.IGNORECASE), "also known as"),
    (re.compile(r"(?<![\w.])et al\.(?!\w)"), "et al"),
    (re.compile(r"(?<![\w.])Ph\.[ \t]?D\.?(?!\w)"), "PhD"),
)
_DOTTED_ACRONYM = re.compile(r"(?<![\w.])((?:[A-Za-z]\.)+[A-Za-z])\.?(?!\w)")
# "Sat."/"Sun." name days, but "the Sun." is more likely a newspaper (or the sun).
_WEEKEND_DAY = re.compile(r"(?<![Tt]he )(?<![\w.])(Sat|Sun)\.(?!\w)")
_WEEKEND_DAYS = {"Sat": "Saturday", "Sun": "Sunday"}
_INITIAL = re.compile(r"(?<![\w.])([A-Z])\.(?=[ \t]+[A-Z])")


def _abbreviations(text: str) -> str:
    for pattern, spoken in _LATIN:
        text = pattern.sub(spoken, text)
    text = _BEFORE_NUMBER_ABBREVIATION.sub(lambda m: _BEFORE_NUMBER_WORDS[m[1].lower()] + " ", text)
    text = _SAINT_OR_STREET.sub(_say_saint_or_street, text)
    text = _ABBREVIATION.sub(lambda m: _EXPANSIONS[m[1]], text)
    text = _BARE_TITLE.sub(lambda m: _EXPANSIONS[m[1]], text)
    text = _WEEKEND_DAY.sub(lambda m: _WEEKEND_DAYS[m[1]], text)
    text = _DOTTED_ACRONYM.sub(lambda m: m[1].replace(".", "").upper(), text)
    # espeak-ng reads a lone capital "A" as the article ("uh"); "Eh" gets the letter's name.
    return _INITIAL.sub(lambda m: "Eh" if m[1] == "A" else m[1], text)


def _say_saint_or_street(match: re.Match[str]) -> str:
    following = match.string[match.end() :].lstrip()
    street = _street_sense(match.string[: match.start()], next_capitalised=following[:1].isupper())
    if match[1] == "St":
        return "Street" if street else "Saint"
    return "Drive" if street else "Doctor"


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
    "MHz": "megahertz", "GHz": "gigahertz", "kW": "kilowatt", "kWh": "kilowatt hour", "m": "meter",
}  # fmt: skip
_UNIT_PLURALS = {"foot": "feet", "mile per hour": "miles per hour", "kilometer per hour": "kilometers per hour"}
_UNIT = re.compile(
    rf"(?<![\w.])({_NUM})(?:\.(\d+))?[ \t]?({'|'.join(sorted(map(re.escape, _UNITS), key=len, reverse=True))})"
    r"\.?(?![\w/])"
)


def _amounts(text: str) -> str:
    text = _NEGATIVE.sub("minus ", text)  # before degrees: "-5°C"
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
_NUMBER_SLASH = re.compile(r"(?<=\d)/(?=\d)")  # "24/7", "9/11": read as two numbers
_YEAR = re.compile(r"(?<![\w.,])(1[1-9]\d\d|20\d\d)(?![\w%]|[.,]\d)")
_DECIMAL = re.compile(rf"(?<![\w.])(?:({_NUM})\.|\.)(\d+)(?!\.\d)")  # "1.5x faster" too
_NEGATIVE = re.compile(r"(?<![\w.])-(?=\d)")
_CARDINAL = re.compile(rf"(?<![\w.])({_NUM})(?!\w)")


def _numbers(text: str) -> str:
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


# Leftover symbols and clean-up.
_SYMBOLS = (
    (re.compile(r"[ \t]*&[ \t]*"), " and "),
    (re.compile(r"\s*\|\s*"), ", "),
    (re.compile(r"@"), " at "),
    (re.compile(r"%"), " percent"),
)
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_MARK = re.compile(r"\s+([,.;:!?])")
_REPEATED_MARKS = re.compile(r"([,;:])(?:\s*[,;:])+")
_MARK_BEFORE_END = re.compile(r"[,;:]\s*([.!?])")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"'”’»)\]]*\s*$")
_SPOKEN_END = re.compile(r"[.!?][\"')\]]*$")


def _symbols(text: str) -> str:
    for pattern, spoken in _SYMBOLS:
        text = pattern.sub(spoken, text)
    return text


def _finish(text: str, original: str) -> str:
    text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_MARK.sub(r"\1", text)
    text = _REPEATED_MARKS.sub(r"\1", text)
    text = _MARK_BEFORE_END.sub(r"\1", text)
    text = text.strip(" ,;:")
    if not any(ch.isalnum() for ch in text):
        return ""
    # An abbreviation's period that also ended the sentence went with the abbreviation ("at 7 a.m.").
    if _ENDS_SENTENCE.search(original) and not _SPOKEN_END.search(text):
        text += "."
    return text


_STEPS: tuple[Callable[[str], str], ...] = (
    _markup,
    _typography,
    _web,
    _dates_and_times,
    _abbreviations,
    _amounts,
    _numbers,
    _symbols,
)


def normalize(sentence: str) -> str:
    """What espeak-ng should say for one English sentence: numbers, amounts and abbreviations as words."""
    text = _prepare(sentence)
    for step in _STEPS:
        text = step(text)
    return _finish(text, sentence)
