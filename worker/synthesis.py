"""Run one job: synthesize sentence by sentence, write the audio to storage, record the outcome."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis

from engine import EngineError, InvalidInputError, UnknownSpeakerError
from engine.audio import open_wav_writer
from ttsq.jobs import Job, JobResult, Progress
from ttsq.storage import key_for

from .runtime import Runtime

logger = logging.getLogger(__name__)


class JobTimeoutError(Exception):
    """A job ran past the configured time limit."""


class LockLostError(Exception):
    """The job's lock expired under us: another run may own the job, so this one must stop quietly."""


def run_job(runtime: Runtime, job_id: str) -> str:
    """Process one job unless another run holds it; return what happened, for logs and tests."""
    store, config = runtime.store, runtime.config
    token = uuid.uuid4().hex
    if not store.acquire_lock(job_id, token, config.lock_ttl_s):
        logger.info("%s: running elsewhere; skipping this delivery", job_id)
        return "locked"
    lost = threading.Event()
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_lock, args=(runtime, job_id, token, stop, lost), daemon=True)
    keeper.start()
    try:
        # Read only under the lock: a run that finished a moment ago must be seen as finished.
        job = store.get(job_id)
        text = store.text(job_id)
        if job is None or text is None:
            logger.warning("%s: no such job; dropping the task", job_id)
            return "missing"
        if job.status.terminal:
            logger.info("%s: already %s; nothing to do", job_id, job.status.value)
            return "done-already"
        if job.attempts >= config.max_attempts:
            message = f"the job was started {job.attempts} times and its worker died each time"
            store.mark_failed(job_id, token, "worker_lost", message)
            return "failed"
        store.mark_running(job_id, runtime.name, job.attempts + 1)
        return _synthesize(runtime, job, text, token, lost)
    finally:
        stop.set()
        keeper.join()
        store.release_lock(job_id, token)


def _synthesize(runtime: Runtime, job: Job, text: str, token: str, lost: threading.Event) -> str:
    store, config, job_id = runtime.store, runtime.config, job.id
    key = key_for(job_id, job.format)
    try:
        speaker = runtime.tts.speakers[job.speaker]
        progress = Progress()
        deadline: float | None = None
        with runtime.storage.writer(key, tag=token) as sink, open_wav_writer(sink, speaker.sample_rate) as out:
            for chunk in speaker.stream(text, speed=job.speed):
                # The clock starts once the speaker is ours: waiting for its lock is not synthesis time.
                deadline = deadline or time.monotonic() + config.task_time_limit_s
                out.write(chunk.audio.samples)
                sink.flush()  # surfaces a failed upload now, not after the whole text
                progress = Progress(
                    chunks_done=chunk.index + 1,
                    chunks_total=chunk.total,
                    audio_s=progress.audio_s + chunk.audio.duration_s,
                )
                store.set_progress(job_id, progress)
                if lost.is_set():
                    raise LockLostError
                if time.monotonic() > deadline and chunk.index + 1 < chunk.total:
                    raise JobTimeoutError
        size = runtime.storage.size(key) or 0
        result = JobResult(
            key=key,
            format=job.format,
            duration_s=round(progress.audio_s, 3),
            sample_rate=speaker.sample_rate,
            size_bytes=size,
        )
        if not store.mark_succeeded(job_id, token, result, progress):
            raise LockLostError
        logger.info("%s: succeeded, %.1f s of audio, %d bytes", job_id, progress.audio_s, size)
        return "succeeded"
    except LockLostError:
        logger.error("%s: lost its lock mid-run; leaving the job to the run that holds it", job_id)
        return "lock-lost"
    except JobTimeoutError:
        message = (
            f"synthesis ran past {config.task_time_limit_s} s; "
            "split the text into smaller jobs or raise TTSQ_TASK_TIME_LIMIT_S"
        )
        return _fail(runtime, job_id, token, "timeout", message)
    except UnknownSpeakerError as error:
        return _fail(runtime, job_id, token, "unknown_speaker", f"worker {runtime.name} does not serve it: {error}")
    except InvalidInputError as error:
        return _fail(runtime, job_id, token, "invalid_input", str(error))
    except EngineError as error:
        return _fail(runtime, job_id, token, "engine_error", str(error))
    except OSError as error:
        return _fail(runtime, job_id, token, "storage_error", f"could not write the audio: {error}")
    except redis.RedisError:
        raise  # the record can't be written; let the lock expire so the job is requeued
    except Exception as error:  # the job must say why it failed, whatever went wrong
        logger.exception("%s: unexpected error", job_id)
        return _fail(runtime, job_id, token, "internal_error", f"{type(error).__name__}: {error}")


def _fail(runtime: Runtime, job_id: str, token: str, code: str, message: str) -> str:
    logger.warning("%s: failed (%s): %s", job_id, code, message)
    runtime.store.mark_failed(job_id, token, code, message)
    return "failed"


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
