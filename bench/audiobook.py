"""Issue 14's narration case: a book-length EPUB to ``m4b`` against the same text as plain WAV (bench/narration.py).

The book is bench/narration.py's passage repeated, in ``CHAPTERS`` chapters with a navigation, written by ebooklib
(as a user's EPUB would be); the WAV job narrates exactly the text the EPUB reads as (``read_document``), so the two
jobs differ only in what the worker does around synthesis: parsing the book, chapters, AAC encoding and MP4 assembly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Protocol

from ebooklib import epub

from engine.documents import read_document

CHAPTERS = 10
THROUGHPUT_TARGET = 0.10
"""The EPUB's audio seconds per wall second may fall at most this fraction below the plain WAV's."""
RSS_TARGET_MB = 50.0
"""The EPUB job's peak RSS may exceed the WAV job's by at most this, and its RSS may rise at most this much from the
first tenth of the job to the last."""


class Run(Protocol):
    """What the targets read of a bench/narration.py run."""

    @property
    def case(self) -> str: ...
    @property
    def x_realtime(self) -> float: ...
    @property
    def job_peak_rss_mb(self) -> float | None: ...
    @property
    def peak_rss_mb(self) -> float: ...
    @property
    def rss_curve_mb(self) -> list[float | None]: ...


def build_book(passage: str, min_chars: int) -> tuple[bytes, str]:
    """An EPUB of at least ``min_chars`` characters of ``passage`` in CHAPTERS chapters, and the plain text it reads
    as."""
    paragraphs = [p for p in passage.split("\n\n") if p.strip()]
    per_chapter = -(-min_chars // CHAPTERS)
    book = epub.EpubBook()
    book.set_identifier("urn:uuid:ttsq-bench-book")
    book.set_title("The House on Marrow Lane")
    book.set_language("en")
    book.add_author("Bench Example")
    chapters = []
    for number in range(1, CHAPTERS + 1):
        body, size = [], 0
        while size < per_chapter:
            paragraph = paragraphs[len(body) % len(paragraphs)]
            body.append(f"<p>{_escape(paragraph)}</p>")
            size += len(paragraph) + 2
        title = f"Chapter {number}"
        chapter = epub.EpubHtml(
            title=title, file_name=f"chapter{number}.xhtml", content=f"<h1>{title}</h1>" + "".join(body)
        )
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    out = io.BytesIO()
    epub.write_epub(out, book)
    data = out.getvalue()
    return data, read_document(data, "epub").text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _rise_mb(curve: Sequence[float | None]) -> float | None:
    """How far the sampled RSS rose from the first tenth of a job with samples to the last."""
    sampled = [value for value in curve if value is not None]
    return sampled[-1] - sampled[0] if len(sampled) >= 2 else None


def targets(runs: Sequence[Run]) -> dict[str, Any] | None:
    """The EPUB run against the plain WAV run of the same text; None without both."""
    text = next((r for r in runs if r.case == "epub-text"), None)
    book = next((r for r in runs if r.case == "epub"), None)
    if text is None or book is None:
        return None
    ratio = book.x_realtime / text.x_realtime
    book_peak = book.job_peak_rss_mb if book.job_peak_rss_mb is not None else book.peak_rss_mb
    text_peak = text.job_peak_rss_mb if text.job_peak_rss_mb is not None else text.peak_rss_mb
    rise = _rise_mb(book.rss_curve_mb)
    return {
        "throughput_ratio": ratio,
        "throughput_target": 1 - THROUGHPUT_TARGET,
        "throughput_met": ratio >= 1 - THROUGHPUT_TARGET,
        "peak_rss_over_text_mb": book_peak - text_peak,
        "rss_rise_during_job_mb": rise,
        "rss_target_mb": RSS_TARGET_MB,
        "rss_met": book_peak - text_peak <= RSS_TARGET_MB and (rise is None or rise <= RSS_TARGET_MB),
    }


def report_lines(runs: Sequence[Run]) -> list[str]:
    t = targets(runs)
    if t is None:
        return []
    verdict = {True: "met", False: "NOT MET"}
    rise = t["rss_rise_during_job_mb"]
    rise_text = "-" if rise is None else f"{rise:+.1f} MB"
    return [
        "",
        "EPUB to m4b against the same text as plain WAV (issue 14):",
        f"  throughput: audio s/wall s is {t['throughput_ratio']:.3f}x the WAV's "
        f"(target >= {t['throughput_target']:.2f}): {verdict[t['throughput_met']]}",
        f"  memory: the EPUB job's peak is {t['peak_rss_over_text_mb']:+.1f} MB against the WAV job's, its RSS rose "
        f"{rise_text} from the first tenth to the last (target <= +{RSS_TARGET_MB:.0f} MB): {verdict[t['rss_met']]}",
    ]
