"""The Celery app as an importable object, for Celery's own tools: ``celery -A worker.app inspect ping``,
``celery -A worker.app status``, ``celery -A worker.app events`` and Flower. Configured from TTSQ_* like every
ttsq process; ``ttsq worker`` builds its own app the same way and does not need this module."""

from __future__ import annotations

from ttsq.config import ConfigError, load_config
from ttsq.queue import create_celery

try:
    app = create_celery(load_config(), include=["worker.tasks"])
except ConfigError as error:
    raise SystemExit(f"ttsq: configuration error: {error}") from None
