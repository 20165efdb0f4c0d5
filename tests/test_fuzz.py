"""Fuzz the whole HTTP API from its own OpenAPI document (schemathesis), over WSGI on the real Redis: no 5xx, every
status code documented, every body (4xx included: {"error": {"code", "message"}}) and header as the document says.

The slow set runs each operation with schema-valid and schema-invalid requests, once without API keys and once with
them. No worker runs: jobs stay queued. A few jobs in each state, and a stored file with signed links, are put in
Redis and storage first, so the fuzzer reaches past "no such job" and "bad signature"."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)
from schemathesis.schemas import APIOperation
from test_api import assert_error

from api import create_app
from api.health import openapi_document
from api.services import Services
from ttsq import presence, signing
from ttsq.config import load_config
from ttsq.credentials import hash_api_key
from ttsq.models import Job, JobResult, JobStatus, Progress, WebhookState, new_job_id
from ttsq.storage.base import key_for
from ttsq.storage.local import LocalStorage

FUZZ_KEY = "ttsq_fuzz-key-0123456789abcdef"
OWNER = "fuzz"
OTHER_OWNER = "other"
MAX_EXAMPLES = 100
"""Per operation and generation mode (schema-valid, schema-invalid); about 850 requests per access mode."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
    use_after_free,
]
"""Every check of `schemathesis run --checks all` but one (ensure_resource_availability and object_level_authorization
need a scenario: the stateful phase below runs the first; key isolation has tests of its own). Not
positive_data_acceptance: the document cannot say that text must have something to speak (400 invalid_text)
or that speaker must be configured (404 unknown_speaker), so schema-valid requests are rightly refused at times."""

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # filter_too_much: a seeded job id leaves some operations little to make schema-invalid.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def services_of(app: Flask) -> Services:
    return app.extensions["ttsq"]  # type: ignore[no-any-return]


SHORT_WAIT_S = 0.05

OPERATIONS = [f"{method.upper()} {path}" for path, ops in openapi_document()["paths"].items() for method in ops]


@dataclass
class Seeded:
    """Ids and links the fuzzer draws from besides its own random ones."""

    job_ids: list[str] = field(default_factory=list)
    queued_ids: list[str] = field(default_factory=list)
    """Of job_ids, those still queued: a GET with ?wait= on them holds the answer that long."""
    files: list[dict[str, Any]] = field(default_factory=list)
    """Path and query parameters of GET /v1/files/{key}: a stored file, a missing one, a removed job's."""


def seed(app: Flask, owner: str | None) -> Seeded:
    """Jobs queued, succeeded (a stored file, marks, metadata, webhook state), failed, removed by retention, and,
    with keys, one of another key; signed links to the stored file, a missing one and the removed job's."""
    s = services_of(app)
    seeded = Seeded()
    token = "fuzz-token"

    def job(**fields: Any) -> Job:
        fields.setdefault("owner", owner)
        made = Job(
            id=new_job_id(),
            speaker="joe",
            text_chars=6,
            queue=s.config.keys.speaker_queue("joe"),
            created_at=time.time(),
            **fields,
        )
        s.store.create(made, "Hello.")
        seeded.job_ids.append(made.id)
        return made

    seeded.queued_ids.append(job().id)
    succeeded = job(marks=True, metadata={"book": "one", "n": [1, 2]}, webhook_url="https://example.com/hook")
    key = key_for(succeeded.id, "wav")
    assert isinstance(s.storage, LocalStorage)
    path = s.storage.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    running = s.store.take(succeeded.id, token, 60, "fuzz-worker", 3).job
    assert running is not None and running.status == JobStatus.running
    marks = [{"paragraph": 0, "heading": False, "start_s": 0.0, "text": "Hello."}]
    result = JobResult(key=key, format="wav", duration_s=0.5, sample_rate=22050, size_bytes=20, marks=marks)
    s.store.mark_succeeded(running, token, result, Progress(chunks_done=1, chunks_total=1, audio_s=0.5))
    s.store.update(succeeded.id, webhook=WebhookState(attempts=1, last_status=500, last_error="HTTP 500").model_dump())
    failed = job()
    s.store.acquire_lock(failed.id, token, 60)
    s.store.mark_failed(failed, token, "timeout", "the segment took too long")
    removed = job()
    s.store.purge(removed.id, owner, 600)
    if owner is not None:
        seeded.queued_ids.append(job(owner=OTHER_OWNER).id)
    for file_key in (key, key_for(failed.id, "mp3"), key_for(removed.id, "wav")):
        expires, signature = signing.sign(s.secret, file_key, 600)
        seeded.files.append({"key": file_key, "query": {"expires": expires, "signature": signature}})
    # A live worker, so /readyz is 200: its documented 503 without one would read as a server error.
    presence.announce(s.redis, s.config.keys, presence.WorkerPresence(name="fuzz-worker", speakers=["joe"]), 600)
    return seeded


def strategy(operation: APIOperation, mode: GenerationMode, seeded: Seeded) -> st.SearchStrategy[Case]:
    """The operation's own cases, and the same with a seeded job id or signed file link in place."""
    strategies = [operation.as_strategy(generation_mode=mode)]
    if "{job_id}" in operation.path:
        for job_id in seeded.job_ids:
            fixed: dict[str, Any] = {}
            if job_id in seeded.queued_ids and operation.method.upper() == "GET":
                fixed = {"query": {"wait": SHORT_WAIT_S}}  # a long poll on a queued job would wait it out
            strategies.append(operation.as_strategy(generation_mode=mode, path_parameters={"job_id": job_id}, **fixed))
    if "{key}" in operation.path:
        for link in seeded.files:
            fixed = {"query": link["query"]} if mode == GenerationMode.POSITIVE else {}
            strategies.append(
                operation.as_strategy(generation_mode=mode, path_parameters={"key": link["key"]}, **fixed)
            )
    return st.one_of(strategies)


@dataclass
class FuzzTarget:
    app: Flask
    seeded: Seeded
    keyed: bool


@pytest.fixture(params=["no_keys", "api_keys"])
def target(request: pytest.FixtureRequest, config_env: dict[str, str]) -> FuzzTarget:
    """The app on the test Redis (emptied before and after), without and with API keys, with no rate limits."""
    keyed = request.param == "api_keys"
    # The seeded worker is no real one: a speech request would wait TTSQ_SPEECH_START_TIMEOUT_S for it, then 503.
    env = {**config_env, "TTSQ_RATE_LIMIT_PER_MIN": "0", "TTSQ_MAX_ACTIVE_JOBS": "0"}
    env["TTSQ_SPEECH_START_TIMEOUT_S"] = "0.05"
    if keyed:
        env["TTSQ_API_KEYS"] = f"{OWNER}:{hash_api_key(FUZZ_KEY)},{OTHER_OWNER}:{hash_api_key(FUZZ_KEY + 'x')}"
    app = create_app(load_config(env))
    app.config["TESTING"] = True
    return FuzzTarget(app, seed(app, OWNER if keyed else None), keyed)


AUTHORIZATIONS = [f"Bearer {FUZZ_KEY}"] * 8 + [None, "Bearer ttsq_not-a-key", f"Basic {FUZZ_KEY}"]
"""With keys: mostly the valid one, so the fuzzer gets past 401; sometimes none or a wrong one."""


@pytest.mark.slow
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_operation(target: FuzzTarget, label: str) -> None:
    # The document the app serves; from_wsgi would leave out the operation that serves it.
    schema = schemathesis.openapi.from_dict(target.app.test_client().get("/openapi.json").get_json())
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        cases = 0

        @FUZZ_SETTINGS
        @given(case=strategy(operation, mode, target.seeded), authorization=st.sampled_from(AUTHORIZATIONS))
        def fuzz(case: Case, authorization: str | None) -> None:
            nonlocal cases
            cases += 1
            headers = {"Authorization": authorization} if target.keyed and authorization else None
            case.call_and_validate(app=target.app, headers=headers, checks=CHECKS)

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing in the operation can be made schema-invalid (no parameters, no body, free-form strings).
            assert mode == GenerationMode.NEGATIVE and cases == 0, (label, mode)


STATEFUL_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=6,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: replays meet the job store as earlier runs left it, so hypothesis would call them flaky.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
"""Scenarios of up to six calls chained by the links schemathesis infers (a job made, then read, canceled, its
captions asked for...), every check but positive_data_acceptance (see CHECKS) on every step."""


@pytest.mark.slow
def test_fuzz_stateful(target: FuzzTarget) -> None:
    """The stateful phase of `schemathesis run --checks all`: whatever a client does in sequence, every answer is as
    documented, a deleted resource stays gone (use_after_free), a made one is there (ensure_resource_availability)."""
    from schemathesis.checks import ensure_resource_availability

    schema = schemathesis.openapi.from_dict(target.app.test_client().get("/openapi.json").get_json())
    headers = {"Authorization": f"Bearer {FUZZ_KEY}"} if target.keyed else {}

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"app": target.app, "headers": headers}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(response, checks=[*CHECKS, ensure_resource_availability], headers=headers)

        def teardown(self) -> None:
            # Each scenario starts from an empty store: what one left (jobs in a listing) must not steer the next.
            services_of(target.app).redis.flushdb()

    Scenario.run(settings=STATEFUL_SETTINGS)


# --- regressions: 500s and non-JSON answers found while fuzzing, from bodies schemathesis does not send ------------


def _nested(depth: int) -> str:
    """``depth`` objects, one inside the other."""
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("data", "code"),
    [
        # NaN and Infinity are not JSON; taken into metadata they were echoed in bodies no client could parse.
        pytest.param('{"text": "Hi.", "metadata": {"x": NaN}}', "invalid_json", id="nan-in-metadata"),
        pytest.param('{"text": "Hi.", "metadata": {"x": -Infinity}}', "invalid_json", id="infinity-in-metadata"),
        pytest.param('{"text": "Hi.", "metadata": {"x": 1e400}}', "invalid_json", id="overflow-in-metadata"),
        pytest.param('{"text": "Hi.", "speed": NaN}', "invalid_json", id="nan-speed"),
        # Metadata nested past pydantic's serialization depth (~250) was a 500 when the job was recorded.
        pytest.param('{"text": "Hi.", "metadata": ' + _nested(300) + "}", "invalid_metadata", id="objects-300-deep"),
        pytest.param(
            '{"text": "Hi.", "metadata": {"x": ' + "[" * 300 + "]" * 300 + "}}",
            "invalid_metadata",
            id="arrays-300-deep",
        ),
        pytest.param('{"text": "Hi.", "metadata": ' + _nested(33) + "}", "invalid_metadata", id="one-level-too-deep"),
        # A lone surrogate in metadata was a 500 (UnicodeEncodeError) when its size was measured.
        pytest.param('{"text": "Hi.", "metadata": {"x": "\\ud800"}}', "invalid_metadata", id="surrogate-value"),
        pytest.param('{"text": "Hi.", "metadata": {"\\udfff": 1}}', "invalid_metadata", id="surrogate-key"),
    ],
)
def test_bodies_that_were_500s_or_not_json_are_400(client, redis_client, data: str, code: str) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.post("/v1/jobs", data=data, content_type="application/json"), 400, code)
    assert redis_client.llen("ttsqtest:speaker.joe") == 0


def test_metadata_as_deep_as_documented_is_kept(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/jobs", data='{"text": "Hi.", "metadata": ' + _nested(32) + "}", content_type="application/json"
    )
    assert response.status_code == 202
    job = client.get(response.headers["Location"]).get_json()
    depth, node = 0, job["metadata"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["a"]
    assert depth == 32


def test_null_speaker_is_the_documented_default(client) -> None:  # type: ignore[no-untyped-def]
    # Accepted as the default speaker, but the document said a string only (schemathesis: ST201).
    assert openapi_document()["components"]["schemas"]["JobRequest"]["properties"]["speaker"]["nullable"] is True
    response = client.post("/v1/jobs", json={"text": "Hi.", "speaker": None})
    assert response.status_code == 202
    assert response.get_json()["speaker"] == "joe"
