"""What the API's routes share: config, job store, queue client, storage and signing secret."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import current_app

from ttsq.config import Config
from ttsq.jobs.events import JobEvents
from ttsq.jobs.store import JobStore
from ttsq.presence import ServedVoices
from ttsq.storage import Storage


@dataclass
class Services:
    config: Config
    redis: redis.Redis
    store: JobStore
    celery: Celery
    storage: Storage
    secret: str
    events: JobEvents
    """The process's one subscription that wakes long polls."""
    served: ServedVoices
    """Which speakers live workers serve, read at most about once a second."""


def services() -> Services:
    return current_app.extensions["ttsq"]  # type: ignore[no-any-return]
