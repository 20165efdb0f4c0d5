"""The one way a long-running process opens Redis: a pool with room for every thread that may use it at once."""

from __future__ import annotations

from typing import Any

import redis

SPARE_CONNECTIONS = 16
"""Room beyond the threads counted: background threads (upkeep, lock keepers, the job-events listener)."""


def redis_client(url: str, threads: int, **options: Any) -> redis.Redis:
    """A client whose pool holds ``threads`` connections and spares. redis-py 8 caps a pool at 100 by default and
    raises past it, which an API holding one blocking read per open speech stream reaches at 100 clients."""
    return redis.Redis.from_url(url, max_connections=threads + SPARE_CONNECTIONS, **options)
