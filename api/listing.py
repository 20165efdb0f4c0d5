"""``GET /v1/jobs``: the caller's own jobs, newest first, a page at a time (for the console and for clients)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask.typing import ResponseReturnValue

from ttsq.links import result_link
from ttsq.models import Job, JobStatus, decode_job, iso

from . import access
from .errors import ApiError
from .schemas import job_view
from .services import services

bp = Blueprint("listing", __name__, url_prefix="/v1")
bp.before_request(access.authenticate)

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
SCAN_FACTOR = 5
"""With a status filter, at most this many pages' worth of jobs are read to fill one page (the cursor goes on)."""
CURSOR = re.compile(r"(?P<score>[0-9]+(?:\.[0-9]+)?):(?P<id>[0-9a-f]{32})")


@bp.get("/jobs")
def list_jobs() -> ResponseReturnValue:
    s = services()
    limit = _limit(request.args.getlist("limit"))
    status = _status(request.args.getlist("status"))
    after = _cursor(request.args.getlist("cursor"))
    key = s.config.keys.owner_jobs(g.get("owner"))
    jobs: list[Job] = []
    scanned, exhausted = after, False
    for _ in range(SCAN_FACTOR):
        batch = _page(key, scanned, limit + 1)
        for (job_id, score), job in zip(batch, _records([job_id for job_id, _ in batch]), strict=True):
            scanned = (score, job_id)
            if job is None:
                s.redis.zrem(key, job_id)  # removed by retention: its index entry goes too
            elif status is None or job.status == status:
                jobs.append(job)
                if len(jobs) > limit:
                    break
        if len(jobs) > limit or len(batch) <= limit:
            exhausted = len(jobs) <= limit
            break
    if len(jobs) > limit:
        jobs = jobs[:limit]
        next_cursor: str | None = _encode((jobs[-1].created_at, jobs[-1].id))
    else:  # the index ran out, or the scan budget did (then the next page goes on from where it stopped)
        next_cursor = None if exhausted or scanned is None else _encode(scanned)
    return jsonify({"jobs": [job_view(job, _link(job)) for job in jobs], "next_cursor": next_cursor})


def _page(key: str, after: tuple[float, str] | None, count: int) -> list[tuple[str, float]]:
    """Up to ``count`` (id, created_at) newest first, strictly after the cursor (ties broken by id)."""
    s = services()
    top = "+inf" if after is None else str(after[0])
    # A few more than asked: entries of the cursor's own score that came before it are dropped below.
    raw: Any = s.redis.zrevrangebyscore(key, top, "-inf", start=0, num=count + 8, withscores=True)
    page = [(member.decode(), float(score)) for member, score in raw]
    if after is not None:
        page = [(job_id, score) for job_id, score in page if (score, job_id) < (after[0], after[1])]
    return page[:count]


def _records(ids: list[str]) -> list[Job | None]:
    s = services()
    with s.redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hgetall(s.config.keys.job(job_id))
        raws = pipe.execute()
    jobs: list[Job | None] = []
    for raw in raws:
        try:
            jobs.append(decode_job(raw) if raw else None)
        except ValueError:
            jobs.append(None)  # a damaged record reads as gone, as everywhere
    return jobs


def _link(job: Job) -> dict[str, Any] | None:
    if job.status != JobStatus.succeeded or job.result is None:
        return None
    s = services()
    url, expires_at = result_link(s.config, s.storage, s.secret, job.result.key, request.host_url)
    return {"url": url, "url_expires_at": iso(expires_at)}


def _one(given: list[str], name: str) -> str | None:
    if not given:
        return None
    if len(given) > 1:
        raise ApiError(400, f"invalid_{name}", f"{name} given {len(given)} times; give it once")
    return given[0]


def _limit(given: list[str]) -> int:
    raw = _one(given, "limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
        raise ApiError(400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _status(given: list[str]) -> JobStatus | None:
    raw = _one(given, "status")
    if raw is None:
        return None
    try:
        return JobStatus(raw)
    except ValueError:
        names = ", ".join(s.value for s in JobStatus)
        raise ApiError(400, "invalid_status", f"status must be one of: {names}; got {raw!r}") from None


def _cursor(given: list[str]) -> tuple[float, str] | None:
    raw = _one(given, "cursor")
    if raw is None:
        return None
    try:
        match = CURSOR.fullmatch(base64.urlsafe_b64decode(raw.encode("ascii") + b"==").decode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        match = None
    if match is None:
        raise ApiError(400, "invalid_cursor", "cursor must be a next_cursor value from a previous page")
    return float(match["score"]), match["id"]


def _encode(cursor: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(f"{cursor[0]!r}:{cursor[1]}".encode()).decode().rstrip("=")
