"""Run one job: synthesize sentence by sentence, write the audio to storage, record the outcome."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import soundfile

from engine import EngineError, InvalidInputError, UnknownSpeakerError
from ttsq.jobs import JobResult, JobStatus, Progress
from ttsq.storage import key_for

from .runtime import Runtime

logger = logging.getLogger(__name__)


class JobTimeoutError(Exception):
    """A job ran past the configured time limit."""


def run_job(runtime: Runtime, job_id: str) -> str:
    """Process one job if nobody else is; return what happened, for logs and tests."""
    store, config = runtime.store, runtime.config
    job = store.get(job_id)
    if job is None:
        logger.warning("%s: no such job; dropping the task", job_id)
        return "missing"
    if job.status.terminal:
        logger.info("%s: already %s; nothing to do", job_id, job.status.value)
        return "done-already"
    token = uuid.uuid4().hex
    if not store.acquire_lock(job_id, token, config.lock_ttl_s):
        logger.info("%s: running elsewhere; skipping this delivery", job_id)
        return "locked"
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_lock, args=(runtime, job_id, token, stop), daemon=True)
    keeper.start()
    try:
        if job.attempts >= config.max_attempts:
            store.mark_failed(
                job_id, "worker_lost", f"the job was started {job.attempts} times and its worker died each time"
            )
            return "failed"
        store.mark_running(job_id, runtime.name, job.attempts + 1)
        return _synthesize(runtime, job_id)
    finally:
        stop.set()
        keeper.join()
        store.release_lock(job_id, token)


def _synthesize(runtime: Runtime, job_id: str) -> str:
    store, config = runtime.store, runtime.config
    job = store.get(job_id)
    text = store.text(job_id)
    if job is None or text is None:
        logger.error("%s: record or text vanished", job_id)
        return "missing"
    deadline = time.monotonic() + config.task_time_limit_s
    key = key_for(job_id, job.format)
    try:
        speaker = runtime.tts.speakers[job.speaker]
        progress = Progress()
        with (
            runtime.storage.writer(key) as path,
            soundfile.SoundFile(str(path), "w", speaker.sample_rate, 1, subtype="PCM_16", format="WAV") as out,
        ):
            for chunk in speaker.stream(text, speed=job.speed):
                out.write(chunk.audio.samples)
                progress = Progress(
                    chunks_done=chunk.index + 1,
                    chunks_total=chunk.total,
                    audio_s=progress.audio_s + chunk.audio.duration_s,
                )
                store.set_progress(job_id, progress)
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
        store.mark_succeeded(job_id, result, progress)
        logger.info("%s: succeeded, %.1f s of audio, %d bytes", job_id, progress.audio_s, size)
        return JobStatus.succeeded.value
    except JobTimeoutError:
        _fail(
            runtime,
            job_id,
            "timeout",
            f"synthesis ran past {config.task_time_limit_s} s; "
            "split the text into smaller jobs or raise TTSQ_TASK_TIME_LIMIT_S",
        )
    except UnknownSpeakerError as error:
        _fail(runtime, job_id, "unknown_speaker", f"worker {runtime.name} does not serve this speaker: {error}")
    except InvalidInputError as error:
        _fail(runtime, job_id, "invalid_input", str(error))
    except EngineError as error:
        _fail(runtime, job_id, "engine_error", str(error))
    except OSError as error:
        _fail(runtime, job_id, "storage_error", f"could not write the audio: {error}")
    except Exception as error:  # the job must say why it failed, whatever went wrong
        logger.exception("%s: unexpected error", job_id)
        _fail(runtime, job_id, "internal_error", f"{type(error).__name__}: {error}")
    return JobStatus.failed.value


def _fail(runtime: Runtime, job_id: str, code: str, message: str) -> None:
    logger.warning("%s: failed (%s): %s", job_id, code, message)
    runtime.store.mark_failed(job_id, code, message)


def _keep_lock(runtime: Runtime, job_id: str, token: str, stop: threading.Event) -> None:
    ttl = runtime.config.lock_ttl_s
    while not stop.wait(ttl / 3):
        if not runtime.store.refresh_lock(job_id, token, ttl):
            logger.error("%s: lost its lock; another worker may take it over", job_id)
            return
