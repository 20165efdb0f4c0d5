"""Job records in Redis: the source of truth for a job's status (not Celery's result backend)."""

from __future__ import annotations

import json
import re
import time
import uuid
from enum import Enum
from typing import Any

import redis
from pydantic import BaseModel

from engine.constants import MIME_TYPES

from .metrics import record_job_finished

OUTPUT_FORMATS = tuple(MIME_TYPES)


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class Progress(BaseModel):
    chunks_done: int = 0
    chunks_total: int | None = None
    audio_s: float = 0.0
    eta_s: float | None = None
    """Seconds of synthesis left, from the throughput measured so far."""


class JobError(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    key: str
    format: str
    duration_s: float
    sample_rate: int
    size_bytes: int
    marks: list[dict[str, Any]] | None = None
    """Where each paragraph or heading starts (``{paragraph, heading, start_s, text}``), when asked for."""


class WebhookState(BaseModel):
    """How the job's end event is being delivered (the receiver's bodies are never kept)."""

    attempts: int = 0
    last_status: int | None = None
    """HTTP status of the last attempt; None when it got no answer (refused, timeout, network error)."""
    last_error: str | None = None
    delivered_at: float | None = None
    failed: bool = False
    """No more attempts will be made."""


class Job(BaseModel):
    """Everything known about one job, as stored and as the API reports it."""

    id: str
    status: JobStatus = JobStatus.queued
    speaker: str
    format: str = "wav"
    speed: float = 1.0
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    marks: bool = False
    text_chars: int
    queue: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    worker: str | None = None
    progress: Progress = Progress()
    error: JobError | None = None
    result: JobResult | None = None
    segments_total: int | None = None
    segments_done: int = 0
    synth_s: float = 0.0
    """Wall seconds spent synthesizing so far, over all segments (for the ETA)."""
    in_task: bool = False
    """A task is working on the job now (as opposed to its next segment waiting in the queue)."""
    owner: str | None = None
    """Name of the API key that created the job; None when the API runs without keys."""
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    """The client's own object, echoed back in the status and the webhook event."""
    webhook: WebhookState | None = None


WEBHOOK_GRACE_S = 60.0
"""An ended job's event not settled this long after it was due is queued again (its task was lost)."""


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    """Reads and writes job records, texts and per-job locks under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = "ttsq:") -> None:
        self.redis = client
        self.prefix = prefix

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def _text_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:text"

    def lock_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:lock"

    @property
    def active_key(self) -> str:
        return f"{self.prefix}jobs:active"

    @property
    def finished_key(self) -> str:
        """Sorted set of ended jobs by end time: what retention cleanup walks."""
        return f"{self.prefix}jobs:finished"

    @property
    def webhooks_pending_key(self) -> str:
        """Sorted set of jobs whose end event is not settled yet, by when to look at them again (an outbox: an
        event whose task was lost is queued again by worker upkeep)."""
        return f"{self.prefix}webhooks:pending"

    def webhook_due(self, job_id: str, at: float) -> None:
        self.redis.zadd(self.webhooks_pending_key, {job_id: at})

    def webhook_settled(self, job_id: str) -> None:
        self.redis.zrem(self.webhooks_pending_key, job_id)

    def webhooks_overdue(self, now: float, limit: int = 100) -> list[str]:
        members: list[bytes] = self.redis.zrangebyscore(self.webhooks_pending_key, "-inf", now, start=0, num=limit)  # type: ignore[assignment]
        return [_text(m) for m in members]

    def _gone_key(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:gone"

    def create(self, job: Job, text: str) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(self._text_key(job.id), text.encode("utf-8"))
            pipe.hset(self._key(job.id), mapping=_encode(job.model_dump(mode="json")))
            pipe.sadd(self.active_key, job.id)
            pipe.execute()

    def delete(self, job_id: str) -> None:
        self.redis.delete(self._key(job_id), self._text_key(job_id))
        self.redis.srem(self.active_key, job_id)

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.hgetall(self._key(job_id))
        if not raw:
            return None
        return Job.model_validate({_text(k): json.loads(v) for k, v in raw.items()})

    def text(self, job_id: str) -> str | None:
        raw = self.redis.get(self._text_key(job_id))
        return None if raw is None else _text(raw)

    def _events(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:events"

    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields and tell anyone waiting on the job (see ``wait_for_change``)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(job_id), mapping=_encode(fields))
            pipe.publish(self._events(job_id), "changed")
            pipe.execute()

    def update_if(self, job_id: str, allowed: tuple[JobStatus, ...], **fields: Any) -> bool:
        """Change fields only while the job's status is one of ``allowed`` (a cancel is never overwritten)."""
        key = self._key(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if self.status(job_id) not in allowed:
                    return False
                pipe.multi()
                pipe.hset(key, mapping=_encode(fields))
                pipe.publish(self._events(job_id), "changed")
                pipe.execute()
            except redis.WatchError:
                return self.update_if(job_id, allowed, **fields)
        return True

    def hand_off(self, job_id: str, token: str) -> bool:
        """End this task's turn: clear in_task and attempts and drop the lock in one step, so upkeep never sees
        the job running, unlocked and "in a task" between a finished segment and the next task."""
        fields = _encode({"in_task": False, "attempts": 0})
        keys = (self.lock_key(job_id), self._key(job_id))
        return bool(self.redis.eval(_HAND_OFF, 2, *keys, token, fields["in_task"], fields["attempts"]))

    def wait_for_change(self, job_id: str, timeout_s: float) -> Job | None:
        """The job once it is finished or has changed, or as it stands after ``timeout_s``; None if unknown."""
        deadline = time.monotonic() + timeout_s
        with self.redis.pubsub(ignore_subscribe_messages=True) as events:
            events.subscribe(self._events(job_id))  # before reading, so no change can slip in between
            job = self.get(job_id)
            if job is None or job.status.terminal:
                return job
            while (remaining := deadline - time.monotonic()) > 0:
                if events.get_message(timeout=remaining) is not None:
                    break
        return self.get(job_id)

    def set_progress(self, job_id: str, progress: Progress) -> None:
        self.update(job_id, progress=progress.model_dump(), heartbeat_at=time.time())

    def status(self, job_id: str) -> JobStatus | None:
        raw = self.redis.hget(self._key(job_id), "status")
        return None if raw is None else JobStatus(json.loads(raw))

    def cancel(self, job_id: str) -> bool:
        """Mark a job canceled unless it already ended; its worker notices between sentences and cleans up."""
        key = self._key(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                job = self.get(job_id)
                if job is None or job.status.terminal:
                    return False
                pipe.multi()
                now = time.time()
                pipe.hset(key, mapping=_encode({"status": JobStatus.canceled.value, "finished_at": now}))
                pipe.srem(self.active_key, job_id)
                pipe.zadd(self.finished_key, {job_id: now})
                if job.webhook_url:
                    pipe.zadd(self.webhooks_pending_key, {job_id: now + WEBHOOK_GRACE_S})
                record_job_finished(pipe, self.prefix, job, JobStatus.canceled, now)
                pipe.publish(self._events(job_id), "finished")
                pipe.execute()
            except redis.WatchError:
                return self.cancel(job_id)  # changed meanwhile (progress); look again
        return True

    def mark_running(self, job: Job, worker: str) -> bool:
        """A task takes the job (its first segment, or a later one): started_at is the first start.
        False if the job was canceled meanwhile."""
        now = time.time()
        return self.update_if(
            job.id,
            (JobStatus.queued, JobStatus.running),
            in_task=True,
            status=JobStatus.running.value,
            started_at=job.started_at or now,
            heartbeat_at=now,
            worker=worker,
            attempts=job.attempts + 1,
        )

    def mark_succeeded(self, job_id: str, token: str, result: JobResult, progress: Progress) -> bool:
        fields = {"status": JobStatus.succeeded.value, "result": result.model_dump(), "progress": progress.model_dump()}
        return self._finish(job_id, token, fields, JobStatus.running)

    def mark_failed(self, job_id: str, token: str, code: str, message: str) -> bool:
        fields = {"status": JobStatus.failed.value, "error": {"code": code, "message": message}}
        return self._finish(job_id, token, fields, JobStatus.running, JobStatus.queued)

    def _finish(self, job_id: str, token: str, fields: dict[str, Any], *allowed: JobStatus) -> bool:
        """Record the outcome only while holding the job's lock and while its status is one of ``allowed``
        (a job canceled meanwhile stays canceled); False otherwise."""
        lock = self.lock_key(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(lock, self._key(job_id))
                job = self.get(job_id)
                if _text(pipe.get(lock) or b"") != token or job is None or job.status not in allowed:
                    return False
                pipe.multi()
                now = time.time()
                pipe.hset(self._key(job_id), mapping=_encode({**fields, "finished_at": now}))
                pipe.srem(self.active_key, job_id)
                pipe.zadd(self.finished_key, {job_id: now})
                if job.webhook_url:
                    pipe.zadd(self.webhooks_pending_key, {job_id: now + WEBHOOK_GRACE_S})
                audio_s = (fields.get("result") or {}).get("duration_s")
                record_job_finished(pipe, self.prefix, job, fields["status"], now, audio_s)
                pipe.publish(self._events(job_id), "finished")
                pipe.execute()
            except redis.WatchError:
                return False
        return True

    def backfill_finished(self) -> int:
        """Once per deployment: list in the retention set every ended job recorded before that set existed (records
        from older versions), so retention removes them too. Returns how many were added."""
        if not self.redis.set(f"{self.prefix}jobs:finished:backfilled", "1", nx=True):
            return 0
        added = 0
        record = re.compile(rf"{re.escape(self.prefix)}job:[0-9a-f]{{32}}")
        for key in self.redis.scan_iter(match=f"{self.prefix}job:*", count=1000, _type="HASH"):
            name = _text(key)
            if not record.fullmatch(name):
                continue
            status, finished_at = self.redis.hmget(name, "status", "finished_at")
            ended = status is not None and JobStatus(json.loads(status)).terminal
            if ended and finished_at is not None and json.loads(finished_at) is not None:
                job_id = name.rsplit(":", 1)[1]
                added += int(self.redis.zadd(self.finished_key, {job_id: json.loads(finished_at)}, nx=True) or 0)
        return added

    def ended_before(self, cutoff: float, limit: int = 100) -> list[str]:
        members: list[bytes] = self.redis.zrangebyscore(self.finished_key, "-inf", cutoff, start=0, num=limit)  # type: ignore[assignment]
        return [_text(m) for m in members]

    def claim_expired(self, job_id: str) -> bool:
        """Take a job out of the retention set; only one cleaner gets True for it."""
        return bool(self.redis.zrem(self.finished_key, job_id))

    def unclaim_expired(self, job_id: str, finished_at: float) -> None:
        self.redis.zadd(self.finished_key, {job_id: finished_at})

    def purge(self, job_id: str, owner: str | None, remember_s: int) -> None:
        """Delete the record and text, leaving a marker for ``remember_s`` so the API answers 410, not 404."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self._key(job_id), self._text_key(job_id), self.lock_key(job_id))
            pipe.srem(self.active_key, job_id)
            pipe.zrem(self.webhooks_pending_key, job_id)
            pipe.set(self._gone_key(job_id), json.dumps({"owner": owner}), ex=remember_s)
            pipe.execute()

    def gone_owner(self, job_id: str) -> tuple[bool, str | None]:
        """(True, owner) if the job existed and was removed by retention; (False, None) otherwise."""
        raw = self.redis.get(self._gone_key(job_id))
        if raw is None:
            return False, None
        return True, json.loads(raw).get("owner")

    def active_ids(self) -> list[str]:
        return sorted(_text(m) for m in self.redis.smembers(self.active_key))

    # A per-job lock guarantees one execution at a time, whatever the broker redelivers.
    def acquire_lock(self, job_id: str, token: str, ttl_s: int) -> bool:
        return bool(self.redis.set(self.lock_key(job_id), token, nx=True, px=ttl_s * 1000))

    def refresh_lock(self, job_id: str, token: str, ttl_s: int) -> bool:
        return bool(self.redis.eval(_REFRESH, 1, self.lock_key(job_id), token, ttl_s * 1000))

    def release_lock(self, job_id: str, token: str) -> None:
        self.redis.eval(_RELEASE, 1, self.lock_key(job_id), token)

    def requeue_if_orphaned(self, job_id: str, stale_after_s: float = float("inf")) -> Job | None:
        """Move a running job whose lock has expired (its worker died) back to queued; None if it is not orphaned.

        A job between tasks (``in_task`` false) has its next message in the queue; it counts as orphaned only when
        nothing has happened to it for ``stale_after_s`` (that message was lost)."""
        key, lock = self._key(job_id), self.lock_key(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key, lock)
                job = self.get(job_id)
                if job is None or job.status != JobStatus.running or pipe.exists(lock):
                    return None
                idle_s = time.time() - (job.heartbeat_at or job.created_at)
                if not job.in_task and idle_s < stale_after_s:
                    return None
                pipe.multi()
                pipe.hset(key, mapping=_encode({"status": JobStatus.queued.value}))
                pipe.execute()
            except redis.WatchError:
                return None
        return job


_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_HAND_OFF = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], 'in_task', ARGV[2], 'attempts', ARGV[3])
redis.call('del', KEYS[1])
return 1
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _encode(fields: dict[str, Any]) -> dict[Any, Any]:
    """Each field JSON-encoded, so a partial update never needs a read first."""
    return {k: json.dumps(v) for k, v in fields.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
