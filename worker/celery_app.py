"""The Celery app, built from config; the API uses the same factory to send tasks."""

from __future__ import annotations

from celery import Celery

from ttsq.config import Config

SYNTHESIZE_TASK = "ttsq.synthesize"


def create_celery(config: Config) -> Celery:
    app = Celery("ttsq", broker=config.broker_url, include=["worker.tasks"])
    app.conf.update(
        # A task is acknowledged only when it ends, and requeued if its worker dies mid-task.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        worker_prefetch_multiplier=1,
        # Our job record in Redis is the source of truth; Celery keeps no results.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Redelivery of an unacknowledged task waits for this; far above the longest task.
            "visibility_timeout": config.visibility_timeout_s,
            # kombu sweeps every interval x throttle seconds (~100 s by default); make the interval the period.
            "unacked_restore_interval": config.restore_interval_s,
            "unacked_restore_throttle": 1,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app
