"""API keys, ownership, rate and concurrency limits, Idempotency-Key and retention, against the real Redis."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import ALICE, BOB, run_to_end
from test_api import assert_error

from ttsq.config import ConfigError, load_config
from ttsq.credentials import hash_api_key
from ttsq.metrics import record as metrics


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_client(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from api import create_app

    app = create_app(load_config(env))
    app.config["TESTING"] = True
    return app.test_client()


@pytest.fixture()
def keyed(keyed_env: dict[str, str]):  # type: ignore[no-untyped-def]
    return make_client(keyed_env)


def test_every_v1_route_needs_a_known_key(keyed) -> None:  # type: ignore[no-untyped-def]
    job_id = "0" * 32
    for method, path in [
        ("post", "/v1/jobs"),
        ("get", f"/v1/jobs/{job_id}"),
        ("delete", f"/v1/jobs/{job_id}"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
        ("get", "/v1/speakers"),
    ]:
        for headers in ({}, bearer("ttsq_not-a-key"), {"Authorization": ALICE}, {"Authorization": "Bearer "}):
            response = getattr(keyed, method)(path, json={"text": "Hi."}, headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert keyed.get("/v1/speakers", headers=bearer(ALICE)).status_code == 200
    assert keyed.get("/healthz").status_code == 200  # health and the document stay open
    assert keyed.get("/openapi.json").status_code == 200


def test_a_job_belongs_to_the_key_that_made_it(keyed, keyed_env, runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    response = keyed.post("/v1/jobs", json={"text": "Only for Alice."}, headers=bearer(ALICE))
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert keyed.get(f"/v1/jobs/{job_id}", headers=bearer(ALICE)).status_code == 200
    # Bob sees nothing, cannot cancel it, and cannot tell it exists.
    assert_error(keyed.get(f"/v1/jobs/{job_id}", headers=bearer(BOB)), 404, "job_not_found")
    started = time.monotonic()
    assert_error(keyed.get(f"/v1/jobs/{job_id}?wait=5", headers=bearer(BOB)), 404, "job_not_found")
    assert time.monotonic() - started < 2, "a wait on another key's job would tell it exists"
    assert_error(keyed.delete(f"/v1/jobs/{job_id}", headers=bearer(BOB)), 404, "job_not_found")
    assert_error(keyed.post(f"/v1/jobs/{job_id}/cancel", headers=bearer(BOB)), 404, "job_not_found")
    assert run_to_end(runtime, job_id) == "succeeded"
    assert keyed.get(f"/v1/jobs/{job_id}", headers=bearer(ALICE)).get_json()["status"] == "succeeded"
    assert_error(keyed.get(f"/v1/jobs/{job_id}", headers=bearer(BOB)), 404, "job_not_found")
    # The key itself is stored nowhere: not in the job record, not in any Redis key or value.
    for key in redis_client.scan_iter("*"):
        assert ALICE.encode() not in key
        if redis_client.type(key) == b"hash":
            assert all(ALICE.encode() not in v for v in redis_client.hvals(key))


def test_rate_limit_per_key_answers_429_with_retry_after(keyed_env) -> None:  # type: ignore[no-untyped-def]
    client = make_client({**keyed_env, "TTSQ_RATE_LIMIT_PER_MIN": "5"})
    other = make_client({**keyed_env, "TTSQ_RATE_LIMIT_PER_MIN": "5"})  # a second API process, same Redis
    if time.time() % 60 > 55:  # the count is per calendar minute: don't straddle its end
        time.sleep(61 - time.time() % 60)
    statuses = [c.get("/v1/speakers", headers=bearer(ALICE)).status_code for c in (client, other) * 3]
    assert statuses == [200] * 5 + [429]
    limited = other.get("/v1/speakers", headers=bearer(ALICE))
    error = assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "5 requests" in error["message"]
    assert client.get("/v1/speakers", headers=bearer(BOB)).status_code == 200  # Bob has his own count


def test_concurrent_jobs_per_key_are_limited(keyed_env, runtime) -> None:  # type: ignore[no-untyped-def]
    client = make_client({**keyed_env, "TTSQ_MAX_ACTIVE_JOBS": "2"})
    ids = [client.post("/v1/jobs", json={"text": f"Job {n}."}, headers=bearer(ALICE)).get_json()["id"] for n in (1, 2)]
    refused = client.post("/v1/jobs", json={"text": "Job three."}, headers=bearer(ALICE))
    assert_error(refused, 429, "too_many_jobs")
    assert refused.headers["Retry-After"]
    assert runtime.store.active_ids() == sorted(ids)  # the refused job left no record behind
    assert client.post("/v1/jobs", json={"text": "Bob's."}, headers=bearer(BOB)).status_code == 202
    # A job ending (canceled here, then one run to the end) frees its slot.
    assert client.delete(f"/v1/jobs/{ids[0]}", headers=bearer(ALICE)).status_code == 202
    assert client.post("/v1/jobs", json={"text": "Job three."}, headers=bearer(ALICE)).status_code == 202
    assert_error(client.post("/v1/jobs", json={"text": "Four."}, headers=bearer(ALICE)), 429, "too_many_jobs")
    assert run_to_end(runtime, ids[1]) == "succeeded"
    assert client.post("/v1/jobs", json={"text": "Four."}, headers=bearer(ALICE)).status_code == 202


def test_concurrency_limit_holds_across_racing_requests(keyed_env) -> None:  # type: ignore[no-untyped-def]
    client = make_client({**keyed_env, "TTSQ_MAX_ACTIVE_JOBS": "3", "TTSQ_RATE_LIMIT_PER_MIN": "0"})
    with ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(
                lambda n: client.post("/v1/jobs", json={"text": f"Race {n}."}, headers=bearer(ALICE)).status_code,
                range(16),
            )
        )
    assert sorted(statuses) == [202] * 3 + [429] * 13


def test_idempotency_key_returns_the_same_job(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    body = {"text": "Pay once.", "metadata": {"order": 7}}
    headers = {"Idempotency-Key": "order-7"}
    first = client.post("/v1/jobs", json=body, headers=headers)
    again = client.post("/v1/jobs", json={"metadata": {"order": 7}, "text": "Pay once."}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert redis_client.llen("ttsqtest:speaker.joe") == 1  # one message: one job
    conflict = client.post("/v1/jobs", json={"text": "Pay twice."}, headers=headers)
    assert_error(conflict, 409, "idempotency_conflict")
    other = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-8"})
    assert other.status_code == 202 and other.get_json()["id"] != first.get_json()["id"]
    assert_error(client.post("/v1/jobs", json=body, headers={"Idempotency-Key": ""}), 400, "invalid_idempotency_key")
    assert_error(
        client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "x" * 256}), 400, "invalid_idempotency_key"
    )


def test_idempotency_keys_are_per_api_key(keyed) -> None:  # type: ignore[no-untyped-def]
    body = {"text": "Same key, two clients."}
    a = keyed.post("/v1/jobs", json=body, headers={**bearer(ALICE), "Idempotency-Key": "k1"}).get_json()["id"]
    b = keyed.post("/v1/jobs", json=body, headers={**bearer(BOB), "Idempotency-Key": "k1"}).get_json()["id"]
    assert a != b


def test_a_refused_request_does_not_use_up_its_idempotency_key(keyed_env) -> None:  # type: ignore[no-untyped-def]
    client = make_client({**keyed_env, "TTSQ_MAX_ACTIVE_JOBS": "1"})
    first = client.post("/v1/jobs", json={"text": "First."}, headers=bearer(ALICE)).get_json()["id"]
    headers = {**bearer(ALICE), "Idempotency-Key": "retry-me"}
    assert_error(client.post("/v1/jobs", json={"text": "Second."}, headers=headers), 429, "too_many_jobs")
    client.delete(f"/v1/jobs/{first}", headers=bearer(ALICE))
    assert client.post("/v1/jobs", json={"text": "Second."}, headers=headers).status_code == 202


def test_racing_retries_with_one_idempotency_key_make_one_job(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    def post(_: int) -> tuple[int, str | None]:
        response = client.post("/v1/jobs", json={"text": "Once."}, headers={"Idempotency-Key": "race"})
        return response.status_code, (response.get_json().get("id"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(16)))
    ids = {job_id for status, job_id in results if status == 202}
    assert len(ids) == 1
    assert all(status in (202, 409) for status, _ in results)
    assert redis_client.llen("ttsqtest:speaker.joe") == 1


def test_retention_removes_record_and_audio_then_answers_410(client, runtime, config) -> None:  # type: ignore[no-untyped-def]
    from worker.retention import purge_expired

    job_id = client.post("/v1/jobs", json={"text": "Keep me a while."}).get_json()["id"]
    kept_id = client.post("/v1/jobs", json={"text": "Keep me longer."}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    url = client.get(f"/v1/jobs/{job_id}").get_json()["result"]["url"]
    assert client.get(url).status_code == 200
    audio = config.audio_dir / f"{job_id}.wav"
    assert audio.is_file()
    assert purge_expired(runtime) == []  # not old enough
    assert run_to_end(runtime, kept_id) == "succeeded"
    ended = runtime.store.get(job_id).finished_at
    # As if the retention period had passed for the first job but not the second.
    assert purge_expired(runtime, now=ended + config.retention_s + 0.001) == [job_id]
    assert not audio.exists()
    assert runtime.store.get(job_id) is None and runtime.store.text(job_id) is None
    assert_error(client.get(f"/v1/jobs/{job_id}"), 410, "job_expired")
    assert_error(client.delete(f"/v1/jobs/{job_id}"), 410, "job_expired")
    assert_error(client.get(url), 410, "file_expired")
    assert client.get(f"/v1/jobs/{kept_id}").status_code == 200
    assert purge_expired(runtime, now=ended + config.retention_s + 0.001) == []  # claimed once only


def test_expired_jobs_of_another_key_stay_404(keyed, keyed_env, runtime) -> None:  # type: ignore[no-untyped-def]
    from worker.retention import purge_expired

    job_id = keyed.post("/v1/jobs", json={"text": "Mine."}, headers=bearer(ALICE)).get_json()["id"]
    keyed.delete(f"/v1/jobs/{job_id}", headers=bearer(ALICE))
    assert run_to_end(runtime, job_id) == "canceled"
    assert purge_expired(runtime, now=time.time() + 10**8) == [job_id]
    assert_error(keyed.get(f"/v1/jobs/{job_id}", headers=bearer(ALICE)), 410, "job_expired")
    assert_error(keyed.get(f"/v1/jobs/{job_id}", headers=bearer(BOB)), 404, "job_not_found")


def test_api_keys_config_holds_only_hashes() -> None:
    with pytest.raises(ConfigError, match="TTSQ_API_KEYS"):
        load_config({"TTSQ_API_KEYS": f"alice:{ALICE}"})  # a raw key where its hash belongs
    with pytest.raises(ConfigError, match="twice"):
        load_config({"TTSQ_API_KEYS": f"a:{hash_api_key(ALICE)},a:{hash_api_key(BOB)}"})


def test_cli_refuses_a_public_bind_without_keys(config_env, capsys) -> None:  # type: ignore[no-untyped-def]
    from ttsq.cli import main
    from ttsq.cli.stack import check_bind

    with pytest.raises(SystemExit, match="without API keys"):
        check_bind(load_config(config_env), "0.0.0.0")
    check_bind(load_config(config_env), "127.0.0.1")
    check_bind(load_config(config_env), "::1")
    check_bind(load_config({**config_env, "TTSQ_API_KEYS": f"a:{hash_api_key(ALICE)}"}), "0.0.0.0")
    assert main(["keys", "new", "carol"]) == 0
    out = capsys.readouterr().out
    key = out.split("it is not stored anywhere): ")[1].split()[0]
    assert f"carol:{hash_api_key(key)}" in out


def test_without_keys_only_clients_on_this_host_are_answered(client) -> None:  # type: ignore[no-untyped-def]
    """`ttsq api` binds loopback; under gunicorn on 0.0.0.0 the same holds per request."""
    remote = {"REMOTE_ADDR": "203.0.113.7"}
    assert_error(client.post("/v1/jobs", json={"text": "Hi."}, environ_base=remote), 401, "unauthorized")
    assert_error(client.get("/v1/speakers", environ_base=remote), 401, "unauthorized")
    assert client.get("/v1/speakers", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/healthz", environ_base=remote).status_code == 200
    with pytest.raises(ConfigError, match="holds no key"):
        load_config({"TTSQ_API_KEYS": ","})


def test_an_idempotency_claim_outlives_its_request_only_briefly(app, client, redis_client, config) -> None:  # type: ignore[no-untyped-def]
    from flask import g

    from api import idempotency

    headers = {"Idempotency-Key": "k"}
    assert client.post("/v1/jobs", json={"text": "Kept."}, headers=headers).status_code == 202
    (key,) = redis_client.keys("ttsqtest:idem:*")
    assert config.retention_s - 5 < redis_client.ttl(key) <= config.retention_s  # kept as long as the job
    # A request that dies between claiming and recording its job blocks the key for CLAIM_TTL_S at most.
    with app.test_request_context(headers={"Idempotency-Key": "dies"}):
        g.owner = None
        held = idempotency.claim({"text": "Lost."}, "f" * 32)
    assert held is not None and held.job_id is None
    assert 0 < redis_client.ttl(held.redis_key) <= idempotency.CLAIM_TTL_S


def test_a_job_is_counted_and_its_key_kept_in_the_step_that_records_it(client, redis_client, config) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 17, chaos): the count and the key's lifetime were steps of their own after the job was
    queued, so an API killed between them left a job uncounted, or a key that expired while its job lived on."""
    import hashlib

    from api import idempotency

    headers = {"Idempotency-Key": "counted-once"}
    first = client.post("/v1/jobs", json={"text": "Once."}, headers=headers)
    assert first.status_code == 202
    counters = config.keys.metrics_counters
    metrics.fold(redis_client, config.keys.prefix)
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"1"
    key = config.keys.idempotency("-", hashlib.sha256(b"counted-once").hexdigest())
    assert redis_client.ttl(key) > idempotency.CLAIM_TTL_S
    again = client.post("/v1/jobs", json={"text": "Once."}, headers=headers)
    assert again.get_json()["id"] == first.get_json()["id"]
    metrics.fold(redis_client, config.keys.prefix)
    assert redis_client.hget(counters, "ttsq_jobs_created") == b"1"  # a replay is not a second job


def test_retention_catches_up_on_a_backlog(client, runtime, config) -> None:  # type: ignore[no-untyped-def]
    from worker.retention import purge_all_expired

    ids = [client.post("/v1/jobs", json={"text": f"Job {n}."}).get_json()["id"] for n in range(7)]
    for job_id in ids:
        runtime.store.cancel(job_id)
        runtime.store.unclaim_expired(job_id, 1.0)  # ended long ago
    assert purge_all_expired(runtime, budget_s=60, batch=3) == 7
    assert all(runtime.store.get(job_id) is None for job_id in ids)


def test_jobs_that_ended_before_retention_existed_are_listed_once(client, runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    from worker.retention import purge_expired

    ended = client.post("/v1/jobs", json={"text": "Old."}).get_json()["id"]
    running = client.post("/v1/jobs", json={"text": "Still going."}).get_json()["id"]
    runtime.store.cancel(ended)
    redis_client.delete(runtime.store.keys.finished)  # as an older version left it
    assert runtime.store.backfill_finished() == 1
    assert runtime.store.ended_before(float("inf")) == [ended]
    assert runtime.store.backfill_finished() == 0  # once per deployment
    assert purge_expired(runtime, now=10**12) == [ended]
    assert runtime.store.get(running) is not None


def test_without_keys_a_forwarded_request_is_refused(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 17): behind a proxy on the same host every client's socket address is loopback, so
    forwarding headers without keys or trusted proxies mean a client we can't place."""
    client = make_client(config_env)
    local = {"REMOTE_ADDR": "127.0.0.1"}
    assert client.get("/v1/speakers", environ_base=local).status_code == 200
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        value = "for=203.0.113.9" if header == "Forwarded" else "203.0.113.9"
        response = client.post("/v1/jobs", json={"text": "Hi."}, headers={header: value}, environ_base=local)
        assert_error(response, 401, "unauthorized")
        assert "TTSQ_TRUSTED_PROXIES" in response.get_json()["error"]["message"]


def test_with_a_trusted_proxy_the_forwarded_client_is_the_one_checked(config_env) -> None:  # type: ignore[no-untyped-def]
    client = make_client({**config_env, "TTSQ_TRUSTED_PROXIES": "1"})
    local = {"REMOTE_ADDR": "127.0.0.1"}
    remote = client.get("/v1/speakers", headers={"X-Forwarded-For": "203.0.113.9"}, environ_base=local)
    assert_error(remote, 401, "unauthorized")  # a client elsewhere, without keys: not answered
    near = client.get("/v1/speakers", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base=local)
    assert near.status_code == 200
    # ProxyFix reads X-Forwarded-For alone: a request without it (or with only the other forms) is not placed.
    for headers in ({}, {"X-Real-IP": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}):
        assert_error(client.get("/v1/speakers", headers=headers, environ_base=local), 401, "unauthorized")
