"""Removing what a job left in storage and Redis besides its record: segments, partial files, output, plan."""

from __future__ import annotations

import logging
from collections.abc import Collection

from .runtime import Runtime

logger = logging.getLogger(__name__)


def remove_job_files(
    runtime: Runtime,
    job_id: str,
    keep: str | Collection[str] | None = None,
    strict: bool = False,
    plan: bool = True,
    only: Collection[str] | None = None,
) -> bool:
    """Delete every object of the job but ``keep`` (its output, after success), left by any run (a killed run's
    partial files and unrecorded segments too), then its plan; True when all went.

    Best effort unless ``strict``: the job's outcome is already recorded and leftovers must not hide it. When a
    delete fails the plan stays, so retention tries again; retention passes ``strict`` to keep the job listed.
    ``plan=False``: the job's plan was never stored (one segment), so there is none to delete. ``only``: just these
    objects, by key, where the caller knows nothing else was left (no storage listing)."""
    try:
        if only is None:
            runtime.storage.remove_job(job_id, keep=keep)
        else:
            for key in only:
                runtime.storage.delete(key)
    except Exception as error:  # storage backends raise unrelated types
        if strict:
            raise
        logger.warning("%s: could not remove its files (retention will try again): %s", job_id, error)
        return False
    if not plan:
        return True
    try:
        runtime.plans.delete(job_id)
    except Exception as error:  # Redis away just after the job ended: retention removes the plan with the job
        if strict:
            raise
        logger.warning("%s: could not remove its plan (retention will): %s", job_id, error)
        return False
    return True
