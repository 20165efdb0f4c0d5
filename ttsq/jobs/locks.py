"""Token locks in Redis: held by one run at a time, extended and dropped only by the run that holds them.

A job's lock fences every write its run makes (the token is checked in the same step as the write); a webhook
delivery takes one too, so two tasks for one event never POST twice.
"""

from __future__ import annotations

import redis

from ttsq import scripts


def acquire(client: redis.Redis, key: str, token: str, ttl_s: float) -> bool:
    return bool(client.set(key, token, nx=True, px=int(ttl_s * 1000)))


def refresh(client: redis.Redis, key: str, token: str, ttl_s: float) -> bool:
    """Extend the lock if ``token`` still holds it; False when it was lost (expired, or taken by another run)."""
    return bool(client.eval(scripts.REFRESH_LOCK, 1, key, token, int(ttl_s * 1000)))


def release(client: redis.Redis, key: str, token: str) -> None:
    client.eval(scripts.RELEASE_LOCK, 1, key, token)
