"""A small HTTP client of a running ttsq server, used by ``ttsq submit`` and ``ttsq demo``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

LONG_POLL_S = 25
UNHELD_POLL_S = 1.0
"""A poll answered sooner than this with nothing new (a server that cannot hold polls: gunicorn's sync workers
answer at once) is sent again only after it, not in a tight loop."""


class ClientError(Exception):
    pass


def _check(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = f"HTTP {response.status_code} {error.get('code', '')}: {error.get('message', response.text[:200])}"
        if response.status_code == 401:
            message += " (give the key with --api-key or TTSQ_API_KEY)"
        raise ClientError(message)
    return body  # type: ignore[no-any-return]


def _auth(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def submit(
    base_url: str,
    text: str,
    speaker: str | None = None,
    speed: float = 1.0,
    api_key: str | None = None,
    idempotency_key: str | None = None,
    options: dict[str, Any] | None = None,
    wait_s: float = 0,
) -> dict[str, Any]:
    """Queue a job; ``options`` are further fields of the job request (format, marks, webhook_url, metadata).
    ``wait_s``: the answer is held until the job ends or that many seconds pass (``Prefer: wait``, at most 30)."""
    body: dict[str, Any] = {"text": text, "speed": speed, **(options or {})}
    if speaker:
        body["speaker"] = speaker
    headers = _auth(api_key)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if wait_s:
        headers["Prefer"] = f"wait={wait_s:g}"
    return _check(requests.post(f"{base_url}/v1/jobs", json=body, headers=headers, timeout=wait_s + 30))


def get_job(base_url: str, job_id: str, wait_s: float = 0, api_key: str | None = None) -> dict[str, Any]:
    """The job; with ``wait_s`` the server answers as soon as it changes (long polling)."""
    return _poll(base_url, job_id, wait_s, api_key)[0]


def wait(
    base_url: str,
    job_id: str,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    timeout_s: float = 3600,
    api_key: str | None = None,
) -> dict[str, Any]:
    """Long-poll the job to its end, each poll sent with the version last seen (its ETag as ``If-None-Match``): a
    change between two polls is answered at once, not at the next one."""
    deadline = time.monotonic() + timeout_s
    job, tag = _poll(base_url, job_id, 0, api_key)
    while True:
        if on_update:
            on_update(job)
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        if time.monotonic() > deadline:
            raise ClientError(f"job {job_id} did not finish within {timeout_s:.0f} s")
        asked, last = time.monotonic(), tag
        job, tag = _poll(base_url, job_id, LONG_POLL_S, api_key, (job, tag))
        if tag == last and (held_s := time.monotonic() - asked) < UNHELD_POLL_S:
            time.sleep(UNHELD_POLL_S - held_s)


def _poll(
    base_url: str, job_id: str, wait_s: float, api_key: str | None, seen: tuple[dict[str, Any], str | None] = ({}, None)
) -> tuple[dict[str, Any], str | None]:
    """The job and its ETag; ``seen`` (the job and tag last read) again when the server answers 304."""
    headers = _auth(api_key)
    if seen[1]:
        headers["If-None-Match"] = seen[1]
    params = {"wait": wait_s} if wait_s else None
    url = f"{base_url}/v1/jobs/{job_id}"
    response = requests.get(url, params=params, headers=headers, timeout=wait_s + 30)
    if response.status_code == 304 and seen[1]:
        return seen
    return _check(response), response.headers.get("ETag")


def download(url: str, dest: Path) -> Path:
    with requests.get(url, stream=True, timeout=60) as response:
        if response.status_code >= 400:
            _check(response)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as out:
            for block in response.iter_content(1 << 16):
                out.write(block)
    return dest


def wait_ready(base_url: str, timeout_s: float = 120, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise ClientError("the server exited before it was ready")
        try:
            if requests.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise ClientError(f"{base_url} was not ready within {timeout_s:.0f} s")
