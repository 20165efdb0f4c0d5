"""Removing what a job left in storage and Redis besides its record: segments, output, plan."""

from __future__ import annotations

import logging

from ttsq.models import Job
from ttsq.storage.base import key_for, segment_key

from .runtime import Runtime

logger = logging.getLogger(__name__)


def segment_keys(runtime: Runtime, job_id: str) -> list[str]:
    """The recorded segments' objects (a segment's run names it; records of older versions did not)."""
    return [r.key or segment_key(job_id, index) for index, r in enumerate(runtime.plans.records(job_id))]


def remove_job_files(runtime: Runtime, job: Job, output: bool = True, strict: bool = False) -> None:
    """Delete the job's segments (and its output, unless ``output`` is false), then its plan.

    Best effort unless ``strict``: the job's outcome is already recorded and leftovers must not hide it; retention
    passes ``strict`` so a failed delete keeps the job listed for the next sweep."""
    keys = segment_keys(runtime, job.id) + ([key_for(job.id, job.format)] if output else [])
    for key in keys:
        try:
            runtime.storage.delete(key)
        except Exception as error:  # storage backends raise unrelated types
            if strict:
                raise
            logger.warning("%s: could not remove %s: %s", job.id, key, error)
    runtime.plans.delete(job.id)
