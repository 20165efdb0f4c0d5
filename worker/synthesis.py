"""Run a job as a series of short tasks: plan it, synthesize one segment per task, then assemble the output.

Each task holds the job's lock, does one bounded piece of work, records it, and queues the next piece. A
worker killed mid-job loses at most the segment it was on; the job resumes from the last finished one.
"""

from __future__ import annotations

import contextvars
import logging
import tempfile
import threading
import uuid

import redis

from ttsq.jobs.store import Taken
from ttsq.logs import job_context
from ttsq.models import Job, JobStatus
from ttsq.queue import job_ended, synthesis_message
from ttsq.storage.base import WriteFenced

from .assembly import assemble
from .cleanup import remove_job_files
from .outcomes import JobCanceledError, JobFailure, LockLostError, Outcome, as_failure
from .runtime import Runtime
from .segments import Piece, plan, run_segment, stored_piece

logger = logging.getLogger(__name__)

HELD_AUDIO_BYTES = 8 << 20
"""A one-segment job's audio is held in memory up to this (about three minutes at 22 kHz), then in a temporary file."""
ENDED = (Outcome.succeeded, Outcome.failed)
"""A run whose end was recorded: that step also dropped its lock."""


def run_job(runtime: Runtime, job_id: str) -> Outcome:
    """Do the job's next piece unless another run holds it; return what happened, for logs and tests."""
    with job_context(job_id):  # every log line of the run, here and in the engine, names the job
        return _run_job(runtime, job_id)


def _run_job(runtime: Runtime, job_id: str) -> Outcome:
    store, config = runtime.store, runtime.config
    token = uuid.uuid4().hex
    # Read only under the lock: a run that finished a moment ago must be seen as finished.
    taken = store.take(job_id, token, config.lock_ttl_s, runtime.name, config.max_attempts)
    if not taken.locked:
        logger.info("%s: running elsewhere; skipping this delivery", job_id)
        return Outcome.locked
    lost = threading.Event()
    stop = threading.Event()
    keeper = threading.Thread(
        target=contextvars.copy_context().run, args=(_keep_lock, runtime, job_id, token, stop, lost), daemon=True
    )
    keeper.start()
    outcome: Outcome | None = None  # stays None if the run raises: its lock is released all the same
    job = taken.job
    handed_off = False
    try:
        outcome = _take(runtime, job_id, taken, token, lost)
        if outcome == Outcome.continued and job is not None:
            outcome = _hand_off(runtime, job, token)
            handed_off = outcome == Outcome.continued
    finally:
        stop.set()
        keeper.join()
        if outcome not in ENDED and not handed_off:  # an end, or a hand-off, dropped the lock in its own step
            store.release_lock(job_id, token)
    if outcome in ENDED and job is not None:
        job_ended(runtime.celery, config, job)
    return outcome


def _take(runtime: Runtime, job_id: str, taken: Taken, token: str, lost: threading.Event) -> Outcome:
    """What the run did with the job it found."""
    job = taken.job
    if job is None:
        logger.warning("%s: no such job; dropping the task", job_id)
        return Outcome.missing
    if taken.running:
        return _advance(runtime, job, token, lost, taken.text)
    if job.status == JobStatus.canceled:
        return _discard(runtime, job)
    if job.status.terminal:
        logger.info("%s: already %s; nothing to do", job_id, job.status.value)
        return Outcome.done_already
    if job.attempts >= runtime.config.max_attempts:
        message = f"the job was started {job.attempts} times and its worker died each time"
        return _fail(runtime, job, token, JobFailure(message, "worker_lost"))
    logger.warning("%s: its record lacks what a run needs (status %s); dropping the task", job_id, job.status.value)
    return Outcome.missing


def _advance(runtime: Runtime, job: Job, token: str, lost: threading.Event, text: str | None = None) -> Outcome:
    job_id = job.id
    try:
        if job.segments_total is None:  # not planned yet (or planned as one segment, which is not stored)
            # Only planning needs the (long) text; what the plan holds is known here, not read back.
            job, planned = plan(runtime, job, token, text or "")
            if len(planned.segments) == 1:
                # Most short texts: planned, spoken and assembled in one task, nothing of the plan in Redis and the
                # audio held here (on disk past HELD_AUDIO_BYTES), not stored, read back and deleted.
                with tempfile.SpooledTemporaryFile(HELD_AUDIO_BYTES) as held:
                    piece = Piece(0, planned.chunks, None)
                    job, record = run_segment(runtime, job, 0, piece, token, lost, held)
                    return assemble(runtime, job, token, [record], lambda: enumerate(planned.chunks), held)
            done, total = 0, len(planned.segments)
        else:
            done, total = runtime.plans.done_count(job_id), job.segments_total
        if done < total:
            job, _ = run_segment(runtime, job, done, stored_piece(runtime, job_id, done), token, lost)
            if total > 1:
                return Outcome.continued  # the next segment, or a long job's assembly, is a task of its own
        return assemble(runtime, job, token, runtime.plans.records(job_id))
    except (LockLostError, WriteFenced):
        logger.error("%s: lost its lock mid-run; leaving the job to the run that holds it", job_id)
        return Outcome.lock_lost
    except JobCanceledError:
        return _discard(runtime, job)
    except redis.RedisError:
        raise  # the record can't be written; the lock lapses and the job is requeued
    except Exception as error:  # the job must say why it failed, whatever went wrong
        failure = as_failure(error, runtime.name)
        if failure.code == JobFailure.code:
            logger.exception("%s: unexpected error", job_id)
        return _fail(runtime, job, token, failure)


def _hand_off(runtime: Runtime, job: Job, token: str) -> Outcome:
    """Queue the job's next piece as this run lets the job go, in one step (the broker is the job store's Redis);
    when that finds the job no longer this run's: canceled (its files go) or taken over. Redis away: the hand-off
    raises, the lock lapses, and a worker's upkeep requeues the job."""
    store = runtime.store
    if store.hand_off(job.id, token, synthesis_message(runtime.celery, job.id, job.queue)):
        return Outcome.continued
    if store.status(job.id) == JobStatus.canceled and (latest := store.get(job.id)) is not None:
        return _discard(runtime, latest)  # canceled as this piece ended: its files go
    return Outcome.lock_lost


def _fail(runtime: Runtime, job: Job, token: str, failure: JobFailure) -> Outcome:
    logger.warning("%s: failed (%s): %s", job.id, failure.code, failure.message)
    if runtime.store.mark_failed(job, token, failure.code, failure.message):
        remove_job_files(runtime, job.id)
        return Outcome.failed
    if runtime.store.status(job.id) == JobStatus.canceled:  # canceled while failing: it stays canceled
        return _discard(runtime, job)
    return Outcome.lock_lost


def _discard(runtime: Runtime, job: Job) -> Outcome:
    logger.info("%s: canceled; removing its partial output", job.id)
    remove_job_files(runtime, job.id)
    return Outcome.canceled


def _keep_lock(runtime: Runtime, job_id: str, token: str, stop: threading.Event, lost: threading.Event) -> None:
    ttl = runtime.config.lock_ttl_s
    while not stop.wait(ttl / 3):
        try:
            if not runtime.store.refresh_lock(job_id, token, ttl):
                lost.set()
                return
        except redis.RedisError as error:
            # Two more tries fit in the TTL; if Redis stays away the lock lapses and the job is requeued.
            logger.warning("%s: could not refresh the job lock: %s", job_id, error)
