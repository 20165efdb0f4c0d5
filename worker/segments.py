"""The pieces of a job: plan it into segments, synthesize one segment, assemble the finished segments."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import IO, Any

from engine import InvalidInputError, SynthesisOptions
from engine.documents.breaks import TimedChunk, ssml_chunks
from engine.narration import NarrationChunk, PauseOptions, narrate
from engine.text.split import split_text
from ttsq.jobs.plans import SegmentRecord
from ttsq.models import Job, JobStatus, Progress
from ttsq.storage.base import segment_key

from .outcomes import AudioTooLongError, JobCanceledError, JobTimeoutError, LockLostError
from .runtime import Runtime

logger = logging.getLogger(__name__)

RUNNING = (JobStatus.running,)
PROGRESS_INTERVAL_S = 0.5
"""A run writes progress at most this often, and with each segment's end: a few Redis writes a second at most
(issue 12), and a cancel is still seen within this and a sentence (the fenced write is refused)."""
FAST_SPOKEN_CHARS_PER_S = 22.0
"""Characters of spoken text per second of audio at speed 1, at the fast end (joe reads about 15-18): the estimate
errs short, so only a text sure to pass the audio limit is refused before synthesis."""

CUE = "chunk"
"""A segment record's ``marks`` hold two kinds of entry: a paragraph's mark (``Mark`` and its heading ``level``), and
``{"chunk": i, "start_s", "end_s"}``, where chunk ``i``'s speech is heard (a caption cue). Both are in the one list
the record has, so they survive a killed worker exactly as marks do (issue 14)."""


def cue_entry(chunk: int, start_s: float, end_s: float) -> dict[str, float]:
    return {CUE: chunk, "start_s": round(start_s, 4), "end_s": round(end_s, 4)}


@dataclass(frozen=True)
class Plan:
    """The chunks of a job's text (as the plan stores them) and their grouping into segments [first, end)."""

    chunks: list[dict[str, Any]]
    segments: list[tuple[int, int]]


@dataclass(frozen=True)
class Piece:
    """What synthesizing one segment needs: the index of its first chunk, its chunks, and the segment before it."""

    first: int
    chunks: list[dict[str, Any]]
    before: SegmentRecord | None


def plan(runtime: Runtime, job: Job, token: str, text: str) -> tuple[Job, Plan]:
    """Split the text into chunks and group them into segments of about TTSQ_SEGMENT_CHARS characters; the job as
    the plan left it, and the plan (so the run reads nothing back). A plan of more than one segment is stored, so
    a killed worker resumes from its last finished segment; one of a single segment (most short texts) is not:
    it is spoken and assembled in this one task, and a killed worker's successor plans it again."""
    if job.input_format == "ssml":  # kept as written until now, for its exact breaks and rates
        timed = ssml_chunks(text.encode("utf-8"))
    else:
        timed = [TimedChunk(chunk) for chunk in split_text(text)]
    chunks = [t.chunk for t in timed]
    if not any(c.spoken.strip() for c in chunks):
        raise InvalidInputError("text has nothing to speak once footnote marks and symbols are set aside")
    _refuse_if_too_long(runtime, job, timed)
    segments: list[tuple[int, int]] = []
    first, size = 0, 0
    for index, chunk in enumerate(chunks):
        if size and size + len(chunk.source) > runtime.config.segment_chars:
            segments.append((first, index))
            first, size = index, 0
        size += len(chunk.source)
    segments.append((first, len(chunks)))
    # The source goes with each chunk for its mark (issue 16: a mark shows the text as written, not the spoken form).
    # The level makes chapters of "# " headings, the pause and rate are an SSML break's and prosody's (issue 14).
    keep = ("spoken", "paragraph", "heading", "source", "continues", "level")
    records = [{**{name: getattr(t.chunk, name) for name in keep}, "pause_s": t.pause_s, "rate": t.rate} for t in timed]
    progress = Progress(chunks_done=0, chunks_total=len(chunks))
    if len(segments) == 1:
        return job.model_copy(update={"progress": progress}), Plan(records, segments)
    fields = {"segments_total": len(segments), "progress": progress.model_dump()}
    if not runtime.plans.save(job.id, token, records, segments, fields):
        raise _stopped(runtime, job.id)
    return job.model_copy(update={"segments_total": len(segments), "progress": progress}), Plan(records, segments)


def _refuse_if_too_long(runtime: Runtime, job: Job, timed: list[TimedChunk]) -> None:
    """Fail at once, not hours into synthesis, a text whose audio would surely pass TTSQ_MAX_AUDIO_S (an SSML text's
    breaks count in full, its prosody rates as written)."""
    spoken = sum(len(t.chunk.spoken) for t in timed)
    estimate_s = sum(len(t.chunk.spoken) / (FAST_SPOKEN_CHARS_PER_S * job.speed * t.rate) for t in timed)
    estimate_s += len(timed) * runtime.config.sentence_silence_s + sum(t.pause_s or 0.0 for t in timed)
    limit_s = runtime.config.max_audio_s
    if estimate_s > limit_s:
        raise AudioTooLongError(
            f"the text would make about {estimate_s:.0f} s of audio (its spoken form has {spoken} characters), over "
            f"the {limit_s:.0f} s of TTSQ_MAX_AUDIO_S; split it into smaller jobs"
        )


def stored_piece(runtime: Runtime, job_id: str, index: int) -> Piece:
    """Segment ``index`` of a stored plan."""
    first, chunks = runtime.plans.segment_chunks(job_id, index)
    return Piece(first, chunks, runtime.plans.record(job_id, index - 1))


def run_segment(
    runtime: Runtime,
    job: Job,
    index: int,
    part: Piece,
    token: str,
    lost: threading.Event,
    held: IO[bytes] | None = None,
) -> tuple[Job, SegmentRecord]:
    """Synthesize segment ``index`` into its own stored object, and record it, once, in a stored plan; the job as
    that left it, and the segment's record. ``held``: the one segment of an unstored plan goes there instead (its
    assembly follows in the same task), and its record names no object."""
    config, store = runtime.config, runtime.store
    speaker = runtime.tts.speakers[job.speaker]
    rate = speaker.sample_rate
    first, raw_chunks, before = part.first, part.chunks, part.before
    chunks = [NarrationChunk(**c) for c in raw_chunks]
    offset_s = before.end_s if before else 0.0
    previous = NarrationChunk(**before.last_chunk) if before and before.last_chunk else None
    pauses = PauseOptions(config.sentence_silence_s, config.paragraph_silence_s)
    started = reported = time.monotonic()
    deadline: float | None = None
    samples, marks = 0, []
    last_spoken = before.last_chunk if before else None
    synthesis = SynthesisOptions(speed=job.speed, noise_scale=job.noise_scale, noise_w_scale=job.noise_w_scale)
    narration = narrate(speaker, chunks, offset_s, previous, pauses, synthesis)
    # closing() ends the narration (and frees the speaker) at once if this segment stops early.
    key = segment_key(job.id, index, token)
    fence = partial(store.holds_lock, job.id, token)
    writer = runtime.storage.writer(key, tag=token, fence=fence) if held is None else contextlib.nullcontext(held)
    with writer as sink, contextlib.closing(narration):
        for done, piece in enumerate(narration, start=1):
            if len(piece.samples):
                last_spoken = raw_chunks[done - 1]  # what the next segment's first pause depends on
            # The clock starts once the speaker is ours: waiting for its lock is not synthesis time.
            deadline = deadline or time.monotonic() + config.task_time_limit_s
            sink.write(piece.samples.tobytes())
            sink.flush()  # surfaces a failed upload now, not at the end
            samples += len(piece.samples)
            if piece.mark is not None:
                marks.append({**asdict(piece.mark), "level": chunks[done - 1].level})
            if piece.start_s is not None and piece.end_s is not None:  # a caption cue, by its chunk's index
                marks.append(cue_entry(first + done - 1, piece.start_s, piece.end_s))
            audio_s = offset_s + samples / rate
            if done < len(chunks) and time.monotonic() - reported >= PROGRESS_INTERVAL_S:
                # The fenced write also tells a canceled job (or a lost lock): no separate status read per sentence.
                _report(runtime, job, token, first + done, audio_s, time.monotonic() - started)
                reported = time.monotonic()
            _check(runtime, lost, deadline, done < len(chunks), audio_s)
    end_s = offset_s + samples / rate
    stored_key = key if held is None else None
    record = SegmentRecord(samples=samples, key=stored_key, end_s=end_s, marks=marks, last_chunk=last_spoken)
    segment_s = time.monotonic() - started
    final = _progress(job, first + len(chunks), end_s, segment_s)  # the segment's last progress goes with its end
    fields = {"synth_s": job.synth_s + segment_s, "progress": final.model_dump(), "heartbeat_at": time.time()}
    stored = job.segments_total is not None  # an unstored plan's one segment goes to assembly in this task
    if stored and not runtime.plans.finish_segment(job.id, token, index, record, fields):
        runtime.storage.delete(key)  # ours alone (named after this run), and recorded nowhere
        raise _stopped(runtime, job.id)
    return job.model_copy(update={"synth_s": fields["synth_s"], "progress": final}), record


def _progress(job: Job, chunks_done: int, audio_s: float, segment_s: float) -> Progress:
    total = job.progress.chunks_total or chunks_done
    per_chunk_s = (job.synth_s + segment_s) / max(1, chunks_done)  # measured over the whole job so far
    eta = round(per_chunk_s * (total - chunks_done), 1)
    return Progress(chunks_done=chunks_done, chunks_total=total, audio_s=round(audio_s, 3), eta_s=eta)


def _report(runtime: Runtime, job: Job, token: str, chunks_done: int, audio_s: float, segment_s: float) -> None:
    if not runtime.store.set_progress(job.id, token, _progress(job, chunks_done, audio_s, segment_s)):
        raise _stopped(runtime, job.id)


def _stopped(runtime: Runtime, job_id: str) -> Exception:
    """Why a fenced write was refused: the job was canceled, or this run lost its lock (or the job is gone)."""
    if runtime.store.status(job_id) == JobStatus.canceled:
        return JobCanceledError()
    return LockLostError()


def _check(runtime: Runtime, lost: threading.Event, deadline: float, more: bool, audio_s: float) -> None:
    if lost.is_set():
        raise LockLostError
    if audio_s > runtime.config.max_audio_s:
        raise AudioTooLongError(
            f"the audio passed {runtime.config.max_audio_s:.0f} s (TTSQ_MAX_AUDIO_S); split the text into smaller jobs"
        )
    if more and time.monotonic() > deadline:
        raise JobTimeoutError(
            f"a segment took longer than {runtime.config.task_time_limit_s} s; "
            "lower TTSQ_SEGMENT_CHARS or raise TTSQ_TASK_TIME_LIMIT_S"
        )
