"""How many cores this process may use: what a speaker's threads and streams default to."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
"""cgroup v2's CPU quota of this process's group: ``<quota> <period>`` or ``max <period>`` (a container's --cpus)."""


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The CPUs this process may run on (its affinity), capped by its cgroup's CPU quota. ``os.cpu_count()`` counts
    the host's: a container given 2 CPUs on a 64-core node would run 64 sentences at once, each with its working
    memory."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS)
        cores = os.cpu_count() or 1
    quota = cgroup_quota(cpu_max)
    return max(1, min(cores, quota) if quota else cores)


def cgroup_quota(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """Whole CPUs the quota allows (rounded up), or None when there is no quota or no cgroup v2 file to read."""
    try:
        fields = cpu_max.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return math.ceil(quota / period) if quota > 0 and period > 0 else None
