"""Markdown read into plain-form blocks from markdown-it-py's tokens (CommonMark, with tables).

``#`` and ``##`` headings are chapters, ``###`` to ``######`` sections (setext headings the same: ``===`` is h1,
``---`` h2); paragraphs, list items, block quotes and table rows are read as in ``engine.documents.html``. Code
blocks (fenced or indented) are skipped: read aloud, code is a string of symbols, not prose; inline code is read.
Raw HTML is skipped too (it is markup, never run), and so are images. A YAML front matter block (``---`` on the
first line, up to a ``---`` or ``...`` line) is metadata, not text: its ``title`` and ``author`` (or ``authors``,
a list) become the Document's.
"""

from __future__ import annotations

from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from .model import Document, DocumentError, DocumentLimits, decode_text
from .plain import CHAPTER, SECTION, Block, write_plain

_HEADING_LEVELS = {"h1": CHAPTER, "h2": CHAPTER, "h3": SECTION, "h4": SECTION, "h5": SECTION, "h6": SECTION}
_FRONT_MATTER_OPEN = "---"
_FRONT_MATTER_CLOSE = ("---", "...")


def read_markdown(data: bytes, limits: DocumentLimits) -> Document:
    source = decode_text(data, "the Markdown document")
    metadata, body = split_front_matter(source)
    text, chapters = write_plain(markdown_blocks(body))
    limits.check_text(len(text))
    return Document(text=text, title=_string(metadata.get("title")), author=_authors(metadata), chapters=chapters)


def split_front_matter(source: str) -> tuple[dict[str, Any], str]:
    """The front matter's mapping (empty without one) and the text after it."""
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != _FRONT_MATTER_OPEN:
        return {}, source
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() in _FRONT_MATTER_CLOSE:
            try:
                metadata = yaml.safe_load("".join(lines[1:index]))
            except (yaml.YAMLError, RecursionError) as error:
                raise DocumentError(f"the Markdown front matter is not valid YAML: {error}") from None
            if metadata is not None and not isinstance(metadata, dict):
                raise DocumentError(f"the Markdown front matter must be a mapping, got {type(metadata).__name__}")
            return metadata or {}, "".join(lines[index + 1 :])
    return {}, source  # no closing line: a thematic break, not front matter


def markdown_blocks(source: str) -> list[Block]:
    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    return _Reader().read(parser.parse(source))


class _Reader:
    """Blocks from the token stream: markdown-it gives a flat list of open/inline/close tokens."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.lists: list[int] = []  # the open lists' next numbers, 0 for a bulleted one
        self.items: list[str] = []  # the open items' markers, "" once the item's first line is out
        self.cells: list[str] | None = None  # the row being read

    def read(self, tokens: list[Token]) -> list[Block]:
        index = 0
        while index < len(tokens):
            token = tokens[index]
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            kind = token.type
            if kind == "heading_open" and following is not None and following.type == "inline":
                self.blocks.append(Block("heading", _inline(following), _HEADING_LEVELS.get(token.tag, SECTION)))
                index += 2
                continue
            if kind in ("bullet_list_open", "ordered_list_open"):
                start = token.attrs.get("start", 1) if kind == "ordered_list_open" else 0
                self.lists.append(int(start) if isinstance(start, (int, str)) and str(start).isdecimal() else 1)
            elif kind in ("bullet_list_close", "ordered_list_close") and self.lists:
                self.lists.pop()
            elif kind == "list_item_open":
                number = self.lists[-1] if self.lists else 0
                self.items.append(f"{number}. " if number else "- ")
                if number:
                    self.lists[-1] += 1
            elif kind == "list_item_close" and self.items:
                self.items.pop()
            elif kind == "tr_open":
                self.cells = []
            elif kind == "tr_close" and self.cells is not None:
                self.blocks.append(Block("paragraph", ", ".join(cell for cell in self.cells if cell)))
                self.cells = None
            elif kind == "inline":
                self.text(_inline(token))
            # Everything else carries no text of its own: fences and code blocks, raw HTML, rules, the open and
            # close tokens of paragraphs, quotes and tables.
            index += 1
        return self.blocks

    def text(self, text: str) -> None:
        if self.cells is not None:
            self.cells.append(" ".join(text.split()))
        elif self.items:
            self.blocks.append(Block("item", text, marker=self.items[-1]))
            self.items[-1] = ""
        else:
            self.blocks.append(Block("paragraph", text))


def _inline(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        # html_inline (markup), image (not read), and the open/close marks of emphasis and links: no text
    return "".join(parts)


def _string(value: object) -> str | None:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return " ".join(str(value).split()) or None
    return None


def _authors(metadata: dict[str, Any]) -> str | None:
    value = metadata.get("author", metadata.get("authors"))
    if isinstance(value, list):
        names = [name for name in (_string(item) for item in value) if name]
        return ", ".join(names) or None
    return _string(value)
