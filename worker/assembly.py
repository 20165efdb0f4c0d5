"""A job's last task: join its finished segments into the output file, with chapters and tags, and its captions.

Everything here comes from the segment records and the plan, both of which outlive a killed worker, so a job that
resumed gets the same chapters and captions as one that never stopped. A WAV, and a file with nothing to tag, is
streamed to storage as it is encoded. Any other file is built in a local temporary file (``engine.containers``:
MP4 must be finalized, tags go at the front), then copied to storage: still streamed, so an S3 upload stays a
multipart upload and memory stays flat; the disk holds one output file meanwhile. Every object is written through
a writer fenced by the run's lock, and committed only if the run still holds it.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np

from engine.audio import FORMATS, open_audio_writer
from engine.chapters import CAPTION_FORMATS, CHAPTER_LEVEL, Cue, chapters_from, srt_lines, vtt_lines
from engine.containers import BookTags, BookWriter, open_book_writer, tag_file
from engine.narration import Mark
from engine.text.clean import display_text
from ttsq.jobs.plans import SegmentRecord
from ttsq.models import Job, JobResult, JobStatus, Progress
from ttsq.storage.base import Fence, caption_key, cover_key, key_for, segment_key

from .cleanup import remove_job_files
from .outcomes import JobCanceledError, LockLostError, Outcome
from .runtime import Runtime
from .segments import CUE

logger = logging.getLogger(__name__)

READ_BLOCK_BYTES = 1 << 20
MAX_COVER_BYTES = 16 * 1024 * 1024
"""A stored cover larger than this is left out of the tags (the upload limit already bounds it)."""


Chunks = Callable[[], Iterable[tuple[int, dict[str, Any]]]]
"""Every chunk of the plan with its index, in order, each time it is called."""


def assemble(
    runtime: Runtime,
    job: Job,
    token: str,
    records: list[SegmentRecord],
    chunks: Chunks | None = None,
    held: IO[bytes] | None = None,
) -> Outcome:
    """Join the finished segments into the output file, in the job's format, then drop the segments. ``chunks``:
    the plan's, where it is not stored (a one-segment job); ``held``: that job's audio, where it was never stored."""
    chunks = chunks or partial(_plan_chunks, runtime, job.id)
    rate = runtime.tts.speakers[job.speaker].sample_rate
    total = sum(r.samples for r in records)
    duration_s = total / rate
    marks = [m for r in records for m in r.marks if CUE not in m]
    chapters = chapters_from(_chapter_headings(chunks, marks), duration_s)
    key = key_for(job.id, job.format)
    fence = CommitFence(partial(runtime.store.holds_lock, job.id, token))
    tags = BookTags(job.title, job.author, chapters, *_cover(runtime, job))
    # The output and its captions commit together, after all of them are written, on one read of the lock where each
    # asked Redis on its own (issue 12): the captions commit, then the output, all by that answer (on S3 the three
    # completes follow it, the output's last part uploaded in its own). A refusal leaves none of them; a storage
    # error after the first commit can leave a caption file, which goes with the failed job's files.
    with contextlib.ExitStack() as commits:
        if job.format == "wav" or (job.format in FORMATS and not tags):
            sink = commits.enter_context(runtime.storage.writer(key, tag=token, fence=fence))
            with open_audio_writer(sink, rate, job.format, total) as out:
                _write_segments(runtime, job, records, out, sink, held)
            size = sink.seek(0, io.SEEK_END)  # what was written: no stat of the file (or HEAD of the object) after
        else:
            folder = commits.enter_context(tempfile.TemporaryDirectory(prefix=f"ttsq-{job.id}-"))
            built = Path(folder) / f"output.{job.format}"
            with open_book_writer(built, rate, job.format, tags, total) as out:
                _write_segments(runtime, job, records, out, None, held)
            tag_file(built, job.format, tags)
            sink = commits.enter_context(runtime.storage.writer(key, tag=token, fence=fence))
            with built.open("rb") as source:
                while block := source.read(READ_BLOCK_BYTES):
                    sink.write(block)
                    sink.flush()
            size = sink.seek(0, io.SEEK_END)
        captions = _write_captions(runtime, job, token, records, chunks, commits, fence)
    public_marks = [asdict(Mark(**{k: m[k] for k in ("paragraph", "heading", "start_s", "text")})) for m in marks]
    result = JobResult(
        key=key,
        format=job.format,
        duration_s=round(duration_s, 3),
        sample_rate=rate,
        size_bytes=size,
        marks=public_marks if job.marks else None,
        chapters=[asdict(c) for c in chapters],
        captions=captions,
    )
    progress = Progress(
        chunks_done=job.progress.chunks_total or 0,
        chunks_total=job.progress.chunks_total,
        audio_s=result.duration_s,
        eta_s=0.0,
    )
    # What the one segment of an unstored plan would have recorded goes with the end.
    fields = {"synth_s": job.synth_s} if job.segments_total is None else {}
    if not runtime.store.mark_succeeded(job, token, result, progress, **fields):
        if runtime.store.status(job.id) == JobStatus.canceled:
            raise JobCanceledError  # canceled while the output was being written: it goes too
        raise LockLostError
    logger.info(
        "%s: succeeded: %.1f s of %s audio (%d chapters) in %.1f s of synthesis, %.1f s after it was queued",
        job.id,
        result.duration_s,
        job.format,
        len(chapters),
        job.synth_s,
        time.time() - job.created_at,
    )
    # Best effort: the job has succeeded, whatever happens here. Only a killed run leaves files that nothing records
    # (a partial file, a segment it never recorded), and each one counts a restart: without one, the recorded
    # segments are all there is (a held job's: none), and the storage is not listed for the job's files.
    stored_plan = job.segments_total is not None
    if job.restarts:
        remove_job_files(runtime, job.id, keep=(key, *captions.values()), plan=stored_plan)
    else:
        left = [r.key or segment_key(job.id, i) for i, r in enumerate(records)] if stored_plan else []
        if job.cover_type is not None:
            left.append(cover_key(job.id))
        remove_job_files(runtime, job.id, plan=stored_plan, only=left)
    return Outcome.succeeded


def _whole_samples(data: bytes) -> tuple[bytes, bytes]:
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]


def _write_segments(
    runtime: Runtime,
    job: Job,
    records: list[SegmentRecord],
    out: BookWriter,
    sink: BinaryIO | None,
    held: IO[bytes] | None = None,
) -> None:
    if held is not None:
        held.seek(0)
    for index, record in enumerate(records):
        source: contextlib.AbstractContextManager[IO[bytes]] = (
            runtime.storage.reader(record.key or segment_key(job.id, index)) if held is None else nullcontext(held)
        )
        with source as segment:
            carry = b""  # a network read may end mid-sample
            while block := segment.read(READ_BLOCK_BYTES):
                block, carry = _whole_samples(carry + block)
                out.write(np.frombuffer(block, dtype=np.int16))
                if sink is not None:
                    sink.flush()
        # A cancel is seen after each segment (a one-segment job's fenced end refuses it: one read fewer).
        if len(records) > 1 and runtime.store.status(job.id) == JobStatus.canceled:
            raise JobCanceledError


def _plan_chunks(runtime: Runtime, job_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every chunk of the plan with its index, a segment at a time (a book's plan is never read whole)."""
    for index in range(runtime.plans.segment_count(job_id)):
        first, chunks = runtime.plans.segment_chunks(job_id, index)
        yield from enumerate(chunks, start=first)


def _chapter_headings(chunks: Chunks, marks: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(title, start) of each spoken level-1 heading: its whole paragraph as written (a mark holds 80 characters)."""
    starts = {m["paragraph"]: m["start_s"] for m in marks if m.get("heading") and m.get("level") == CHAPTER_LEVEL}
    if not starts:
        return []
    titles: dict[int, list[str]] = {}
    for _, chunk in chunks():
        if chunk["paragraph"] in starts:
            titles.setdefault(chunk["paragraph"], []).append(display_text(chunk["source"] or chunk["spoken"]))
    return [(" ".join(titles.get(paragraph, [])), start) for paragraph, start in starts.items()]


def _cues(chunks: Chunks, records: list[SegmentRecord]) -> Iterator[Cue]:
    """One cue per chunk with speech, in order: its times from the records, its text (as written) from the plan."""
    times = {m[CUE]: (m["start_s"], m["end_s"]) for r in records for m in r.marks if CUE in m}
    for index, chunk in chunks():
        if index in times:
            yield Cue(*times[index], display_text(chunk["source"] or chunk["spoken"]))


def _write_captions(
    runtime: Runtime,
    job: Job,
    token: str,
    records: list[SegmentRecord],
    chunks: Chunks,
    commits: contextlib.ExitStack,
    fence: Fence,
) -> dict[str, str]:
    """The captions in every format, each a fenced object, written side by side from one read of the plan (a book's
    plan is read once, not once a format); committed when ``commits`` closes. Format -> storage key."""
    keys = {fmt: caption_key(job.id, fmt) for fmt in CAPTION_FORMATS}
    makers = {"vtt": vtt_lines, "srt": srt_lines}
    # One cue stream teed to both formats, written in step, so the tee never holds more than a cue or two.
    streams = itertools.tee(_cues(chunks, records), len(keys))
    lines = {fmt: makers[fmt](stream) for fmt, stream in zip(keys, streams, strict=True)}
    sinks = {
        fmt: commits.enter_context(runtime.storage.writer(key, tag=token, fence=fence)) for fmt, key in keys.items()
    }
    for row in itertools.zip_longest(*lines.values()):
        for fmt, line in zip(lines, row, strict=True):
            if line is not None:
                sinks[fmt].write(line.encode("utf-8"))
    return keys


class CommitFence:
    """A fence asked once for writers that commit one after another as a group (an ExitStack closing): the first
    writer's commit reads the lock, the rest go by that answer, read moments before."""

    def __init__(self, fence: Fence) -> None:
        self._fence = fence
        self._answer: bool | None = None

    def __call__(self) -> bool:
        if self._answer is None:
            self._answer = self._fence()
        return self._answer


def _cover(runtime: Runtime, job: Job) -> tuple[bytes | None, str | None]:
    """The uploaded document's cover and its media type, if it had one (a missing one is logged and left out)."""
    if job.cover_type is None:
        return None, None
    try:
        with runtime.storage.reader(cover_key(job.id)) as source:
            data = source.read(MAX_COVER_BYTES + 1)
    except Exception as error:  # storage backends raise unrelated types; a cover is not worth failing a book for
        logger.warning("%s: its cover could not be read, so the output has none: %s", job.id, error)
        return None, None
    if len(data) > MAX_COVER_BYTES:
        return None, None
    return data, job.cover_type
