"""The worker on jemalloc (``TTSQ_ALLOCATOR``, by default wherever Debian's libjemalloc2 is installed).

onnxruntime allocates and frees tensors by the megabyte, loading a voice as much as running it; glibc's malloc
keeps much of what was freed (per-thread arenas, fragmentation). On jemalloc, which returns freed pages after a
short decay, each added speaker cost 81 MB of RSS instead of 170 and a worker sat at 232 MB between jobs instead
of 304, at the same speed (bench/memory.py). The dynamic loader reads ``LD_PRELOAD`` only when a process starts, so
the command executes itself again with it set (same PID, so ``ttsq serve`` and process managers see one
process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

JEMALLOC = "libjemalloc.so.2"
"""Debian's ``libjemalloc2`` (in the images)."""
JEMALLOC_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"
"""Freed pages go back to the system within a second, from jemalloc's own thread (not on the synthesis path);
a ``MALLOC_CONF`` already set wins."""


def find_jemalloc() -> Path | None:
    return next((Path(d) / JEMALLOC for d in JEMALLOC_DIRS if (Path(d) / JEMALLOC).is_file()), None)


def jemalloc_loaded() -> bool:
    """Whether this process runs on jemalloc (its library is mapped)."""
    try:
        return JEMALLOC in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def use_allocator(allocator: str, argv: list[str]) -> None:
    """Return when this process runs on ``allocator``; else execute ``python -m ttsq *argv`` again on it. Asked for
    jemalloc where it is not installed: one line and an exit; ``auto`` then stays on the system's."""
    if allocator == "system" or jemalloc_loaded():
        return
    library = find_jemalloc()
    if library is None and allocator == "auto":
        return
    if library is None:
        sys.exit(
            f"ttsq worker: TTSQ_ALLOCATOR=jemalloc, but {JEMALLOC} is not installed (Debian: apt-get install "
            "libjemalloc2); or run with TTSQ_ALLOCATOR=system"
        )
    preload = " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD")]))
    env = {**os.environ, "LD_PRELOAD": preload, "MALLOC_CONF": os.environ.get("MALLOC_CONF") or JEMALLOC_CONF}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "ttsq", *argv], env)
