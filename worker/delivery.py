"""Webhook delivery: a Celery task on a queue of its own, consumed by ``ttsq webhooks``, never by synthesis threads.

Each attempt is one task. A failed attempt that may be retried queues the next one with a countdown (exponential
backoff, full jitter) instead of sleeping, so a slow receiver holds a delivery thread for at most the timeouts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

from celery import Celery, shared_task

from ttsq import links
from ttsq.config import Config
from ttsq.connections import redis_client
from ttsq.credentials import secret_key, webhook_secret
from ttsq.jobs.store import WEBHOOK_GRACE_S, JobStore
from ttsq.logs import job_context
from ttsq.models import Job
from ttsq.queue import DELIVER_WEBHOOK_TASK, create_celery, enqueue_webhook
from ttsq.storage import Storage, open_storage
from ttsq.webhooks.delivery import WebhookSettings, backoff_s, deliver

from .runtime import Holder

logger = logging.getLogger(__name__)

WEBHOOK_CONCURRENCY = 8
"""Deliveries at once per webhook consumer: they wait on the network, not on the CPU."""


def settings_from_config(config: Config) -> WebhookSettings:
    return WebhookSettings(
        secret=webhook_secret(config, secret_key(config)),
        allow=tuple(config.webhook_allow),
        max_attempts=config.webhook_max_attempts,
        backoff_s=config.webhook_backoff_s,
        timeout_s=config.webhook_timeout_s,
    )


@dataclass
class WebhookRuntime:
    """What a webhook consumer holds: no engine, just the job store, storage (for links) and the queue."""

    config: Config
    store: JobStore
    storage: Storage
    celery: Celery
    settings: WebhookSettings
    url_secret: str


held: Holder[WebhookRuntime] = Holder("the webhook runtime", "start the consumer with `ttsq webhooks`")


def build_webhook_runtime(config: Config, settings: WebhookSettings | None = None) -> WebhookRuntime:
    return WebhookRuntime(
        config=config,
        store=JobStore(redis_client(config.effective_redis_url, WEBHOOK_CONCURRENCY), config.key_prefix),
        storage=open_storage(config),
        celery=create_celery(config),
        settings=settings or settings_from_config(config),
        url_secret=secret_key(config),
    )


def result_link(runtime: WebhookRuntime, job: Job) -> tuple[str, float] | None:
    """A fresh signed link to the job's audio, as the API hands out (relative when TTSQ_PUBLIC_URL is unset)."""
    if job.result is None:
        return None
    return links.result_link(runtime.config, runtime.storage, runtime.url_secret, job.result.key, None)


@shared_task(name=DELIVER_WEBHOOK_TASK)
def deliver_webhook(job_id: str, attempt: int | None = None) -> str:
    return run_delivery(held.current(), job_id, attempt)


def run_delivery(runtime: WebhookRuntime, job_id: str, attempt: int | None = None) -> str:
    """One attempt, then the next one queued if it may be retried; what happened, for logs and tests."""
    with job_context(job_id):
        return _run_delivery(runtime, job_id, attempt)


def _run_delivery(runtime: WebhookRuntime, job_id: str, attempt: int | None) -> str:
    outcome = deliver(runtime.store, job_id, runtime.settings, partial(result_link, runtime), attempt)
    if outcome.delivered:
        return "delivered"
    if not outcome.retry:
        return "failed" if outcome.attempt else "skipped"
    delay_s = backoff_s(outcome.attempt, runtime.settings.backoff_s)
    # Due again after the countdown: if this message is lost (the broker is away now, or a consumer dies holding
    # it), worker upkeep queues the attempt once that time has passed.
    runtime.store.webhook_due(job_id, time.time() + delay_s + WEBHOOK_GRACE_S)
    try:
        enqueue_webhook(runtime.celery, runtime.config, job_id, delay_s, outcome.attempt + 1)
    except Exception:  # kombu raises several unrelated types when the broker is away
        logger.exception("%s: could not queue webhook attempt %d; upkeep will", job_id, outcome.attempt + 1)
        return "deferred"
    logger.info("%s: webhook attempt %d in %.1f s", job_id, outcome.attempt + 1, delay_s)
    return "retrying"


def requeue_overdue(store: JobStore, celery_app: Celery, config: Config) -> list[str]:
    """Queue again every ended job whose event is not settled and overdue: its task was lost (run by upkeep)."""
    requeued = []
    now = time.time()
    for job_id in store.webhooks_overdue(now):
        store.webhook_due(job_id, now + config.webhook_timeout_s * 2 + WEBHOOK_GRACE_S)
        enqueue_webhook(celery_app, config, job_id)
        logger.warning("%s: its webhook event was not settled in time; queued again", job_id)
        requeued.append(job_id)
    return requeued


def run_webhook_worker(config: Config) -> None:
    """Consume the webhook queue on a small thread pool until stopped (a process of its own: no engine)."""
    runtime = build_webhook_runtime(config)
    held.install(runtime)
    queue = config.keys.webhooks_queue
    logger.info("webhook consumer consuming %s", queue)
    if config.public_url is None:
        logger.warning(
            "TTSQ_PUBLIC_URL is not set: the result links in webhook events are relative (/v1/files/...); set it "
            "to the API's public base URL"
        )
    quiet = ["--quiet"] if config.log_level in ("WARNING", "ERROR") else []
    runtime.celery.worker_main(
        [
            *quiet,
            "worker",
            "--pool=threads",
            f"--concurrency={WEBHOOK_CONCURRENCY}",
            f"--queues={queue}",
            f"--hostname=webhooks.{config.worker_id}",
            f"--loglevel={config.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
