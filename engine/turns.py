"""Whose sentence a speaker synthesizes next: interactive speech before batch narration, one sentence at a time."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first. A speech request waits at most for the batch sentence in flight, never for a whole job."""

    interactive = 0
    batch = 1


class Turns:
    """A counting gate over a speaker's inference slots, handed out by priority, then first come first served.

    A plain lock would let a narration keep the voice for a whole segment; here every sentence takes a turn, so
    an interactive request waiting for the voice gets the next free slot ahead of any batch sentence."""

    def __init__(self, slots: int = 1) -> None:
        self._slots = max(1, slots)
        self._busy = 0
        self._waiting: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._changed = threading.Condition()

    @contextmanager
    def take(self, priority: Priority) -> Iterator[None]:
        """Hold one slot while the block runs."""
        with self._changed:
            ticket = (int(priority), next(self._tickets))
            heapq.heappush(self._waiting, ticket)
            while self._busy >= self._slots or self._waiting[0] != ticket:
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._busy += 1
            if self._busy < self._slots:
                self._changed.notify_all()  # another slot is free: the next in line may take it now
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                self._changed.notify_all()

    @property
    def busy(self) -> int:
        """Slots in use now (for tests and metrics)."""
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class Slots:
    """At most ``count`` holders at once, first come first served: a speaker's batch syntheses (narrations), so a
    voice with two inference streams runs two jobs side by side, and a third waits for one of them."""

    def __init__(self, count: int = 1) -> None:
        self._count = max(1, count)
        self._held = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._changed:
            while self._held >= self._count:
                self._changed.wait()
            self._held += 1
        try:
            yield
        finally:
            with self._changed:
                self._held -= 1
                self._changed.notify()

    @property
    def held(self) -> int:
        """Holders now (for tests and metrics)."""
        return self._held
