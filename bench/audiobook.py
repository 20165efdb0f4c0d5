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
"""Flat: over the job the worker's RSS may grow at most this much, both what it keeps between segments (the smallest
sample of each tenth, first tenth to last) and the trend of its peaks (a least-squares line through each tenth's
largest, over the job). A single sample's peak is not growth: it goes with the longest sentences of the segment
running then, and the arena gives it back after each segment (issue 12); so the EPUB job's highest sample against
the WAV job's is printed, not judged (it read -123 MB in one run and +67 MB in the next, same code)."""


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
    @property
    def rss_floor_mb(self) -> list[float | None]: ...


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


def _trend_mb(curve: Sequence[float | None]) -> float | None:
    """The rise over the job of a least-squares line through the tenths with samples."""
    points = [(i, value) for i, value in enumerate(curve) if value is not None]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return slope * (points[-1][0] - points[0][0])


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
    kept, trend = _rise_mb(book.rss_floor_mb), _trend_mb(book.rss_curve_mb)
    grew = [value for value in (kept, trend) if value is not None]
    return {
        "throughput_ratio": ratio,
        "throughput_target": 1 - THROUGHPUT_TARGET,
        "throughput_met": ratio >= 1 - THROUGHPUT_TARGET,
        "peak_rss_over_text_mb": book_peak - text_peak,
        "rss_rise_during_job_mb": rise,
        "rss_kept_rise_mb": kept,
        "rss_peak_trend_mb": trend,
        "rss_target_mb": RSS_TARGET_MB,
        "rss_met": bool(grew) and all(value <= RSS_TARGET_MB for value in grew),
    }


def report_lines(runs: Sequence[Run]) -> list[str]:
    t = targets(runs)
    if t is None:
        return []
    verdict = {True: "met", False: "NOT MET"}

    def mb(key: str) -> str:
        return "-" if t[key] is None else f"{t[key]:+.1f} MB"

    return [
        "",
        "EPUB to m4b against the same text as plain WAV (issue 14):",
        f"  throughput: audio s/wall s is {t['throughput_ratio']:.3f}x the WAV's "
        f"(target >= {t['throughput_target']:.2f}): {verdict[t['throughput_met']]}",
        f"  flat memory: over the job, what the worker keeps between segments rose {mb('rss_kept_rise_mb')} (first "
        f"tenth's min to last's), its peaks' trend {mb('rss_peak_trend_mb')} (target <= +{RSS_TARGET_MB:.0f} MB "
        f"each): {verdict[t['rss_met']]}",
        f"    not judged, single samples: the EPUB job's highest against the WAV job's {mb('peak_rss_over_text_mb')}, "
        f"the last tenth's max against the first's {mb('rss_rise_during_job_mb')}",
    ]
