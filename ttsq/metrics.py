"""Prometheus metrics kept in Redis: workers and the API record into a few hashes, ``GET /metrics`` reads them.

API and workers may run on different hosts, so prometheus-client's multiprocess mode (a shared directory) does
not fit. Every process instead adds to hashes under the deployment's key prefix with HINCRBY / HINCRBYFLOAT
(atomic, so any number of writers agree), and one collector reads them back with one pipeline per scrape:

- ``{prefix}metrics:counters``: ``<metric>|<label values>`` -> count.
- ``{prefix}metrics:histogram:<metric>``: ``<label values>|<upper bound>`` -> observations in that bucket alone
  (not cumulative; the collector adds them up), ``<label values>|sum`` and ``<label values>|count``.

Jobs by status: ended jobs are counters (records are removed after TTSQ_RETENTION_S, so counting records would
undercount them); queued and running jobs are counted from the active-jobs set, which holds only unfinished jobs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:  # ttsq.jobs may import this module to record inside its transactions
    from .jobs import Job, JobStatus

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: the exposition format every Prometheus scrapes."""

ENDED_STATUSES = ("succeeded", "failed", "canceled")
ACTIVE_STATUSES = ("queued", "running")
"""JobStatus values (tests keep them equal)."""
WEBHOOK_OUTCOMES = ("delivered", "retry", "failed", "refused")
"""delivered: 2xx; retry: an attempt failed and another is scheduled; failed: attempts exhausted or a permanent
error; refused: the URL was never tried (not allowed by TTSQ_WEBHOOK_ALLOW, private address, bad scheme)."""

JOBS_CREATED = "ttsq_jobs_created"
JOBS_FINISHED = "ttsq_jobs_finished"
WEBHOOK_DELIVERIES = "ttsq_webhook_deliveries"


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
    (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200),
)
JOB_REALTIME_FACTOR = HistogramSpec(
    "ttsq_job_realtime_factor",
    "Audio seconds per second of synthesis in each succeeded job (above 1 is faster than real time), by speaker.",
    "speaker",
    (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200),
)
HISTOGRAMS = (JOB_DURATION, JOB_RUN, JOB_AUDIO, JOB_REALTIME_FACTOR)

# Counts the active jobs' statuses inside Redis: one round trip, bounded by the number of unfinished jobs.
_ACTIVE_STATUS_COUNTS = """
local counts = {}
for _, id in ipairs(redis.call('smembers', KEYS[1])) do
  local status = redis.call('hget', ARGV[1] .. id, 'status')
  if status then counts[status] = (counts[status] or 0) + 1 end
end
local flat = {}
for status, n in pairs(counts) do flat[#flat + 1] = status; flat[#flat + 1] = n end
return flat
"""


def counters_key(prefix: str) -> str:
    return f"{prefix}metrics:counters"


def histogram_key(prefix: str, spec: HistogramSpec) -> str:
    return f"{prefix}metrics:histogram:{spec.name}"


# --- recording (API and workers) ----------------------------------------------------------------------------------


def record_job_created(client: redis.Redis, prefix: str) -> None:
    """One job accepted. ``client`` may be a pipeline in MULTI mode, so the count commits with the record."""
    client.hincrby(counters_key(prefix), JOBS_CREATED, 1)


def record_job_finished(
    client: redis.Redis,
    prefix: str,
    job: Job,
    status: JobStatus | str | None = None,
    finished_at: float | None = None,
    audio_s: float | None = None,
) -> None:
    """One job ended: its status count and its histograms, all in one transaction.

    ``job`` supplies what is not given: ``status`` (default ``job.status``), ``finished_at`` (default
    ``job.finished_at``, else now) and, for a succeeded job, ``audio_s`` (default ``job.result.duration_s``).
    Given a pipeline (after ``multi()``), the commands join the caller's transaction instead."""
    status = str(getattr(status, "value", status)) if status is not None else job.status.value
    if status not in ENDED_STATUSES:
        raise ValueError(f"got status {status!r}; expected one of: {', '.join(ENDED_STATUSES)}")
    finished_at = finished_at if finished_at is not None else (job.finished_at or time.time())
    if audio_s is None and job.result is not None:
        audio_s = job.result.duration_s
    with _writer(client) as pipe:
        pipe.hincrby(counters_key(prefix), f"{JOBS_FINISHED}|{status}", 1)
        _observe(pipe, prefix, JOB_DURATION, status, finished_at - job.created_at)
        if job.started_at is not None:
            _observe(pipe, prefix, JOB_RUN, status, finished_at - job.started_at)
        if status == "succeeded" and audio_s is not None:
            _observe(pipe, prefix, JOB_AUDIO, job.speaker, audio_s)
            if job.synth_s > 0:
                _observe(pipe, prefix, JOB_REALTIME_FACTOR, job.speaker, audio_s / job.synth_s)


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


def _observe(pipe: Any, prefix: str, spec: HistogramSpec, label: str, value: float) -> None:
    key = histogram_key(prefix, spec)
    value = max(0.0, value)  # clocks of different hosts may disagree by a little
    bound = next((b for b in spec.buckets if value <= b), None)
    if bound is not None:
        pipe.hincrby(key, f"{label}|{floatToGoString(bound)}", 1)
    pipe.hincrby(key, f"{label}|count", 1)
    pipe.hincrbyfloat(key, f"{label}|sum", value)


# --- reading (the API's /metrics) ---------------------------------------------------------------------------------


def kombu_queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold one queue's messages: kombu's Redis transport keeps a list per priority step,
    the bare name for the lowest step and ``<name>\\x06\\x16<step>`` for the others."""
    return [queue if step == PRIORITY_STEPS[0] else f"{queue}{Channel.sep}{step}" for step in PRIORITY_STEPS]


class RedisCollector(Collector):
    """Turns the metrics hashes, the queues' lengths and the active jobs into metric families, per scrape.

    ``queues`` are Celery queue names (each speaker's, plus any other the deployment has). Raises
    redis.RedisError when Redis does not answer; the caller decides what to serve then."""

    def __init__(self, client: redis.Redis, prefix: str, queues: Sequence[str]) -> None:
        self.client = client
        self.prefix = prefix
        self.queues = list(queues)

    def describe(self) -> list[Metric]:
        return []  # registering must not touch Redis

    def collect(self) -> Iterator[Metric]:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(counters_key(self.prefix))
            for spec in HISTOGRAMS:
                pipe.hgetall(histogram_key(self.prefix, spec))
            for queue in self.queues:
                for key in kombu_queue_keys(queue):
                    pipe.llen(key)
            pipe.eval(_ACTIVE_STATUS_COUNTS, 1, f"{self.prefix}jobs:active", f"{self.prefix}job:")
            replies = pipe.execute()
        counters = _decode_numbers(replies[0])
        histograms = [_decode_numbers(raw) for raw in replies[1 : 1 + len(HISTOGRAMS)]]
        steps = len(PRIORITY_STEPS)
        lengths = replies[1 + len(HISTOGRAMS) : -1]
        active = replies[-1]

        yield from _counters(counters)
        for spec, fields in zip(HISTOGRAMS, histograms, strict=True):
            yield _histogram(spec, fields)
        depth = GaugeMetricFamily("ttsq_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        for index, queue in enumerate(self.queues):
            depth.add_metric([queue], float(sum(lengths[index * steps : (index + 1) * steps])))
        yield depth
        yield _active_jobs(active)


def metrics_response(collector: Collector) -> tuple[bytes, str]:
    """The exposition text of ``collector`` alone and its content type (version 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE


def _counters(counters: dict[str, float]) -> Iterator[Metric]:
    created = CounterMetricFamily(JOBS_CREATED, "Jobs accepted by the API.")
    created.add_metric([], counters.get(JOBS_CREATED, 0.0))
    yield created
    finished = CounterMetricFamily(JOBS_FINISHED, "Jobs that ended, by final status.", labels=["status"])
    for status in ENDED_STATUSES:
        finished.add_metric([status], counters.get(f"{JOBS_FINISHED}|{status}", 0.0))
    yield finished
    webhooks = CounterMetricFamily(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome.", labels=["outcome"])
    for outcome in WEBHOOK_OUTCOMES:
        webhooks.add_metric([outcome], counters.get(f"{WEBHOOK_DELIVERIES}|{outcome}", 0.0))
    yield webhooks


def _histogram(spec: HistogramSpec, fields: dict[str, float]) -> Metric:
    family = HistogramMetricFamily(spec.name, spec.documentation, labels=[spec.label])
    labels = {field.rpartition("|")[0] for field in fields}
    if spec.label == "status":
        labels |= set(ENDED_STATUSES)  # every status from the first scrape, so rate() has a start
    for label in sorted(labels):
        cumulative, buckets = 0.0, []
        for bound in spec.buckets:
            cumulative += fields.get(f"{label}|{floatToGoString(bound)}", 0.0)
            buckets.append((floatToGoString(bound), cumulative))
        count = fields.get(f"{label}|count", 0.0)
        buckets.append(("+Inf", max(count, cumulative)))
        family.add_metric([label], buckets, sum_value=fields.get(f"{label}|sum", 0.0))
    return family


def _active_jobs(flat: list[Any]) -> Metric:
    counts = {status: 0 for status in ACTIVE_STATUSES}
    for raw_status, n in zip(flat[::2], flat[1::2], strict=True):
        status = json.loads(raw_status)  # job fields are stored JSON-encoded
        if status in counts:
            counts[status] += int(n)
    gauge = GaugeMetricFamily(
        "ttsq_jobs", "Unfinished jobs, by status (ended ones: ttsq_jobs_finished_total).", labels=["status"]
    )
    for status, n in counts.items():
        gauge.add_metric([status], float(n))
    return gauge


def _decode_numbers(raw: dict[bytes, bytes]) -> dict[str, float]:
    numbers: dict[str, float] = {}
    for field, value in raw.items():
        try:
            numbers[field.decode()] = float(value)
        except (UnicodeDecodeError, ValueError):
            logger.warning("metrics: ignoring unreadable field %r = %r", field, value)
    return numbers
