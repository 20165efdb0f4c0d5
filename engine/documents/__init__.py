"""Documents read into the one plain form the narration already carries: text, Markdown, HTML, EPUB and SSML.

Every format becomes a ``Document`` whose ``text`` is plain text in the form ``engine.text.split`` reads: chapters
are ``# Title`` lines, sections ``## Title`` lines, paragraphs are separated by blank lines. So chunks, heading
marks and resume work on a document exactly as on text. ``read_document`` picks the reader (``format_for`` maps an
upload's content type or file name to a format); each module reads one format: ``markdown``, ``html``, ``epub``,
``ssml`` (whose ``parse_ssml`` also gives exact breaks and rates). Pure library: no I/O besides the bytes given.
"""

from __future__ import annotations

from collections.abc import Callable

from .epub import read_epub
from .html import read_html
from .markdown import read_markdown
from .model import (
    Document,
    DocumentError,
    DocumentLimits,
    DocumentTooLargeError,
    decode_text,
)
from .ssml import SsmlBreak, SsmlText, parse_ssml, read_ssml

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMATS",
    "Document",
    "DocumentError",
    "DocumentLimits",
    "DocumentTooLargeError",
    "SsmlBreak",
    "SsmlText",
    "format_for",
    "parse_ssml",
    "read_document",
]

FORMATS = ("text", "markdown", "html", "epub", "ssml")
"""What ``read_document`` reads."""
CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/epub+zip": "epub",
    "application/ssml+xml": "ssml",
}
"""Upload content types and their formats."""
EXTENSIONS = {
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".epub": "epub",
    ".ssml": "ssml",
}
"""File name endings and their formats, for uploads whose content type says nothing (application/octet-stream)."""


def _read_text(data: bytes, limits: DocumentLimits) -> Document:
    text = decode_text(data, "the text")
    limits.check_text(len(text))
    return Document(text=text)


_READERS: dict[str, Callable[[bytes, DocumentLimits], Document]] = {
    "text": _read_text,
    "markdown": read_markdown,
    "html": read_html,
    "epub": read_epub,
    "ssml": read_ssml,
}


def read_document(data: bytes, fmt: str, limits: DocumentLimits | None = None) -> Document:
    """``data`` in format ``fmt`` (one of ``FORMATS``) as a Document; DocumentError (DocumentTooLargeError for a
    limit) for anything that cannot be read. Nothing is fetched, nothing in the document is run."""
    limits = limits or DocumentLimits()
    reader = _READERS.get(fmt)
    if reader is None:
        raise DocumentError(f"unknown document format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    limits.check_upload(data)
    document = reader(data, limits)
    limits.check_text(len(document.text))
    if not any(ch.isalnum() for ch in document.text):
        raise DocumentError(f"the {fmt} document has no text to read")
    return document


def format_for(content_type: str | None, filename: str | None) -> str:
    """The format of an upload: by its content type (parameters such as charset ignored), else, when that is
    missing or generic (application/octet-stream), by its file name's ending."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type in CONTENT_TYPES:
        return CONTENT_TYPES[media_type]
    name = (filename or "").strip().lower()
    extension = name[name.rfind(".") :] if "." in name else ""
    if media_type in ("", "application/octet-stream") and extension in EXTENSIONS:
        return EXTENSIONS[extension]
    raise DocumentError(
        f"unsupported document type {content_type!r} (file {filename!r}); expected a content type of "
        f"{', '.join(CONTENT_TYPES)}, or a file ending in {', '.join(EXTENSIONS)}"
    )
