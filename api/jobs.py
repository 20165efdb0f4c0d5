"""/v1/jobs and /v1/speakers: create jobs, report their status, list speakers."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from functools import partial
from typing import Any

import redis
from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.http import parse_list_header

from engine.chapters import CAPTION_FORMATS
from ttsq.config import DEFAULT_SPEAKER
from ttsq.jobs.events import Waiter
from ttsq.links import result_link
from ttsq.logs import job_context
from ttsq.models import Job, JobStatus, is_job_id, iso, new_job_id
from ttsq.queue import job_ended, synthesis_message
from ttsq.storage.base import StorageError, cover_key, mime_type

from . import access, idempotency
from .errors import ApiError
from .schemas import JSON_NUMBER, check_text, job_view, parse_job_request, read_json_body, view_etag
from .services import services
from .speakers import known_speakers, waiting_for_worker
from .uploads import Upload, read_inline, read_upload

logger = logging.getLogger(__name__)
bp = Blueprint("jobs", __name__, url_prefix="/v1")
bp.before_request(access.authenticate)


@bp.post("/jobs")
def create_job() -> ResponseReturnValue:
    """A JSON body with ``text``, or (issue 14) a multipart upload of a document with the options as form fields."""
    s = services()
    wait_s = _preferred_wait()
    deadline = time.monotonic() + (wait_s or 0.0)  # RFC 7240: the wait counts from the request
    upload: Upload | None
    if request.mimetype == "multipart/form-data":
        upload = read_upload(s.config)
        body = upload.fingerprint
        req = parse_job_request(upload.body, s.config.webhook_allow)
    else:
        body = read_json_body()
        req = parse_job_request(body, s.config.webhook_allow)
        if len(req.text) > s.config.max_text_chars:
            raise ApiError(
                413, "text_too_long", f"text has {len(req.text)} characters; the limit is {s.config.max_text_chars}"
            )
        upload = read_inline(req.text, req.input_format, s.config)
    document = upload.document if upload is not None else None
    text = document.text if document is not None else req.text
    if document is not None:
        check_text(text)
    speaker = _job_speaker(req.speaker)
    job = Job(
        id=new_job_id(),
        speaker=speaker,
        format=req.format,
        speed=float(req.speed),
        noise_scale=req.noise_scale,
        noise_w_scale=req.noise_w_scale,
        marks=req.marks,
        text_chars=len(text),
        queue=s.config.keys.speaker_queue(speaker),
        created_at=time.time(),
        owner=g.owner,
        webhook_url=req.webhook_url,
        metadata=req.metadata,
        input_format=upload.input_format if upload is not None else "text",
        title=document.title if document is not None else None,
        author=document.author if document is not None else None,
        cover_type=(document.cover_type or "image/jpeg") if document is not None and document.cover else None,
    )
    held = idempotency.claim(body, job.id)
    if held is not None and held.job_id is not None:
        return _replay(held.job_id, wait_s, deadline)
    with ExitStack() as watching:
        try:
            # Watched from before it exists: no change can come before the watch, so the wait starts from the job
            # as made, with no read.
            waiter = _watched(watching, job.id, wait_s)
            text = upload.stored_text if upload is not None else req.text
            _enqueue(job, text, document.cover if document else None, held.redis_key if held else None)
        except BaseException:
            idempotency.release(held)
            raise
        with job_context(job.id):
            logger.info("%s: queued for %s (%d chars)", job.id, speaker, job.text_chars)
        job = _held(job, waiter, deadline)
    return _created_answer(job, wait_s)


def _job_speaker(requested: str | None) -> str:
    """The speaker a job names (the default one if it names none), or 404. A configured one is known whatever the
    workers announce: only another needs their announcements (read at most about once a second) to be known."""
    s = services()
    if (requested or DEFAULT_SPEAKER) in s.config.speakers:
        return requested or DEFAULT_SPEAKER
    known = sorted(known_speakers(s, requested))
    speaker = requested or (DEFAULT_SPEAKER if DEFAULT_SPEAKER in known else known[0])
    if speaker not in known:
        raise ApiError(
            404,
            "unknown_speaker",
            f"unknown speaker {speaker!r}; expected one of: {', '.join(known)}",
            {"speakers": known},
        )
    return speaker


def _enqueue(job: Job, text: str, cover: bytes | None = None, idempotency_key: str | None = None) -> None:
    """Record the job (its Idempotency-Key kept with it), counted against its key's limit and queued, in one step;
    on a refusal nothing is left behind."""
    s = services()
    message = synthesis_message(s.celery, job.id, job.queue)
    if cover is not None:  # for the output's tags; the job's files go with the job
        with s.storage.writer(cover_key(job.id)) as sink:
            sink.write(cover)
    limit = s.config.max_active_jobs if g.get("owner") is not None else 0
    created = False
    try:
        created = s.store.create(job, text, idempotency_key, s.config.retention_s, message, limit)
    finally:
        if not created and cover is not None:
            s.storage.delete(cover_key(job.id))
    if not created:
        raise ApiError(
            429,
            "too_many_jobs",
            f"this key already has {limit} queued or running jobs; wait for one to end",
            headers={"Retry-After": "5"},
        )


def _replay(job_id: str, wait_s: float | None, deadline: float) -> ResponseReturnValue:
    """The job an earlier request with the same Idempotency-Key made, as that request would see it now (held as
    the first one would be, with ``Prefer: wait``)."""
    s = services()
    with ExitStack() as watching:
        waiter = _watched(watching, job_id, wait_s)
        job = s.store.get(job_id)  # read once the watch is in place: no change slips in between
        if job is None:  # the first request is still between claiming the key and recording its job
            raise ApiError(
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
                headers={"Retry-After": "1"},
            )
        job = _held(job, waiter, deadline)
    response, status = _created_answer(job, wait_s)
    response.headers["Idempotent-Replayed"] = "true"
    return response, status


def _watched(stack: ExitStack, job_id: str, wait_s: float | None) -> Waiter | None:
    """A waiter for the job's changes, registered on ``stack`` (None when the request does not wait)."""
    return stack.enter_context(services().events.watch(job_id)) if wait_s else None


def _held(job: Job, waiter: Waiter | None, deadline: float) -> Job:
    """The job once it ends, or at the deadline of its ``Prefer: wait`` (no waiter: no wait). Redis failing meanwhile
    answers the job as last seen: it was made, and an error (503) would have its client make it again."""
    if waiter is None:
        return job
    s = services()
    try:
        return s.events.until_end(s.store, job, waiter, deadline - time.monotonic()) or job
    except redis.RedisError as error:
        logger.warning("%s: answered as it was: Redis failed while the answer was held (%s)", job.id, error)
        return job


def _created_answer(job: Job, wait_s: float | None) -> tuple[Response, int]:
    """A POST's answer: the job as it stands, ``202``; or, held as ``Prefer: wait=S`` asks (RFC 7240: ``wait_s``)
    until it ends or S seconds pass, ``201`` if it ended. A short job's client then needs one request, not a POST
    and a poll or two (issue 12)."""
    s = services()
    link = _result_link(job) if job.status == JobStatus.succeeded else None
    view = job_view(job, link, waiting_for_worker(s, job))
    response = jsonify(view)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.set_etag(view_etag(view), weak=True)  # a first poll's cursor
    if wait_s is not None:
        response.headers["Preference-Applied"] = f"wait={wait_s:g}"
        response.vary.add("Prefer")
    return response, 201 if wait_s is not None and job.status.terminal else 202


def _preferred_wait() -> float | None:
    """The seconds of a ``Prefer: wait=S``, at most ``MAX_WAIT_S``; None without one, or where a request cannot be
    held. A preference is a hint (RFC 7240): one that is not a number of seconds is ignored rather than refused;
    names are case-insensitive, the first ``wait`` counts, its parameters (after ``;``) are not read."""
    if not _can_hold_requests():
        return None
    for preference in parse_list_header(", ".join(request.headers.getlist("Prefer"))):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "wait":
            raw = value.strip().strip('"')
            return min(float(raw), MAX_WAIT_S) if JSON_NUMBER.fullmatch(raw) and not raw.startswith("-") else None
    return None


MAX_WAIT_S = 30.0


@bp.delete("/jobs/<job_id>")
@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str) -> ResponseReturnValue:
    """Stop a queued or running job between sentences; its partial output is removed by its worker."""
    s = services()
    job = _own_job(s.store.get(job_id) if is_job_id(job_id) else None, job_id)
    if not s.store.cancel(job_id):
        job = s.store.get(job_id) or job
        raise ApiError(409, "job_finished", f"the job already ended as {job.status.value}")
    with job_context(job_id):
        logger.info("%s: canceled", job_id)
    job_ended(s.celery, s.config, job)
    return jsonify(job_view(s.store.get(job_id) or job, None)), 202


def _own_job(job: Job | None, job_id: str) -> Job:
    """The job if the caller may see it. Another key's job is 404, as if it did not exist; a job removed by
    retention is 410 to its owner."""
    owner = g.get("owner")
    if job is not None and (owner is None or job.owner == owner):
        return job
    if job is None and is_job_id(job_id):
        gone, gone_owner = services().store.gone_owner(job_id)
        if gone and (owner is None or gone_owner == owner):
            raise ApiError(410, "job_expired", f"job {job_id} ended and was removed after the retention period")
    raise ApiError(404, "job_not_found", f"no job with id {job_id!r}")


@bp.get("/jobs/<job_id>")
def get_job(job_id: str) -> ResponseReturnValue:
    """``?wait=S`` (at most 30) holds the answer until the job changes or ends: progress without busy polling. The
    answer's ``ETag``, sent back as ``If-None-Match``, is the poll's cursor: a job that changed since is answered at
    once, and one that has not is ``304 Not Modified`` (after the wait, while the job can still change). ``*``
    names no version a poll could have seen: it is no cursor. Other preconditions (``If-Match``) are not read."""
    s = services()
    wait_s = _wait_seconds(request.args.getlist("wait")) if _can_hold_requests() else 0.0
    # Ownership first (admit): another key's job must answer 404 at once, like a job that does not exist.
    admit = partial(_own_job, job_id=job_id)
    if not is_job_id(job_id):
        admit(None)  # raises: 404
    cursor = request.if_none_match
    polled = bool(cursor) and not cursor.star_tag

    def seen(job: Job) -> bool:
        return cursor.contains_weak(view_etag(job_view(job, None, waiting_for_worker(s, job))))

    if wait_s:
        job = _own_job(s.events.wait_for_change(s.store, job_id, wait_s, admit, seen if polled else None), job_id)
    else:
        job = admit(s.store.get(job_id))
    link = _result_link(job) if job.status == JobStatus.succeeded else None
    view = job_view(job, link, waiting_for_worker(s, job))
    tag = view_etag(view)
    response = Response(status=304) if polled and cursor.contains_weak(tag) else jsonify(view)
    response.set_etag(tag, weak=True)
    return response


_warned_single_threaded = False


def _can_hold_requests() -> bool:
    """Under gunicorn's sync workers a long poll holds a whole worker: a few waiting clients and the API stops
    answering (even /healthz). There, polls answer at once (clients poll again), and the log says why, once."""
    global _warned_single_threaded
    server = str(request.environ.get("SERVER_SOFTWARE", ""))
    if request.environ.get("wsgi.multithread") or not server.startswith("gunicorn"):
        return True
    if not _warned_single_threaded:
        _warned_single_threaded = True
        logger.warning(
            "gunicorn runs single-threaded workers, so long polls (?wait=, Prefer: wait) are answered at once; run it "
            "with --worker-class gthread --threads 16 (as the README, the image and compose do)"
        )
    return False


def _wait_seconds(given: list[str]) -> float:
    if not given:
        return 0.0
    raw = given[0] if len(given) == 1 else ",".join(given)  # given twice: not a number
    value = float(raw) if JSON_NUMBER.fullmatch(raw) else -1.0
    if not 0 <= value <= MAX_WAIT_S:  # also refuses nan and inf
        raise ApiError(400, "invalid_wait", f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {raw!r}")
    return value


def _result_link(job: Job) -> dict[str, Any] | None:
    """A fresh link each time the job is read, so a client never holds a stale one."""
    s = services()
    if job.result is None:
        return None
    url, expires_at = result_link(s.config, s.storage, s.secret, job.result.key, request.host_url)
    captions = {
        fmt: result_link(s.config, s.storage, s.secret, key, request.host_url)[0]
        for fmt, key in job.result.captions.items()
    }
    return {"url": url, "url_expires_at": iso(expires_at), "captions": captions}


@bp.get("/jobs/<job_id>/captions")
def get_captions(job_id: str) -> ResponseReturnValue:
    """A finished job's captions, one cue per sentence: ``?format=vtt`` (the default) or ``srt``."""
    s = services()
    given = request.args.getlist("format") or ["vtt"]
    fmt = given[0] if len(given) == 1 else ",".join(given)
    if fmt not in CAPTION_FORMATS:
        raise ApiError(
            400,
            "invalid_format",
            f"format {fmt!r} is not a caption format; expected one of: {', '.join(CAPTION_FORMATS)}",
        )
    job = _own_job(s.store.get(job_id) if is_job_id(job_id) else None, job_id)
    if job.status != JobStatus.succeeded or job.result is None:
        raise ApiError(409, "job_not_finished", f"the job is {job.status.value}; captions come with its audio")
    key = job.result.captions.get(fmt)
    if key is None:  # made before captions existed
        raise ApiError(404, "captions_not_found", "this job has no captions")
    try:
        with s.storage.reader(key) as source:
            data = source.read()
    except StorageError:
        raise ApiError(410, "file_expired", "the job's captions were removed") from None
    return Response(data, mimetype=mime_type(key), headers={"Cache-Control": "no-store"})
