"""The delivery of one job's end event: the next attempt, fenced by a lock and recorded in the job."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis

from ttsq.jobs import locks
from ttsq.jobs.store import JobStore
from ttsq.metrics.record import record_webhook
from ttsq.models import Job, JobStatus, WebhookState

from .events import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, build_event, signature_header
from .policy import WebhookRefused, check_destination
from .transport import USER_AGENT, AttemptOutcome, Timeouts, post_once

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
"""No wait between attempts is longer than this, however many attempts are configured."""
LOCK_MARGIN_S = 30.0
"""The delivery lock outlives the longest attempt (``2 * timeout_s``) by this much."""

ResultLink = Callable[[Job], tuple[str, float] | None]
"""A fresh (url, expires_at) for a succeeded job's audio."""


@dataclass(frozen=True)
class WebhookSettings:
    secret: bytes
    allow: tuple[str, ...] = ()
    """Hosts or CIDR networks that may be reached although private, loopback or link-local."""
    max_attempts: int = 8
    backoff_s: float = 2.0
    """Delay cap before the second attempt; doubled for each one after, with full jitter."""
    timeout_s: float = 5.0
    """Connect timeout, and read timeout for the response's status and headers; an attempt takes at most twice it."""

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(connect_s=self.timeout_s, read_s=self.timeout_s, total_s=2 * self.timeout_s)


def backoff_s(
    attempt: int, base_s: float, cap_s: float = MAX_BACKOFF_S, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: a wait drawn from [0, min(cap, base * 2^(attempt-1))] after failed attempt number ``attempt``."""
    return rand() * min(cap_s, base_s * 2 ** max(0, attempt - 1))


def deliver(
    store: JobStore,
    job_id: str,
    settings: WebhookSettings,
    url_for_result: ResultLink,
    expected_attempt: int | None = None,
) -> AttemptOutcome:
    """Make the next attempt to deliver the job's end event and record it in the job (``webhook``).

    The outcome's ``retry`` says whether the caller should schedule another attempt (False once attempts run out).
    A job without a webhook, already delivered, given up on, or being delivered elsewhere gets no attempt; so does
    a task for ``expected_attempt`` when the job has moved past it (a duplicate of an attempt already made)."""
    lock = store.keys.webhook_lock(job_id)
    token = uuid.uuid4().hex
    if not locks.acquire(store.redis, lock, token, settings.timeout_s * 2 + LOCK_MARGIN_S):
        return AttemptOutcome(error="an attempt is in progress elsewhere")
    try:
        # Read and record under the lock, so a second task never repeats an attempt that just ended.
        job = store.get(job_id)
        if job is None or not job.webhook_url or not job.status.terminal:
            store.webhook_settled(job_id)
            return AttemptOutcome(error="no ended job with a webhook_url")
        state = job.webhook or WebhookState()
        if state.delivered_at is not None or state.failed:
            store.webhook_settled(job_id)
            return AttemptOutcome(error="already delivered or given up")
        if expected_attempt is not None and expected_attempt != state.attempts + 1:
            return AttemptOutcome(error=f"attempt {expected_attempt} was made already")
        outcome = replace(_attempt(job, settings, url_for_result), attempt=state.attempts + 1)
        if outcome.retry and outcome.attempt >= settings.max_attempts:
            outcome = replace(outcome, retry=False)
        record = WebhookState(
            attempts=outcome.attempt,
            last_status=outcome.status_code,
            last_error=outcome.error,
            delivered_at=time.time() if outcome.delivered else None,
            failed=not outcome.delivered and not outcome.retry,
        )
        # Only while the record exists: a job removed meanwhile (retention) must not come back as a fragment.
        store.update_if(job_id, tuple(s for s in JobStatus if s.terminal), webhook=record.model_dump())
        if not outcome.retry:
            store.webhook_settled(job_id)
    finally:
        locks.release(store.redis, lock, token)
    log = logger.info if outcome.delivered or outcome.retry else logger.warning
    log("%s: webhook attempt %d: %s", job_id, outcome.attempt, outcome.error or f"HTTP {outcome.status_code}")
    _count(store, job_id, outcome)
    return outcome


def _count(store: JobStore, job_id: str, outcome: AttemptOutcome) -> None:
    """Metrics are best effort: a failure to count never changes a delivery."""
    try:
        record_webhook(store.redis, store.prefix, outcome.label)
    except redis.RedisError as error:
        logger.warning("%s: could not count the webhook attempt: %s", job_id, error)


def _attempt(job: Job, settings: WebhookSettings, url_for_result: ResultLink) -> AttemptOutcome:
    try:
        destination = check_destination(job.webhook_url or "", settings.allow)
    except WebhookRefused as error:
        return AttemptOutcome(error=str(error), retry=False, refused=True)
    except OSError as error:  # DNS can fail for a moment
        return AttemptOutcome(error=f"could not resolve the host: {error}", retry=True)
    link = url_for_result(job) if job.status == JobStatus.succeeded else None
    event = build_event(job, *(link or (None, None)))
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Connection": "close",
        EVENT_HEADER: event["type"],
        EVENT_ID_HEADER: event["id"],
        SIGNATURE_HEADER: signature_header(settings.secret, int(time.time()), body),
    }
    return post_once(destination, body, headers, settings.timeouts)
