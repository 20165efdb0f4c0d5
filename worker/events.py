"""What happens once a job has ended, wherever it ended (a worker finishing it, the API canceling it)."""

from __future__ import annotations

import logging

import redis
from celery import Celery

from ttsq.config import Config

logger = logging.getLogger(__name__)


def job_ended(celery: Celery, client: redis.Redis, config: Config, job_id: str) -> None:
    """Queue the job's webhook and count it in the metrics. Never raises: the outcome is already recorded."""
    logger.debug("%s: ended", job_id)
