"""HTML comments in Markdown ("<!-- lint disable -->"): where they are, and a text with them blanked (issue 16).

A comment is never spoken and never a heading; the splitter keeps each one inside one paragraph and one sentence
however many lines and full stops it holds, and the normaliser drops any it sees whole.
"""

from __future__ import annotations

import bisect
import re

Span = tuple[int, int]
"""(start, end) offsets of a comment, ``end`` past its "-->"."""

HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def comment_spans(text: str) -> list[Span]:
    """The closed comments of ``text``, in order. str.find rather than the lazy pattern: linear however many
    unclosed "<!--" there are."""
    spans: list[Span] = []
    opened = text.find("<!--")
    while opened >= 0:
        closed = text.find("-->", opened + 4)
        if closed < 0:
            break
        spans.append((opened, closed + 3))
        opened = text.find("<!--", closed + 3)
    return spans


def in_comment(spans: list[Span], index: int) -> bool:
    """Whether ``index`` falls strictly inside a comment."""
    at = bisect.bisect_left(spans, (index, 0)) - 1  # the last comment opened before ``index``
    return at >= 0 and index < spans[at][1]


def within(spans: list[Span], start: int, end: int) -> list[Span]:
    """The comments that overlap ``[start, end)``."""
    found = []
    for at in range(max(0, bisect.bisect_left(spans, (start, 0)) - 1), len(spans)):
        opened, closed = spans[at]
        if opened >= end:
            break
        if closed > start:
            found.append(spans[at])
    return found


def silenced(text: str, start: int, end: int, spans: list[Span]) -> str:
    """``text[start:end]`` with the comments in it (or the part of one a cut left in it) blanked: what to speak."""
    parts, done = [], start
    for opened, closed in within(spans, start, end) if spans else ():
        parts += [text[done : max(done, opened)], " "]
        done = max(done, min(closed, end))
    return "".join(parts) + text[done:end]
