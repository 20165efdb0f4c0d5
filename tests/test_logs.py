"""Log set-up: plain or JSON lines, and the job id on every line made while a job is being worked on."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from celery import Celery

from ttsq.jobs.store import JobStore
from ttsq.logs import current_job_id, install_celery_job_context, job_context, setup_logging
from ttsq.models import Job, new_job_id

logger = logging.getLogger("ttsq.tests.logs")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_job_id() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    logger.info("before %s", "any job")
    with job_context("abc123"):
        logger.warning("synthesizing %d sentences", 3)
        logging.getLogger("celery.app.trace").info("a line from someone else's logger")
    logger.debug("not at INFO")
    first, inside, other = json_lines(stream)
    assert set(first) == {"ts", "level", "logger", "message", "job_id"}
    assert first["job_id"] is None
    assert first["message"] == "before any job"
    assert inside == {
        "ts": inside["ts"],
        "level": "WARNING",
        "logger": "ttsq.tests.logs",
        "message": "synthesizing 3 sentences",
        "job_id": "abc123",
    }
    assert abs(datetime.fromisoformat(inside["ts"]).timestamp() - time.time()) < 60
    assert other["job_id"] == "abc123"
    assert other["logger"] == "celery.app.trace"


def test_json_lines_include_the_traceback() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    with job_context("abc123"):
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("segment %d failed", 2)
    (line,) = json_lines(stream)
    assert line["message"] == "segment 2 failed"
    assert line["job_id"] == "abc123"
    assert line["exc_info"].startswith("Traceback (most recent call last)")
    assert "ZeroDivisionError: division by zero" in line["exc_info"]


def test_plain_lines_name_the_job_once() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "plain", stream)
    with job_context("abc123"):
        logger.info("%s: canceled", "abc123")  # our own lines start with the id already
        logger.info("Task ttsq.synthesize succeeded")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("unexpected")
    logger.info("no job here")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("INFO ttsq.tests.logs: abc123: canceled")
    assert lines[1].endswith("INFO ttsq.tests.logs: Task ttsq.synthesize succeeded job=abc123")
    assert lines[2].endswith("ERROR ttsq.tests.logs: unexpected job=abc123")
    assert lines[3] == "Traceback (most recent call last):"
    assert lines[-1].endswith("INFO ttsq.tests.logs: no job here")


def test_job_context_nests_and_stays_in_its_thread() -> None:
    seen: dict[str, str | None] = {}
    with job_context("outer"):
        with job_context("inner"):
            assert current_job_id() == "inner"
        assert current_job_id() == "outer"
        plain = threading.Thread(target=lambda: seen.update(plain=current_job_id()))
        copied = threading.Thread(
            target=contextvars.copy_context().run, args=(lambda: seen.update(copied=current_job_id()),)
        )
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert current_job_id() is None
    assert seen == {"plain": None, "copied": "outer"}  # a helper thread needs copy_context() to carry the id


def test_setup_logging_replaces_its_own_handler_and_names_a_bad_format() -> None:
    first = setup_logging("INFO", "plain", io.StringIO())
    second = setup_logging("DEBUG", "json", io.StringIO())
    root = logging.getLogger()
    assert first not in root.handlers
    assert [h for h in root.handlers if h.get_name() == "ttsq"] == [second]
    assert root.level == logging.DEBUG
    with pytest.raises(ValueError, match="got log format 'xml'; expected one of: plain, json"):
        setup_logging("INFO", "xml")


def test_celery_task_lines_carry_the_job_id() -> None:
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    app = Celery("ttsq-logs-test", set_as_current=False)

    @app.task(name="ttsq.test.speak")
    def speak(job_id: str) -> str:
        logging.getLogger("worker.synthesis").info("speaking")
        return "done"

    install_celery_job_context(["ttsq.test.speak"])
    assert speak.apply(args=["job-1"]).get() == "done"
    assert current_job_id() is None  # the pool thread is clean for the next task
    lines = [line for line in json_lines(stream) if line["message"] == "speaking"]
    assert [line["job_id"] for line in lines] == ["job-1"]


def test_a_worker_run_logs_the_job_id_on_every_line(runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    store = JobStore(redis_client, runtime.config.key_prefix)
    job = Job(id=new_job_id(), speaker="joe", text_chars=5, queue="q", created_at=time.time())
    store.create(job, "Hello")
    store.cancel(job.id)
    stream = io.StringIO()
    setup_logging("INFO", "json", stream)
    from worker.synthesis import run_job

    assert run_job(runtime, job.id) == "canceled"
    lines = json_lines(stream)
    assert any(line["logger"] == "worker.synthesis" for line in lines)
    assert {line["job_id"] for line in lines} == {job.id}
