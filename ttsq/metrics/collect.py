"""What ``GET /metrics`` serves: the metrics hashes (see ``ttsq.metrics.record``), the queues' depth and the
unfinished jobs, read in one pipeline per scrape."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

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

from ttsq import scripts
from ttsq.keys import Keys

from .record import (
    ACTIVE_STATUSES,
    ENDED_STATUSES,
    HISTOGRAMS,
    JOBS_CREATED,
    JOBS_FINISHED,
    SPEECH_CHARACTERS,
    SPEECH_REQUESTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_OUTCOMES,
    HistogramSpec,
    counters_key,
    fold,
    histogram_key,
)

logger = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: the exposition format every Prometheus scrapes."""


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
        fold(self.client, self.prefix)  # what jobs queued since the last fold counts in this scrape
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(counters_key(self.prefix))
            for spec in HISTOGRAMS:
                pipe.hgetall(histogram_key(self.prefix, spec))
            for queue in self.queues:
                for key in kombu_queue_keys(queue):
                    pipe.llen(key)
            keys = Keys(self.prefix)
            pipe.eval(scripts.ACTIVE_STATUS_COUNTS, 1, keys.active, keys.job_base)
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
    for name, documentation in (
        (SPEECH_REQUESTS, "Speech requests (/v1/audio/speech, WebSocket pieces) a worker took."),
        (SPEECH_CHARACTERS, "Characters of input in those speech requests."),
    ):
        family = CounterMetricFamily(name, documentation)
        family.add_metric([], counters.get(name, 0.0))
        yield family


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
        try:
            status = json.loads(raw_status)  # job fields are stored JSON-encoded
        except ValueError:
            continue  # a damaged record: not a job any status counts
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
