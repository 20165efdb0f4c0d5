"""Run a job as a series of short tasks: plan it, synthesize one segment per task, then assemble the output.

Each task holds the job's lock, does one bounded piece of work, records it, and queues the next piece. A
worker killed mid-job loses at most the segment it was on; the job resumes from the last finished one.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import uuid

import redis

from engine import EngineError, InvalidInputError, UnknownSpeakerError
from ttsq.jobs import Job, JobStatus
from ttsq.logs import job_context
from ttsq.storage import key_for, segment_key

from .celery_app import SYNTHESIZE_TASK
from .events import job_ended
from .runtime import Runtime
from .segments import AudioTooLongError, JobCanceledError, JobTimeoutError, LockLostError, assemble, plan, run_segment

logger = logging.getLogger(__name__)

CONTINUE = "continued"


def run_job(runtime: Runtime, job_id: str) -> str:
    """Do the job's next piece unless another run holds it; return what happened, for logs and tests."""
    with job_context(job_id):  # every log line of the run, here and in the engine, names the job
        return _run_job(runtime, job_id)


def _run_job(runtime: Runtime, job_id: str) -> str:
    store, config = runtime.store, runtime.config
    token = uuid.uuid4().hex
    if not store.acquire_lock(job_id, token, config.lock_ttl_s):
        logger.info("%s: running elsewhere; skipping this delivery", job_id)
        return "locked"
    lost = threading.Event()
    stop = threading.Event()
    keeper = threading.Thread(
        target=contextvars.copy_context().run, args=(_keep_lock, runtime, job_id, token, stop, lost), daemon=True
    )
    keeper.start()
    try:
        outcome = _take(runtime, job_id, token, lost)
        if outcome == CONTINUE and not store.hand_off(job_id, token):
            outcome = "lock-lost"
    finally:
        stop.set()
        keeper.join()
        store.release_lock(job_id, token)
    if outcome == CONTINUE:
        _queue_next(runtime, job_id)
    elif outcome in (JobStatus.succeeded.value, JobStatus.failed.value):
        job_ended(runtime.celery, store.redis, config, job_id)
    return outcome


def _take(runtime: Runtime, job_id: str, token: str, lost: threading.Event) -> str:
    store, config = runtime.store, runtime.config
    # Read only under the lock: a run that finished a moment ago must be seen as finished.
    job = store.get(job_id)
    if job is None:
        logger.warning("%s: no such job; dropping the task", job_id)
        return "missing"
    if job.status == JobStatus.canceled:
        _discard(runtime, job)
        return "canceled"
    if job.status.terminal:
        logger.info("%s: already %s; nothing to do", job_id, job.status.value)
        return "done-already"
    if job.attempts >= config.max_attempts:
        message = f"the job was started {job.attempts} times and its worker died each time"
        return _fail(runtime, job, token, "worker_lost", message)
    if not store.mark_running(job, runtime.name):  # canceled since we read it
        _discard(runtime, job)
        return "canceled"
    return _advance(runtime, job, token, lost)


def _advance(runtime: Runtime, job: Job, token: str, lost: threading.Event) -> str:
    config, job_id = runtime.config, job.id
    try:
        if not runtime.plans.has_plan(job_id):
            plan(runtime, job, runtime.store.text(job_id) or "")  # only planning needs the (long) text
            job = runtime.store.get(job_id) or job  # planning set chunks_total
        done, total = runtime.plans.done_count(job_id), runtime.plans.segment_count(job_id)
        if done < total:
            run_segment(runtime, job, done, token, lost)
            if total > 1:
                return CONTINUE  # the next segment, or a long job's assembly, is a task of its own
        # A one-segment job (most short texts) is planned, spoken and assembled in one task: no extra queue hops.
        return assemble(runtime, runtime.store.get(job_id) or job, token)
    except LockLostError:
        logger.error("%s: lost its lock mid-run; leaving the job to the run that holds it", job_id)
        return "lock-lost"
    except JobCanceledError:
        _discard(runtime, job)
        return "canceled"
    except JobTimeoutError:
        message = (
            f"a segment took longer than {config.task_time_limit_s} s; "
            "lower TTSQ_SEGMENT_CHARS or raise TTSQ_TASK_TIME_LIMIT_S"
        )
        return _fail(runtime, job, token, "timeout", message)
    except AudioTooLongError as error:
        return _fail(runtime, job, token, "audio_too_long", str(error))
    except UnknownSpeakerError as error:
        return _fail(runtime, job, token, "unknown_speaker", f"worker {runtime.name} does not serve it: {error}")
    except InvalidInputError as error:
        return _fail(runtime, job, token, "invalid_input", str(error))
    except EngineError as error:
        return _fail(runtime, job, token, "engine_error", str(error))
    except OSError as error:
        return _fail(runtime, job, token, "storage_error", f"could not store the audio: {error}")
    except redis.RedisError:
        raise  # the record can't be written; the lock lapses and the job is requeued
    except Exception as error:  # the job must say why it failed, whatever went wrong
        logger.exception("%s: unexpected error", job_id)
        return _fail(runtime, job, token, "internal_error", f"{type(error).__name__}: {error}")


def _queue_next(runtime: Runtime, job_id: str) -> None:
    """Hand the job's next piece to the queue (after our lock is released, so that task can take it)."""
    job = runtime.store.get(job_id)
    if job is None:
        return
    try:
        runtime.celery.send_task(SYNTHESIZE_TASK, args=[job_id], queue=job.queue)
    except Exception:
        # Leave it looking orphaned, so a worker's upkeep requeues it once the broker is back.
        runtime.store.update_if(job_id, (JobStatus.running,), in_task=True)
        logger.exception("%s: could not queue the next segment; upkeep will retry", job_id)


def _fail(runtime: Runtime, job: Job, token: str, code: str, message: str) -> str:
    logger.warning("%s: failed (%s): %s", job.id, code, message)
    if runtime.store.mark_failed(job.id, token, code, message):
        _remove_work(runtime, job)
        return "failed"
    if runtime.store.status(job.id) == JobStatus.canceled:  # canceled while failing: it stays canceled
        _discard(runtime, job)
        return "canceled"
    return "lock-lost"


def _discard(runtime: Runtime, job: Job) -> None:
    logger.info("%s: canceled; removing its partial output", job.id)
    _remove_work(runtime, job)


def _remove_work(runtime: Runtime, job: Job) -> None:
    """Best effort: the job's outcome is already recorded, and leftovers must not hide it."""
    keys = [segment_key(job.id, index) for index in range(runtime.plans.segment_count(job.id))]
    for key in [*keys, key_for(job.id, job.format)]:
        try:
            runtime.storage.delete(key)
        except Exception as error:  # storage backends raise unrelated types
            logger.warning("%s: could not remove %s: %s", job.id, key, error)
    runtime.plans.delete(job.id)


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
