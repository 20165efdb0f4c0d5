"""The queue contract: a job's first message is pushed by the Lua step that records it (issue 12), in the very form
Celery's own ``send_task`` would have pushed, and a refused job pushes none."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis
from celery import Celery
from conftest import ALICE
from test_access import bearer, make_client

from ttsq.config import Config
from ttsq.jobs.store import JobStore
from ttsq.keys import Keys
from ttsq.models import Job, new_job_id
from ttsq.queue import SYNTHESIZE_TASK, create_celery, enqueue_synthesis, synthesis_message

IDS = {("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"), ("properties", "delivery_tag")}
"""Fresh for every message."""
SENDERS = {("headers", "ignore_result"), ("properties", "reply_to")}
"""Where ttsq's message says what send_task leaves to the worker's setting: no result (task_ignore_result), and so
no reply queue (Celery's thread oid)."""


def _flat(message: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(part, name): value for part in ("headers", "properties") for name, value in message[part].items()}


def _pushed(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def test_the_built_message_is_the_one_send_task_pushes(config: Config, redis_client: redis.Redis) -> None:
    celery: Celery = create_celery(config)
    queue = config.keys.speaker_queue("joe")
    enqueue_synthesis(celery, "a" * 32, queue)
    (sent,) = _pushed(redis_client, queue)
    built = synthesis_message(celery, "a" * 32, queue)
    ours = json.loads(built.payload)
    assert built.queue == queue
    assert {k: v for k, v in ours.items() if k not in ("headers", "properties")} == {
        k: v for k, v in sent.items() if k not in ("headers", "properties")
    }  # body (base64 of the same JSON), content type and encoding
    theirs, mine = _flat(sent), _flat(ours)
    assert theirs.keys() == mine.keys()
    assert {k: v for k, v in mine.items() if k not in IDS | SENDERS} == {
        k: v for k, v in theirs.items() if k not in IDS | SENDERS
    }
    assert mine[("headers", "id")] == mine[("headers", "root_id")] == mine[("properties", "correlation_id")]
    assert mine[("headers", "ignore_result")] is True
    assert json.loads(base64.b64decode(ours["body"]))[0] == ["a" * 32]
    assert mine[("headers", "task")] == SYNTHESIZE_TASK
    second = json.loads(synthesis_message(celery, "a" * 32, queue).payload)
    assert second["headers"]["id"] != mine[("headers", "id")]  # a task id and a delivery tag per message
    assert second["properties"]["delivery_tag"] != mine[("properties", "delivery_tag")]


def test_a_job_is_queued_in_the_step_that_records_it(client, config: Config, redis_client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", json={"text": "Queued with its record."})
    assert response.status_code == 202
    (message,) = _pushed(redis_client, config.keys.speaker_queue("joe"))
    assert json.loads(base64.b64decode(message["body"]))[0] == [response.get_json()["id"]]


def test_a_job_over_its_keys_limit_leaves_no_message(keyed_env: dict[str, str], redis_client: redis.Redis) -> None:
    client = make_client({**keyed_env, "TTSQ_MAX_ACTIVE_JOBS": "1"})
    keys = Keys(keyed_env["TTSQ_KEY_PREFIX"])
    assert client.post("/v1/jobs", json={"text": "One."}, headers=bearer(ALICE)).status_code == 202
    assert client.post("/v1/jobs", json={"text": "Two."}, headers=bearer(ALICE)).status_code == 429
    assert len(_pushed(redis_client, keys.speaker_queue("joe"))) == 1
    assert redis_client.hget(keys.metrics_counters, "ttsq_jobs_created") is None
    assert redis_client.llen(keys.metrics_pending) == 1  # the refused job is not counted


def test_recording_a_job_twice_records_counts_and_queues_it_once(config: Config, redis_client: redis.Redis) -> None:
    """Review finding: redis-py sends a script again when its answer was lost; the second call must change nothing."""
    store = JobStore(redis_client, config.key_prefix)
    job = Job(id=new_job_id(), speaker="joe", text_chars=5, queue=config.keys.speaker_queue("joe"), created_at=1.0)
    message = synthesis_message(create_celery(config), job.id, job.queue)
    assert store.create(job, "Once.", message=message, active_limit=1)
    assert store.create(job, "Once.", message=message, active_limit=1)  # not refused by its own slot either
    assert len(_pushed(redis_client, job.queue)) == 1
    assert redis_client.llen(config.keys.metrics_pending) == 1
