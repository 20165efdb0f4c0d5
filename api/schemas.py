"""Request bodies and the job's public representation."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from flask import request
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from engine.constants import MAX_SPEED, MIN_SPEED
from engine.errors import InvalidInputError
from engine.text.clean import check_speakable
from ttsq.models import Job, iso
from ttsq.storage.base import OUTPUT_FORMATS
from ttsq.webhooks.policy import WebhookRefused, check_written_address

from .errors import ApiError


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StrictStr
    speaker: StrictStr | None = None
    format: StrictStr = "wav"
    speed: StrictFloat | StrictInt = 1.0
    noise_scale: StrictFloat | StrictInt | None = None
    noise_w_scale: StrictFloat | StrictInt | None = None
    marks: StrictBool = False
    webhook_url: StrictStr | None = None
    metadata: dict[str, Any] | None = None
    input_format: StrictStr = "text"
    """How ``text`` is written: text, markdown, html or ssml (issue 14)."""


MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
"""Levels of objects and arrays in metadata: pydantic cannot serialize a job past about 250 (a 500 found by fuzzing)."""


JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
"""A JSON number in ASCII: float() alone would also take "1_0", " 5", "+5" and fullwidth digits."""


def loads_json(data: str | bytes) -> Any:
    """JSON as RFC 8259 has it: no NaN or Infinity, no number too large for a float; ValueError otherwise."""
    return json.loads(data, parse_constant=_not_json, parse_float=_finite_float)


def read_json_body() -> Any:
    """The request's JSON, parsed here so that every way it can be malformed is a 4xx."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json, or a document as multipart/form-data",
        )
    try:
        return loads_json(request.get_data(cache=False))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError is deep nesting
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def _not_json(name: str) -> float:
    """NaN and Infinity are not JSON (RFC 8259): taken into metadata, they came back in bodies no client can parse."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf
        raise ValueError(f"{text} is out of range")
    return value


def parse_job_request(body: Any, webhook_allow: Sequence[str] = ()) -> JobRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the request body must be a JSON object")
    try:
        request = JobRequest.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{where}: {first['msg']}") from None
    if request.format not in OUTPUT_FORMATS:
        raise ApiError(
            400,
            "invalid_format",
            f"format {request.format!r} is not supported; expected one of: {', '.join(OUTPUT_FORMATS)}",
        )
    if not MIN_SPEED <= request.speed <= MAX_SPEED:
        raise ApiError(
            400, "invalid_speed", f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {request.speed!r}"
        )
    for name in ("noise_scale", "noise_w_scale"):
        value = getattr(request, name)
        if value is not None and not 0 <= value <= 2:
            raise ApiError(400, "invalid_noise", f"{name} must be between 0 and 2, got {value!r}")
    if request.webhook_url is not None:
        check_webhook_url(request.webhook_url, webhook_allow)
    if request.metadata is not None:
        size = _metadata_size(request.metadata)
        if size > MAX_METADATA_BYTES:
            raise ApiError(
                400, "metadata_too_large", f"metadata is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}"
            )
    check_text(request.text)
    return request


def check_text(text: str) -> None:
    """The text (a document's, once read) has something to speak."""
    if not text.strip():
        raise ApiError(400, "empty_text", "text is empty or only whitespace")
    try:
        check_speakable(text)
    except InvalidInputError as error:
        raise ApiError(400, "invalid_text", str(error)) from None


def _metadata_size(metadata: dict[str, Any]) -> int:
    """Bytes of metadata as UTF-8 JSON, once its depth and text are known to survive storage and serialization."""
    if _nests_deeper_than(metadata, MAX_METADATA_DEPTH):
        raise ApiError(
            400, "invalid_metadata", f"metadata nests more than {MAX_METADATA_DEPTH} levels of objects and arrays"
        )
    try:
        return len(json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (\ud800 to \udfff) in a key or a string
        raise ApiError(
            400, "invalid_metadata", "metadata has text that is not valid Unicode (a lone surrogate)"
        ) from None


def _nests_deeper_than(value: Any, limit: int) -> bool:
    """Whether dicts and lists nest past ``limit`` levels; walked without recursion (a body can nest ~1000 deep)."""
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def check_webhook_url(url: str, allow: Sequence[str] = ()) -> None:
    """The URL's shape, and an address written in it, by the delivery's own rules; where a name resolves to is
    checked at each delivery (DNS can change meanwhile)."""
    try:
        check_written_address(url, allow)
    except WebhookRefused as error:
        raise ApiError(400, "invalid_webhook_url", str(error)) from None


def job_view(job: Job, result_link: dict[str, Any] | None, waiting_for_worker: bool = False) -> dict[str, Any]:
    progress = job.progress
    fraction = None
    if progress.chunks_total:
        fraction = round(progress.chunks_done / progress.chunks_total, 4)
    elif job.status.value == "succeeded":
        fraction = 1.0
    view: dict[str, Any] = {
        "id": job.id,
        "status": job.status.value,
        "speaker": job.speaker,
        "format": job.format,
        "speed": job.speed,
        "marks": job.marks,
        "text_chars": job.text_chars,
        "input_format": job.input_format,
        "title": job.title,
        "author": job.author,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempts": (1 + job.restarts) if job.started_at is not None else 0,
        "waiting_for_worker": waiting_for_worker,
        "progress": {**progress.model_dump(), "fraction": fraction},
        "error": job.error.model_dump() if job.error else None,
        "result": None,
        "metadata": job.metadata,
        "webhook_url": job.webhook_url,
        "webhook": {**job.webhook.model_dump(), "delivered_at": iso(job.webhook.delivered_at)} if job.webhook else None,
        "links": {"self": f"/v1/jobs/{job.id}"},
    }
    if job.result and result_link:
        # Storage keys stay inside: captions are links, made with the audio's (result_link's "captions").
        view["result"] = {**job.result.model_dump(exclude={"key", "captions"}), **result_link}
    return view


def view_etag(view: dict[str, Any]) -> str:
    """The version of a ``job_view`` (a weak tag: a dict's order aside): a client's ``If-None-Match`` cursor for long
    polls (issue 12). Internal fields (heartbeats, locks) are not in a view; a result's links, signed afresh on every
    answer, are, so a succeeded job is never answered 304 with a link that may have expired."""
    shown = json.dumps(view, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(shown.encode(), digest_size=8).hexdigest()
