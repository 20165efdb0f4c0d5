"""Blocks of a document (headings, paragraphs, list items) written in the one plain form the splitter narrates.

Every reader turns its format into ``Block``s; ``write_plain`` writes them so that ``engine.text.split`` finds the
structure again: a chapter is a ``# Title`` line, a section a ``## Title`` line, each block a paragraph of its own
(a blank line between), the items of a list on consecutive lines. Two rules keep body text from being taken for a
heading: a paragraph that ends on a letter or digit gets a full stop (the splitter takes a short line without a
sentence end for a title), and a line of body text that starts like a Markdown heading ("# 1 seller") loses its
hashes. The splitter's other heading rules (a line in capitals, "Chapter 3" alone) still apply, as to plain text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CHAPTER = 1
"""``Block.level`` of a chapter heading, written ``# Title``."""
SECTION = 2
"""``Block.level`` of a section heading, written ``## Title``."""


@dataclass(frozen=True)
class Block:
    """One heading, paragraph or list item; ``text`` may hold line breaks (``<br>``, a poem's lines)."""

    kind: Literal["heading", "paragraph", "item"]
    text: str
    level: int = 0
    """A heading's: ``CHAPTER`` or ``SECTION``."""
    marker: str = ""
    """A list item's: "- " or "3. "."""


def tidy(text: str) -> str:
    """Each line's whitespace collapsed to single spaces, blank lines dropped."""
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def write_plain(blocks: list[Block]) -> tuple[str, list[str]]:
    """The plain form of ``blocks`` and the titles of its chapters, in order."""
    parts: list[str] = []
    chapters: list[str] = []
    previous: Block | None = None
    for block in blocks:
        if block.kind == "heading":
            title = " ".join(block.text.split())
            if not title:
                continue
            if block.level == CHAPTER:
                chapters.append(title)
            parts.append(("# " if block.level == CHAPTER else "## ") + title)
        elif block.kind == "item":
            line = " ".join(_body(block.text).split())
            if not line:
                continue
            if previous is not None and previous.kind == "item":
                parts[-1] += "\n" + block.marker + line  # one list, one paragraph: no line alone reads as a title
            else:
                parts.append(block.marker + line)
        else:
            text = _body(block.text)
            if not text:
                continue
            parts.append(text + "." if text[-1].isalnum() else text)
        previous = block
    return "\n\n".join(parts), chapters


def _body(text: str) -> str:
    """Body text tidied, without a leading run of "#" that would make a line a heading, nor lines of "=" or "-"
    alone (a setext underline)."""
    lines = []
    for line in tidy(text).split("\n"):
        stripped = line.lstrip("#")
        if stripped != line and stripped[:1] in (" ", "\t") and len(line) - len(stripped) <= 6:
            line = stripped.strip()
        if line and set(line) not in ({"="}, {"-"}):
            lines.append(line)
    return "\n".join(lines)
