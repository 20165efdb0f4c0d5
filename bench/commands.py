"""Count the commands a Redis server runs while some work runs, with MONITOR: by name, and by who sent them.

MONITOR shows what clients send (a pipeline's commands each, MULTI and EXEC included, an EVAL once) and, marked
``lua``, what scripts run inside. Both are counted: the first is a job's round trips' worth of commands, the sum is
what INFO commandstats would count. What an idle stack runs meanwhile (blocking polls, upkeep, heartbeats) is
measured first and taken off at its rate.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

WAIT_S = 5.0


@dataclass
class Counts:
    """Commands seen in a window, by name: sent by clients, and run inside scripts."""

    seconds: float = 0.0
    client: Counter[str] = field(default_factory=Counter)
    script: Counter[str] = field(default_factory=Counter)


class CommandLog:
    """A MONITOR connection read by a thread; ``during(work)`` counts what the server ran while ``work`` ran, by the
    server's own timestamps (the same host's clock)."""

    def __init__(self, url: str, database: int | None = None) -> None:
        """``database``: count only the commands run on that one (None: all)."""
        self._client = redis.Redis.from_url(url)
        self._database = database
        self._seen: list[tuple[float, str, bool]] = []
        """(time, command name, run by a script), in the order the server ran them."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-monitor", daemon=True)
        self._ready = threading.Event()

    def __enter__(self) -> CommandLog:
        self._thread.start()
        if not self._ready.wait(WAIT_S):
            raise RuntimeError("MONITOR did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._client.ping()  # wakes the reader, which then sees it should stop
        self._thread.join(WAIT_S)
        self._client.close()

    def during(self, work: Callable[[], object]) -> Counts:
        started = time.time()
        work()
        ended = time.time()
        self._caught_up(ended)
        counts = Counts(seconds=ended - started)
        with self._lock:
            for at, name, by_script in self._seen:
                if started <= at <= ended:
                    (counts.script if by_script else counts.client)[name] += 1
            self._seen = [entry for entry in self._seen if entry[0] > ended]
        return counts

    def _caught_up(self, after: float) -> None:
        """Wait until the reader has seen the server run a command stamped after ``after``."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            self._client.ping()
            with self._lock:
                if self._seen and self._seen[-1][0] > after:
                    return
            time.sleep(0.05)
        raise RuntimeError("MONITOR fell behind")

    def _read(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            while not self._stopping.is_set():
                command: dict[str, Any] = monitor.next_command()
                if self._database is not None and int(command.get("db", 0)) != self._database:
                    continue
                name = command["command"].split(" ", 1)[0].strip('"').upper()
                with self._lock:
                    self._seen.append((command["time"], name, command["client_type"] == "lua"))


def per_job(busy: Counts, idle: Counts, jobs: int) -> dict[str, dict[str, float]]:
    """Commands one job adds, by name, for each kind (``client``, ``script``): those while the jobs ran, less an
    idle stack's at its rate over the same time, per job; names under half a command a job are left out."""
    scale = busy.seconds / idle.seconds if idle.seconds else 0.0
    result: dict[str, dict[str, float]] = {}
    for kind in ("client", "script"):
        seen: Counter[str] = getattr(busy, kind)
        quiet: Counter[str] = getattr(idle, kind)
        extra = {name: (n - quiet[name] * scale) / jobs for name, n in seen.items()}
        result[kind] = {k: round(v, 1) for k, v in sorted(extra.items(), key=lambda kv: -kv[1]) if v >= 0.5}
    return result
