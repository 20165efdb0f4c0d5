"""A queued job whose message was lost is sent again by worker upkeep (issue 17, found by the chaos suite)."""

from __future__ import annotations

import time
from functools import partial

from conftest import run_to_end
from test_worker import make_job

from ttsq.models import JobStatus, QueuedMessage
from ttsq.queue import enqueue_synthesis
from worker.upkeep import requeue_orphans


def _queued_long_ago(runtime) -> str:  # type: ignore[no-untyped-def]
    """A job recorded an hour and more ago and never queued: what an API process killed between the two leaves."""
    job_id = make_job(runtime)
    runtime.store.update(job_id, created_at=time.time() - runtime.config.visibility_timeout_s - 60)
    return job_id


def test_a_queued_job_with_no_message_is_sent_again_once_per_visibility_timeout(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Regression: gunicorn killed mid-POST (after the record, before the message) left the job queued forever; the
    client's retry with its Idempotency-Key was answered with that job, which never ran, ended or expired."""
    job_id = _queued_long_ago(runtime)
    queue = runtime.config.keys.speaker_queue("joe")
    assert requeue_orphans(runtime) == [job_id]
    assert redis_client.llen(queue) == 1
    assert runtime.store.get(job_id).status == JobStatus.queued
    redis_client.delete(queue)  # lost again at once: it waits another visibility timeout before the next send
    assert requeue_orphans(runtime) == []
    assert run_to_end(runtime, job_id) == "succeeded"


def test_a_queued_job_is_left_alone_while_its_queue_holds_messages_or_it_is_recent(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    old = _queued_long_ago(runtime)
    enqueue_synthesis(runtime.celery, make_job(runtime), runtime.config.keys.speaker_queue("joe"))
    assert requeue_orphans(runtime) == []  # a backlog: its message may be in it, and no duplicates are made
    redis_client.delete(runtime.config.keys.speaker_queue("joe"))
    make_job(runtime)  # queued a moment ago: its message is on the way
    assert requeue_orphans(runtime) == [old]


def test_a_queued_job_behind_a_busy_queue_is_sent_again_after_twice_as_long(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Review finding: with no broker-side copy of a delivered message (kombu's ack emulation off), a job whose
    first message a killed worker held waited for its queue to empty, which under steady load it never does."""
    job_id = make_job(runtime)
    queue = runtime.config.keys.speaker_queue("joe")
    enqueue_synthesis(runtime.celery, make_job(runtime), queue)  # a backlog that stays
    runtime.store.update(job_id, created_at=time.time() - 2 * runtime.config.visibility_timeout_s + 60)
    assert requeue_orphans(runtime) == []  # not yet twice the timeout
    runtime.store.update(job_id, created_at=time.time() - 2 * runtime.config.visibility_timeout_s - 60)
    assert requeue_orphans(runtime) == [job_id]
    assert redis_client.llen(queue) == 2
    assert requeue_orphans(runtime) == []  # sent once per period


def test_a_requeued_running_job_is_not_sent_twice(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """A job whose worker died long ago is requeued once, and not again as a queued job with no message."""
    job_id = make_job(runtime)
    runtime.store.update(job_id, status="running", in_task=True, heartbeat_at=time.time() - 7200)
    assert requeue_orphans(runtime) == [job_id]
    redis_client.delete(runtime.config.keys.speaker_queue("joe"))
    assert requeue_orphans(runtime) == []


def _between_segments(runtime, idle_s: float) -> str:  # type: ignore[no-untyped-def]
    """A job whose segment ended ``idle_s`` ago and was handed off: running, no lock, not in a task."""
    job_id = make_job(runtime)
    runtime.store.update(job_id, status="running", in_task=False, heartbeat_at=time.time() - idle_s)
    return job_id


def test_a_segment_a_killed_worker_had_prefetched_is_sent_again_after_a_lock_ttl(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Regression (CI, tests/test_e2e.py): a worker SIGKILLed just after a segment had already taken the next
    segment's message (kombu's unacked hash, restored only after the hour-long visibility timeout), so the job sat
    running, unlocked, between tasks, and no other worker picked it up for an hour."""
    job_id = _between_segments(runtime, runtime.config.lock_ttl_s + 1)
    assert requeue_orphans(runtime) == [job_id]
    assert redis_client.llen(runtime.config.keys.speaker_queue("joe")) == 1
    assert run_to_end(runtime, job_id) == "succeeded"


def test_a_segment_handed_off_is_left_alone_while_its_message_waits_or_within_a_lock_ttl(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    waiting = _between_segments(runtime, runtime.config.lock_ttl_s + 1)
    enqueue_synthesis(runtime.celery, waiting, runtime.config.keys.speaker_queue("joe"))
    assert requeue_orphans(runtime) == []  # its message is in the queue: a worker will take it
    redis_client.delete(runtime.config.keys.speaker_queue("joe"))
    _between_segments(runtime, 0.5)  # just handed off: a live consumer is about to take the lock
    assert requeue_orphans(runtime) == [waiting]


def test_a_requeue_and_its_message_land_together_or_not_at_all(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: upkeep puts an orphaned job back with its message in one transaction. A run that takes the job's
    lock while the requeue is being made (here, as its message is built) leaves neither the requeue nor a message."""
    from ttsq.queue import synthesis_message

    job_id = make_job(runtime)
    assert runtime.store.take(job_id, "dead-run", 30, "dead-worker", 3).running
    runtime.store.release_lock(job_id, "dead-run")  # its worker died
    queue = runtime.config.keys.speaker_queue("joe")

    def taken_meanwhile(name: str) -> QueuedMessage:
        redis_client.set(runtime.store.lock_key(job_id), "a-live-run", px=30_000)
        return synthesis_message(runtime.celery, job_id, name)

    assert runtime.store.requeue_if_orphaned(job_id, message=taken_meanwhile) is None
    assert redis_client.llen(queue) == 0 and runtime.store.get(job_id).status == JobStatus.running
    redis_client.delete(runtime.store.lock_key(job_id))
    requeued = runtime.store.requeue_if_orphaned(job_id, message=partial(synthesis_message, runtime.celery, job_id))
    assert requeued is not None and runtime.store.get(job_id).status == JobStatus.queued
    assert redis_client.llen(queue) == 1
