"""A job's whole life for an integrator: submitted with a key, metadata and a webhook; spoken; the signed event
arrives with a link that downloads the audio; metrics count it. Real Redis, real HTTP receiver."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from conftest import ALICE, run_to_end
from prometheus_client.parser import text_string_to_metric_families
from test_access import bearer, make_client
from test_webhooks import Receiver, receiver  # noqa: F401 - the fixture

from ttsq.config import load_config
from ttsq.credentials import secret_key, webhook_secret
from ttsq.webhooks import verify
from worker.delivery import build_webhook_runtime, run_delivery


def metric(client, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_a_succeeded_job_sends_one_signed_event_with_a_working_link(  # type: ignore[no-untyped-def]
    keyed_env,
    runtime,
    redis_client,
    receiver: Callable[..., Receiver],  # noqa: F811
) -> None:
    hook = receiver(200)
    env = {**keyed_env, "TTSQ_WEBHOOK_ALLOW": "127.0.0.1", "TTSQ_PUBLIC_URL": "http://tts.example"}
    client = make_client(env)
    body = {"text": "Chapter one. It begins.", "webhook_url": hook.url(), "metadata": {"article": 42}}
    job_id = client.post("/v1/jobs", json=body, headers=bearer(ALICE)).get_json()["id"]
    assert metric(client, "ttsq_jobs_created_total") == 1
    assert run_to_end(runtime, job_id) == "succeeded"
    queue = load_config(env).keys.webhooks_queue
    assert redis_client.llen(queue) == 1  # queued once, on the webhook queue, not on a speaker queue

    config = load_config(env)
    assert run_delivery(build_webhook_runtime(config), job_id) == "delivered"
    (event,) = hook.wait_for(1)
    assert verify(webhook_secret(config, secret_key(config)), event.headers["ttsq-signature"], event.body)
    payload = json.loads(event.body)
    assert payload["type"] == "job.succeeded" and payload["job_id"] == job_id
    assert payload["metadata"] == {"article": 42}
    url = urlsplit(payload["result"]["url"])
    assert url.netloc == "tts.example"
    download = client.get(f"{url.path}?{url.query}")
    assert download.status_code == 200 and len(download.data) == payload["result"]["size_bytes"]

    job = client.get(f"/v1/jobs/{job_id}", headers=bearer(ALICE)).get_json()
    assert job["metadata"] == {"article": 42}
    assert job["webhook"]["attempts"] == 1 and job["webhook"]["last_status"] == 200
    assert job["webhook"]["delivered_at"].endswith("Z")
    assert metric(client, "ttsq_jobs_finished_total", status="succeeded") == 1
    assert metric(client, "ttsq_webhook_deliveries_total", outcome="delivered") == 1
    assert metric(client, "ttsq_job_audio_seconds_count", speaker="joe") == 1


def test_a_canceled_job_sends_its_event_from_the_api(keyed_env, redis_client, receiver) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    hook = receiver(200)
    env = {**keyed_env, "TTSQ_WEBHOOK_ALLOW": "127.0.0.1"}
    client = make_client(env)
    body = {"text": "Never mind.", "webhook_url": hook.url()}
    job_id = client.post("/v1/jobs", json=body, headers=bearer(ALICE)).get_json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}", headers=bearer(ALICE)).status_code == 202
    config = load_config(env)
    assert redis_client.llen(config.keys.webhooks_queue) == 1
    assert run_delivery(build_webhook_runtime(config), job_id) == "delivered"
    payload = json.loads(hook.wait_for(1)[0].body)
    assert payload["type"] == "job.canceled" and payload["result"] is None
    assert metric(client, "ttsq_jobs_finished_total", status="canceled") == 1


def test_a_job_without_webhook_queues_no_event(client, runtime, redis_client, config) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json={"text": "Quiet."}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    assert redis_client.llen(config.keys.webhooks_queue) == 0
    assert client.get(f"/v1/jobs/{job_id}").get_json()["webhook"] is None


def test_webhook_url_is_checked_at_submit(client) -> None:  # type: ignore[no-untyped-def]
    from test_api import assert_error

    for url in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url", "http://" + "a" * 2100):
        assert_error(client.post("/v1/jobs", json={"text": "Hi.", "webhook_url": url}), 400, "invalid_webhook_url")
    too_big = {"text": "Hi.", "metadata": {"blob": "x" * 17_000}}
    assert_error(client.post("/v1/jobs", json=too_big), 400, "metadata_too_large")
    assert_error(client.post("/v1/jobs", json={"text": "Hi.", "metadata": [1]}), 400, "invalid_request")


def test_an_event_whose_task_was_lost_is_queued_again_by_upkeep(  # type: ignore[no-untyped-def]
    keyed_env,
    runtime,
    redis_client,
    receiver,  # noqa: F811
) -> None:
    """The end and its pending event are one transaction: a worker dying before it queues the event (simulated by
    dropping the queued message) still gets the event out, once it is overdue."""
    from ttsq.jobs.store import WEBHOOK_GRACE_S
    from worker.delivery import requeue_overdue

    hook = receiver(200)
    env = {**keyed_env, "TTSQ_WEBHOOK_ALLOW": "127.0.0.1"}
    client, config = make_client(env), load_config(env)
    job_id = client.post("/v1/jobs", json={"text": "Lost.", "webhook_url": hook.url()}, headers=bearer(ALICE))
    job_id = job_id.get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    queue = config.keys.webhooks_queue
    redis_client.delete(queue)  # the message is lost
    store = runtime.store
    assert requeue_overdue(store, runtime.celery, config) == []  # not overdue yet
    ended = store.get(job_id).finished_at
    redis_client.zadd(store.keys.webhooks_pending, {job_id: ended + WEBHOOK_GRACE_S - 10**6})  # as if time passed
    assert requeue_overdue(store, runtime.celery, config) == [job_id]
    assert redis_client.llen(queue) == 1
    assert requeue_overdue(store, runtime.celery, config) == []  # due again only later
    assert run_delivery(build_webhook_runtime(config), job_id) == "delivered"
    assert redis_client.zscore(store.keys.webhooks_pending, job_id) is None  # settled
    # A duplicate task (a redelivery, the requeued copy) sends nothing a second time.
    assert run_delivery(build_webhook_runtime(config), job_id) == "skipped"
    assert run_delivery(build_webhook_runtime(config), job_id, attempt=1) == "skipped"
    hook.wait_for(1)
    assert len(hook.received) == 1


def test_a_webhook_url_to_a_private_address_is_refused_at_submit(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): such URLs were accepted at POST and refused only at delivery."""
    from test_api import assert_error

    client = make_client(config_env)
    for url, rule in (
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://[::ffff:192.168.0.1]/hook", "private"),
        ("http://169.254.169.254/latest", "cloud metadata"),
    ):
        response = client.post("/v1/jobs", json={"text": "Hi.", "webhook_url": url})
        assert_error(response, 400, "invalid_webhook_url")
        message = response.get_json()["error"]["message"]
        assert rule in message and "TTSQ_WEBHOOK_ALLOW" in message, message
    allowed = make_client({**config_env, "TTSQ_WEBHOOK_ALLOW": "127.0.0.1"})
    assert allowed.post("/v1/jobs", json={"text": "Hi.", "webhook_url": "http://127.0.0.1:9/hook"}).status_code == 202
    names = client.post("/v1/jobs", json={"text": "Hi.", "webhook_url": "https://hooks.example.com/x"})
    assert names.status_code == 202  # a name is resolved, and checked, at each delivery
