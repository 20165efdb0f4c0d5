"""What reading a document gives (``Document``), the limits it is read under, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInputError

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
"""Default ``DocumentLimits.max_bytes``: an upload larger than this is refused before it is parsed."""
MAX_TEXT_CHARS = 1_000_000
"""Default ``DocumentLimits.max_chars``: the most characters of text a document may yield (as for plain text)."""
MAX_ZIP_ENTRIES = 2000
"""Default ``DocumentLimits.max_entries``: an EPUB with more files than this is refused unread."""
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
"""Default ``DocumentLimits.max_uncompressed_bytes``: the most an EPUB's files may add up to, once inflated."""


class DocumentError(InvalidInputError):
    """A document that cannot be read: malformed, unsupported, or refused (scripts, zip bombs); its message says
    which and why, for the client."""


class DocumentTooLargeError(DocumentError):
    """A document over one of its ``DocumentLimits`` (an API answers 413)."""

    def __init__(self, what: str, size: int, limit: int, unit: str) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(f"{what} has {size:,} {unit}; the limit is {limit:,}")


@dataclass(frozen=True)
class DocumentLimits:
    """How much a document may hold; every reader checks these before it does the work they bound."""

    max_bytes: int = MAX_UPLOAD_BYTES
    """The upload itself, in bytes."""
    max_chars: int = MAX_TEXT_CHARS
    """The extracted plain text, in characters."""
    max_entries: int = MAX_ZIP_ENTRIES
    """Files in an EPUB's zip archive."""
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BYTES
    """An EPUB's files added up, uncompressed, in bytes (as declared, and as actually read)."""

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_chars", "max_entries", "max_uncompressed_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def check_upload(self, data: bytes) -> None:
        if len(data) > self.max_bytes:
            raise DocumentTooLargeError("the upload", len(data), self.max_bytes, "bytes")

    def check_text(self, chars: int) -> None:
        if chars > self.max_chars:
            raise DocumentTooLargeError("the document's text", chars, self.max_chars, "characters")


@dataclass
class Document:
    """A document read into the one plain form that ``engine.text.split`` narrates: chapters are ``# Title`` lines,
    sections ``## Title`` lines, paragraphs are separated by blank lines."""

    text: str
    """The plain form (see the class docstring)."""
    title: str | None = None
    """From the document's metadata (EPUB ``dc:title``, HTML ``<title>``, Markdown front matter), if it has one."""
    author: str | None = None
    """From the metadata as well; several authors are joined with ", "."""
    chapters: list[str] = field(default_factory=list)
    """The titles of the chapters (the ``# `` lines of ``text``), in order."""
    cover: bytes | None = None
    """An EPUB's cover image, if it names one."""
    cover_type: str | None = None
    """The cover's media type, as the EPUB's manifest gives it ("image/jpeg")."""


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (a byte-order mark, UTF-8 or UTF-16, is honoured), or DocumentError naming ``what``."""
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DocumentError(
            f"{what} is not {encoding.removesuffix('-sig').upper()} text ({error.reason} at byte {error.start})"
        ) from None
