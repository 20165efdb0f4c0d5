"""Long polls share one pub/sub connection per API process and answer progress at most once a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
from conftest import run_to_end

from ttsq.jobs.events import PROGRESS_INTERVAL_S, JobEvents
from ttsq.models import Job, JobResult, JobStatus, Progress, new_job_id


def _job(runtime, create: bool = True) -> Job:  # type: ignore[no-untyped-def]
    """A queued job of "Hello." (with ``create=False``, not yet recorded)."""
    job = Job(
        id=new_job_id(),
        speaker="joe",
        text_chars=6,
        queue=runtime.config.keys.speaker_queue("joe"),
        created_at=time.time(),
    )
    if create:
        runtime.store.create(job, "Hello.")
    return job


def _pubsub_connections(client: redis.Redis) -> int:
    return sum(1 for c in client.client_list() if int(c.get("psub", 0)) or int(c.get("sub", 0)))


def test_many_waiting_polls_hold_one_subscription(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    events = JobEvents(runtime.store.redis, runtime.config.keys)
    jobs = [_job(runtime) for _ in range(20)]
    before = _pubsub_connections(redis_client)
    answers: list[Job | None] = []

    def poll(job: Job) -> None:
        answers.append(events.wait_for_change(runtime.store, job.id, 5))

    threads = [threading.Thread(target=poll, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(events._waiting) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pubsub_connections(redis_client) - before == 1
    started = time.monotonic()
    for job in jobs:
        runtime.store.cancel(job.id)  # a status change: every poll answers at once
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 2.0
    assert sorted(a.status.value for a in answers if a) == ["canceled"] * 20


def test_progress_wakes_a_poll_at_most_once_a_second_and_status_at_once(runtime) -> None:  # type: ignore[no-untyped-def]
    events = JobEvents(runtime.store.redis, runtime.config.keys)
    job = _job(runtime)
    token = "poll-test-token"
    assert runtime.store.take(job.id, token, 60, "w", 3).running
    stop = threading.Event()

    def write_progress() -> None:
        for done in range(1, 200):
            if stop.wait(0.05):
                return
            runtime.store.set_progress(job.id, token, Progress(chunks_done=done, chunks_total=200))

    writer = threading.Thread(target=write_progress)
    writer.start()
    try:
        started = time.monotonic()
        answer = events.wait_for_change(runtime.store, job.id, 10)
        took = time.monotonic() - started
        assert answer is not None and answer.progress.chunks_done > 1  # the latest, not the first write
        assert PROGRESS_INTERVAL_S - 0.05 <= took < PROGRESS_INTERVAL_S + 0.5, took
    finally:
        stop.set()
        writer.join()
    waiting = threading.Thread(target=lambda: runtime.store.cancel(job.id))
    started = time.monotonic()
    timer = threading.Timer(0.2, waiting.start)
    timer.start()
    answer = events.wait_for_change(runtime.store, job.id, 10)
    assert answer is not None and answer.status == JobStatus.canceled
    assert time.monotonic() - started < 0.2 + 0.3


def test_a_poll_answers_a_jobs_end_with_the_record_the_end_published(runtime) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: the end's message is the ended record, so a waiting poll answers without reading Redis again."""
    events = JobEvents(runtime.store.redis, runtime.config.keys)
    job = _job(runtime)
    token = "poll-end-token"
    running = runtime.store.take(job.id, token, 60, "w", 3).job
    reads: list[str] = []
    real_get = runtime.store.get

    def counted_get(job_id: str) -> Job | None:
        reads.append(job_id)
        return real_get(job_id)

    runtime.store.get = counted_get
    answers: list[Job | None] = []
    poll = threading.Thread(target=lambda: answers.append(events.wait_for_change(runtime.store, job.id, 10)))
    poll.start()
    deadline = time.monotonic() + 5
    while not events._waiting and time.monotonic() < deadline:
        time.sleep(0.01)
    result = JobResult(key=f"{job.id}.wav", format="wav", duration_s=1.5, sample_rate=22050, size_bytes=100)
    assert runtime.store.mark_succeeded(running, token, result, Progress(chunks_done=1, chunks_total=1, audio_s=1.5))
    poll.join(10)
    (answer,) = answers
    assert answer is not None and answer.status == JobStatus.succeeded and answer.result == result
    assert answer == real_get(job.id)  # what it answered is the record
    assert reads == [job.id]  # the poll's first read only
    assert runtime.store.published(job.id, b"changed") is None


def test_a_big_ended_record_is_read_not_published(runtime) -> None:  # type: ignore[no-untyped-def]
    """Review finding: every API process subscribes to every job's events; a book's record stays off that channel."""
    from ttsq.scripts import PUBLISHED_RECORD_MAX_BYTES

    events = JobEvents(runtime.store.redis, runtime.config.keys)
    job = _job(runtime)
    token = "poll-big-token"
    running = runtime.store.take(job.id, token, 60, "w", 3).job
    marks = [{"paragraph": n, "heading": False, "start_s": float(n), "text": "x" * 200} for n in range(100)]
    result = JobResult(
        key=f"{job.id}.wav", format="wav", duration_s=100.0, sample_rate=22050, size_bytes=9, marks=marks
    )
    assert len(result.model_dump_json()) > PUBLISHED_RECORD_MAX_BYTES
    answers: list[Job | None] = []
    poll = threading.Thread(target=lambda: answers.append(events.wait_for_change(runtime.store, job.id, 10)))
    with runtime.store.redis.pubsub() as watch:
        watch.subscribe(runtime.config.keys.events(job.id))
        poll.start()
        deadline = time.monotonic() + 5
        while not events._waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runtime.store.mark_succeeded(running, token, result, Progress(chunks_done=1, chunks_total=1))
        poll.join(10)
        published = [m["data"] for m in iter(lambda: watch.get_message(timeout=1.0), None) if m["type"] == "message"]
    assert published == [b"changed"]
    (answer,) = answers
    assert answer is not None and answer.status == JobStatus.succeeded and answer.result == result


def test_an_etag_is_a_polls_cursor(client, runtime) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: a poll sent with the ETag it last saw answers at once if the job changed since (a change between
    two polls is never waited past), and ``304`` if it has not, after the wait."""
    created = client.post("/v1/jobs", json={"text": "Hello there."})
    job_id, tag = created.get_json()["id"], created.headers["ETag"]
    assert tag.startswith('W/"')
    read = client.get(f"/v1/jobs/{job_id}")
    assert read.status_code == 200 and read.headers["ETag"] == tag  # still queued: the same version
    unchanged = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": tag})
    assert unchanged.status_code == 304 and unchanged.data == b"" and unchanged.headers["ETag"] == tag
    started = time.monotonic()
    held = client.get(f"/v1/jobs/{job_id}?wait=0.5", headers={"If-None-Match": tag})
    assert held.status_code == 304 and time.monotonic() - started >= 0.45  # it waited for a change that never came
    assert runtime.store.take(job_id, "cursor-test", 60, "w", 3).running  # changes while no poll is waiting
    started = time.monotonic()
    moved = client.get(f"/v1/jobs/{job_id}?wait=20", headers={"If-None-Match": tag})
    assert moved.status_code == 200 and moved.get_json()["status"] == "running"
    assert time.monotonic() - started < 2.0  # at once, not at the next change
    assert moved.headers["ETag"] != tag
    # Internal writes (the run's heartbeat) change no version a client sees.
    runtime.store.update(job_id, heartbeat_at=time.time() + 5)
    assert client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": moved.headers["ETag"]}).status_code == 304


def test_a_succeeded_jobs_version_covers_its_links(client, runtime) -> None:  # type: ignore[no-untyped-def]
    """Its answer carries links signed afresh: a 304 for a copy whose link is older (sooner to expire) would leave
    the client with that link."""
    job_id = client.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    done = client.get(f"/v1/jobs/{job_id}")
    signed_at = int(time.time())
    while int(time.time()) == signed_at:  # links expire to the second: the next second's are new ones
        time.sleep(0.01)
    again = client.get(f"/v1/jobs/{job_id}?wait=5", headers={"If-None-Match": done.headers["ETag"]})
    assert again.status_code == 200
    assert again.get_json()["result"]["url"] != done.get_json()["result"]["url"]
    assert again.headers["ETag"] != done.headers["ETag"]


def test_a_star_is_no_cursor_and_if_match_is_not_read(client) -> None:  # type: ignore[no-untyped-def]
    """Review finding: ``If-None-Match: *`` made every poll wait and answer 304, and werkzeug's precondition check
    answered ``If-Match`` with a 412 that is not the API's error shape."""
    job_id = client.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    star = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": "*"})
    assert star.status_code == 200 and star.get_json()["status"] == "queued"
    for tag in ("*", 'W/"0000"', '"0000"'):
        assert client.get(f"/v1/jobs/{job_id}", headers={"If-Match": tag}).status_code == 200


def test_the_client_polls_with_its_cursor(app, runtime) -> None:  # type: ignore[no-untyped-def]
    """``ttsq.client.wait`` sends the version it last saw: a change made between its first read and its long poll
    (here, by its own update hook) is answered at once, not at the end of the poll's 25 s."""
    from werkzeug.serving import make_server

    from ttsq import client

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    seen: list[str] = []

    def on_update(job: dict) -> None:  # type: ignore[type-arg]
        seen.append(job["status"])
        if job["status"] == "queued":
            assert runtime.store.take(job["id"], "cursor-client", 60, "w", 3).running
        elif job["status"] == "running":
            assert runtime.store.cancel(job["id"])

    try:
        job_id = client.submit(url, "Hello there.")["id"]
        started = time.monotonic()
        assert client.wait(url, job_id, on_update)["status"] == "canceled"
        assert time.monotonic() - started < 10  # without the cursor: the poll's whole 25 s
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["queued", "running", "canceled"]


def test_the_client_does_not_spin_on_a_server_that_cannot_hold_its_polls() -> None:
    """Under gunicorn's sync workers a poll is answered at once (304: nothing new): ``ttsq.client.wait`` asks again
    a second later, not thousands of times a second until its deadline."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    from ttsq import client

    polls: list[bool] = []

    @Request.application
    def unheld(request: Request) -> Response:
        polls.append("If-None-Match" in request.headers)
        if polls[-1]:
            return Response(status=304, headers={"ETag": 'W/"1"'})
        return Response('{"id": "x", "status": "running"}', content_type="application/json", headers={"ETag": 'W/"1"'})

    server = make_server("127.0.0.1", 0, unheld, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(client.ClientError, match="did not finish"):
            client.wait(f"http://127.0.0.1:{server.server_port}", "x", timeout_s=2.5)
    finally:
        server.shutdown()
        server.server_close()
    assert polls[0] is False and all(polls[1:]) and 2 <= len(polls) <= 5, len(polls)


def _end_the_next_job(runtime, end: Callable[[str], object]) -> threading.Thread:  # type: ignore[no-untyped-def]
    """A thread that waits (bounded) for a job to be queued, then ends it with ``end``: a worker beside a POST that
    the test client holds in this thread."""
    before = set(runtime.store.active_ids())

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = set(runtime.store.active_ids()) - before
            if new:
                end(new.pop())
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


def test_prefer_wait_answers_the_post_when_the_job_ends(client, runtime) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: ``Prefer: wait=S`` holds the POST until the job ends (one request for a short job, not a POST and
    a poll or two), ``201`` with the ended job and its signed link."""
    ender = _end_the_next_job(runtime, lambda job_id: run_to_end(runtime, job_id))
    started = time.monotonic()
    answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": "wait=20"})
    ender.join(10)
    assert time.monotonic() - started < 15
    body = answer.get_json()
    assert answer.status_code == 201, body
    assert body["status"] == "succeeded" and body["result"]["url"]
    assert answer.headers["Preference-Applied"] == "wait=20" and "Prefer" in answer.headers["Vary"]
    assert answer.headers["Location"] == f"/v1/jobs/{body['id']}"
    assert answer.headers["ETag"].startswith('W/"')


def test_prefer_wait_runs_out_with_the_job_as_it_stands(client) -> None:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": "respond-async, wait=0.5"})
    assert time.monotonic() - started >= 0.45  # no worker runs it: the whole wait, then the job as queued
    assert answer.status_code == 202 and answer.get_json()["status"] == "queued"
    assert answer.headers["Preference-Applied"] == "wait=0.5"


def test_a_preference_is_a_hint(client, runtime) -> None:  # type: ignore[no-untyped-def]
    """RFC 7240: a wait that is not a number of seconds is ignored (answered at once, as without it), not refused;
    one over the long poll's limit is held to it."""
    for prefer in ("wait=soon", "wait=-1", "wait=", "wait"):
        started = time.monotonic()
        answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": prefer})
        assert answer.status_code == 202 and "Preference-Applied" not in answer.headers, prefer
        assert time.monotonic() - started < 2.0
    # Names are case-insensitive, a value may be quoted and carry parameters, the first wait counts.
    for prefer in ("Wait=0.3", 'wait="0.3"; foo=bar', "respond-async, wait=0.3, wait=20"):
        started = time.monotonic()
        answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": prefer})
        assert answer.status_code == 202 and answer.headers["Preference-Applied"] == "wait=0.3", prefer
        assert 0.25 <= time.monotonic() - started < 5, prefer
    ender = _end_the_next_job(runtime, runtime.store.cancel)
    answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": "wait=3600"})
    ender.join(10)
    assert answer.status_code == 201 and answer.get_json()["status"] == "canceled"
    assert answer.headers["Preference-Applied"] == "wait=30"


def test_a_replay_with_prefer_wait_waits_for_the_first_requests_job(client, runtime) -> None:  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": "prefer-replay"}
    first = client.post("/v1/jobs", json={"text": "Hello there."}, headers=headers)
    assert first.status_code == 202
    job_id = first.get_json()["id"]
    ender = threading.Thread(target=run_to_end, args=(runtime, job_id))
    ender.start()
    again = client.post("/v1/jobs", json={"text": "Hello there."}, headers={**headers, "Prefer": "wait=20"})
    ender.join(20)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == job_id and again.get_json()["status"] == "succeeded"


def test_the_client_can_wait_in_its_post(app, runtime) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.serving import make_server

    from ttsq import client

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        ender = _end_the_next_job(runtime, runtime.store.cancel)
        assert client.submit(url, "Hello there.", wait_s=20)["status"] == "canceled"
        ender.join(10)
        started = time.monotonic()
        assert client.submit(url, "Hello there.", wait_s=0.3)["status"] == "queued"
        assert time.monotonic() - started >= 0.25
    finally:
        server.shutdown()
        server.server_close()


def test_a_job_watched_from_before_it_exists_is_waited_to_its_end(runtime) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 (``Prefer: wait``): one wait, past the status change on the way (a status read, not the record's)
    to the end (its published record, no read); and after a wait in which nothing happened, the job as it stands."""
    events = JobEvents(runtime.store.redis, runtime.config.keys)
    job = _job(runtime, create=False)
    reads: list[str] = []
    real_get, real_status = runtime.store.get, runtime.store.status

    def counted_get(job_id: str) -> Job | None:
        read = real_get(job_id)
        reads.append("record")  # once read: the run below ends the job only after
        return read

    def counted_status(job_id: str) -> JobStatus | None:
        read = real_status(job_id)
        reads.append("status")
        return read

    token = "watch-token"
    result = JobResult(key=f"{job.id}.wav", format="wav", duration_s=1.5, sample_rate=22050, size_bytes=100)

    def run() -> None:
        running = runtime.store.take(job.id, token, 60, "w", 3).job
        deadline = time.monotonic() + 5
        while not reads and time.monotonic() < deadline:  # the running status seen before the end comes
            time.sleep(0.01)
        runtime.store.mark_succeeded(running, token, result, Progress(chunks_done=1, chunks_total=1))

    with events.watch(job.id) as waiter:
        runtime.store.create(job, "Hello.")
        runtime.store.get, runtime.store.status = counted_get, counted_status
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        answer = events.until_end(runtime.store, job, waiter, 10)
        worker.join(10)
    assert answer is not None and answer.status == JobStatus.succeeded and answer.result == result
    assert reads == ["status"]  # the start's "changed"; the end came as its record
    runtime.store.get, runtime.store.status = real_get, real_status
    other = _job(runtime)
    with events.watch(other.id) as waiter:
        started = time.monotonic()
        assert events.until_end(runtime.store, other, waiter, 0.3) == other  # nothing happened: as it stands
        assert time.monotonic() - started >= 0.25


def test_redis_failing_while_a_post_is_held_answers_the_job_as_made(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Review finding: the job was made before the hold; an error (503) then would have its client make it again."""
    import redis as redis_module

    from ttsq.jobs.store import JobStore

    def failing_get(self: JobStore, job_id: str) -> Job | None:
        raise redis_module.ConnectionError("Redis went away")

    monkeypatch.setattr(JobStore, "get", failing_get)
    answer = client.post("/v1/jobs", json={"text": "Hello there."}, headers={"Prefer": "wait=0.3"})
    assert answer.status_code == 202 and answer.get_json()["status"] == "queued"
    assert answer.headers["Location"] == f"/v1/jobs/{answer.get_json()['id']}"
