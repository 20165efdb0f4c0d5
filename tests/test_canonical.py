"""Inputs are taken in the forms the OpenAPI document describes, and no others (issue 17, defect 5)."""

from __future__ import annotations

import pytest
from test_api import assert_error

from ttsq import signing
from ttsq.credentials import secret_key


@pytest.fixture()
def link(config):  # type: ignore[no-untyped-def]
    key = "b" * 32 + ".wav"
    expires, signature = signing.sign(secret_key(config), key, 600)
    return key, expires, signature


def test_a_signed_link_is_answered_only_as_issued(client, link) -> None:  # type: ignore[no-untyped-def]
    key, expires, signature = link
    # As issued: the signature holds (the file is just missing).
    assert_error(client.get(f"/v1/files/{key}?expires={expires}&signature={signature}"), 404, "file_not_found")
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in str(expires))
    for spelled in ("-0", f"0{expires}", f"+{expires}", f"%20{expires}", f"{expires}%20", fullwidth):
        response = client.get(f"/v1/files/{key}?expires={spelled}&signature={signature}")
        assert_error(response, 403, "invalid_signature")
    twice = f"/v1/files/{key}?expires={expires}&expires={expires}&signature={signature}"
    assert_error(client.get(twice), 403, "invalid_signature")
    two_signatures = f"/v1/files/{key}?expires={expires}&signature={signature}&signature=x"
    assert_error(client.get(two_signatures), 403, "invalid_signature")


@pytest.mark.parametrize("wait", ["1_0", "\uff15", " 5", "5 ", "+5", "nan", "inf", "0x1", "1e400", ""])
def test_wait_is_a_plain_number(client, wait) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get(f"/v1/jobs/{'0' * 32}", query_string={"wait": wait}), 400, "invalid_wait")


def test_wait_given_twice_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get(f"/v1/jobs/{'0' * 32}?wait=1&wait=2"), 400, "invalid_wait")


@pytest.mark.parametrize("wait", ["0", "0.5", "2", "1e-05", "3.0E1"])
def test_wait_takes_json_numbers(client, wait) -> None:  # type: ignore[no-untyped-def]
    assert_error(client.get(f"/v1/jobs/{'0' * 32}", query_string={"wait": wait}), 404, "job_not_found")


def test_the_document_says_what_the_server_takes_for_a_webhook_url(client) -> None:  # type: ignore[no-untyped-def]
    import re

    schema = client.get("/openapi.json").get_json()["components"]["schemas"]["JobRequest"]["properties"]["webhook_url"]
    pattern = re.compile(schema["pattern"])
    assert pattern.search("https://example.com/hook?x=%C3%A9")
    for refused in ("https://exämple.com/hook", "https://example.com/a b", "ftp://example.com/"):
        assert not pattern.search(refused)
        response = client.post("/v1/jobs", json={"text": "Hi.", "webhook_url": refused})
        assert_error(response, 400, "invalid_webhook_url")
