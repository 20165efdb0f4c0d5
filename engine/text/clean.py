"""Text checks and clean-up before phonemization; pure functions, importable without the model stack."""

from __future__ import annotations

import re
import unicodedata

from ..errors import InvalidInputError

# Control characters other than line breaks and tabs mean nothing to speech (and NUL breaks espeak-ng).
_KEEP_CONTROLS = {"\n", "\t", "\r"}


def clean_text(text: str) -> str:
    """NFC-normalised text without control characters; raises InvalidInputError for text that can't be encoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError("text is not valid Unicode (it contains a lone surrogate)") from None
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in _KEEP_CONTROLS or unicodedata.category(ch)[0] != "C")


def check_speakable(text: str) -> str:
    """The cleaned text, or InvalidInputError if nothing in it could be spoken."""
    cleaned = clean_text(text)
    if not cleaned.strip():
        raise InvalidInputError("text is empty")
    if not any(ch.isalnum() for ch in cleaned):
        raise InvalidInputError("text has no letters or digits to speak")
    return cleaned


_DISPLAY_MARKUP = re.compile(r"^[ \t]*#{1,6}[ \t]+|[ \t]+#+[ \t]*$|^[ \t]*(?:=+|-+)[ \t]*$|<!--.*?-->", re.M | re.S)


def display_text(source: str) -> str:
    """A chunk's source as a reader sees it, for a mark or a table of contents: the words as written ("Chapter IV",
    "0. Definitions."), without Markdown's heading marks ("## ", a setext underline) or comments, on one line."""
    return " ".join(_DISPLAY_MARKUP.sub(" ", source).split())
