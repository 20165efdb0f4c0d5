"""Long polls that scale: one pub/sub connection per API process wakes every request waiting on a job.

A subscription per poll cost a connection and ~1.7 ms each (issue 12), and a poll woke on every progress write.
Here one thread holds a pattern subscription to every job's events channel and sets the waiting requests' events;
a poll answers at once on a status change, and on progress at most once a ``PROGRESS_INTERVAL_S``."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from ..keys import Keys
from ..models import Job
from .store import JobStore

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0
"""A poll waiting on a running job answers progress no more often than this (a status change at once)."""
RECONNECT_S = 1.0
LISTEN_TIMEOUT_S = 1.0
SUBSCRIBE_TIMEOUT_S = 2.0


def _as_read(job: Job | None) -> Job | None:
    return job


CHANGED = b"changed"
"""What a write that does not end the job publishes; a job's end publishes its ended record (scripts.END_JOB)."""


@dataclass(eq=False)  # each waiter is its own (a set member by identity)
class Waiter:
    """One waiting request: woken by any message about its job, and handed the ended record if that is one."""

    changed: threading.Event = field(default_factory=threading.Event)
    ended: bytes | None = None


class JobEvents:
    """Started on first use; its thread is a daemon, so the process ends as ever."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client, self._keys = client, keys
        self._waiting: dict[str, set[Waiter]] = defaultdict(set)
        self._lock = threading.Lock()
        self._started = False
        self._subscribed = threading.Event()

    def wait_for_change(
        self,
        store: JobStore,
        job_id: str,
        timeout_s: float,
        admit: Callable[[Job | None], Job | None] = _as_read,
        seen: Callable[[Job], bool] | None = None,
    ) -> Job | None:
        """The job once its status changes (or it ends), once its progress has moved and a second has passed, or
        as it stands after ``timeout_s``; None if there is no such job. ``admit`` sees the first read before any
        wait (an API route raises there for a job its caller may not see): one read, not one before and one in.
        ``seen``: the caller's cursor (an API client's ``If-None-Match``), which says whether it has seen the job as
        it stands; one it has not is answered at once, so a change between two polls is never waited past."""
        started = time.monotonic()
        deadline = started + timeout_s
        with self.watch(job_id) as waiter:
            # Registered before reading, so no change can slip in between the read and the wait.
            first = admit(store.get(job_id))
            if first is None or first.status.terminal or (seen is not None and not seen(first)):
                return first
            while (remaining := deadline - time.monotonic()) > 0:
                if not waiter.changed.wait(remaining):
                    break
                waiter.changed.clear()
                latest = _latest(store, job_id, waiter)
                if latest is None or latest.status != first.status:
                    return latest
                if latest.progress != first.progress:
                    return self._hold(store, job_id, first, waiter, min(started + PROGRESS_INTERVAL_S, deadline))
            return store.get(job_id)

    @contextmanager
    def watch(self, job_id: str) -> Iterator[Waiter]:
        """While inside, every event of the job wakes the waiter: a change made after entering is never missed (a
        job watched before it is created needs no read to start from)."""
        self._start()
        waiter = Waiter()
        with self._lock:
            self._waiting[job_id].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiting[job_id]
                waiters.discard(waiter)
                if not waiters:
                    del self._waiting[job_id]

    @staticmethod
    def until_end(store: JobStore, job: Job, waiter: Waiter, timeout_s: float) -> Job | None:
        """``job`` once it ends, or as it stands after ``timeout_s`` (None if removed meanwhile); ``job`` as it stood
        when ``waiter``'s watch began or since. One wait (an API's ``Prefer: wait``), not one poll a change: a change
        on the way costs a status read, not the record's; the end comes as its record, or is read."""
        deadline = time.monotonic() + timeout_s
        if job.status.terminal:
            return job
        while (remaining := deadline - time.monotonic()) > 0:
            if not waiter.changed.wait(remaining):
                break
            waiter.changed.clear()
            if waiter.ended is not None and (ended := store.published(job.id, waiter.ended)) is not None:
                return ended
            status = store.status(job.id)
            if status is None or status.terminal:
                break
        # Read after the wait too: a message missed (a subscription not yet in place) costs no more than the wait.
        return store.get(job.id)

    @staticmethod
    def _hold(store: JobStore, job_id: str, first: Job, waiter: Waiter, until: float) -> Job | None:
        """Progress moved: answer at ``until`` with the latest, or at once if the status changes before then."""
        while (remaining := until - time.monotonic()) > 0:
            if not waiter.changed.wait(remaining):
                break
            waiter.changed.clear()
            latest = _latest(store, job_id, waiter)
            if latest is None or latest.status != first.status:
                return latest
        return store.get(job_id)

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._listen, name="ttsq-job-events", daemon=True).start()
        # Until the subscription is in place a wakeup could be missed; waits time out and re-read regardless.
        self._subscribed.wait(SUBSCRIBE_TIMEOUT_S)

    def _listen(self) -> None:
        pattern = self._keys.events("*")
        base, suffix = self._keys.job(""), self._keys.events("")[len(self._keys.job("")) :]
        while True:
            try:
                with self._client.pubsub() as events:
                    events.psubscribe(pattern)
                    _confirmed(events)
                    self._subscribed.set()
                    self._wake_all()  # after a reconnect: whatever happened meanwhile is read again
                    while True:
                        message = events.get_message(timeout=LISTEN_TIMEOUT_S)
                        if message is None or message["type"] != "pmessage":
                            continue
                        channel = message["channel"].decode()
                        self._wake(channel.removeprefix(base).removesuffix(suffix), message["data"])
            except redis.RedisError as error:
                logger.warning("job events: lost the Redis subscription (%s); reconnecting", error)
                time.sleep(RECONNECT_S)
            except Exception:  # the thread must not die: every later long poll would wait out its whole timeout
                logger.exception("job events: unexpected error; subscribing again")
                time.sleep(RECONNECT_S)

    def _wake(self, job_id: str, message: bytes) -> None:
        with self._lock:
            waiters = list(self._waiting.get(job_id, ()))
        for waiter in waiters:
            if message != CHANGED:
                waiter.ended = message
            waiter.changed.set()

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [waiter for waiting in self._waiting.values() for waiter in waiting]
        for waiter in waiters:
            waiter.changed.set()


def _confirmed(events: redis.client.PubSub) -> None:
    """Until Redis confirms the subscription (or a few seconds pass): sent is not in place, and a message published
    in between would reach no one (the first wait of a process would miss it; found by review)."""
    deadline = time.monotonic() + SUBSCRIBE_TIMEOUT_S
    while time.monotonic() < deadline:
        reply = events.get_message(timeout=LISTEN_TIMEOUT_S)
        if reply is not None and reply["type"] == "psubscribe":
            return


def _latest(store: JobStore, job_id: str, waiter: Waiter) -> Job | None:
    """The job as its end published it, if that is what woke the waiter (one read of Redis less, issue 12), else
    as read now."""
    if waiter.ended is not None and (ended := store.published(job_id, waiter.ended)) is not None:
        return ended
    return store.get(job_id)
