"""Job records in Redis: the source of truth for a job's status (not Celery's result backend)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from ttsq import scripts
from ttsq.keys import DEFAULT_PREFIX, Keys
from ttsq.metrics import record as metrics
from ttsq.models import (
    JOB_ID,
    Job,
    JobResult,
    JobStatus,
    Progress,
    QueuedMessage,
    as_text,
    decode_job,
    encode_fields,
)

from . import locks

logger = logging.getLogger(__name__)

FINISH_TRIES = 5
"""Looks at a job's end again when its lock or record changed meanwhile (the lock keeper's refresh counts)."""
WEBHOOK_GRACE_S = 60.0
"""An ended job's event not settled this long after it was due is queued again (its task was lost)."""
BUSY_QUEUE_FACTOR = 2
"""A queued job whose queue holds messages is sent again after this many TTSQ_VISIBILITY_TIMEOUT_S (its message may
be one of them: a duplicate is likelier than a loss, and harmless)."""


@dataclass(frozen=True)
class Taken:
    """What a run found when it started (``JobStore.take``)."""

    locked: bool
    """False: another run holds the job, and nothing was read."""
    job: Job | None = None
    """As read under the lock, after marking it running if it was; None when there is no (readable) job."""
    running: bool = False
    """The job was marked running for this run: it may go on. Otherwise it was left as found."""
    text: str | None = None
    """A running job's text, when it is not planned yet (planning needs it)."""


class JobStore:
    """Reads and writes job records, texts and per-job locks under one key prefix."""

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix
        self.keys = Keys(prefix)

    def lock_key(self, job_id: str) -> str:
        return self.keys.lock(job_id)

    # --- records --------------------------------------------------------------------------------------------------
    def create(
        self,
        job: Job,
        text: str,
        idempotency_key: str | None = None,
        keep_s: int = 0,
        message: QueuedMessage | None = None,
        active_limit: int = 0,
    ) -> bool:
        """Record the job, counted in the metrics and with its first task ``message`` queued, in one step (a job
        that exists is counted and queued, whatever happens to the request next); an Idempotency-Key's claim is kept
        ``keep_s`` with it, as long as the job is. With an ``active_limit``, only while its owner has fewer queued or
        running jobs: False, and nothing written, otherwise."""
        keys = [
            self.keys.text(job.id),
            self.keys.job(job.id),
            self.keys.active,
            self.keys.owner_jobs(job.owner),
            job.queue,
            self.keys.owner_active(job.owner),
        ]
        if idempotency_key is not None:
            keys.append(idempotency_key)
        pairs = _pairs(job.model_dump(mode="json"))
        payload = message.payload if message is not None else ""
        args: list[bytes | str | int] = [text.encode("utf-8"), job.id, repr(job.created_at), keep_s]
        args += [self.keys.job_base, active_limit, payload, len(pairs), *pairs]
        increments = metrics.script_args(self.prefix, metrics.job_created(self.prefix))
        return bool(self.redis.eval(scripts.CREATE_JOB, len(keys), *keys, *args, *increments))

    def delete(self, job_id: str) -> None:
        self.redis.delete(self.keys.job(job_id), self.keys.text(job_id))
        self.redis.srem(self.keys.active, job_id)

    def get(self, job_id: str) -> Job | None:
        """The job, or None if there is none, or none readable: a damaged record answers as gone, never as an
        error to every caller."""
        return self._decoded(job_id, self.redis.hgetall(self.keys.job(job_id)))

    def take(self, job_id: str, token: str, ttl_s: int, worker: str, max_attempts: int) -> Taken:
        """A run's start, in one round trip (scripts.TAKE_JOB): the job's lock, the job marked running for the run
        if it may run (queued or running, fewer than ``max_attempts`` starts), and the job as that left it."""
        keys = (self.keys.lock(job_id), self.keys.job(job_id), self.keys.events(job_id), self.keys.text(job_id))
        args = (token, int(ttl_s * 1000), json.dumps(time.time()), json.dumps(worker), max_attempts)
        answer = self.redis.eval(scripts.TAKE_JOB, len(keys), *keys, *args)
        if answer[0] == 0:
            return Taken(locked=False)
        raw = _as_record(answer[1])
        running = answer[0] == 2
        text = as_text(answer[2]) if running and answer[2] else None
        return Taken(True, self._decoded(job_id, raw), running, text)

    def published(self, job_id: str, message: bytes) -> Job | None:
        """The job as END_JOB published it to its waiters (its record's field/value pairs, JSON-encoded), decoded as
        ``get`` decodes a read; None when the message is not one."""
        try:
            pairs = json.loads(message)
        except ValueError:
            return None
        if not isinstance(pairs, list) or len(pairs) % 2:
            return None
        return self._decoded(job_id, _as_record(pairs))

    def _decoded(self, job_id: str, raw: dict[Any, Any]) -> Job | None:
        if not raw:
            return None
        try:
            return decode_job(raw)
        except (ValidationError, ValueError) as error:
            logger.error("%s: unreadable job record, treated as gone: %s", job_id, str(error).splitlines()[0])
            return None

    def text(self, job_id: str) -> str | None:
        raw = self.redis.get(self.keys.text(job_id))
        return None if raw is None else as_text(raw)

    def status(self, job_id: str) -> JobStatus | None:
        """The job's status; None when there is none, or none readable (as ``get`` reads a damaged record)."""
        raw = self.redis.hget(self.keys.job(job_id), "status")
        try:
            return None if raw is None else JobStatus(json.loads(raw))
        except ValueError:
            return None

    def active_ids(self) -> list[str]:
        return sorted(as_text(m) for m in self.redis.smembers(self.keys.active))

    def update(self, job_id: str, **fields: Any) -> None:
        """Change fields, unconditionally, and tell anyone waiting on the job. For tests and tools: a run's writes
        go through ``update_fenced`` (this one could recreate a record that retention removed)."""
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.keys.job(job_id), mapping=encode_fields(fields))
            pipe.publish(self.keys.events(job_id), "changed")
            pipe.execute()

    def update_if(self, job_id: str, allowed: tuple[JobStatus, ...], **fields: Any) -> bool:
        """Change fields only while the job's status is one of ``allowed`` (a cancel is never overwritten)."""
        key = self.keys.job(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if self.status(job_id) not in allowed:
                    return False
                pipe.multi()
                pipe.hset(key, mapping=encode_fields(fields))
                pipe.publish(self.keys.events(job_id), "changed")
                pipe.execute()
            except redis.WatchError:
                return self.update_if(job_id, allowed, **fields)
        return True

    def update_fenced(self, job_id: str, token: str, allowed: tuple[JobStatus, ...], **fields: Any) -> bool:
        """Change fields only for the run whose ``token`` holds the job's lock, and only while the job's status is
        one of ``allowed``; False otherwise (nothing written). A run's writes go through here or through scripts
        that check its token the same way (its start, its segments, its end)."""
        keys = (self.keys.lock(job_id), self.keys.job(job_id), self.keys.events(job_id))
        statuses = [json.dumps(s.value) for s in allowed]
        pairs = [item for pair in encode_fields(fields).items() for item in pair]
        return bool(self.redis.eval(scripts.FENCED_UPDATE, 3, *keys, token, len(statuses), *statuses, *pairs))

    def set_progress(self, job_id: str, token: str, progress: Progress) -> bool:
        """The run's progress and heartbeat, fenced; False if the run lost its lock or the job is no longer running."""
        fields = {"progress": progress.model_dump(), "heartbeat_at": time.time()}
        return self.update_fenced(job_id, token, (JobStatus.running,), **fields)

    # --- a run's turn ---------------------------------------------------------------------------------------------
    # A per-job lock guarantees one execution at a time, whatever the broker redelivers.
    def acquire_lock(self, job_id: str, token: str, ttl_s: int) -> bool:
        return locks.acquire(self.redis, self.keys.lock(job_id), token, ttl_s)

    def refresh_lock(self, job_id: str, token: str, ttl_s: int) -> bool:
        return locks.refresh(self.redis, self.keys.lock(job_id), token, ttl_s)

    def holds_lock(self, job_id: str, token: str) -> bool:
        return as_text(self.redis.get(self.keys.lock(job_id)) or b"") == token

    def release_lock(self, job_id: str, token: str) -> None:
        locks.release(self.redis, self.keys.lock(job_id), token)

    def hand_off(self, job_id: str, token: str, message: QueuedMessage) -> bool:
        """End this task's turn and queue the next task's ``message`` in one step: clear in_task and attempts, drop
        the lock and push the message, so upkeep never sees the job running, unlocked and "in a task" between a
        finished segment and the next task, nor the next task's message take the job before the lock is dropped.
        False, and nothing written or queued, when this run no longer holds a running job."""
        fields = encode_fields({"in_task": False, "attempts": 0})
        keys = (self.keys.lock(job_id), self.keys.job(job_id), message.queue)
        args = (token, fields["in_task"], fields["attempts"], message.payload)
        return bool(self.redis.eval(scripts.HAND_OFF, len(keys), *keys, *args))

    def requeue_if_orphaned(
        self,
        job_id: str,
        stale_after_s: float = float("inf"),
        idle_queues: Collection[str] = (),
        taken_after_s: float = float("inf"),
        message: Callable[[str], QueuedMessage] | None = None,
    ) -> Job | None:
        """Move a running job whose lock has expired (its worker died) back to queued; None if it is not orphaned.
        ``message`` builds its next task's message for its queue, pushed in the same transaction: a job is never left
        queued again without one.

        A job between tasks (``in_task`` false) has its next message in the queue; it counts as orphaned when
        nothing has happened to it for ``stale_after_s`` (that message was lost), or for ``taken_after_s`` while its
        queue is one of ``idle_queues`` (holds no message): a consumer took the message and never took the lock, as
        a worker killed just after a segment leaves the next one it had prefetched. A live consumer takes the lock
        within moments of taking a message, and a duplicate is harmless (the lock lets one run at a time). A queued
        job whose queue is idle is orphaned after ``stale_after_s``: its message was lost too, say by a worker killed
        with it in hand (there is no broker-side copy: kombu's ack emulation is off; the API records a job and queues
        its message in one step since issue 12). Behind a queue that never empties, after
        ``BUSY_QUEUE_FACTOR`` times that: a job waiting that long in a backlog gets a duplicate, which finds it
        running or ended and does nothing. The job returned is as it was read; its
        ``heartbeat_at`` is moved on, so the caller sends it again at most once per period."""
        key, lock = self.keys.job(job_id), self.keys.lock(job_id)
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key, lock)
                job = self.get(job_id)
                if job is None or pipe.exists(lock):
                    return None
                idle_s = time.time() - (job.heartbeat_at or job.created_at)
                if job.status == JobStatus.queued:
                    busy = job.queue not in idle_queues
                    if idle_s < stale_after_s * (BUSY_QUEUE_FACTOR if busy else 1):
                        return None
                else:
                    lost_after_s = taken_after_s if job.queue in idle_queues else stale_after_s
                    if job.status != JobStatus.running or (not job.in_task and idle_s < lost_after_s):
                        return None
                pipe.multi()
                pipe.hset(key, mapping=encode_fields({"status": JobStatus.queued.value, "heartbeat_at": time.time()}))
                if message is not None:
                    queued = message(job.queue)
                    pipe.lpush(queued.queue, queued.payload)
                pipe.execute()
            except redis.WatchError:
                return None
        return job

    # --- the end --------------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> bool:
        """Mark a job canceled unless it already ended; its worker notices between sentences and cleans up."""
        for _ in range(FINISH_TRIES):
            job = self.get(job_id)
            if job is None or job.status.terminal:
                return False
            # Only from the status read: one that changed meanwhile (the job started, say) is read again, so the
            # metrics see the job as it ended.
            if self._end(job, {"status": JobStatus.canceled.value}, None, (job.status,)):
                return True
        return False

    def mark_succeeded(self, job: Job, token: str, result: JobResult, progress: Progress, **fields: Any) -> bool:
        """Record the run's success, with ``fields`` of its own (its synthesis time, say), and drop its lock."""
        ended = {"status": JobStatus.succeeded.value, "result": result.model_dump(), "progress": progress.model_dump()}
        return self._end(job, {**fields, **ended}, token, (JobStatus.running,))

    def mark_failed(self, job: Job, token: str, code: str, message: str) -> bool:
        fields = {"status": JobStatus.failed.value, "error": {"code": code, "message": message}}
        return self._end(job, fields, token, (JobStatus.running, JobStatus.queued))

    def _end(self, job: Job, fields: dict[str, Any], token: str | None, allowed: Collection[JobStatus]) -> bool:
        """The one end of a job, in one Lua step: the outcome, out of the active set, into the retention set and the
        webhook outbox, counted in the metrics, told to waiters; for a run (``token``), only while it holds the
        job's lock, which goes too. Only while the job's status is one of ``allowed`` (a job canceled meanwhile
        stays canceled); False, and nothing written, otherwise. ``job`` is the caller's copy, for the metrics."""
        now = time.time()
        keys = self.keys
        names = (keys.lock(job.id), keys.job(job.id), keys.active, keys.finished, keys.webhooks_pending)
        statuses = [json.dumps(s.value) for s in allowed]
        pairs = _pairs({**fields, "finished_at": now})
        audio_s = (fields.get("result") or {}).get("duration_s")
        synth_s = fields.get("synth_s", job.synth_s)
        ended = job.model_copy(update={"synth_s": synth_s})
        increments = metrics.job_finished(self.prefix, ended, fields["status"], now, audio_s)
        due = repr(now + WEBHOOK_GRACE_S) if job.webhook_url else ""
        args: list[str | int] = [token or "", job.id, repr(now), due, len(statuses), *statuses, len(pairs), *pairs]
        script_args = [*args, *metrics.script_args(self.prefix, increments)]
        return bool(self.redis.eval(scripts.END_JOB, 6, *names, keys.events(job.id), *script_args))

    # --- the webhook outbox ---------------------------------------------------------------------------------------
    def webhook_due(self, job_id: str, at: float) -> None:
        self.redis.zadd(self.keys.webhooks_pending, {job_id: at})

    def webhook_settled(self, job_id: str) -> None:
        self.redis.zrem(self.keys.webhooks_pending, job_id)

    def webhooks_overdue(self, now: float, limit: int = 100) -> list[str]:
        members: list[bytes] = self.redis.zrangebyscore(self.keys.webhooks_pending, "-inf", now, start=0, num=limit)  # type: ignore[assignment]
        return [as_text(m) for m in members]

    # --- retention ------------------------------------------------------------------------------------------------
    def ended_before(self, cutoff: float, limit: int = 100) -> list[str]:
        members: list[bytes] = self.redis.zrangebyscore(self.keys.finished, "-inf", cutoff, start=0, num=limit)  # type: ignore[assignment]
        return [as_text(m) for m in members]

    def claim_expired(self, job_id: str) -> bool:
        """Take a job out of the retention set; only one cleaner gets True for it."""
        return bool(self.redis.zrem(self.keys.finished, job_id))

    def unclaim_expired(self, job_id: str, finished_at: float) -> None:
        self.redis.zadd(self.keys.finished, {job_id: finished_at})

    def purge(self, job_id: str, owner: str | None, remember_s: int) -> None:
        """Delete the record and text, leaving a marker for ``remember_s`` so the API answers 410, not 404."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self.keys.job(job_id), self.keys.text(job_id), self.keys.lock(job_id))
            pipe.srem(self.keys.active, job_id)
            pipe.zrem(self.keys.webhooks_pending, job_id)
            pipe.zrem(self.keys.owner_jobs(owner), job_id)
            pipe.set(self.keys.gone(job_id), json.dumps({"owner": owner}), ex=remember_s)
            pipe.execute()

    def gone_owner(self, job_id: str) -> tuple[bool, str | None]:
        """(True, owner) if the job existed and was removed by retention; (False, None) otherwise."""
        raw = self.redis.get(self.keys.gone(job_id))
        if raw is None:
            return False, None
        return True, json.loads(raw).get("owner")

    def backfill_finished(self) -> int:
        """Once per deployment: list in the retention set every ended job recorded before that set existed (records
        from older versions), so retention removes them too. Returns how many were added."""
        if not self.redis.set(self.keys.finished_backfilled, "1", nx=True):
            return 0
        added = 0
        base = self.keys.job_base
        for key in self.redis.scan_iter(match=f"{base}*", count=1000, _type="HASH"):
            name = as_text(key)
            if not JOB_ID.fullmatch(name.removeprefix(base)):
                continue
            status, finished_at = self.redis.hmget(name, "status", "finished_at")
            ended = status is not None and JobStatus(json.loads(status)).terminal
            if ended and finished_at is not None and json.loads(finished_at) is not None:
                job_id = name.removeprefix(base)
                added += int(self.redis.zadd(self.keys.finished, {job_id: json.loads(finished_at)}, nx=True) or 0)
        return added


def _pairs(fields: dict[str, Any]) -> list[str]:
    return [item for pair in encode_fields(fields).items() for item in pair]


def _as_record(pairs: list[Any]) -> dict[Any, Any]:
    """A hash's field/value pairs, as a script answers HGETALL (a flat list), as ``HGETALL`` reads them."""
    return dict(zip(pairs[::2], pairs[1::2], strict=True))
