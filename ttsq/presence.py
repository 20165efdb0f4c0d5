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
    """The worker's announcement, and its name in the workers' set; names whose announcement lapsed a TTL ago
    (workers that died without withdrawing) leave the set, with a TTL's grace for hosts' clocks."""
    now = time.time()
    with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.worker(presence.name), presence.model_dump_json(), ex=ttl_s)
        pipe.zadd(keys.workers, {presence.name: now + ttl_s})
        pipe.zremrangebyscore(keys.workers, "-inf", now - ttl_s)
        pipe.expire(keys.workers, 2 * ttl_s)
        pipe.execute()


def withdraw(client: redis.Redis, keys: Keys, name: str) -> None:
    """Gone at once from /readyz and the healthcheck, not when the key would have expired."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.worker(name))
        pipe.zrem(keys.workers, name)
        pipe.execute()


def is_alive(client: redis.Redis, keys: Keys, name: str) -> bool:
    return bool(client.exists(keys.worker(name)))


def live_workers(client: redis.Redis, keys: Keys) -> list[WorkerPresence]:
    """Two reads whatever the keyspace holds: the names, then their announcements (Redis expires a dead one's)."""
    members: list[bytes] = client.zrange(keys.workers, 0, -1)  # type: ignore[assignment]
    names = [keys.worker(name.decode()) for name in members]
    workers = []
    for raw in client.mget(names) if names else []:
        if not raw:
            continue  # its worker stopped refreshing it: dead, or stopped without withdrawing
        try:
            workers.append(WorkerPresence.model_validate_json(raw))
        except ValidationError:
            continue  # not a worker of this version; it will expire
    return workers


SERVED_MAX_AGE_S = 1.0
"""How stale an API process's view of the served speakers may be (a job or speech request reads it)."""


class ServedVoices:
    """The speakers live workers serve, as this process last read them (the workers' announcements): read again
    when older than ``max_age_s``, or when asked about a speaker the last read did not list, so a worker that just
    started is seen at once and one that just stopped within ``max_age_s``. Safe to share between threads (a
    race reads twice)."""

    def __init__(self, client: redis.Redis, keys: Keys, max_age_s: float = SERVED_MAX_AGE_S) -> None:
        self._client, self._keys, self._max_age_s = client, keys, max_age_s
        self._last: tuple[float, dict[str, AnnouncedVoice | None]] = (float("-inf"), {})

    def get(self, speaker: str | None = None, fresh: bool = False) -> dict[str, AnnouncedVoice | None]:
        read_at, served = self._last
        recent = time.monotonic() - read_at < self._max_age_s
        if recent and not fresh and (speaker is None or speaker in served):
            return served
        served = served_voices(live_workers(self._client, self._keys))
        self._last = (time.monotonic(), served)
        return served
