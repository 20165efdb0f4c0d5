"""gunicorn server hooks (``gunicorn -c tests/chaos/killpoints.py ...``): SIGKILL the API worker at a named point of
``POST /v1/jobs``, for a request that carries ``X-Chaos-Kill: <point>``. Without that header nothing changes.

A random SIGKILL during a burst of submissions lands in these windows now and then (the first chaos runs left three
of twelve jobs queued forever); a named point lands there every time.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

KILL_HEADER = "X-Chaos-Kill"
POINTS = ("before-answer",)
"""After everything (the job recorded, counted, queued and its Idempotency-Key kept with it, all in one step), before
the answer is sent. The other window a kill used to land in, between recording the job and queueing its message, is
gone since issue 12 (one Lua step does both)."""


def _kill_at(point: str, original: Callable[..., Any]) -> Callable[..., Any]:
    from flask import request

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if request.headers.get(KILL_HEADER) == point:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    return wrapper


def post_worker_init(worker: Any) -> None:
    """gunicorn calls this in each worker once the app is loaded."""
    import api.jobs

    api.jobs.job_view = _kill_at("before-answer", api.jobs.job_view)
