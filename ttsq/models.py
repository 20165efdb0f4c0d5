"""What a job is, as stored and as the API reports it: plain data, no Redis."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel

JOB_ID = re.compile(r"[0-9a-f]{32}")
"""What ``new_job_id`` makes; anything else names no job."""


@dataclass(frozen=True)
class QueuedMessage:
    """A task message as kombu's Redis transport pushes it. The broker is the job store's Redis, so the Lua step that
    records a job pushes its first message, and the one that ends a task's turn its next (issue 12): no job is ever
    recorded, or handed from one task to the next, without one."""

    queue: str
    """The Redis list kombu's consumer reads (the queue's own name: priority 0)."""
    payload: str


class JobStatus(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled)


class Progress(BaseModel):
    chunks_done: int = 0
    chunks_total: int | None = None
    audio_s: float = 0.0
    eta_s: float | None = None
    """Seconds of synthesis left, from the throughput measured so far."""


class JobError(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    key: str
    format: str
    duration_s: float
    sample_rate: int
    size_bytes: int
    marks: list[dict[str, Any]] | None = None
    """Where each paragraph or heading starts (``{paragraph, heading, start_s, text}``), when asked for."""
    chapters: list[dict[str, Any]] = []
    """``{title, start_s, end_s}`` of each level-1 heading (``# `` line); empty for a text without any."""
    captions: dict[str, str] = {}
    """Caption format ("vtt", "srt") -> its storage key: one cue per sentence."""


class WebhookState(BaseModel):
    """How the job's end event is being delivered (the receiver's bodies are never kept)."""

    attempts: int = 0
    last_status: int | None = None
    """HTTP status of the last attempt; None when it got no answer (refused, timeout, network error)."""
    last_error: str | None = None
    delivered_at: float | None = None
    failed: bool = False
    """No more attempts will be made."""


class Job(BaseModel):
    """Everything known about one job, as stored and as the API reports it."""

    id: str
    status: JobStatus = JobStatus.queued
    speaker: str
    format: str = "wav"
    speed: float = 1.0
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    marks: bool = False
    text_chars: int
    queue: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    """Starts of the job's current task (plan, segment or assembly), reset when one finishes: its worker-lost count."""
    restarts: int = 0
    """Tasks started again after their worker died, over the whole job (what a user reads as attempts)."""
    worker: str | None = None
    progress: Progress = Progress()
    error: JobError | None = None
    result: JobResult | None = None
    segments_total: int | None = None
    synth_s: float = 0.0
    """Wall seconds spent synthesizing so far, over all segments (for the ETA)."""
    in_task: bool = False
    """A task is working on the job now (as opposed to its next segment waiting in the queue)."""
    owner: str | None = None
    """Name of the API key that created the job; None when the API runs without keys."""
    webhook_url: str | None = None
    metadata: dict[str, Any] | None = None
    """The client's own object, echoed back in the status and the webhook event."""
    input_format: str = "text"
    """How the stored text is read: "ssml" is parsed at planning (for its exact breaks); every other format was
    read into plain text (``engine.documents``) when the job was made, and is named here for the job's view."""
    title: str | None = None
    """The document's title (EPUB, HTML, Markdown front matter), for the output's tags."""
    author: str | None = None
    cover_type: str | None = None
    """The media type of the document's cover, stored under ``cover_key(id)``; None: no cover."""
    webhook: WebhookState | None = None


def new_job_id() -> str:
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    return JOB_ID.fullmatch(value) is not None


def encode_fields(fields: dict[str, Any]) -> dict[Any, Any]:
    """Each field JSON-encoded, so a partial update never needs a read first (and scripts compare encoded values)."""
    return {k: json.dumps(v) for k, v in fields.items()}


def decode_job(raw: dict[Any, Any]) -> Job:
    """A record read back: its field values (each a JSON text, ``encode_fields``) parsed as one JSON array, in one
    call. A record is read on every poll and at each run's start, and a ``json.loads`` a field took 4x as long as
    the rest (issue 12). A value that is not one JSON text is refused, as before (the count guards the join), but
    for two damaged side by side so that they make two texts between them (``"a`` and ``b"``): no writer makes
    either, and whoever can write Redis can write a whole record."""
    values = json.loads(b"[" + b",".join(_as_bytes(v) for v in raw.values()) + b"]")
    if len(values) != len(raw):
        raise ValueError(f"a record's {len(raw)} fields held {len(values)} JSON values")
    return Job.model_validate({as_text(k): v for k, v in zip(raw, values, strict=True)})


def iso(timestamp: float | None) -> str | None:
    """A timestamp as the API and webhook events show it: UTC, milliseconds, ``Z``."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_text(value: bytes | str) -> str:
    """A Redis reply's bytes (or a decoded client's str) as str."""
    return value.decode() if isinstance(value, bytes) else value


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


ACTIVE_STATUSES = tuple(s for s in JobStatus if not s.terminal)
ENDED_STATUSES = tuple(s for s in JobStatus if s.terminal)
