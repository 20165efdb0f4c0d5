"""Long text to paragraph-aware sentence chunks, each with what to say for it.

``split_text`` cuts ``clean_text(text)`` into paragraphs (a blank line starts one) and sentences, one chunk per
sentence (short sentences are not merged: the pause between chunks is then always a sentence pause), with a hard
fallback that keeps every chunk's source within ``max_chars`` (cut at the best clause boundary, the pieces read as
one sentence's clauses); each chunk's spoken form is ``normalize(source)``, with HTML comments left silent. Which
periods end a sentence follows the table in engine.text.lexicon. Pure functions, no I/O.
"""

# Typography is this module's subject: curly quotes, dashes and primes in its strings are meant.
# ruff: noqa: RUF001

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .clean import clean_text
from .comments import Span, comment_spans, in_comment, silenced, within
from .lexicon import (
    AMBIGUOUS,
    BEFORE_NUMBER,
    HEADING_WORDS,
    MONTHS,
    OPENERS,
    STREET_OR_TITLE,
    TITLE_SMALL_WORDS,
    TITLES,
    WEEKDAYS,
    street_sense,
    takes_number,
)
from .normalize import normalize

MAX_CHUNK_CHARS = 400
"""The default of ``split_text(max_chars=...)``: no chunk's source is longer, so one inference stays short."""
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
    continues: bool = False
    """The chunk goes on with the previous chunk's sentence (the hard fallback cut an over-long one): a clause's
    pause comes before it, not a sentence's, and the previous chunk's spoken form ends on a clause mark."""
    level: int = 0
    """A Markdown heading's level (``#`` 1, a chapter; ``##`` 2, a section; a setext ``===`` underline 1, ``---`` 2);
    0 for a heading known only by its shape ("Chapter 3", ALL CAPS) and for every other chunk (issue 14)."""


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Chunks of ``clean_text(text)`` in order, one per sentence; none has a source longer than ``max_chars``."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
    cleaned = clean_text(text)
    comments = comment_spans(cleaned)
    chunks: list[Chunk] = []
    for index, (start, end) in enumerate(_paragraphs(cleaned, comments)):
        paragraph = silenced(cleaned, start, end, comments).strip()
        heading = _is_heading(paragraph)
        level = heading_level(paragraph) if heading else 0
        for sentence_start, sentence_end in _sentences(cleaned, start, end, comments):
            pieces = list(_fit(cleaned, sentence_start, sentence_end, max_chars))
            for number, (piece_start, piece_end) in enumerate(pieces):
                spoken = normalize(
                    silenced(cleaned, piece_start, piece_end, comments),
                    heading=heading,
                    clause_end=number < len(pieces) - 1,
                )
                source = cleaned[piece_start:piece_end]
                chunks.append(Chunk(source, spoken, index, heading, piece_start, continues=number > 0, level=level))
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
_HEADING_WORD_MAX_WORDS = 6
"""A line that starts with a heading word and ends like a sentence is a heading only up to this many words."""
_HEADING_WORD = re.compile(rf"(?:{'|'.join(HEADING_WORDS)})\b", re.IGNORECASE)
# A list item's marker: a bullet, "1.", "1)", "a)", "(b)", "(iii)", "iv.", "(IV)".
_MARKER = r"(?:[-*•+‣◦]|\d{1,3}[.)]|[a-z][.)]|[A-Z]\)|\((?:[A-Za-z]|[ivx]{2,6}|[IVX]{2,6}|\d{1,3})\)|[ivx]{2,6}[.)])"
_LIST_MARKER = re.compile(rf"{_MARKER}\s")
# "0. Definitions.", "10. Automatic Licensing of Downstream Recipients.": a numbered line in title case, with its
# full stop (without one, "1. Apples" is more likely a list item set off by blank lines).
_TITLE_WORD = rf"(?:[A-Z0-9][\w'’-]*|{'|'.join(TITLE_SMALL_WORDS)})"
_NUMBERED_TITLE = re.compile(rf"\d{{1,3}}\.[ \t]+[A-Z][\w'’-]*(?:[ \t]+{_TITLE_WORD})*\.")
_NOT_HEADING_END = ".!?,;:…\"'”’»)]"


def _paragraphs(text: str, comments: list[Span]) -> Iterator[tuple[int, int]]:
    """Stripped spans of the non-empty paragraphs."""
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        if comments and in_comment(comments, match.start()):
            continue
        yield from _blocks(text, start, match.start(), comments)
        start = match.end()
    yield from _blocks(text, start, len(text), comments)


def _blocks(text: str, start: int, end: int, comments: list[Span]) -> Iterator[tuple[int, int]]:
    """A paragraph's span, with heading lines inside it split off as paragraphs of their own."""
    block = text[start:end]
    done = 0
    for match in _OWN_PARAGRAPH_LINE.finditer(block):
        if comments and in_comment(comments, start + match.start()):
            continue
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


def heading_level(paragraph: str) -> int:
    """The Markdown level of a heading paragraph ("# Title" 1, "## Title" 2, setext "===" 1, "---" 2), else 0."""
    if _MD_HEADING.match(paragraph):
        return len(paragraph) - len(paragraph.lstrip("#"))
    if _SETEXT_HEADING.fullmatch(paragraph):
        return 1 if paragraph.rstrip()[-1] == "=" else 2
    return 0


def _is_heading(paragraph: str) -> bool:
    if _MD_HEADING.match(paragraph) or _SETEXT_HEADING.fullmatch(paragraph):
        return True
    if len(paragraph) > HEADING_MAX_CHARS or any(ch in paragraph for ch in "\r\n\u2028"):
        return False
    letters = [ch for ch in paragraph if ch.isalpha()]
    if _NUMBERED_TITLE.fullmatch(paragraph):
        return True  # alone in its paragraph ("0. Definitions."); such lines in a list share one, refused above
    if not letters or paragraph[0] in OPENERS or _LIST_MARKER.match(paragraph):
        return False
    if _HEADING_WORD.match(paragraph):
        # "Chapter 3", "Part II: The Return", not a sentence that starts with the word ("Part of the problem was ...").
        return paragraph[-1] not in _NOT_HEADING_END or len(paragraph.split()) <= _HEADING_WORD_MAX_WORDS
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return paragraph[-1] not in "!?"  # "STOP!" alone is a shout, not a title
    return paragraph[-1] not in _NOT_HEADING_END


# --- sentences -------------------------------------------------------------------------------------------------

# A sentence mark, then closing quotes, brackets or footnote marks, then whitespace. Each character can match only
# one way and a match starts only at the first mark of a run, so a long run of marks costs linear time.
_BOUNDARY = re.compile(r"(?<![.!?…])([.!?…]+)(?:[\"'”’»)\]}*†‡¹²³⁰⁴-⁹]|\[\d{1,3}\])*(?=\s)")
# A list item on its own line starts a sentence even when the line before has no full stop (unless that line ends
# with a word a number follows: "added under section\n 7. This requirement" runs on).
_LIST_ITEM = re.compile(rf"(?:\r\n|[\r\n\u2028])[ \t]*{_MARKER}[ \t]+(?=\S)")
_LABEL_TOKEN = re.compile(r"\d{1,3}|[a-z]|[ivx]{2,6}")
_QUOTE_CHAR = re.compile("[\"“”«»'‘’]")
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")
# Words that start a sentence far more often than they follow an abbreviation inside one.
_STARTERS = frozenset({
    "the", "a", "an", "he", "she", "it", "they", "we", "i", "you", "this", "that", "these", "those", "there", "here",
    "but", "and", "so", "then", "in", "on", "at", "when", "if", "as", "my", "his", "her", "our", "their", "its",
    "what", "why", "how", "who", "where", "after", "before", "yes", "no", "now", "meanwhile", "however", "still",
    "later", "today", "one", "some", "many", "all", "each", "every", "both", "to", "for", "with", "from", "by",
    "while", "although", "though", "because", "since", "once", "nor", "or", "yet", "not", "perhaps", "maybe",
    "even", "also", "only", "just", "let", "please", "well", "oh",
})  # fmt: skip


def _sentences(text: str, start: int, end: int, comments: list[Span]) -> Iterator[tuple[int, int]]:
    """Stripped spans of the sentences of the paragraph ``text[start:end]``."""
    inner = [(opened, closed - 1) for opened, closed in within(comments, start, end)]
    quoted = _merged(_quoted_spans(text, start, end) + inner)  # no sentence ends inside a comment either
    quote_opens = [opened for opened, _ in quoted]
    list_cuts = [
        match.start()
        for match in _LIST_ITEM.finditer(text, start, end)
        if not takes_number(text[max(start, match.start() - 40) : match.start()])
        and not (comments and in_comment(comments, match.start()))
    ]
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
    return ch.isupper() or ch.isdigit() or ch in OPENERS or (ch.isalpha() and not ch.islower())


def _period_ends_sentence(text: str, sentence_start: int, dot: int, following: int, end: int) -> bool:
    """Whether the period at ``dot`` (followed by a capital, digit or quote at ``following``) ends a sentence."""
    token_start = dot
    while token_start > sentence_start and not text[token_start - 1].isspace():
        token_start -= 1
    token = text[token_start:dot].lstrip(OPENERS + "*_")
    word = token.lower()
    if word in STREET_OR_TITLE and street_sense(text[sentence_start:token_start], next_capitalised=True):
        return True  # like "Ave.", "Rd.": a capital after a street name starts a sentence ("12 Elm St. The shop")
    if word in TITLES:
        return False
    if word in BEFORE_NUMBER and text[following].isdigit():
        return False
    if len(token) == 1 and token.isupper():
        # An initial ("J. R. R. Tolkien", "George W. Bush"), unless a sentence plainly starts: "Plan B. Then ..."
        next_is_initial = following + 1 < end and text[following + 1] == "."
        return not next_is_initial and _next_is_starter(text, following, end)
    if word in MONTHS:
        return not text[following].isdigit() and _next_is_starter(text, following, end)
    if word in AMBIGUOUS or token in WEEKDAYS or _DOTTED.fullmatch(token):
        return _next_is_starter(text, following, end)
    # A number or letter at the start of a line is a list marker ("1. Preheat the oven.", "a. The work"), unless
    # the line before runs on into it ("... under section\n 7. This requirement").
    if _LABEL_TOKEN.fullmatch(token) and _at_line_start(text, sentence_start, token_start):
        return takes_number(text[max(sentence_start, token_start - 40) : token_start])
    return True


def _next_is_starter(text: str, index: int, end: int) -> bool:
    if text[index] in OPENERS:
        return not (text[index] == "(" and text[index + 1 : index + 2].isdigit())  # "Smith et al. (2019) found"
    stop = index
    while stop < end and (text[stop].isalpha() or text[stop] == "'"):
        stop += 1
    return text[index:stop].lower() in _STARTERS


def _at_line_start(text: str, limit: int, index: int) -> bool:
    while index > limit and text[index - 1] in " \t#":  # "## 2. Installation" starts its line with "2."
        index -= 1
    return index == limit or text[index - 1] in "\r\n\u2028"


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

# Preferred cuts, best first (each followed by a space): a clause mark or dash, a comma, a mark inside the sentence
# (a quotation's end, an abbreviation: the sentence goes on after it), and the space before a conjunction.
_CUT_TIERS = (
    re.compile(r"[;:][\"'”’»)\]]*(?=\s)|[—–]|\s-{1,2}(?=\s)"),
    re.compile(r",[\"'”’»)\]]*(?=\s)"),
    re.compile(r"(?<![.!?…])[.!?…]+[\"'”’»)\]]*(?=\s)"),
    re.compile(r"\s(?=(?:and|or|but|nor|so|yet|which|who|whose|that|because|while|where|when|if|unless)\s)"),
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
