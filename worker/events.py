"""What happens once a job has ended, wherever it ended (a worker finishing it, the API canceling it)."""

from __future__ import annotations

import logging

import redis
from celery import Celery

from ttsq.config import Config
from ttsq.jobs import JobStore

from .webhooks import enqueue_webhook, webhook_queue

logger = logging.getLogger(__name__)


def job_ended(celery: Celery, client: redis.Redis, config: Config, job_id: str) -> None:
    """Queue the job's webhook, if it has one. Call it once, where the end was recorded (metrics were counted in
    that same transaction). Never raises: the outcome is already recorded."""
    try:
        job = JobStore(client, config.key_prefix).get(job_id)
        if job is not None and job.webhook_url:
            enqueue_webhook(celery, job_id, webhook_queue(config))
    except Exception:  # the broker or Redis is away; the job's status still tells the outcome to pollers
        logger.exception("%s: could not queue its webhook", job_id)
