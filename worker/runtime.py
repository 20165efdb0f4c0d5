"""What a worker process holds for its lifetime: the engine, the job store, storage — installed once at start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from celery import Celery

from engine import TTS
from ttsq.config import Config
from ttsq.jobs.plans import PlanStore
from ttsq.jobs.store import JobStore
from ttsq.storage import Storage

T = TypeVar("T")


class Holder(Generic[T]):
    """The one object of its kind a process holds; Celery tasks (which take only ids) find it here."""

    def __init__(self, what: str, hint: str) -> None:
        self._what, self._hint = what, hint
        self._value: T | None = None

    def install(self, value: T) -> None:
        self._value = value

    def current(self) -> T:
        if self._value is None:
            raise RuntimeError(f"{self._what} is not installed; {self._hint}")
        return self._value


@dataclass
class Runtime:
    config: Config
    tts: TTS
    store: JobStore
    plans: PlanStore
    storage: Storage
    celery: Celery
    name: str


held: Holder[Runtime] = Holder("the worker runtime", "start workers with `ttsq worker`")
