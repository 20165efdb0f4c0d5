"""The pieces of a job: plan it into segments, synthesize one segment, assemble the finished segments."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import asdict
from functools import partial

import numpy as np

from engine import InvalidInputError, SynthesisOptions
from engine.audio import open_audio_writer
from engine.narration import Mark, NarrationChunk, PauseOptions, narrate
from engine.text.split import Chunk, split_text
from ttsq.jobs.plans import SegmentRecord
from ttsq.models import Job, JobResult, JobStatus, Progress
from ttsq.storage.base import key_for, segment_key

from .cleanup import remove_job_files
from .outcomes import AudioTooLongError, JobCanceledError, JobTimeoutError, LockLostError, Outcome
from .runtime import Runtime

logger = logging.getLogger(__name__)

RUNNING = (JobStatus.running,)
FAST_SPOKEN_CHARS_PER_S = 22.0
"""Characters of spoken text per second of audio at speed 1, at the fast end (joe reads about 15-18): the estimate
errs short, so only a text sure to pass the audio limit is refused before synthesis."""

READ_BLOCK_BYTES = 1 << 20


def plan(runtime: Runtime, job: Job, token: str, text: str) -> None:
    """Split the text into chunks and group them into segments of about TTSQ_SEGMENT_CHARS characters."""
    chunks = split_text(text)
    if not any(c.spoken.strip() for c in chunks):
        raise InvalidInputError("text has nothing to speak once footnote marks and symbols are set aside")
    _refuse_if_too_long(runtime, job, chunks)
    segments: list[tuple[int, int]] = []
    first, size = 0, 0
    for index, chunk in enumerate(chunks):
        if size and size + len(chunk.source) > runtime.config.segment_chars:
            segments.append((first, index))
            first, size = index, 0
        size += len(chunk.source)
    segments.append((first, len(chunks)))
    # The source goes with each chunk for its mark (issue 16: a mark shows the text as written, not the spoken form).
    keep = ("spoken", "paragraph", "heading", "source", "continues")
    records = [{name: getattr(c, name) for name in keep} for c in chunks]
    progress = Progress(chunks_done=0, chunks_total=len(chunks)).model_dump()
    if not runtime.plans.save(job.id, token, records, segments):
        raise _stopped(runtime, job.id)
    if not runtime.store.update_fenced(job.id, token, RUNNING, segments_total=len(segments), progress=progress):
        raise _stopped(runtime, job.id)


def _refuse_if_too_long(runtime: Runtime, job: Job, chunks: list[Chunk]) -> None:
    """Fail at once, not hours into synthesis, a text whose audio would surely pass TTSQ_MAX_AUDIO_S."""
    spoken = sum(len(c.spoken) for c in chunks)
    estimate_s = spoken / (FAST_SPOKEN_CHARS_PER_S * job.speed) + len(chunks) * runtime.config.sentence_silence_s
    limit_s = runtime.config.max_audio_s
    if estimate_s > limit_s:
        raise AudioTooLongError(
            f"the text would make about {estimate_s:.0f} s of audio (its spoken form has {spoken} characters), over "
            f"the {limit_s:.0f} s of TTSQ_MAX_AUDIO_S; split it into smaller jobs"
        )


def run_segment(runtime: Runtime, job: Job, index: int, token: str, lost: threading.Event) -> None:
    """Synthesize segment ``index`` into its own stored object and record it, once."""
    config, store = runtime.config, runtime.store
    speaker = runtime.tts.speakers[job.speaker]
    rate = speaker.sample_rate
    first, raw_chunks = runtime.plans.segment_chunks(job.id, index)
    chunks = [NarrationChunk(**c) for c in raw_chunks]
    before = runtime.plans.record(job.id, index - 1)
    offset_s = before.end_s if before else 0.0
    previous = NarrationChunk(**before.last_chunk) if before and before.last_chunk else None
    pauses = PauseOptions(config.sentence_silence_s, config.paragraph_silence_s)
    started = time.monotonic()
    deadline: float | None = None
    samples, marks = 0, []
    last_spoken = before.last_chunk if before else None
    synthesis = SynthesisOptions(speed=job.speed, noise_scale=job.noise_scale, noise_w_scale=job.noise_w_scale)
    narration = narrate(speaker, chunks, offset_s, previous, pauses, synthesis)
    # closing() ends the narration (and frees the speaker) at once if this segment stops early.
    key = segment_key(job.id, index, token)
    fence = partial(store.holds_lock, job.id, token)
    with runtime.storage.writer(key, tag=token, fence=fence) as sink, contextlib.closing(narration):
        for done, piece in enumerate(narration, start=1):
            if len(piece.samples):
                last_spoken = raw_chunks[done - 1]  # what the next segment's first pause depends on
            # The clock starts once the speaker is ours: waiting for its lock is not synthesis time.
            deadline = deadline or time.monotonic() + config.task_time_limit_s
            sink.write(piece.samples.tobytes())
            sink.flush()  # surfaces a failed upload now, not at the end
            samples += len(piece.samples)
            if piece.mark is not None:
                marks.append(asdict(piece.mark))
            audio_s = offset_s + samples / rate
            _report(runtime, job, token, first + done, audio_s, time.monotonic() - started)
            _check(runtime, job.id, lost, deadline, done < len(chunks), audio_s)
    end_s = offset_s + samples / rate
    record = SegmentRecord(samples=samples, key=key, end_s=end_s, marks=marks, last_chunk=last_spoken)
    if not runtime.plans.finish_segment(job.id, token, index, record):
        runtime.storage.delete(key)  # ours alone (named after this run), and recorded nowhere
        raise LockLostError
    if not store.update_fenced(job.id, token, RUNNING, synth_s=job.synth_s + time.monotonic() - started):
        raise _stopped(runtime, job.id)


def _whole_samples(data: bytes) -> tuple[bytes, bytes]:
    cut = len(data) - len(data) % 2
    return data[:cut], data[cut:]


def _report(runtime: Runtime, job: Job, token: str, chunks_done: int, audio_s: float, segment_s: float) -> None:
    total = job.progress.chunks_total or chunks_done
    per_chunk_s = (job.synth_s + segment_s) / chunks_done  # measured over the whole job so far
    eta = round(per_chunk_s * (total - chunks_done), 1)
    progress = Progress(chunks_done=chunks_done, chunks_total=total, audio_s=round(audio_s, 3), eta_s=eta)
    if not runtime.store.set_progress(job.id, token, progress):
        raise _stopped(runtime, job.id)


def _stopped(runtime: Runtime, job_id: str) -> Exception:
    """Why a fenced write was refused: the job was canceled, or this run lost its lock (or the job is gone)."""
    if runtime.store.status(job_id) == JobStatus.canceled:
        return JobCanceledError()
    return LockLostError()


def _check(runtime: Runtime, job_id: str, lost: threading.Event, deadline: float, more: bool, audio_s: float) -> None:
    if lost.is_set():
        raise LockLostError
    if runtime.store.status(job_id) == JobStatus.canceled:
        raise JobCanceledError
    if audio_s > runtime.config.max_audio_s:
        raise AudioTooLongError(
            f"the audio passed {runtime.config.max_audio_s:.0f} s (TTSQ_MAX_AUDIO_S); split the text into smaller jobs"
        )
    if more and time.monotonic() > deadline:
        raise JobTimeoutError(
            f"a segment took longer than {runtime.config.task_time_limit_s} s; "
            "lower TTSQ_SEGMENT_CHARS or raise TTSQ_TASK_TIME_LIMIT_S"
        )


def assemble(runtime: Runtime, job: Job, token: str) -> Outcome:
    """Join the finished segments into the output file, in the job's format, then drop the segments."""
    records = runtime.plans.records(job.id)
    rate = runtime.tts.speakers[job.speaker].sample_rate
    total = sum(r.samples for r in records)
    key = key_for(job.id, job.format)
    fence = partial(runtime.store.holds_lock, job.id, token)
    with (
        runtime.storage.writer(key, tag=token, fence=fence) as sink,
        open_audio_writer(sink, rate, job.format, total) as out,
    ):
        for index, record in enumerate(records):
            with runtime.storage.reader(record.key or segment_key(job.id, index)) as segment:
                carry = b""  # a network read may end mid-sample
                while block := segment.read(READ_BLOCK_BYTES):
                    block, carry = _whole_samples(carry + block)
                    out.write(np.frombuffer(block, dtype=np.int16))
                    sink.flush()
            if runtime.store.status(job.id) == JobStatus.canceled:
                raise JobCanceledError
    marks = [Mark(**m) for r in records for m in r.marks] if job.marks else None
    result = JobResult(
        key=key,
        format=job.format,
        duration_s=round(total / rate, 3),
        sample_rate=rate,
        size_bytes=runtime.storage.size(key) or 0,
        marks=[asdict(m) for m in marks] if marks is not None else None,
    )
    progress = Progress(
        chunks_done=job.progress.chunks_total or 0,
        chunks_total=job.progress.chunks_total,
        audio_s=result.duration_s,
        eta_s=0.0,
    )
    if not runtime.store.mark_succeeded(job.id, token, result, progress):
        if runtime.store.status(job.id) == JobStatus.canceled:
            raise JobCanceledError  # canceled while the output was being written: it goes too
        raise LockLostError
    logger.info(
        "%s: succeeded: %.1f s of %s audio in %.1f s of synthesis, %.1f s after it was queued",
        job.id,
        result.duration_s,
        job.format,
        job.synth_s,
        time.time() - job.created_at,
    )
    remove_job_files(runtime, job.id, keep=key)  # best effort: the job has succeeded, whatever happens here
    return Outcome.succeeded
