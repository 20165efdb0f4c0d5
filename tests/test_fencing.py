"""Every write a job's run makes is fenced by its lock: a run that lost it changes nothing (issue 17, defect 1)."""

from __future__ import annotations

import pytest
from conftest import run_to_end
from test_api import assert_error
from test_worker import LONG, make_job

from ttsq.models import JobStatus, QueuedMessage
from ttsq.storage.base import WriteFenced


def _record(runtime, job_id: str) -> dict[bytes, bytes]:  # type: ignore[no-untyped-def]
    return runtime.store.redis.hgetall(runtime.store.keys.job(job_id))  # type: ignore[no-any-return]


def test_a_run_that_lost_its_lock_writes_no_field_after_the_new_owner_finished(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Regression: a paused run's next progress write landed on a job another run had finished (its progress went
    back to 11/29 and its heartbeat past finished_at, for good)."""
    job_id = make_job(runtime, "First sentence. Second sentence. Third sentence.")
    store = runtime.store
    original = store.set_progress
    frozen: dict[bytes, bytes] = {}

    def pause_then_resume(job: str, token: str, progress) -> bool:  # type: ignore[no-untyped-def]
        if not frozen:
            # This run "sleeps" past its lock's TTL; another run takes the job and finishes it meanwhile.
            store.redis.set(store.lock_key(job), "new-owner")
            store.update(job, status=JobStatus.succeeded.value, finished_at=1.0e9)
            frozen.update(_record(runtime, job))
        return original(job, token, progress)  # then the paused run wakes up and reports

    monkeypatch.setattr(store, "set_progress", pause_then_resume)
    monkeypatch.setattr("worker.segments.PROGRESS_INTERVAL_S", 0.0)
    assert run_to_end(runtime, job_id) == "lock-lost"
    assert _record(runtime, job_id) == frozen  # not one field changed after the new owner's end
    assert store.redis.get(store.lock_key(job_id)) == b"new-owner"


def test_a_run_never_recreates_a_job_that_retention_removed(runtime, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Regression: a paused run recreated a purged job as a fragment {heartbeat_at, progress} with no TTL, and GET
    and DELETE on it answered 500 forever."""
    job_id = make_job(runtime, "First sentence. Second sentence.")
    store = runtime.store
    original = store.set_progress
    purged: list[str] = []

    def purge_first(job: str, token: str, progress) -> bool:  # type: ignore[no-untyped-def]
        if not purged:
            store.purge(job, None, remember_s=600)  # canceled, expired and removed while this run was paused
            purged.append(job)
        return original(job, token, progress)

    monkeypatch.setattr(store, "set_progress", purge_first)
    monkeypatch.setattr("worker.segments.PROGRESS_INTERVAL_S", 0.0)
    assert run_to_end(runtime, job_id) == "lock-lost"
    assert not store.redis.exists(store.keys.job(job_id))
    assert_error(client.get(f"/v1/jobs/{job_id}"), 410, "job_expired")
    assert_error(client.delete(f"/v1/jobs/{job_id}"), 410, "job_expired")
    assert list(runtime.storage.root.glob(f"{job_id}*")) == []  # its segment was never committed either


@pytest.mark.parametrize("fragment", [{"heartbeat_at": "1.0", "progress": '{"chunks_done": 3}'}, {"status": "12"}])
def test_a_damaged_record_reads_as_gone_never_a_500(client, runtime, fragment) -> None:  # type: ignore[no-untyped-def]
    job_id = "a" * 32
    runtime.store.redis.hset(runtime.store.keys.job(job_id), mapping=fragment)
    assert_error(client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")
    assert_error(client.get(f"/v1/jobs/{job_id}?wait=1"), 404, "job_not_found")
    assert_error(client.delete(f"/v1/jobs/{job_id}"), 404, "job_not_found")


@pytest.mark.parametrize("damaged", ["", "{", "1, 2", '1, "status": "failed"'])
def test_a_field_that_is_not_one_json_value_makes_the_record_read_as_gone(client, runtime, damaged) -> None:  # type: ignore[no-untyped-def]
    """A record's values are parsed together (issue 12): a value that is not one JSON text must not shift, or add
    to, the fields after it."""
    job_id = make_job(runtime)
    assert runtime.store.get(job_id) is not None
    runtime.store.redis.hset(runtime.store.keys.job(job_id), "speed", damaged)
    assert runtime.store.get(job_id) is None
    assert_error(client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")


def test_a_segment_is_named_after_its_run_and_a_stale_run_commits_no_object(runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = make_job(runtime, LONG)
    from worker.synthesis import run_job

    assert run_job(runtime, job_id) == "continued"  # plan + segment 0
    record = runtime.plans.record(job_id, 0)
    assert record is not None and record.key is not None and record.key != f"{job_id}.s000000.pcm"
    assert runtime.storage.size(record.key)  # stored under the run's own name
    with pytest.raises(WriteFenced), runtime.storage.writer(f"{job_id}.wav", fence=lambda: False) as sink:
        sink.write(b"a stale run's output")
    assert runtime.storage.size(f"{job_id}.wav") is None
    assert run_to_end(runtime, job_id) == "succeeded"
    # Segments gone once assembled: the audio and its captions stay.
    assert sorted(p.name for p in runtime.storage.root.iterdir()) == [f"{job_id}.{e}" for e in ("srt", "vtt", "wav")]


def test_a_hand_off_after_a_cancel_leaves_the_canceled_record_as_it_ended(runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: the hand-off rewrote in_task/attempts on a canceled record after its finished_at."""
    job_id = make_job(runtime, LONG)
    store = runtime.store
    original = store.hand_off

    def cancel_first(job: str, token: str, message: QueuedMessage) -> bool:
        assert store.cancel(job)
        frozen.update(_record(runtime, job))
        return original(job, token, message)

    frozen: dict[bytes, bytes] = {}
    monkeypatch.setattr(store, "hand_off", cancel_first)
    from worker.synthesis import run_job

    assert run_job(runtime, job_id) == "canceled"
    assert _record(runtime, job_id) == frozen
    assert store.redis.llen(runtime.config.keys.speaker_queue("joe")) == 0  # no next task for a canceled job
    assert list(runtime.storage.root.glob(f"{job_id}*")) == []  # its segment went with the cancel


def test_what_killed_runs_left_in_storage_goes_with_the_job(runtime) -> None:  # type: ignore[no-untyped-def]
    """Review finding: a killed run's partial file, and a segment it stored but never recorded, stayed forever."""
    job_id = make_job(runtime)
    root = runtime.storage.root
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{job_id}.s000000.aaaaaaaaaaaa.pcm.aaaaaaaaaaaa.part"
    leftovers = [partial, root / f"{job_id}.s000000.bbbbbbbbbbbb.pcm"]
    for path in leftovers:
        path.write_bytes(b"left by a killed run")
    other = root / f"{'c' * 32}.wav"
    other.write_bytes(b"another job's audio")
    runtime.store.update(job_id, attempts=1)  # as the killed run left it: started, never handed off
    assert run_to_end(runtime, job_id) == "succeeded"
    kept = [f"{job_id}.{e}" for e in ("srt", "vtt", "wav")]  # the audio and its captions
    assert sorted(p.name for p in root.iterdir()) == sorted([*kept, other.name])


@pytest.mark.parametrize("holds", [True, False])
def test_the_output_and_its_captions_commit_together_on_one_fence_read(runtime, monkeypatch, holds) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: a short job's end read the lock once per file (output, two caption files); now once for the three,
    and a run that lost its lock by then commits none of them."""
    job_id = make_job(runtime, "One short sentence.")
    reads: list[str] = []

    def holds_lock(job: str, token: str) -> bool:
        reads.append(job)
        return holds

    monkeypatch.setattr(runtime.store, "holds_lock", holds_lock)
    assert run_to_end(runtime, job_id) == ("succeeded" if holds else "lock-lost")
    assert reads == [job_id]
    committed = sorted(p.name for p in runtime.storage.root.glob(f"{job_id}.*"))
    assert committed == ([f"{job_id}.{e}" for e in ("srt", "vtt", "wav")] if holds else [])
    assert list(runtime.storage.root.glob(f".{job_id}.*")) == []  # no partial file left either
