"""Text checks and clean-up before phonemization; pure functions, importable without the model stack."""

from __future__ import annotations

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
