"""Chapters and caption cues of a narration, and captions as WebVTT or SubRip text; pure data, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

CAPTION_FORMATS = ("vtt", "srt")
"""Caption formats a narration's cues are written in."""
CHAPTER_LEVEL = 1
"""The heading level that starts a chapter (a ``# `` line); ``## `` sections stay inside their chapter."""


@dataclass(frozen=True)
class Chapter:
    """A level-1 heading's span of the audio: from where its heading is spoken to where the next chapter starts (the
    last one ends with the audio)."""

    title: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Cue:
    """One sentence (chunk) of the text and where its speech is heard."""

    start_s: float
    end_s: float
    text: str


def chapters_from(headings: Sequence[tuple[str, float]], duration_s: float) -> list[Chapter]:
    """``headings`` (title, start) of the level-1 headings in order, as chapters ending where the next begins.

    A text without level-1 headings has no chapters (an empty list): none is made up from the title."""
    chapters = []
    for index, (title, start_s) in enumerate(headings):
        end_s = headings[index + 1][1] if index + 1 < len(headings) else duration_s
        chapters.append(Chapter(title, round(start_s, 3), round(max(end_s, start_s), 3)))
    return chapters


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"


def _cue_text(text: str) -> str:
    """One line, and nothing a caption parser reads as markup or as the end of a cue ("-->", a blank line)."""
    line = " ".join(text.split()).replace("-->", "->")
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_lines(cues: Iterable[Cue]) -> Iterator[str]:
    """A WebVTT file, line by line (each with its newline), so a book's captions are never held whole."""
    yield "WEBVTT\n\n"
    for cue in cues:
        yield f"{_timestamp(cue.start_s, '.')} --> {_timestamp(cue.end_s, '.')}\n{_cue_text(cue.text)}\n\n"


def srt_lines(cues: Iterable[Cue]) -> Iterator[str]:
    """A SubRip file, cue by cue."""
    for number, cue in enumerate(cues, start=1):
        text = " ".join(cue.text.split()).replace("-->", "->")
        yield f"{number}\n{_timestamp(cue.start_s, ',')} --> {_timestamp(cue.end_s, ',')}\n{text}\n\n"


def chapter_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``, as Vorbis comment chapters (``CHAPTER001=``) write a start."""
    return _timestamp(seconds, ".")
