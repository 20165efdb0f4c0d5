"""Remove jobs that ended more than TTSQ_RETENTION_S ago: their audio, segments, plan and record."""

from __future__ import annotations

import logging
import time

from ttsq.models import Job

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
    """Purge up to ``batch`` expired jobs; each is claimed first, so two workers never purge the same one. Their
    files go in one step for the batch: local storage lists its directory once, not twice a job."""
    store, config = runtime.store, runtime.config
    cutoff = (time.time() if now is None else now) - config.retention_s
    claimed: dict[str, Job | None] = {}
    for job_id in store.ended_before(cutoff, limit=batch):
        if store.claim_expired(job_id):  # else another worker took it
            claimed[job_id] = store.get(job_id)
    if not claimed:
        return []
    try:
        failed = runtime.storage.remove_jobs(list(claimed))
    except Exception:  # storage backends raise unrelated types
        logger.exception("could not remove the files of %d expired jobs; will retry", len(claimed))
        failed = set(claimed)
    purged = []
    for job_id, job in claimed.items():
        if job_id not in failed and _remove_plan(runtime, job_id):
            # Remembered for another retention period, so its owner gets 410 instead of 404 meanwhile.
            store.purge(job_id, job.owner if job else None, remember_s=config.retention_s)
            purged.append(job_id)
        else:
            # Kept listed, so the next sweep tries again rather than leaving files with no record pointing to them.
            store.unclaim_expired(job_id, (job.finished_at or cutoff) if job else cutoff)
    if purged:
        logger.info("removed %d jobs older than the retention period (%d s)", len(purged), config.retention_s)
    return purged


def _remove_plan(runtime: Runtime, job_id: str) -> bool:
    try:
        runtime.plans.delete(job_id)
    except Exception:
        logger.exception("%s: could not remove its plan; will retry", job_id)
        return False
    return True
