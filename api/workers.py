"""Which workers are alive, from the keys their upkeep threads refresh."""

from __future__ import annotations

import json
from typing import Any

from .services import Services


def live_workers(s: Services) -> list[dict[str, Any]]:
    workers = []
    for key in s.redis.scan_iter(match=s.config.worker_key("*"), count=100):
        raw = s.redis.get(key)
        if raw:
            workers.append(json.loads(raw))
    return workers
