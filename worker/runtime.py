"""What a worker process holds for its lifetime: the engine, the job store, storage."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

from engine import TTS
from ttsq.config import Config
from ttsq.jobs import JobStore
from ttsq.plans import PlanStore
from ttsq.storage import Storage


@dataclass
class Runtime:
    config: Config
    tts: TTS
    store: JobStore
    plans: PlanStore
    storage: Storage
    celery: Celery
    name: str


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the worker runtime is not installed; start workers with `ttsq worker`")
    return _current
