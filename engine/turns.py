"""Whose sentence a speaker synthesizes next: interactive speech before batch narration, a sentence a turn."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    """Lower goes first. A speech request waits at most for the batch sentence in flight, never for a whole job."""

    interactive = 0
    batch = 1


SPEECH_RESERVE_S = 10.0
"""For this long after its last interactive sentence, a speaker with several slots keeps one free of batch work:
speech comes in bursts (a voice agent's turns), and its next sentence then starts at once instead of waiting for a
narration's sentence to end."""


class Turns:
    """A counting gate over a speaker's inference slots, handed out by priority, then first come first served.

    A plain lock would let a narration keep the voice for a whole segment; here every sentence takes a turn, so
    an interactive request waiting for the voice gets the next free slot ahead of any batch sentence. And no batch
    sentence starts while an interactive one runs: the slots share the cores, and a listener is waiting for that
    sentence. And for ``reserve_s`` after an interactive sentence, batch sentences leave one slot free (when there is
    more than one). Issue 12, bench/speech.py: a sentence's first audio during a narration 514 -> ~300 ms on two
    slots."""

    def __init__(self, slots: int = 1, reserve_s: float = SPEECH_RESERVE_S) -> None:
        self._slots = max(1, slots)
        self._reserve_s = reserve_s
        self._spoke_at = -reserve_s
        """When an interactive sentence last started or ended (monotonic)."""
        self._busy = 0
        self._interactive = 0
        """Interactive sentences running now."""
        self._waiting: list[tuple[int, int]] = []
        self._tickets = itertools.count()
        self._changed = threading.Condition()

    @contextmanager
    def take(self, priority: Priority) -> Iterator[None]:
        """Hold one slot while the block runs."""
        with self._changed:
            ticket = (int(priority), next(self._tickets))
            heapq.heappush(self._waiting, ticket)
            while self._busy >= self._slots or self._waiting[0] != ticket or self._held_back(priority):
                # A batch turn held back by the reservation is free to go once it lapses: no event tells that.
                self._changed.wait(self._reserve_left() or None)
            heapq.heappop(self._waiting)
            self._busy += 1
            if priority == Priority.interactive:
                self._interactive += 1
                self._spoke_at = time.monotonic()
            if self._busy < self._slots:
                self._changed.notify_all()  # another slot is free: the next in line may take it now
        try:
            yield
        finally:
            with self._changed:
                self._busy -= 1
                if priority == Priority.interactive:
                    self._interactive -= 1
                    self._spoke_at = time.monotonic()
                self._changed.notify_all()

    def _held_back(self, priority: Priority) -> bool:
        """A batch turn waits while an interactive sentence runs, and leaves a slot free within the reservation."""
        if priority != Priority.batch:
            return False
        if self._interactive:
            return True
        return self._slots > 1 and self._busy >= self._slots - 1 and self._reserve_left() > 0

    def _reserve_left(self) -> float:
        return max(0.0, self._spoke_at + self._reserve_s - time.monotonic()) if self._slots > 1 else 0.0

    @property
    def busy(self) -> int:
        """Slots in use now (for tests and metrics)."""
        return self._busy

    @property
    def waiting(self) -> int:
        return len(self._waiting)


@dataclass
class Held:
    """A slot of ``Slots``: ``last`` is set as it is given back."""

    last: bool = False


class Slots:
    """At most ``count`` holders at once, first come first served: a speaker's batch syntheses (narrations), so a
    voice with two inference streams runs two jobs side by side, and a third waits for one of them."""

    def __init__(self, count: int = 1) -> None:
        self._count = max(1, count)
        self._held = 0
        self._waiting = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self) -> Iterator[Held]:
        """A slot; once it is given back, its ``last`` says whether no other holder or waiter was left then."""
        with self._changed:
            self._waiting += 1
            try:
                while self._held >= self._count:
                    self._changed.wait()
            finally:
                self._waiting -= 1
            self._held += 1
        held = Held()
        try:
            yield held
        finally:
            with self._changed:
                self._held -= 1
                held.last = self._held == 0 and self._waiting == 0  # decided with the slot: two ending at once agree
                self._changed.notify()

    @property
    def held(self) -> int:
        """Holders now (for tests and metrics)."""
        return self._held
