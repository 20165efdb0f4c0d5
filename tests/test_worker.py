"""The job runner: one execution per job at a time, orphaned jobs requeued, failures that say why."""

from __future__ import annotations

import json
import time

import pytest
from conftest import run_to_end

from ttsq import presence
from ttsq.jobs.store import Taken
from ttsq.keys import Keys
from ttsq.models import Job, JobStatus, new_job_id
from ttsq.queue import SYNTHESIZE_TASK
from worker.upkeep import announce, requeue_orphans


def make_job(runtime, text: str = "Hello there.", speaker: str = "joe") -> str:  # type: ignore[no-untyped-def]
    job = Job(
        id=new_job_id(),
        speaker=speaker,
        text_chars=len(text),
        queue=runtime.config.keys.speaker_queue(speaker),
        created_at=time.time(),
    )
    runtime.store.create(job, text)
    return job.id


def test_second_delivery_while_running_is_skipped(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    assert runtime.store.acquire_lock(job_id, "other-worker", 30)
    assert run_to_end(runtime, job_id) == "locked"
    assert runtime.store.get(job_id).status == JobStatus.queued
    runtime.store.release_lock(job_id, "other-worker")
    assert run_to_end(runtime, job_id) == "succeeded"
    assert run_to_end(runtime, job_id) == "done-already"  # a late redelivery does nothing


def test_lock_is_released_after_the_job(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    run_to_end(runtime, job_id)
    assert not runtime.store.redis.exists(runtime.store.lock_key(job_id))
    assert job_id not in runtime.store.active_ids()


LONG = "This sentence is one of many in a text of two segments. " * 90


def test_a_one_segment_job_keeps_its_plan_in_memory_and_ends_in_one_step(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: a short text's plan is never stored (no Redis round trips for it), and the end that records the
    outcome also drops the run's lock, counted once in the metrics."""
    from ttsq.metrics.record import JOBS_FINISHED, counters_key, fold

    def no_plan(*args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        raise AssertionError("a one-segment plan was stored")

    monkeypatch.setattr(runtime.plans, "save", no_plan)
    monkeypatch.setattr(runtime.plans, "finish_segment", no_plan)
    released: list[str] = []
    monkeypatch.setattr(runtime.store, "release_lock", lambda job_id, token: released.append(job_id))
    job_id = make_job(runtime, "One short sentence. And a second one.")
    assert run_to_end(runtime, job_id) == "succeeded"
    job = runtime.store.get(job_id)
    assert job.result is not None and job.result.duration_s > 0 and job.synth_s > 0
    assert job.progress.chunks_total and job.progress.chunks_done == job.progress.chunks_total
    assert not runtime.store.redis.exists(runtime.store.lock_key(job_id))  # dropped by the end itself
    assert released == []
    key = counters_key(runtime.store.prefix)
    fold(runtime.store.redis, runtime.store.prefix)
    assert int(runtime.store.redis.hget(key, f"{JOBS_FINISHED}|succeeded") or 0) == 1


def test_orphaned_running_job_is_requeued_once(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime, LONG)
    assert runtime.store.take(job_id, "dead-run", 30, "dead-worker", 3).running
    runtime.store.release_lock(job_id, "dead-run")  # a worker that died: no lock left
    assert requeue_orphans(runtime) == [job_id]
    assert runtime.store.get(job_id).status == JobStatus.queued
    assert redis_client.llen(runtime.config.keys.speaker_queue("joe")) == 1
    assert requeue_orphans(runtime) == []  # queued now, not orphaned
    from worker.synthesis import run_job

    assert run_job(runtime, job_id) == "continued"
    assert runtime.store.get(job_id).attempts == 0  # the first segment's task ended well: the count starts again
    assert run_to_end(runtime, job_id) == "succeeded"
    # Regression (issue 15): the job's attempts read 1, 2, 1 across a kill; per job it is 2 from the restart on.
    from api.schemas import job_view

    assert job_view(runtime.store.get(job_id), None)["attempts"] == 2


def test_running_job_with_a_live_lock_is_left_alone(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    assert runtime.store.take(job_id, "busy-worker", 30, "busy-worker", 3).running
    assert requeue_orphans(runtime) == []
    assert runtime.store.get(job_id).status == JobStatus.running


def test_a_job_whose_worker_keeps_dying_fails_after_max_attempts(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    runtime.store.update(job_id, attempts=runtime.config.max_attempts)
    assert run_to_end(runtime, job_id) == "failed"
    job = runtime.store.get(job_id)
    assert job.error.code == "worker_lost"
    assert str(runtime.config.max_attempts) in job.error.message


def test_time_limit_fails_the_job_with_advice(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    from ttsq.config import load_config
    from worker.main import build_runtime

    config = load_config({**config_env, "TTSQ_TASK_TIME_LIMIT_S": "1", "TTSQ_VISIBILITY_TIMEOUT_S": "10"})
    runtime = build_runtime(config, tts=tts)
    job_id = make_job(runtime, " ".join(["This is one of many sentences."] * 40))
    assert run_to_end(runtime, job_id) == "failed"
    job = runtime.store.get(job_id)
    assert job.error.code == "timeout"
    assert "TTSQ_TASK_TIME_LIMIT_S" in job.error.message
    assert runtime.storage.size(f"{job_id}.wav") is None  # no partial output left behind


def test_missing_job_is_dropped(runtime) -> None:  # type: ignore[no-untyped-def]
    assert run_to_end(runtime, new_job_id()) == "missing"


def test_announce_expires(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    announce(runtime)
    key = f"{runtime.config.key_prefix}workers:{runtime.name}"
    assert 0 < redis_client.ttl(key) <= runtime.config.lock_ttl_s


def test_live_workers_come_from_the_workers_set_not_a_keyspace_scan(redis_client) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: who is alive was a SCAN of the whole keyspace (every job's keys) each time the API looked."""
    keys = Keys("presence-test:")
    alive = presence.WorkerPresence(name="alive", speakers=["joe"])
    presence.announce(redis_client, keys, alive, 30)
    presence.announce(redis_client, keys, presence.WorkerPresence(name="dead", speakers=["amy"]), 30)
    redis_client.delete(keys.worker("dead"))  # died: its announcement lapsed, its name still in the set
    redis_client.set(keys.worker("stray"), alive.model_dump_json())  # a key no announce made
    assert [w.name for w in presence.live_workers(redis_client, keys)] == ["alive"]
    assert 0 < redis_client.ttl(keys.workers) <= 60  # gone with the last worker
    redis_client.zadd(keys.workers, {"dead": time.time() - 31})  # lapsed a TTL ago: the next announce drops it
    presence.announce(redis_client, keys, alive, 30)
    assert redis_client.zrange(keys.workers, 0, -1) == [b"alive"]
    presence.withdraw(redis_client, keys, "alive")
    assert presence.live_workers(redis_client, keys) == []
    assert not redis_client.exists(keys.workers)


@pytest.mark.parametrize("status", [JobStatus.succeeded, JobStatus.failed])
def test_terminal_jobs_are_not_run_again(runtime, status: JobStatus) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    runtime.store.update(job_id, status=status.value)
    assert run_to_end(runtime, job_id) == "done-already"


def test_outcome_is_recorded_only_by_the_lock_holder(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    runtime.store.acquire_lock(job_id, "holder", 30)
    job = runtime.store.get(job_id)
    assert not runtime.store.mark_failed(job, "someone-else", "x", "y")
    assert runtime.store.get(job_id).status == JobStatus.queued
    assert runtime.store.mark_failed(job, "holder", "x", "y")
    assert runtime.store.get(job_id).status == JobStatus.failed


def test_a_run_that_loses_its_lock_records_nothing(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Regression: a run whose lock lapsed went on to mark the job while a second run owned it."""
    job_id = make_job(runtime, "First sentence. Second sentence.")
    store = runtime.store
    original = store.set_progress

    def steal(job: str, token: str, progress) -> bool:  # type: ignore[no-untyped-def]
        written = original(job, token, progress)
        store.redis.set(store.lock_key(job), "another-run")  # the lock lapsed and another run took it
        return written

    monkeypatch.setattr(store, "set_progress", steal)
    monkeypatch.setattr("worker.segments.PROGRESS_INTERVAL_S", 0.0)
    assert run_to_end(runtime, job_id) == "lock-lost"
    assert store.get(job_id).status == JobStatus.running  # left to the run that holds the lock
    assert store.redis.get(store.lock_key(job_id)) == b"another-run"  # and its lock was not released by us


def test_stale_partial_files_are_removed(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    stale = runtime.storage.root / f".{job_id}.wav.deadrun.part"
    runtime.storage.root.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a job")
    runtime.store.update(job_id, attempts=1)  # as the killed run left it: started, never handed off
    assert run_to_end(runtime, job_id) == "succeeded"
    assert runtime.store.get(job_id).restarts == 1
    assert not stale.exists()
    assert sorted(p.name for p in runtime.storage.root.iterdir()) == [f"{job_id}.{e}" for e in ("srt", "vtt", "wav")]


def test_a_job_no_run_was_killed_leaves_storage_unlisted(runtime) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: every job's end listed the whole audio directory (hundreds of thousands of files after a week's
    retention), and so did every file written. Without a restart only what the run recorded is removed."""
    job_id = make_job(runtime)
    runtime.storage.root.mkdir(parents=True, exist_ok=True)
    unrecorded = runtime.storage.root / f"{job_id}.s000009.cccccccccccc.pcm"  # only ever a killed run's
    unrecorded.write_bytes(b"not looked for")
    assert run_to_end(runtime, job_id) == "succeeded"
    assert unrecorded.exists()
    runtime.storage.remove_job(job_id)  # retention lists the job's files, and it goes then
    assert list(runtime.storage.root.iterdir()) == []


def test_a_run_takes_its_lock_marks_its_job_and_reads_it_in_one_step(runtime) -> None:  # type: ignore[no-untyped-def]
    store = runtime.store
    job_id = make_job(runtime, "Hello there.")
    first = store.take(job_id, "run-1", 30, "w1", 2)
    assert first.locked and first.running and first.text == "Hello there."
    assert (first.job.status, first.job.attempts, first.job.restarts, first.job.worker) == (
        JobStatus.running,
        1,
        0,
        "w1",
    )
    assert first.job.in_task and first.job.started_at is not None and first.job.heartbeat_at is not None
    assert first.job == store.get(job_id)  # what the run holds is the record
    assert store.take(job_id, "run-2", 30, "w2", 2) == Taken(locked=False)  # held: nothing read, nothing written
    assert store.get(job_id).worker == "w1"
    store.release_lock(job_id, "run-1")  # the run died mid-task: the next start is a restart
    second = store.take(job_id, "run-2", 30, "w2", 2)
    assert (second.job.attempts, second.job.restarts, second.job.worker) == (2, 1, "w2")
    assert second.job.started_at == first.job.started_at  # the first start is kept
    store.release_lock(job_id, "run-2")
    spent = store.take(job_id, "run-3", 30, "w3", 2)  # out of attempts: found, left as it was, for the run to fail
    assert spent.locked and not spent.running and spent.text is None and spent.job == second.job
    store.release_lock(job_id, "run-3")
    store.update(job_id, segments_total=2)
    planned = store.take(job_id, "run-4", 30, "w4", 5)
    assert planned.running and planned.text is None  # a planned job's text is not read again


def test_a_record_without_a_status_is_left_as_it_is(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Review finding: such a record read as queued (the model's default) and failed as out of attempts."""
    from worker.synthesis import run_job

    job_id = make_job(runtime)
    redis_client.hdel(runtime.config.keys.job(job_id), "status")
    assert run_job(runtime, job_id) == "missing"
    assert redis_client.hget(runtime.config.keys.job(job_id), "status") is None
    assert redis_client.hget(runtime.config.keys.job(job_id), "attempts") == b"0"


def test_a_cancel_is_never_overwritten_by_a_task_starting(runtime) -> None:  # type: ignore[no-untyped-def]
    """Regression: a task that read the job just before a cancel set it back to running (a run now reads and marks
    the job in one step, under its lock)."""
    job_id = make_job(runtime)
    assert runtime.store.cancel(job_id)
    taken = runtime.store.take(job_id, "late-run", 30, "late-worker", 3)
    assert taken.locked and not taken.running and taken.job.status == JobStatus.canceled
    assert runtime.store.get(job_id).status == JobStatus.canceled


def test_hand_off_leaves_nothing_for_upkeep_to_requeue(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    from worker.synthesis import run_job

    job_id = make_job(runtime, LONG)
    assert run_job(runtime, job_id) == "continued"  # planned and first segment spoken, next task queued
    job = runtime.store.get(job_id)
    assert job.status == JobStatus.running and not job.in_task and job.attempts == 0
    assert not redis_client.exists(runtime.store.lock_key(job_id))
    assert requeue_orphans(runtime) == []  # its next message is in the queue
    queued = redis_client.lrange(runtime.config.keys.speaker_queue("joe"), 0, -1)
    assert len(queued) == 1  # pushed by the hand-off's own step: the task that runs the next segment
    headers = json.loads(queued[0])["headers"]
    assert headers["task"] == SYNTHESIZE_TASK and headers["argsrepr"] == repr([job_id])


def test_a_job_whose_next_message_was_lost_is_requeued_when_stale(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime)
    runtime.store.update(job_id, status="running", in_task=False, heartbeat_at=time.time() - 7200)
    assert runtime.store.requeue_if_orphaned(job_id, stale_after_s=3600) is not None
    assert runtime.store.get(job_id).status == JobStatus.queued


def test_the_worker_logs_one_line_when_a_job_succeeds(runtime, caplog) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): the worker's log said nothing when a job ended well."""
    import logging

    job_id = make_job(runtime)
    with caplog.at_level(logging.INFO, logger="worker"):
        assert run_to_end(runtime, job_id) == "succeeded"
    ends = [r.getMessage() for r in caplog.records if "succeeded:" in r.getMessage()]
    duration = runtime.store.get(job_id).result.duration_s
    assert ends == [f"{job_id}: succeeded: {duration:.1f} s of wav audio" + ends[0].split("wav audio", 1)[1]]
    assert " s of synthesis, " in ends[0] and ends[0].endswith(" s after it was queued")
