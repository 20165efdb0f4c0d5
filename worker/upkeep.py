"""Background upkeep in each worker: announce it is alive, and requeue jobs whose worker died."""

from __future__ import annotations

import logging
import threading
import time
from functools import partial

import kombu.exceptions
import redis

from ttsq import presence
from ttsq.metrics.collect import kombu_queue_keys
from ttsq.metrics.record import fold
from ttsq.models import JobStatus
from ttsq.queue import synthesis_message

from .delivery import requeue_overdue
from .retention import purge_all_expired
from .runtime import Runtime

logger = logging.getLogger(__name__)


def announce(runtime: Runtime) -> None:
    """A key that lives lock_ttl_s: /readyz counts workers by these."""
    voices = {
        name: presence.AnnouncedVoice(source=info.source, sample_rate=info.sample_rate, backend=info.backend)
        for name, info in runtime.tts.info.items()
    }
    tts = runtime.tts
    me = presence.WorkerPresence(name=runtime.name, speakers=tts.names, voices=voices, device=tts.device)
    presence.announce(runtime.store.redis, runtime.config.keys, me, runtime.config.lock_ttl_s)


def requeue_orphans(runtime: Runtime) -> list[str]:
    """Send again every running job whose lock expired (its worker was killed before it could finish), every job
    between tasks whose next message a dead worker took, and every job left queued with no message (see
    ``JobStore.requeue_if_orphaned``)."""
    store, stale_s = runtime.store, runtime.config.visibility_timeout_s
    idle = idle_queues(runtime)
    requeued = []
    for job_id in store.active_ids():
        message = partial(synthesis_message, runtime.celery, job_id)  # pushed in the same step as the requeue
        job = store.requeue_if_orphaned(
            job_id, stale_after_s=stale_s, idle_queues=idle, taken_after_s=runtime.config.lock_ttl_s, message=message
        )
        if job is None:
            continue
        if job.status == JobStatus.queued:
            logger.warning("%s: queued over %d s with no message in its queue; sent again", job_id, stale_s)
        elif not job.in_task:
            logger.warning("%s: between segments, its next message was taken and never started; sent again", job_id)
        else:
            logger.warning("%s: its worker (%s) stopped refreshing the job lock; requeued", job_id, job.worker)
        requeued.append(job_id)
    return requeued


def idle_queues(runtime: Runtime) -> set[str]:
    """This worker's speaker queues that hold no message (every priority list empty): a job still queued for one
    of them after the visibility timeout has lost its message."""
    queues = [runtime.config.keys.speaker_queue(name) for name in runtime.tts.names]
    with runtime.store.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in kombu_queue_keys(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    steps = len(lengths) // max(1, len(queues))
    return {queue for i, queue in enumerate(queues) if not any(lengths[i * steps : (i + 1) * steps])}


class Outage:
    """One log line when upkeep starts failing and one when it works again, not a traceback every tick."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.kind: type[Exception] | None = None

    def failed(self, error: Exception, interval_s: float) -> None:
        if self.since is not None and type(error) is self.kind:
            logger.debug("worker upkeep still failing: %s", error)
            return
        self.since, self.kind = self.since or time.monotonic(), type(error)  # a new kind of failure is told too
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError)):
            logger.error("worker upkeep: Redis is unreachable (%s); retrying every %.0f s", error, interval_s)
        else:  # not an outage: a bug, whose traceback is wanted (once)
            logger.exception("worker upkeep failed; retrying every %.0f s", interval_s)

    def ok(self) -> None:
        if self.since is not None:
            logger.warning("worker upkeep works again after %.0f s", time.monotonic() - self.since)
            self.since = self.kind = None


def run_upkeep(runtime: Runtime, stop: threading.Event) -> None:
    interval = max(1.0, runtime.config.lock_ttl_s / 3)
    next_cleanup = 0.0
    backfilled = False
    outage = Outage()
    while True:
        try:
            announce(runtime)
            requeue_orphans(runtime)
            requeue_overdue(runtime.store, runtime.celery, runtime.config)
            fold(runtime.store.redis, runtime.store.prefix)  # the pending list stays short between scrapes
            if time.monotonic() >= next_cleanup:
                if not backfilled:  # records from before the retention set existed
                    added = runtime.store.backfill_finished()
                    backfilled = True
                    if added:
                        logger.info("listed %d earlier ended jobs for retention", added)
                next_cleanup = time.monotonic() + runtime.config.cleanup_interval_s
                purge_all_expired(runtime, budget_s=interval)
            outage.ok()
        except Exception as error:  # upkeep must outlive a Redis outage
            outage.failed(error, interval)
        if stop.wait(interval):
            return


def start_upkeep(runtime: Runtime) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_upkeep, args=(runtime, stop), name="ttsq-upkeep", daemon=True).start()
    return stop
