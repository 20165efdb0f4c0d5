"""GET /metrics on the real Redis: what API and workers record in Redis comes out as Prometheus text."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import redis
from conftest import TEST_PREFIX, run_to_end
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import bp as metrics_bp
from ttsq.jobs.store import JobStore
from ttsq.keys import Keys
from ttsq.metrics import record as metrics_record
from ttsq.metrics.collect import RedisCollector, kombu_queue_keys
from ttsq.metrics.record import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    fold,
    job_created,
    record,
    record_job_finished,
    record_webhook,
)
from ttsq.models import Job, JobResult, JobStatus, new_job_id
from ttsq.queue import SYNTHESIZE_TASK

QUEUE = f"{TEST_PREFIX}speaker.joe"


@pytest.fixture()
def scraper(app):  # type: ignore[no-untyped-def]
    """A test client of an app that serves /metrics (registered here until create_app does it)."""
    if "metrics" not in app.blueprints:
        app.register_blueprint(metrics_bp)
    return app.test_client()


def scrape(scraper) -> dict[str, Metric]:  # type: ignore[no-untyped-def]
    response = scraper.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}


def value(families: dict[str, Metric], family: str, sample: str, **labels: str) -> float:
    matches = [s.value for s in families[family].samples if s.name == sample and s.labels == labels]
    assert len(matches) == 1, f"{sample}{labels}: {matches} in {families[family].samples}"
    return float(matches[0])


def make_job(**fields) -> Job:  # type: ignore[no-untyped-def]
    defaults = {"id": new_job_id(), "speaker": "joe", "text_chars": 12, "queue": QUEUE, "created_at": time.time()}
    return Job(**{**defaults, **fields})


def test_an_empty_deployment_reports_zeros(scraper) -> None:  # type: ignore[no-untyped-def]
    families = scrape(scraper)
    assert value(families, "ttsq_jobs_created", "ttsq_jobs_created_total") == 0
    for status in ("succeeded", "failed", "canceled"):
        assert value(families, "ttsq_jobs_finished", "ttsq_jobs_finished_total", status=status) == 0
        assert value(families, "ttsq_job_duration_seconds", "ttsq_job_duration_seconds_count", status=status) == 0
    for outcome in ("delivered", "retry", "failed", "refused"):
        assert value(families, "ttsq_webhook_deliveries", "ttsq_webhook_deliveries_total", outcome=outcome) == 0
    assert value(families, "ttsq_jobs", "ttsq_jobs", status="queued") == 0
    assert value(families, "ttsq_jobs", "ttsq_jobs", status="running") == 0
    assert value(families, "ttsq_queue_depth", "ttsq_queue_depth", queue=QUEUE) == 0
    assert value(families, "ttsq_queue_depth", "ttsq_queue_depth", queue=f"{TEST_PREFIX}webhooks") == 0


def test_a_finished_job_fills_its_histograms(scraper, redis_client) -> None:  # type: ignore[no-untyped-def]
    result = JobResult(key="k.wav", format="wav", duration_s=80.0, sample_rate=22050, size_bytes=1)
    done = make_job(
        status=JobStatus.succeeded,
        created_at=1000.0,
        started_at=1010.0,
        finished_at=1070.0,
        synth_s=20.0,
        result=result,
    )
    record_job_finished(redis_client, TEST_PREFIX, done)
    never_started = make_job(created_at=2000.0)
    record_job_finished(redis_client, TEST_PREFIX, never_started, JobStatus.failed, finished_at=2003.0)
    families = scrape(scraper)

    assert value(families, "ttsq_jobs_finished", "ttsq_jobs_finished_total", status="succeeded") == 1
    assert value(families, "ttsq_jobs_finished", "ttsq_jobs_finished_total", status="failed") == 1
    duration = "ttsq_job_duration_seconds"
    assert value(families, duration, f"{duration}_bucket", status="succeeded", le="60.0") == 0
    assert value(families, duration, f"{duration}_bucket", status="succeeded", le="120.0") == 1
    assert value(families, duration, f"{duration}_bucket", status="succeeded", le="+Inf") == 1
    assert value(families, duration, f"{duration}_sum", status="succeeded") == 70
    assert value(families, duration, f"{duration}_bucket", status="failed", le="2.5") == 0
    assert value(families, duration, f"{duration}_bucket", status="failed", le="5.0") == 1
    run = "ttsq_job_run_seconds"
    assert value(families, run, f"{run}_bucket", status="succeeded", le="30.0") == 0
    assert value(families, run, f"{run}_bucket", status="succeeded", le="60.0") == 1
    assert value(families, run, f"{run}_count", status="failed") == 0  # it never started
    audio = "ttsq_job_audio_seconds"
    assert value(families, audio, f"{audio}_bucket", speaker="joe", le="60.0") == 0
    assert value(families, audio, f"{audio}_bucket", speaker="joe", le="300.0") == 1
    assert value(families, audio, f"{audio}_sum", speaker="joe") == 80
    assert value(families, audio, f"{audio}_count", speaker="joe") == 1  # the failed job has no audio
    rtf = "ttsq_job_realtime_factor"
    assert value(families, rtf, f"{rtf}_bucket", speaker="joe", le="2.0") == 0
    assert value(families, rtf, f"{rtf}_bucket", speaker="joe", le="5.0") == 1
    assert value(families, rtf, f"{rtf}_sum", speaker="joe") == 4  # 80 s of audio in 20 s of synthesis


def test_record_job_finished_joins_the_callers_transaction(redis_client) -> None:  # type: ignore[no-untyped-def]
    job = make_job(status=JobStatus.canceled, finished_at=time.time())
    with redis_client.pipeline() as pipe:
        pipe.multi()
        record(pipe, job_created(TEST_PREFIX))
        record_job_finished(pipe, TEST_PREFIX, job)
        assert redis_client.keys(f"{TEST_PREFIX}metrics:*") == []  # nothing before the caller's EXEC
        pipe.execute()
    assert redis_client.hget(f"{TEST_PREFIX}metrics:counters", "ttsq_jobs_finished|canceled") == b"1"
    assert redis_client.hget(f"{TEST_PREFIX}metrics:counters", "ttsq_jobs_created") == b"1"


def test_a_job_that_has_not_ended_is_refused(redis_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="got status 'running'; expected one of: succeeded, failed, canceled"):
        record_job_finished(redis_client, TEST_PREFIX, make_job(status=JobStatus.running))


def test_queue_depth_counts_every_priority_list(app, scraper, redis_client) -> None:  # type: ignore[no-untyped-def]
    celery = app.extensions["ttsq"].celery
    for priority in (None, 5, 9):  # kombu keeps priorities 3-5, 6-8 and 9 in lists of their own
        celery.send_task(SYNTHESIZE_TASK, args=[new_job_id()], queue=QUEUE, priority=priority)
    assert [redis_client.llen(key) for key in kombu_queue_keys(QUEUE)] == [1, 1, 0, 1]
    families = scrape(scraper)
    assert value(families, "ttsq_queue_depth", "ttsq_queue_depth", queue=QUEUE) == 3


def test_any_queue_can_be_watched(redis_client) -> None:  # type: ignore[no-untyped-def]
    redis_client.lpush(f"{TEST_PREFIX}webhooks", b"a", b"b")
    collector = RedisCollector(redis_client, TEST_PREFIX, [QUEUE, f"{TEST_PREFIX}webhooks"])
    depth = next(f for f in collector.collect() if f.name == "ttsq_queue_depth")
    assert {s.labels["queue"]: s.value for s in depth.samples} == {QUEUE: 0, f"{TEST_PREFIX}webhooks": 2}


def test_unfinished_jobs_are_counted_by_status(scraper, redis_client) -> None:  # type: ignore[no-untyped-def]
    store = JobStore(redis_client, TEST_PREFIX)
    jobs = [make_job() for _ in range(4)]
    for job in jobs:
        store.create(job, "Hello there.")
    store.update(jobs[0].id, status=JobStatus.running.value)
    assert store.cancel(jobs[1].id)  # ended: leaves the active set
    families = scrape(scraper)
    assert value(families, "ttsq_jobs", "ttsq_jobs", status="queued") == 2
    assert value(families, "ttsq_jobs", "ttsq_jobs", status="running") == 1


def test_webhook_outcomes_are_counted(scraper, redis_client) -> None:  # type: ignore[no-untyped-def]
    for outcome in ("retry", "retry", "delivered", "refused"):
        record_webhook(redis_client, TEST_PREFIX, outcome)
    families = scrape(scraper)
    counts = {s.labels["outcome"]: s.value for s in families["ttsq_webhook_deliveries"].samples}
    assert counts == {"delivered": 1, "retry": 2, "failed": 0, "refused": 1}
    with pytest.raises(ValueError, match="got webhook outcome 'lost'; expected one of: delivered, retry"):
        record_webhook(redis_client, TEST_PREFIX, "lost")


def test_writers_on_many_connections_agree(redis_url, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Workers on other hosts write at once: every increment lands (HINCRBY is atomic)."""
    writers, each = 8, 50

    def write() -> None:
        client = redis.Redis.from_url(redis_url)
        for _ in range(each):
            record_webhook(client, TEST_PREFIX, "delivered")
            job = make_job(status=JobStatus.failed, finished_at=time.time() + 1.5)
            record_job_finished(client, TEST_PREFIX, job)
        client.close()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    collector = RedisCollector(redis_client, TEST_PREFIX, [])
    families = {f.name: f for f in collector.collect()}
    assert value(families, "ttsq_webhook_deliveries", "ttsq_webhook_deliveries_total", outcome="delivered") == 400
    duration = "ttsq_job_duration_seconds"
    assert value(families, duration, f"{duration}_count", status="failed") == 400
    assert value(families, duration, f"{duration}_bucket", status="failed", le="2.5") == 400
    assert value(families, duration, f"{duration}_sum", status="failed") == pytest.approx(600, rel=0.01)


def test_metrics_answer_503_when_redis_is_down(config_env) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the scrape: nothing listens there
    app = create_app(load_config({**config_env, "TTSQ_REDIS_URL": f"redis://127.0.0.1:{port}/0"}))
    if "metrics" not in app.blueprints:
        app.register_blueprint(metrics_bp)
    response = app.test_client().get("/metrics")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "redis_unavailable"
    assert response.get_json()["error"]["message"]


def test_a_job_through_the_stack_is_counted(scraper, runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = scraper.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    families = scrape(scraper)
    assert value(families, "ttsq_jobs_created", "ttsq_jobs_created_total") == 1
    assert value(families, "ttsq_jobs_finished", "ttsq_jobs_finished_total", status="succeeded") == 1
    assert value(families, "ttsq_job_audio_seconds", "ttsq_job_audio_seconds_count", speaker="joe") == 1
    assert value(families, "ttsq_job_realtime_factor", "ttsq_job_realtime_factor_count", speaker="joe") == 1
    assert value(families, "ttsq_jobs", "ttsq_jobs", status="queued") == 0


def test_status_names_match_the_job_record() -> None:
    assert set(ENDED_STATUSES) == {s.value for s in JobStatus if s.terminal}
    assert set(ACTIVE_STATUSES) == {s.value for s in JobStatus if not s.terminal}


def test_jobs_queue_their_increments_and_a_fold_adds_them_up(redis_client) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: a job's end queues one entry (one command) rather than 13 increments; a fold adds a batch of entries
    with one increment per field, exactly, drops what it took, and skips an entry it cannot read."""
    store = JobStore(redis_client, TEST_PREFIX)
    pending = Keys(TEST_PREFIX).metrics_pending
    ended = 0
    for synth_s in (0.5, 0.25, 0.125):
        job = make_job(status=JobStatus.running, started_at=time.time(), synth_s=synth_s)
        store.create(job, "Hello.")
        result = JobResult(key=f"{job.id}.wav", format="wav", duration_s=2.0, sample_rate=22050, size_bytes=1)
        assert store._end(job, {"status": "succeeded", "result": result.model_dump()}, None, (JobStatus.running,))
        ended += 1
    assert redis_client.llen(pending) == 2 * ended  # one per creation, one per end
    assert redis_client.exists(metrics_record.counters_key(TEST_PREFIX)) == 0  # nothing added yet
    redis_client.rpush(pending, "not json")
    assert fold(redis_client, TEST_PREFIX) == 2 * ended + 1
    assert redis_client.llen(pending) == 0
    counters = metrics_record.counters_key(TEST_PREFIX)
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"3"
    assert redis_client.hget(counters, "ttsq_jobs_finished|succeeded") == b"3"
    rtf = metrics_record.histogram_key(TEST_PREFIX, metrics_record.JOB_REALTIME_FACTOR)
    assert redis_client.hget(rtf, "joe|count") == b"3"
    assert float(redis_client.hget(rtf, "joe|sum")) == pytest.approx(4 + 8 + 16)  # 2 s of audio over each synth_s
    assert redis_client.hget(rtf, "joe|5.0") == b"1" and redis_client.hget(rtf, "joe|10.0") == b"1"
    assert redis_client.hget(rtf, "joe|20.0") == b"1"
    assert fold(redis_client, TEST_PREFIX) == 0  # nothing left: nothing added twice
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"3"


def test_a_bad_pending_entry_costs_its_counts_never_the_fold(redis_client) -> None:  # type: ignore[no-untyped-def]
    """Review finding: an increment Redis refuses (a key of another type, a non-number) failed the whole fold, which
    then re-added the entries before it at every scrape. Now what cannot be added is dropped, the rest added once."""
    pending = Keys(TEST_PREFIX).metrics_pending
    counters = metrics_record.counters_key(TEST_PREFIX)
    wrong_type = f"{TEST_PREFIX}metrics:not-a-hash"
    redis_client.set(wrong_type, "a string")
    good = metrics_record.script_args(TEST_PREFIX, metrics_record.job_created(TEST_PREFIX))[1:]
    for entry in (
        [wrong_type, "field", "1"],
        [counters, "ttsq_jobs_created", "inf"],
        [counters, "ttsq_jobs_created", None],
        [counters, 7, "1"],
        good,
    ):
        redis_client.rpush(pending, json.dumps(entry))
    assert fold(redis_client, TEST_PREFIX) == 5
    assert redis_client.llen(pending) == 0
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"1"
    assert fold(redis_client, TEST_PREFIX) == 0
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"1"  # nothing added twice
    redis_client.delete(wrong_type)
