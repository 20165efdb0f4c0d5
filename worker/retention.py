"""Remove jobs that ended more than TTSQ_RETENTION_S ago: their audio, segments, plan and record."""

from __future__ import annotations

import logging
import time

from .cleanup import remove_job_files
from .runtime import Runtime

logger = logging.getLogger(__name__)


def purge_all_expired(runtime: Runtime, budget_s: float, batch: int = 100) -> int:
    """Batches until none is left or ``budget_s`` has passed, so a busy deployment never falls behind for good."""
    deadline = time.monotonic() + budget_s
    purged = 0
    while True:
        done = len(purge_expired(runtime, batch=batch))
        purged += done
        if done < batch or time.monotonic() > deadline:
            return purged


def purge_expired(runtime: Runtime, now: float | None = None, batch: int = 100) -> list[str]:
    """Purge up to ``batch`` expired jobs; each is claimed first, so two workers never purge the same one."""
    store, config = runtime.store, runtime.config
    cutoff = (time.time() if now is None else now) - config.retention_s
    purged = []
    for job_id in store.ended_before(cutoff, limit=batch):
        if not store.claim_expired(job_id):
            continue  # another worker took it
        job = store.get(job_id)
        try:
            remove_job_files(runtime, job_id, strict=True)
        except Exception:
            # Keep it listed, so the next sweep tries again rather than leaving audio with no record pointing to it.
            store.unclaim_expired(job_id, (job.finished_at or cutoff) if job else cutoff)
            logger.exception("%s: could not remove its files; will retry", job_id)
            continue
        # Remembered for another retention period, so its owner gets 410 instead of 404 meanwhile.
        store.purge(job_id, job.owner if job else None, remember_s=config.retention_s)
        purged.append(job_id)
    if purged:
        logger.info("removed %d jobs older than the retention period (%d s)", len(purged), config.retention_s)
    return purged
