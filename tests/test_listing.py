"""GET /v1/jobs: only the caller's jobs, newest first, cursor pagination that neither skips nor repeats."""

from __future__ import annotations

import pytest
from conftest import ALICE, BOB

from api import create_app
from ttsq.config import load_config


@pytest.fixture()
def keyed_client(keyed_env):  # type: ignore[no-untyped-def]
    app = create_app(load_config({**keyed_env, "TTSQ_RATE_LIMIT_PER_MIN": "0", "TTSQ_MAX_ACTIVE_JOBS": "0"}))
    app.config["TESTING"] = True
    return app.test_client()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _submit(client, key: str, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(n):
        answer = client.post("/v1/jobs", json={"text": f"Job number {i}."}, headers=_auth(key))
        assert answer.status_code == 202
        ids.append(answer.get_json()["id"])
    return ids


def _all_pages(client, key: str, limit: int, status: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        query = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        if status:
            query["status"] = status
        page = client.get("/v1/jobs", query_string=query, headers=_auth(key)).get_json()
        assert len(page["jobs"]) <= limit
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


def test_a_key_lists_only_its_own_jobs_newest_first(keyed_client) -> None:  # type: ignore[no-untyped-def]
    alice = _submit(keyed_client, ALICE, 5)
    bob = _submit(keyed_client, BOB, 3)
    assert _all_pages(keyed_client, ALICE, 100) == alice[::-1]
    assert _all_pages(keyed_client, BOB, 100) == bob[::-1]
    assert keyed_client.get("/v1/jobs").status_code == 401


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_pages_neither_skip_nor_repeat(keyed_client, limit: int) -> None:  # type: ignore[no-untyped-def]
    ids = _submit(keyed_client, ALICE, 7)
    assert _all_pages(keyed_client, ALICE, limit) == ids[::-1]


def test_a_job_added_between_pages_does_not_shift_the_next_page(keyed_client) -> None:  # type: ignore[no-untyped-def]
    ids = _submit(keyed_client, ALICE, 4)
    first = keyed_client.get("/v1/jobs", query_string={"limit": "2"}, headers=_auth(ALICE)).get_json()
    _submit(keyed_client, ALICE, 1)
    second = keyed_client.get(
        "/v1/jobs", query_string={"limit": "2", "cursor": first["next_cursor"]}, headers=_auth(ALICE)
    ).get_json()
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == ids[::-1]


def test_status_filter_and_canceled_jobs(keyed_client) -> None:  # type: ignore[no-untyped-def]
    ids = _submit(keyed_client, ALICE, 6)
    for job_id in ids[::2]:
        assert keyed_client.post(f"/v1/jobs/{job_id}/cancel", headers=_auth(ALICE)).status_code == 202
    assert _all_pages(keyed_client, ALICE, 2, "canceled") == ids[::2][::-1]
    assert _all_pages(keyed_client, ALICE, 2, "queued") == ids[1::2][::-1]
    assert _all_pages(keyed_client, ALICE, 2, "succeeded") == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "101"}, "invalid_limit"),
        ({"limit": "\uff11"}, "invalid_limit"),  # a fullwidth 1
        ({"status": "done"}, "invalid_status"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "MTox"}, "invalid_cursor"),
    ],
)
def test_bad_parameters_are_400s(keyed_client, query: dict[str, str], code: str) -> None:  # type: ignore[no-untyped-def]
    answer = keyed_client.get("/v1/jobs", query_string=query, headers=_auth(ALICE))
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] == code


def test_without_keys_the_loopback_caller_sees_the_jobs(client) -> None:  # type: ignore[no-untyped-def]
    ids = [client.post("/v1/jobs", json={"text": "Hi."}).get_json()["id"] for _ in range(2)]
    assert [job["id"] for job in client.get("/v1/jobs").get_json()["jobs"]] == ids[::-1]
