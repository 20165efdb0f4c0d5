"""HTML read into plain-form blocks with lxml: headings, paragraphs, lists, tables; nothing run, nothing fetched.

An HTML upload that holds a script is refused, not cleaned: a ``<script>`` element, an event-handler attribute
(``onclick``) or a ``javascript:`` URL is a DocumentError that names it. ttsq would never run it, but a page with
scripts is usually an application rather than a text, and saying so beats narrating what is left of it. (An EPUB's
scripts are allowed by EPUB 3 and are dropped instead: ``html_blocks`` never reads them.)

What is read: ``h1``/``h2`` are chapters and ``h3``-``h6`` sections; ``p``, ``div``, ``blockquote``, ``dt``/``dd``,
``figcaption`` and the like are paragraphs; ``li`` are list items ("- ", or "3. " in an ``ol``); a table row is one
paragraph, its cells joined by commas; ``<br>`` is a line break. What is not: the head (its ``<title>`` and
``<meta name="author">`` become the metadata), scripts, styles, ``noscript``, ``template``, ``nav``, forms, media,
SVG and MathML, ruby annotations, hidden elements, EPUB footnotes, note references and page breaks, and code
(``<pre><code>``: read aloud, code is a string of symbols; a ``<pre>`` without ``<code>``, a poem, is read with its
line breaks).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.entities import html5

import lxml.html
from lxml import etree

from .model import Document, DocumentError, DocumentLimits
from .plain import CHAPTER, SECTION, Block, tidy, write_plain
from .xmlsafe import local_name

_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
_SKIPPED = frozenset({
    "head", "title", "script", "style", "noscript", "template", "nav", "svg", "math", "iframe", "frame", "object",
    "embed", "video", "audio", "canvas", "map", "img", "button", "select", "option", "textarea", "input", "datalist",
    "rt", "rp",
})  # fmt: skip
_SKIPPED_EPUB_TYPES = frozenset({"footnote", "endnote", "rearnote", "noteref", "pagebreak"})
_BLOCKS = frozenset({
    "html", "body", "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote", "figure",
    "figcaption", "ul", "ol", "dl", "dt", "dd", "table", "caption", "thead", "tbody", "tfoot", "address", "center",
    "hgroup", "fieldset", "legend", "details", "summary", "form", "hr", "pre",
})  # fmt: skip
_HEADINGS = {"h1": CHAPTER, "h2": CHAPTER, "h3": SECTION, "h4": SECTION, "h5": SECTION, "h6": SECTION}
_CELLS = frozenset({"td", "th"})
_CELL_END = "\x00"  # between the cells of a row while it is collected; never in text (lxml refuses NUL)
_WHITESPACE = re.compile(r"\s+")
# URL-valued attributes, where "javascript:" would be code (lxml's list of link attributes, and SVG's href).
_URL_ATTRIBUTES = frozenset({*lxml.html.defs.link_attrs, "{http://www.w3.org/1999/xlink}href", "formaction"})
_SCRIPT_SCHEMES = ("javascript:", "vbscript:")
_AUTHOR_NAMES = ("author", "dc.creator", "dcterms.creator")


@dataclass(frozen=True)
class Anchor:
    """Where an element with one of the ids asked for starts (an EPUB navigation entry's ``#fragment``)."""

    id: str


def parse_html(data: bytes, what: str = "the HTML document") -> etree._Element:
    """The root element of an HTML document, by lxml's forgiving HTML parser (no network; comments dropped)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding: str | None = "utf-16"
    else:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = None  # a <meta charset>, else lxml's default
    parser = lxml.html.HTMLParser(encoding=encoding, no_network=True, remove_comments=True, remove_pis=True)
    try:
        return lxml.html.document_fromstring(data, parser=parser)
    except (etree.LxmlError, ValueError) as error:
        raise DocumentError(f"{what} cannot be parsed as HTML: {error}") from None


def read_html(data: bytes, limits: DocumentLimits) -> Document:
    """An HTML upload as a Document; DocumentError if it holds a script (see the module docstring)."""
    root = parse_html(data)
    refuse_scripts(root)
    body = next((el for el in root.iter(etree.Element) if local_name(el).lower() == "body"), root)
    blocks = [block for block in html_blocks(body) if isinstance(block, Block)]
    text, chapters = write_plain(blocks)
    limits.check_text(len(text))
    title, author = _metadata(root)
    return Document(text=text, title=title, author=author, chapters=chapters)


def refuse_scripts(root: etree._Element) -> None:
    """DocumentError for the first script in the tree: an element, an event handler, a script URL."""
    for el in root.iter(etree.Element):
        tag = local_name(el).lower()
        if tag == "script":
            raise DocumentError("HTML with a <script> element is refused: ttsq never runs scripts; remove it")
        for name, value in el.attrib.items():
            if local_name_of(name).startswith("on"):
                raise DocumentError(
                    f"HTML with an event-handler attribute ({local_name_of(name)} on <{tag}>) is refused: "
                    "ttsq never runs scripts; remove it"
                )
            if name in _URL_ATTRIBUTES and "".join(value.split()).lower().startswith(_SCRIPT_SCHEMES):
                raise DocumentError(f"HTML with a script URL ({name} on <{tag}>) is refused: ttsq never runs scripts")


def local_name_of(attribute: str) -> str:
    return attribute.rpartition("}")[2].lower()


def html_blocks(root: etree._Element, anchors: frozenset[str] = frozenset()) -> list[Block | Anchor]:
    """The blocks of ``root``'s text in document order, with an ``Anchor`` where an element whose ``id`` is in
    ``anchors`` starts. Headings are ``CHAPTER`` (h1, h2) or ``SECTION`` (h3-h6)."""
    walker = _Walker(anchors)
    walker.walk(root)
    return walker.blocks


class _Walker:
    """One pass over the tree, with an explicit stack (no recursion limit on deep markup)."""

    def __init__(self, anchors: frozenset[str]) -> None:
        self.anchors = anchors
        self.blocks: list[Block | Anchor] = []
        self.buffer: list[str] = []
        self.items: list[str] = []  # the open list items' markers, "" once the item's first line is out
        self.lists: list[list[int]] = []  # the open lists: [next number], 0 for a bulleted one
        self.capture: etree._Element | None = None  # a heading or table row, collected as one line
        self.pre = 0

    def walk(self, root: etree._Element) -> None:
        self.start(root)
        stack: list[tuple[etree._Element, Iterator[etree._Element]]] = [(root, iter(root))]
        while stack:
            el, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                self.end(el)
                continue
            if isinstance(child, etree._Entity):
                self.add(html5.get(f"{child.name};", ""))
            elif isinstance(child.tag, str) and not self.skipped(child):
                self.start(child)
                stack.append((child, iter(child)))
                continue
            self.add(child.tail)  # a comment, processing instruction, entity or skipped element: only its tail
        self.flush()

    def skipped(self, el: etree._Element) -> bool:
        tag = local_name(el).lower()
        if tag in _SKIPPED or el.get("hidden") is not None or el.get("aria-hidden") == "true":
            return True
        if tag == "pre" and any(local_name(child).lower() == "code" for child in el):
            return True
        epub_type = el.get(_EPUB_TYPE) or el.get("epub:type") or ""
        return not _SKIPPED_EPUB_TYPES.isdisjoint(epub_type.split())

    def start(self, el: etree._Element) -> None:
        tag = local_name(el).lower()
        anchor = el.get("id") or (el.get("name") if tag == "a" else None)
        if anchor is not None and anchor in self.anchors:
            if self.capture is None:
                self.flush()
            self.blocks.append(Anchor(anchor))
        if self.capture is None:
            if tag in _HEADINGS or tag == "tr":
                self.flush()
                self.capture = el
            elif tag == "li":
                self.flush()
                number = self.lists[-1][0] if self.lists else 0
                self.items.append(f"{number}. " if number else "- ")
                if number:
                    self.lists[-1][0] += 1
            elif tag in ("ul", "ol"):
                self.flush()
                self.lists.append([_start_number(el) if tag == "ol" else 0])
            elif tag in _BLOCKS:
                self.flush()
        if tag == "pre":
            self.pre += 1
        if tag == "br":
            self.buffer.append(" " if self.capture is not None else "\n")
        self.add(el.text)

    def end(self, el: etree._Element) -> None:
        tag = local_name(el).lower()
        if tag == "pre":
            self.pre -= 1
        if el is self.capture:
            self.capture = None
            line = "".join(self.buffer)
            self.buffer.clear()
            if tag == "tr":
                cells = (" ".join(cell.split()) for cell in line.split(_CELL_END))
                self.blocks.append(Block("paragraph", ", ".join(cell for cell in cells if cell)))
            else:
                self.blocks.append(Block("heading", " ".join(line.split()), _HEADINGS[tag]))
        elif self.capture is not None:
            if tag in _CELLS:
                self.buffer.append(_CELL_END)
        elif tag == "li":
            self.flush()
            if self.items:
                self.items.pop()
        elif tag in ("ul", "ol"):
            self.flush()
            if self.lists:
                self.lists.pop()
        elif tag in _BLOCKS or tag in _CELLS:
            self.flush()
        self.add(el.tail)

    def add(self, text: str | None) -> None:
        if text:
            self.buffer.append(text if self.pre else _WHITESPACE.sub(" ", text))

    def flush(self) -> None:
        if self.capture is not None:
            return
        text = tidy("".join(self.buffer))
        self.buffer.clear()
        if not text:
            return
        if self.items:
            self.blocks.append(Block("item", text, marker=self.items[-1]))
            self.items[-1] = ""  # the item's later paragraphs go on its list's lines, without a second marker
        else:
            self.blocks.append(Block("paragraph", text))


def _start_number(el: etree._Element) -> int:
    start = el.get("start", "1").strip()
    return int(start) if start.isdecimal() and 0 < int(start) < 10_000 else 1


def _metadata(root: etree._Element) -> tuple[str | None, str | None]:
    title = author = None
    for el in root.iter(etree.Element):
        tag = local_name(el).lower()
        if tag == "title" and title is None:
            title = " ".join("".join(el.itertext()).split())
        elif tag == "meta" and author is None and (el.get("name") or "").strip().lower() in _AUTHOR_NAMES:
            author = " ".join((el.get("content") or "").split()) or None
    return title or None, author
