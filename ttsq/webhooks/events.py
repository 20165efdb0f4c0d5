"""A job's end event, and its signature: built and signed by ttsq, verified by receivers.

Header scheme (like Stripe's): ``Ttsq-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256(secret, ``<t>`` + ``.`` + raw body). Receivers recompute it over the exact bytes received, compare in
constant time, and reject a ``t`` more than a few minutes from their clock (a replayed request). ``v1`` may appear
more than once (while a secret is being rotated); any match is enough.

A receiver installs ttsq only to call :func:`verify`: this module needs pydantic, never Redis, Celery or Prometheus.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any

from pydantic import BaseModel

from ttsq.models import Job, JobError, JobStatus, iso

SIGNATURE_HEADER = "Ttsq-Signature"
EVENT_HEADER = "Ttsq-Event"
EVENT_ID_HEADER = "Ttsq-Event-Id"
DEFAULT_TOLERANCE_S = 300
"""How far a signature's timestamp may be from the receiver's clock before it is taken for a replay."""
_HEX64 = re.compile(r"[0-9a-f]{64}")


class EventResult(BaseModel):
    url: str
    url_expires_at: str
    duration_s: float
    size_bytes: int
    format: str
    sample_rate: int
    chapters: list[dict[str, Any]] = []
    """As in the job's result: ``[{title, start_s, end_s}]``, empty for a text without chapters."""


class WebhookEvent(BaseModel):
    """The JSON body POSTed when a job ends. ``id`` is the same on every attempt: receivers dedupe on it."""

    id: str
    type: str
    """``job.succeeded``, ``job.failed`` or ``job.canceled``."""
    job_id: str
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    result: EventResult | None = None
    error: JobError | None = None
    metadata: dict[str, Any] | None = None


def build_event(job: Job, result_url: str | None = None, url_expires_at: float | None = None) -> dict[str, Any]:
    """The event for an ended job; a succeeded job's result carries a fresh signed link."""
    if not job.status.terminal:
        raise ValueError(f"job {job.id} has not ended (status {job.status.value!r}); only ended jobs have events")
    result = None
    if job.status == JobStatus.succeeded and job.result is not None and result_url is not None:
        result = EventResult(
            url=result_url,
            url_expires_at=iso(url_expires_at) or "",
            duration_s=job.result.duration_s,
            size_bytes=job.result.size_bytes,
            format=job.result.format,
            sample_rate=job.result.sample_rate,
            chapters=job.result.chapters,
        )
    event = WebhookEvent(
        id=f"{job.id}.{job.status.value}",
        type=f"job.{job.status.value}",
        job_id=job.id,
        status=job.status.value,
        created_at=iso(job.created_at),
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        result=result,
        error=job.error,
        metadata=job.metadata,
    )
    return event.model_dump(mode="json")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(
    secret: bytes | str,
    header_value: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True only for a ``Ttsq-Signature`` made with ``secret`` over ``body``, timestamped within ``tolerance_s``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    fields = [part.strip().split("=", 1) for part in header_value.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(key, timestamp, body)
    return any(
        hmac.compare_digest(expected, value) for name, value in fields if name == "v1" and _HEX64.fullmatch(value)
    )
