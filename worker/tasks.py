"""Celery tasks: each takes a job id and hands it to the worker's runtime."""

from __future__ import annotations

from celery import shared_task

from ttsq.queue import SYNTHESIZE_TASK

from .runtime import held
from .synthesis import run_job


@shared_task(name=SYNTHESIZE_TASK)
def synthesize(job_id: str) -> str:
    return run_job(held.current(), job_id).value
