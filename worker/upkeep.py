"""Background upkeep in each worker: announce it is alive, and requeue jobs whose worker died."""

from __future__ import annotations

import json
import logging
import threading
import time

from ttsq.jobs import JobStatus

from .celery_app import SYNTHESIZE_TASK
from .retention import purge_all_expired
from .runtime import Runtime
from .webhooks import requeue_overdue

logger = logging.getLogger(__name__)


def announce(runtime: Runtime) -> None:
    """A key that lives lock_ttl_s: /readyz counts workers by these."""
    info = {"name": runtime.name, "speakers": runtime.tts.names, "device": runtime.tts.device, "at": time.time()}
    runtime.store.redis.set(runtime.config.worker_key(runtime.name), json.dumps(info), ex=runtime.config.lock_ttl_s)


def requeue_orphans(runtime: Runtime) -> list[str]:
    """Send again every running job whose lock expired: its worker was killed before it could finish."""
    requeued = []
    for job_id in runtime.store.active_ids():
        job = runtime.store.requeue_if_orphaned(job_id, stale_after_s=runtime.config.visibility_timeout_s)
        if job is None:
            continue
        try:
            runtime.celery.send_task(SYNTHESIZE_TASK, args=[job_id], queue=job.queue)
        except Exception:
            # Put it back as it was, so the next sweep tries again instead of leaving a queued job with no message.
            runtime.store.update_if(job_id, (JobStatus.queued,), status=JobStatus.running.value)
            raise
        logger.warning("%s: its worker (%s) stopped refreshing the job lock; requeued", job_id, job.worker)
        requeued.append(job_id)
    return requeued


def run_upkeep(runtime: Runtime, stop: threading.Event) -> None:
    interval = max(1.0, runtime.config.lock_ttl_s / 3)
    next_cleanup = 0.0
    backfilled = False
    while True:
        try:
            announce(runtime)
            requeue_orphans(runtime)
            requeue_overdue(runtime.store, runtime.celery, runtime.config)
            if time.monotonic() >= next_cleanup:
                if not backfilled:  # records from before the retention set existed
                    added = runtime.store.backfill_finished()
                    backfilled = True
                    if added:
                        logger.info("listed %d earlier ended jobs for retention", added)
                next_cleanup = time.monotonic() + runtime.config.cleanup_interval_s
                purge_all_expired(runtime, budget_s=interval)
        except Exception:  # upkeep must outlive a Redis hiccup
            logger.exception("worker upkeep failed; retrying in %.0f s", interval)
        if stop.wait(interval):
            return


def start_upkeep(runtime: Runtime) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_upkeep, args=(runtime, stop), name="ttsq-upkeep", daemon=True).start()
    return stop
