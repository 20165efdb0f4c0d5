"""EPUB 2 and 3 read with zipfile and lxml into the plain form: chapters from the navigation, in spine order.

The archive is checked before anything in it is inflated: not a zip, more than ``max_entries`` files, or files that
add up (as declared) to more than ``max_uncompressed_bytes`` is a DocumentError; every read is bounded as well, by
what is left of that budget, so a file that lies about its size is caught too. Only stored and deflated entries
are read (all OCF allows). Every XML file is parsed with entities, DTDs and the network off.

``META-INF/container.xml`` names the package document; its metadata gives the title (``dc:title``), the author
(``dc:creator``s, less those whose role is not "aut"), and the cover (the manifest item whose properties hold
"cover-image", else EPUB 2's ``<meta name="cover">``). Its spine gives the reading order; a spine entry that names
no manifest item, or an item whose file is not in the archive, is a DocumentError.

Chapters come from the table of contents: the EPUB 3 navigation document (``<nav epub:type="toc">``), else the
EPUB 2 NCX. Each entry starts a heading where it points (a file, or an element of it by ``#fragment``): a top-level
entry, or one that begins its document, is a chapter (``# Title``: "Part One" and the chapters nested under it, each
in its own file, are all chapters); a nested entry that points into a document's text is a section (``## Title``).
A document's own headings that repeat its entry's title right after it are dropped; its other headings are
sections. A spine document the table of contents does not point to continues the chapter before it. Without a
usable table of contents, each document's own headings are used (h1/h2 chapters, as for HTML).

Front matter is skipped, by this rule: every spine document before the first one the table of contents points to;
any document marked ``linear="no"``; the navigation document itself; and any document that EPUB 3 landmarks, the
EPUB 2 guide or its own ``epub:type`` marks as a cover, title page, half-title, copyright page or imprint, table of
contents, or list of illustrations or tables. Scripts in content documents are never run: they are dropped.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from lxml import etree

from .html import Anchor, html_blocks, parse_html
from .model import Document, DocumentError, DocumentLimits, DocumentTooLargeError
from .plain import CHAPTER, SECTION, Block, write_plain
from .xmlsafe import local_name, namespace, over_limits, parse_xml, safe_parser, xml_error

_CONTAINER = "META-INF/container.xml"
_DC = "http://purl.org/dc/elements/1.1/"
_OPF = "http://www.idpf.org/2007/opf"
_EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
_CONTENT_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_NCX_TYPE = "application/x-dtbncx+xml"
_FRONT_MATTER = frozenset({
    "cover", "titlepage", "title-page", "halftitlepage", "copyright-page", "imprint", "toc", "loi", "lot",
})  # fmt: skip


@dataclass(frozen=True)
class _Item:
    path: str
    media_type: str
    properties: frozenset[str]


@dataclass(frozen=True)
class _Entry:
    """One entry of the table of contents."""

    title: str
    path: str
    fragment: str
    depth: int


class _Archive:
    """The zip, checked before it is read, and read within the uncompressed budget."""

    def __init__(self, data: bytes, limits: DocumentLimits) -> None:
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
            raise DocumentError(f"the EPUB is not a valid zip archive: {error}") from None
        if len(infos) > limits.max_entries:
            raise DocumentTooLargeError("the EPUB archive", len(infos), limits.max_entries, "files")
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_uncompressed_bytes:
            raise DocumentTooLargeError(
                "the EPUB archive, uncompressed,", declared, limits.max_uncompressed_bytes, "bytes"
            )
        self.limit = limits.max_uncompressed_bytes
        self.budget = limits.max_uncompressed_bytes
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            self.infos.setdefault(info.filename, info)

    def has(self, name: str) -> bool:
        return name in self.infos

    def read(self, name: str, what: str) -> bytes:
        info = self.infos.get(name)
        if info is None:
            raise DocumentError(f"{what} {name!r} is not in the EPUB archive")
        if info.flag_bits & 0x1:
            raise DocumentError(f"{what} {name!r} is encrypted (DRM); it cannot be read")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise DocumentError(
                f"{what} {name!r} uses zip compression method {info.compress_type}; EPUB allows "
                "only stored and deflated files"
            )
        if info.file_size > self.budget:
            self.too_large(info.file_size)
        try:
            with self.zip.open(info) as file:
                data = file.read(self.budget + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as error:
            raise DocumentError(f"{what} {name!r} cannot be read from the EPUB archive: {error}") from None
        if len(data) > self.budget:  # more than the entry declared
            self.too_large(len(data))
        self.budget -= len(data)
        return data

    def too_large(self, more: int) -> NoReturn:
        read = self.limit - self.budget
        raise DocumentTooLargeError("the EPUB archive, uncompressed, as read,", read + more, self.limit, "bytes")


def read_epub(data: bytes, limits: DocumentLimits) -> Document:
    archive = _Archive(data, limits)
    opf_path = _rootfile(archive)
    package = parse_xml(archive.read(opf_path, "the package document"), f"the EPUB package document {opf_path!r}")
    base = posixpath.dirname(opf_path)
    manifest = _manifest(package, base)
    spine = _spine(package, manifest, archive)
    entries, front = _navigation(archive, package, manifest, base)
    spine_paths = {item.path for item, _ in spine}
    if not any(entry.path in spine_paths for entry in entries):
        entries = []  # no usable table of contents: documents' own headings instead
    blocks: list[Block] = []
    started = not entries
    chars = 0
    for item, linear in spine:
        if not linear or "nav" in item.properties or item.path in front or item.media_type not in _CONTENT_TYPES:
            continue
        own = [entry for entry in entries if entry.path == item.path]
        if not started and not own:
            continue  # before the first document the table of contents points to: front matter
        body = _body(archive, item.path)
        if _marked_front_matter(body):
            continue
        started = True
        raw = html_blocks(body, frozenset(entry.fragment for entry in own if entry.fragment))
        new = _chapter_blocks(raw, own) if entries else [block for block in raw if isinstance(block, Block)]
        chars += sum(len(block.text) + 2 for block in new)
        limits.check_text(chars)
        blocks.extend(new)
    text, chapters = write_plain(blocks)
    if not text:
        raise DocumentError("the EPUB has no text to read in its spine")
    title, author, cover_id = _metadata(package)
    cover, cover_type = _cover(archive, manifest, cover_id)
    return Document(text=text, title=title, author=author, chapters=chapters, cover=cover, cover_type=cover_type)


def _rootfile(archive: _Archive) -> str:
    if not archive.has(_CONTAINER):
        raise DocumentError(f"the upload is a zip archive but not an EPUB: it has no {_CONTAINER}")
    container = parse_xml(archive.read(_CONTAINER, "the container file"), f"the EPUB's {_CONTAINER}")
    rootfiles = [el for el in container.iter(etree.Element) if local_name(el) == "rootfile" and el.get("full-path")]
    rootfiles.sort(key=lambda el: el.get("media-type") != "application/oebps-package+xml")
    if not rootfiles:
        raise DocumentError(f"the EPUB's {_CONTAINER} names no package document (rootfile)")
    return posixpath.normpath(unquote(rootfiles[0].get("full-path", ""))).lstrip("/")


def _children(el: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in el.iter(etree.Element) if local_name(child) == name]


def _resolve(base: str, href: str) -> tuple[str, str]:
    """(path in the archive, fragment) of a relative link; ("", "") for one to elsewhere (never fetched)."""
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc:
        return "", ""
    path = posixpath.normpath(posixpath.join(base, unquote(parts.path))) if parts.path else ""
    return path.lstrip("/"), unquote(parts.fragment)


def _manifest(package: etree._Element, base: str) -> dict[str, _Item]:
    manifest: dict[str, _Item] = {}
    for el in _children(package, "item"):
        item_id, href = el.get("id"), el.get("href")
        if item_id and href and item_id not in manifest:
            path, _ = _resolve(base, href)
            properties = frozenset((el.get("properties") or "").split())
            manifest[item_id] = _Item(path, (el.get("media-type") or "").strip().lower(), properties)
    return manifest


def _spine(package: etree._Element, manifest: dict[str, _Item], archive: _Archive) -> list[tuple[_Item, bool]]:
    spine: list[tuple[_Item, bool]] = []
    for el in _children(package, "itemref"):
        idref = el.get("idref") or ""
        item = manifest.get(idref)
        if item is None:
            raise DocumentError(f"the EPUB's spine names {idref!r}, which is not in its manifest")
        if not archive.has(item.path):
            raise DocumentError(f"the EPUB's spine item {idref!r} points to {item.path!r}, which is not in the archive")
        spine.append((item, el.get("linear", "yes").strip() != "no"))
    if not spine:
        raise DocumentError("the EPUB's spine is empty: it lists no documents to read")
    return spine


def _navigation(
    archive: _Archive, package: etree._Element, manifest: dict[str, _Item], base: str
) -> tuple[list[_Entry], set[str]]:
    """The table of contents' entries, and the paths that landmarks or the guide mark as front matter."""
    front: set[str] = set()
    for reference in _children(package, "reference"):  # the EPUB 2 guide
        path, _ = _resolve(base, reference.get("href") or "")
        if (reference.get("type") or "").strip().lower() in _FRONT_MATTER and path:
            front.add(path)
    entries: list[_Entry] = []
    nav = next((item for item in manifest.values() if "nav" in item.properties), None)
    if nav is not None and archive.has(nav.path):
        root = _body(archive, nav.path)
        base = posixpath.dirname(nav.path)
        for element in (el for el in root.iter(etree.Element) if local_name(el).lower() == "nav"):
            types = _epub_types(element)
            if "landmarks" in types:
                for link in (el for el in element.iter(etree.Element) if local_name(el).lower() == "a"):
                    path, _ = _resolve(base, link.get("href") or "")
                    if path and not _FRONT_MATTER.isdisjoint(_epub_types(link)):
                        front.add(path)
            elif "toc" in types and not entries:
                entries = _nav_entries(element, base)
    if not entries:
        ncx_id = next((el.get("toc") for el in _children(package, "spine") if el.get("toc")), None)
        ncx = manifest.get(ncx_id or "") or next((i for i in manifest.values() if i.media_type == _NCX_TYPE), None)
        if ncx is not None and archive.has(ncx.path):
            root = parse_xml(archive.read(ncx.path, "the NCX"), f"the EPUB's NCX {ncx.path!r}")
            entries = _ncx_entries(root, posixpath.dirname(ncx.path))
    return entries, front


def _epub_types(el: etree._Element) -> set[str]:
    return set((el.get(_EPUB_TYPE) or el.get("epub:type") or "").split())


def _nav_entries(nav: etree._Element, base: str) -> list[_Entry]:
    """A ``<nav>``'s ``ol > li > a`` entries in document order, each with its depth (1 for the top list's)."""
    entries: list[_Entry] = []
    top = next((el for el in nav if local_name(el).lower() == "ol"), None)
    stack: list[tuple[Iterator[etree._Element], int]] = [(iter(top), 1)] if top is not None else []
    while stack:
        items, depth = stack[-1]
        li = next(items, None)
        if li is None:
            stack.pop()
            continue
        if local_name(li).lower() != "li":
            continue
        nested = None
        for child in li:
            name = local_name(child).lower()
            if name == "a" and child.get("href"):
                path, fragment = _resolve(base, child.get("href", ""))
                title = _text(child)
                if path and title:
                    entries.append(_Entry(title, path, fragment, depth))
            elif name == "ol":
                nested = child
        if nested is not None:
            stack.append((iter(nested), depth + 1))  # walked before the next sibling: document order
    return entries


def _ncx_entries(root: etree._Element, base: str) -> list[_Entry]:
    entries: list[_Entry] = []
    nav_map = next((el for el in root.iter(etree.Element) if local_name(el) == "navMap"), None)
    if nav_map is None:
        return entries
    stack: list[tuple[etree._Element, int]] = [(point, 1) for point in reversed(nav_map) if _is(point, "navPoint")]
    while stack:
        point, depth = stack.pop()
        label = next((el for el in point if _is(el, "navLabel")), None)
        content = next((el for el in point if _is(el, "content")), None)
        title = " ".join("".join(label.itertext()).split()) if label is not None else ""
        path, fragment = _resolve(base, content.get("src") or "") if content is not None else ("", "")
        if path and title:
            entries.append(_Entry(title, path, fragment, depth))
        stack.extend((child, depth + 1) for child in reversed(point) if _is(child, "navPoint"))
    return entries


def _is(el: etree._Element, name: str) -> bool:
    return local_name(el) == name


def _body(archive: _Archive, path: str) -> etree._Element:
    """A content document's ``<body>`` (XHTML; HTML's parser when it is not well-formed XML, as with ``&nbsp;``)."""
    data = archive.read(path, "the content document")
    what = f"the EPUB's content document {path!r}"
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        if over_limits(error):  # no second try with the HTML parser: refused
            raise xml_error(error, what) from None
        root = parse_html(data, what)
    if root is None:
        raise DocumentError(f"{what} is empty")
    return next((el for el in root.iter(etree.Element) if local_name(el).lower() == "body"), root)


def _marked_front_matter(body: etree._Element) -> bool:
    """The document says what it is: ``<body epub:type="titlepage">`` or a first ``<section>`` that does."""
    first = next((el for el in body if isinstance(el.tag, str)), None)
    marked = _epub_types(body) | (_epub_types(first) if first is not None else set())
    return not _FRONT_MATTER.isdisjoint(marked)


def _chapter_blocks(raw: list[Block | Anchor], entries: list[_Entry]) -> list[Block]:
    """A document's blocks under its table-of-contents headings: those without a fragment (or with one the document
    lacks) first, the others where their element starts; the document's headings become sections."""
    found = {block.id for block in raw if isinstance(block, Anchor)}
    by_fragment: dict[str, list[_Entry]] = {}
    for entry in entries:
        if entry.fragment in found:
            by_fragment.setdefault(entry.fragment, []).append(entry)
    result: list[Block] = []
    recent: list[str] = []  # the titles just written, whose repetition by the document is dropped

    def heading(items: list[_Entry]) -> None:
        begun = any(block.kind != "heading" for block in result)  # the document's own text has started
        for entry in items:
            result.append(Block("heading", entry.title, CHAPTER if entry.depth == 1 or not begun else SECTION))
            recent.append(entry.title)

    heading([entry for entry in entries if entry.fragment not in found])
    for block in raw:
        if isinstance(block, Anchor):
            heading(by_fragment.pop(block.id, []))
        elif recent and block.kind != "item" and _repeats(block.text, recent):
            continue
        else:
            recent.clear()
            result.append(Block("heading", block.text, SECTION) if block.kind == "heading" else block)
    return result


def _words(text: str) -> list[str]:
    return "".join(ch if ch.isalnum() else " " for ch in text.casefold()).split()


def _repeats(text: str, titles: list[str]) -> bool:
    """The text's words are a run of some title's words ("Chapter 1" and "Loomings" under "Chapter 1. Loomings")."""
    words = _words(text)
    for title in titles:
        known = _words(title)
        if words and any(known[i : i + len(words)] == words for i in range(len(known) - len(words) + 1)):
            return True
    return False


def _metadata(package: etree._Element) -> tuple[str | None, str | None, str | None]:
    """Title, authors and the EPUB 2 cover id."""
    metadata = next((el for el in package.iter(etree.Element) if local_name(el) == "metadata"), package)
    title = next((_text(el) for el in _children(metadata, "title") if namespace(el) == _DC and _text(el)), None)
    roles = {
        (el.get("refines") or "").lstrip("#"): _text(el)
        for el in _children(metadata, "meta")
        if el.get("property") == "role"
    }
    authors = []
    for el in _children(metadata, "creator"):
        role = el.get(f"{{{_OPF}}}role") or roles.get(el.get("id") or "", "aut")
        if namespace(el) == _DC and role == "aut" and _text(el):
            authors.append(_text(el))
    cover = next((el.get("content") for el in _children(metadata, "meta") if el.get("name") == "cover"), None)
    return title, ", ".join(authors) or None, cover


def _text(el: etree._Element) -> str:
    return " ".join("".join(el.itertext()).split())


def _cover(archive: _Archive, manifest: dict[str, _Item], cover_id: str | None) -> tuple[bytes | None, str | None]:
    item = next((i for i in manifest.values() if "cover-image" in i.properties), None) or manifest.get(cover_id or "")
    if item is None or not item.media_type.startswith("image/") or not archive.has(item.path):
        return None, None
    return archive.read(item.path, "the cover image"), item.media_type
