"""A process's memory from /proc: its RSS now, its peak (VmHWM, resettable), and a sampled curve over a job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.stack import BenchError

MB = 1e6
RSS_PERIOD_S = 0.5
"""How often VmRSS of the worker is sampled during a job."""
RSS_CURVE_PARTS = 10
"""The sampled RSS is summarised as its maximum in each of this many equal parts of the job's wall time."""


def proc_status_bytes(pid: int, field: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no {field} line")


def reset_peak_rss(pid: int) -> bool:
    """Set the process's VmHWM back to its current RSS (Linux 4.0+), so the next reading is the job's own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Reads the worker's VmRSS every ``period_s`` on a thread, as (seconds since start, bytes) pairs."""

    def __init__(self, pid: int, period_s: float = RSS_PERIOD_S) -> None:
        self.pid = pid
        self.period_s = period_s
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def _run(self) -> None:
        started = time.perf_counter()
        while True:
            try:
                self.samples.append((time.perf_counter() - started, proc_status_bytes(self.pid, "VmRSS")))
            except (OSError, BenchError):
                return  # the worker is gone; its log tells why
            if self._stop.wait(self.period_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss_curve(
    samples: Sequence[tuple[float, int]], parts: int = RSS_CURVE_PARTS, pick: Callable[[float, float], float] = max
) -> list[float | None]:
    """The largest sample (MB) in each of ``parts`` equal spans of the sampled time (``pick=min``: the smallest);
    None for a span with none."""
    if not samples:
        return [None] * parts
    span = samples[-1][0] or 1.0
    curve: list[float | None] = [None] * parts
    for at, rss in samples:
        part = min(int(at / span * parts), parts - 1)
        value = rss / MB
        current = curve[part]
        curve[part] = value if current is None else pick(current, value)
    return curve
