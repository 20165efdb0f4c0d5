"""Workers announcing themselves in Redis, and who is alive: read by /readyz, /v1/speakers and the healthcheck."""

from __future__ import annotations

import time

import redis
from pydantic import BaseModel, Field, ValidationError

from .keys import Keys


class AnnouncedVoice(BaseModel):
    """One speaker as a worker serves it."""

    source: str
    sample_rate: int
    backend: str


class WorkerPresence(BaseModel):
    """What a live worker says of itself; the key holding it lives ``TTSQ_LOCK_TTL_S`` unless refreshed."""

    name: str
    speakers: list[str] = Field(default_factory=list)
    voices: dict[str, AnnouncedVoice] = Field(default_factory=dict)
    """Each served speaker's source, sample rate and backend (workers of older versions announce none)."""
    device: str | None = None
    at: float = Field(default_factory=time.time)


def served_voices(workers: list[WorkerPresence]) -> dict[str, AnnouncedVoice | None]:
    """Every speaker some live worker serves, with what one of them announced of it."""
    served: dict[str, AnnouncedVoice | None] = {}
    for worker in workers:
        for name in worker.speakers:
            served[name] = worker.voices.get(name) or served.get(name)
    return served


def announce(client: redis.Redis, keys: Keys, presence: WorkerPresence, ttl_s: int) -> None:
    client.set(keys.worker(presence.name), presence.model_dump_json(), ex=ttl_s)


def withdraw(client: redis.Redis, keys: Keys, name: str) -> None:
    """Gone at once from /readyz and the healthcheck, not when the key would have expired."""
    client.delete(keys.worker(name))


def is_alive(client: redis.Redis, keys: Keys, name: str) -> bool:
    return bool(client.exists(keys.worker(name)))


def live_workers(client: redis.Redis, keys: Keys) -> list[WorkerPresence]:
    workers = []
    for key in client.scan_iter(match=keys.worker("*"), count=100):
        raw = client.get(key)
        if not raw:
            continue  # expired between the scan and the read
        try:
            workers.append(WorkerPresence.model_validate_json(raw))  # type: ignore[arg-type]
        except ValidationError:
            continue  # not a worker of this version; it will expire
    return workers
