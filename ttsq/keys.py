"""Every Redis key and Celery queue name ttsq uses, derived from the deployment's prefix: one home for the layout."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "ttsq:"
ANONYMOUS_OWNER = "-"
"""Whose jobs, rate and idempotency scope they are when the API runs without keys."""


@dataclass(frozen=True)
class Keys:
    """Names under one prefix (``TTSQ_KEY_PREFIX``). Lua scripts get whole names or :attr:`job_base`."""

    prefix: str = DEFAULT_PREFIX

    # --- one job --------------------------------------------------------------------------------------------------
    @property
    def job_base(self) -> str:
        """What a job's record name starts with; its id follows (scripts that read records by id use it)."""
        return f"{self.prefix}job:"

    def job(self, job_id: str) -> str:
        """The job's record: a hash, one JSON-encoded value per field."""
        return f"{self.job_base}{job_id}"

    def text(self, job_id: str) -> str:
        return f"{self.job(job_id)}:text"

    def lock(self, job_id: str) -> str:
        """Held by the one run working on the job; its value is the run's token."""
        return f"{self.job(job_id)}:lock"

    def events(self, job_id: str) -> str:
        """Pub/sub channel: a message whenever the job changes (long polls wait on it)."""
        return f"{self.job(job_id)}:events"

    def gone(self, job_id: str) -> str:
        """Left by retention for a while, so the owner hears 410 rather than 404."""
        return f"{self.job(job_id)}:gone"

    def chunks(self, job_id: str) -> str:
        return f"{self.job(job_id)}:chunks"

    def segments(self, job_id: str) -> str:
        return f"{self.job(job_id)}:segments"

    def segments_done(self, job_id: str) -> str:
        return f"{self.job(job_id)}:done"

    def webhook_lock(self, job_id: str) -> str:
        """Held while one delivery attempt of the job's end event runs."""
        return f"{self.job(job_id)}:webhook-lock"

    # --- sets of jobs ---------------------------------------------------------------------------------------------
    @property
    def active(self) -> str:
        """Set of queued and running jobs."""
        return f"{self.prefix}jobs:active"

    @property
    def finished(self) -> str:
        """Sorted set of ended jobs by end time: what retention walks."""
        return f"{self.prefix}jobs:finished"

    @property
    def finished_backfilled(self) -> str:
        return f"{self.prefix}jobs:finished:backfilled"

    @property
    def webhooks_pending(self) -> str:
        """Sorted set of jobs whose end event is not settled, by when to look again (the outbox)."""
        return f"{self.prefix}webhooks:pending"

    # --- per API key ----------------------------------------------------------------------------------------------
    def rate(self, owner: str, window: int) -> str:
        return f"{self.prefix}rate:{owner}:{window}"

    def owner_active(self, owner: str | None) -> str:
        """Set of the key's queued or running jobs (its concurrency limit)."""
        return f"{self.prefix}owner:{owner or ANONYMOUS_OWNER}:active"

    def owner_jobs(self, owner: str | None) -> str:
        """Sorted set of the key's jobs by creation time: what ``GET /v1/jobs`` pages through, newest first."""
        return f"{self.prefix}owner:{owner or ANONYMOUS_OWNER}:jobs"

    def idempotency(self, owner: str, digest: str) -> str:
        return f"{self.prefix}idem:{owner}:{digest}"

    # --- speech requests (/v1/audio/speech, the WebSocket) ----------------------------------------------------------
    def speech_queue(self, speaker: str) -> str:
        """List of speech requests waiting for a worker that serves ``speaker`` (not a Celery queue: see
        ttsq.speech)."""
        return f"{self.prefix}speech.{speaker}"

    def speech_stream(self, request_id: str) -> str:
        """Stream of one request's audio, worker to API; it expires unless written to."""
        return f"{self.prefix}speech:{request_id}"

    def speech_cancel(self, request_id: str) -> str:
        """Set by the API when the client has gone: the worker stops within a sentence."""
        return f"{self.prefix}speech:{request_id}:cancel"

    # --- workers, metrics, queues ---------------------------------------------------------------------------------
    def worker(self, name: str) -> str:
        """A live worker's announcement, refreshed by its upkeep."""
        return f"{self.prefix}workers:{name}"

    @property
    def workers(self) -> str:
        """The names of announced workers (a sorted set, scored by when each announcement expires), so who is alive
        is read from it rather than by scanning the keyspace; it expires when no worker refreshes it."""
        return f"{self.prefix}workers"

    @property
    def metrics_counters(self) -> str:
        return f"{self.prefix}metrics:counters"

    def metrics_histogram(self, metric: str) -> str:
        return f"{self.prefix}metrics:histogram:{metric}"

    @property
    def metrics_pending(self) -> str:
        """A list of jobs' increments, one entry per job's creation or end, not yet added to the hashes."""
        return f"{self.prefix}metrics:pending"

    def speaker_queue(self, speaker: str) -> str:
        """The Celery queue of the workers that serve ``speaker``."""
        return f"{self.prefix}speaker.{speaker}"

    @property
    def webhooks_queue(self) -> str:
        """The Celery queue of the webhook consumers."""
        return f"{self.prefix}webhooks"
