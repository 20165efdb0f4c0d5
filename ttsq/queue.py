"""The queue contract between the API and the workers: the Celery app, task and queue names, and how to send.

Both adapters build their Celery app here; neither imports the other. Tasks take a job id only: the job record in
Redis is the truth, and Celery keeps no results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery
from kombu.serialization import dumps as serialize
from kombu.transport.virtual.base import Base64
from kombu.utils.json import dumps as to_json
from kombu.utils.uuid import uuid

from .config import Config
from .models import Job, QueuedMessage

logger = logging.getLogger(__name__)

SYNTHESIZE_TASK = "ttsq.synthesize"
"""Do the next piece of a job (plan, a segment, or assembly); consumed from the speaker's queue."""
DELIVER_WEBHOOK_TASK = "ttsq.deliver_webhook"
"""One attempt to deliver a job's end event; consumed from the webhooks queue by ``ttsq webhooks`` only."""


def create_celery(config: Config, include: Sequence[str] = ()) -> Celery:
    """The Celery app as every ttsq process configures it; ``include`` names task modules (workers only)."""
    app = Celery("ttsq", broker=config.broker_url, include=list(include))
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
        # No copy of each delivered message in Redis until its acknowledgement (kombu's ack emulation: 8 commands
        # and 2 round trips a task, issue 12): what it would redeliver after its hour, ttsq's own upkeep already
        # does, sooner for a running job (its lock's TTL), as soon for a queued one whose queue is idle
        # (TTSQ_VISIBILITY_TIMEOUT_S; twice that behind a busy queue). A worker that stops cleanly still puts back
        # the messages it holds.
        broker_transport_options={"ack_emulation": False},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


def monitored_queues(config: Config) -> list[str]:
    """Every queue of the deployment: one per configured speaker, and the webhooks' queue."""
    return [*(config.keys.speaker_queue(name) for name in sorted(config.speakers)), config.keys.webhooks_queue]


def synthesis_message(celery: Celery, job_id: str, queue: str) -> QueuedMessage:
    """The message ``enqueue_synthesis`` would send, built, not sent: Celery's own task message (protocol 2) in
    kombu's Redis envelope (``Producer.publish`` then the virtual channel's ``basic_publish`` on the anonymous
    exchange, as Celery routes a named queue). tests/test_queue.py holds it to what ``send_task`` pushes."""
    task_id = uuid()
    task = celery.amqp.create_task_message(task_id, SYNTHESIZE_TASK, [job_id], {}, ignore_result=True)
    content_type, content_encoding, body = serialize(task.body, serializer="json")
    properties = {
        **task.properties,
        "delivery_mode": 2,  # persistent, as kombu marks a durable queue's messages
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": uuid(),
    }
    envelope = {
        "body": Base64().encode(body),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": task.headers,
        "properties": properties,
    }
    return QueuedMessage(queue, to_json(envelope))


def enqueue_synthesis(celery: Celery, job_id: str, queue: str) -> None:
    """Queue the job's next piece on its speaker's queue (``job.queue``). Raises when the broker is away."""
    celery.send_task(SYNTHESIZE_TASK, args=[job_id], queue=queue)


def enqueue_webhook(
    celery: Celery, config: Config, job_id: str, countdown_s: float = 0.0, attempt: int | None = None
) -> None:
    """Queue an attempt to deliver the job's end event (call it once the job has ended, if it has a webhook_url).
    ``attempt`` names the attempt the task is for, so a duplicate of it is dropped; None: whichever is next."""
    queue = config.keys.webhooks_queue
    celery.send_task(DELIVER_WEBHOOK_TASK, args=[job_id, attempt], queue=queue, countdown=countdown_s or None)


def job_ended(celery: Celery, config: Config, job: Job) -> None:
    """Queue the job's webhook, if it has one. Call it once, where the end was recorded (a worker finishing the
    job, the API canceling it). Never raises: the outcome is already recorded, and the outbox retries."""
    if not job.webhook_url:
        return
    try:
        enqueue_webhook(celery, config, job.id)
    except Exception:  # the broker is away; the job's status still tells the outcome to pollers
        logger.exception("%s: could not queue its webhook", job.id)
