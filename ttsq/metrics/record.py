"""Prometheus metrics kept in Redis: workers and the API record into a few hashes, ``GET /metrics`` reads them.

API and workers may run on different hosts, so prometheus-client's multiprocess mode (a shared directory) does
not fit. Every process instead adds to hashes under the deployment's key prefix with HINCRBY / HINCRBYFLOAT
(atomic, so any number of writers agree), and one collector reads them back with one pipeline per scrape. A job's
own creation and end queue their increments as one entry of ``{prefix}metrics:pending`` in the same Lua step as the
job's write (one command, not one per field: a job's end has 13), and those entries are added into the hashes, a
batch at a time with one command per field, by ``fold``: before every scrape, and by each worker's upkeep.

- ``{prefix}metrics:counters``: ``<metric>|<label values>`` -> count.
- ``{prefix}metrics:histogram:<metric>``: ``<label values>|<upper bound>`` -> observations in that bucket alone
  (not cumulative; the collector adds them up), ``<label values>|sum`` and ``<label values>|count``.

Jobs by status: ended jobs are counters (records are removed after TTSQ_RETENTION_S, so counting records would
undercount them); queued and running jobs are counted from the active-jobs set, which holds only unfinished jobs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client.utils import floatToGoString

from ttsq import models, scripts
from ttsq.keys import Keys
from ttsq.models import Job, JobStatus

ENDED_STATUSES = tuple(s.value for s in models.ENDED_STATUSES)
ACTIVE_STATUSES = tuple(s.value for s in models.ACTIVE_STATUSES)
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "refused")
"""delivered: 2xx; retry: an attempt failed and another is scheduled; failed: attempts exhausted or a permanent
error; refused: the URL was never tried (not allowed by TTSQ_WEBHOOK_ALLOW, private address, bad scheme)."""

JOBS_CREATED = "ttsq_jobs_created"
JOBS_FINISHED = "ttsq_jobs_finished"
WEBHOOK_DELIVERIES = "ttsq_webhook_deliveries"
SPEECH_REQUESTS = "ttsq_speech_requests"
SPEECH_CHARACTERS = "ttsq_speech_characters"


@dataclass(frozen=True)
class HistogramSpec:
    name: str
    documentation: str
    label: str
    """One label per histogram: its value is part of every field name."""
    buckets: tuple[float, ...]
    """Upper bounds, ascending, without +Inf (that one is the count)."""


JOB_DURATION = HistogramSpec(
    "ttsq_job_duration_seconds",
    "Seconds from a job's creation to its end (queue wait included), by final status.",
    "status",
    (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
JOB_RUN = HistogramSpec(
    "ttsq_job_run_seconds",
    "Seconds from a job's first start on a worker to its end, by final status (jobs that never started: none).",
    "status",
    (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
JOB_AUDIO = HistogramSpec(
    "ttsq_job_audio_seconds",
    "Seconds of audio in each succeeded job, by speaker.",
    "speaker",
    (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
)
JOB_REALTIME_FACTOR = HistogramSpec(
    "ttsq_job_realtime_factor",
    "Audio seconds per second of synthesis in each succeeded job (above 1 is faster than real time), by speaker.",
    "speaker",
    (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200),
)
HISTOGRAMS = (JOB_DURATION, JOB_RUN, JOB_AUDIO, JOB_REALTIME_FACTOR)


def counters_key(prefix: str) -> str:
    return Keys(prefix).metrics_counters


def histogram_key(prefix: str, spec: HistogramSpec) -> str:
    return Keys(prefix).metrics_histogram(spec.name)


# --- recording (API and workers), inside the callers' transactions where they have one ---------------------------


@dataclass(frozen=True)
class Increment:
    """One metric field to add to: a job's writes carry these into their own transaction or Lua call."""

    key: str
    field: str
    amount: int | float


def job_created(prefix: str) -> list[Increment]:
    """One job accepted."""
    return [Increment(counters_key(prefix), JOBS_CREATED, 1)]


def job_finished(
    prefix: str,
    job: Job,
    status: JobStatus | str | None = None,
    finished_at: float | None = None,
    audio_s: float | None = None,
) -> list[Increment]:
    """One job ended: its status count and its histograms.

    ``job`` supplies what is not given: ``status`` (default ``job.status``), ``finished_at`` (default
    ``job.finished_at``, else now) and, for a succeeded job, ``audio_s`` (default ``job.result.duration_s``)."""
    status = str(getattr(status, "value", status)) if status is not None else job.status.value
    if status not in ENDED_STATUSES:
        raise ValueError(f"got status {status!r}; expected one of: {', '.join(ENDED_STATUSES)}")
    finished_at = finished_at if finished_at is not None else (job.finished_at or time.time())
    if audio_s is None and job.result is not None:
        audio_s = job.result.duration_s
    adds = [Increment(counters_key(prefix), f"{JOBS_FINISHED}|{status}", 1)]
    adds += _observe(prefix, JOB_DURATION, status, finished_at - job.created_at)
    if job.started_at is not None:
        adds += _observe(prefix, JOB_RUN, status, finished_at - job.started_at)
    if status == "succeeded" and audio_s is not None:
        adds += _observe(prefix, JOB_AUDIO, job.speaker, audio_s)
        if job.synth_s > 0:
            adds += _observe(prefix, JOB_REALTIME_FACTOR, job.speaker, audio_s / job.synth_s)
    return adds


def record(client: redis.Redis, increments: list[Increment]) -> None:
    """Apply ``increments``: inside the caller's transaction when ``client`` is a pipeline after ``multi()``, else
    in a transaction of their own."""
    with _writer(client) as pipe:
        for add in increments:
            if isinstance(add.amount, int):
                pipe.hincrby(add.key, add.field, add.amount)
            else:
                pipe.hincrbyfloat(add.key, add.field, add.amount)


def script_args(prefix: str, increments: list[Increment]) -> list[str]:
    """``increments`` as a Lua script's trailing arguments, queued to the pending list (``ttsq.scripts.INCREMENTS``):
    its name, then (hash, field, amount) triples; an amount that is not a finite number is left out."""
    return [
        Keys(prefix).metrics_pending,
        *(item for add in increments if math.isfinite(add.amount) for item in (add.key, add.field, repr(add.amount))),
    ]


FOLD_BATCH = 1000
"""Pending entries added up per Lua call: a few milliseconds of Redis's time at most."""
FOLD_BATCHES = 20
"""Batches per ``fold`` call: a backlog larger than this waits for the next one."""


def fold(client: redis.Redis, prefix: str) -> int:
    """Add the pending entries into the hashes (see the module's docstring); the number added."""
    pending, total = Keys(prefix).metrics_pending, 0
    for _ in range(FOLD_BATCHES):
        taken = int(client.eval(scripts.FOLD_METRICS, 1, pending, str(FOLD_BATCH)))  # type: ignore[arg-type]
        total += taken
        if taken < FOLD_BATCH:
            break
    return total


def record_job_finished(
    client: redis.Redis,
    prefix: str,
    job: Job,
    status: JobStatus | str | None = None,
    finished_at: float | None = None,
    audio_s: float | None = None,
) -> None:
    """``job_finished``'s increments, applied (in one transaction, or the caller's)."""
    record(client, job_finished(prefix, job, status, finished_at, audio_s))


def record_speech(client: redis.Redis, prefix: str, characters: int) -> None:
    """One speech request taken by a worker, and its input's length."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(counters_key(prefix), SPEECH_REQUESTS, 1)
        pipe.hincrby(counters_key(prefix), SPEECH_CHARACTERS, characters)
        pipe.execute()


def record_webhook(client: redis.Redis, prefix: str, outcome: str) -> None:
    """One webhook delivery attempt ended with ``outcome`` (one of WEBHOOK_OUTCOMES)."""
    if outcome not in WEBHOOK_OUTCOMES:
        raise ValueError(f"got webhook outcome {outcome!r}; expected one of: {', '.join(WEBHOOK_OUTCOMES)}")
    client.hincrby(counters_key(prefix), f"{WEBHOOK_DELIVERIES}|{outcome}", 1)


@contextmanager
def _writer(client: redis.Redis) -> Iterator[Any]:
    """The caller's pipeline as it is, or a transaction of our own on a plain client, executed at the end."""
    if isinstance(client, redis.client.Pipeline):
        yield client
        return
    with client.pipeline(transaction=True) as pipe:
        yield pipe
        pipe.execute()


def _observe(prefix: str, spec: HistogramSpec, label: str, value: float) -> list[Increment]:
    key = histogram_key(prefix, spec)
    value = max(0.0, value)  # clocks of different hosts may disagree by a little
    bound = next((b for b in spec.buckets if value <= b), None)
    adds = [] if bound is None else [Increment(key, f"{label}|{floatToGoString(bound)}", 1)]
    return [*adds, Increment(key, f"{label}|count", 1), Increment(key, f"{label}|sum", float(value))]
