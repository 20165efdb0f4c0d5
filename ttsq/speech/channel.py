"""Both ends of a speech request in Redis: the API's (queue, read, cancel) and the worker's (take, write)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import redis

from .. import scripts
from ..keys import Keys
from . import (
    MAX_BACKLOG,
    MAX_ENTRY_BYTES,
    EntryKind,
    NoWorkerError,
    SpeechEntry,
    SpeechError,
    SpeechGone,
    SpeechRequest,
)

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 200
"""How long one blocking read waits: between reads the API checks that its client is still there."""
BACKLOG_POLL_S = 0.02
CANCEL_MARGIN_S = 5.0


# --- the API's end ---------------------------------------------------------------------------------------------------
class SpeechReader:
    """Queue a request and read its audio as the worker writes it. Always ``close()`` (or use ``with``): it removes
    what the request left in Redis, and a reader closed before the end cancels the request."""

    def __init__(self, client: redis.Redis, keys: Keys, request: SpeechRequest, idle_timeout_s: float) -> None:
        self.client, self.keys, self.request = client, keys, request
        self.idle_timeout_s = idle_timeout_s
        self._stream = keys.speech_stream(request.id)
        self._payload = request.model_dump_json()
        self._last_id = "0-0"
        self._pending: list[SpeechEntry] = []
        """Entries read with the start entry, in the same batch: the audio's beginning (or all of it)."""
        self._ended = False
        self._closed = False
        self.sample_rate = 0

    def __enter__(self) -> SpeechReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self) -> None:
        self.client.rpush(self.keys.speech_queue(self.request.speaker), self._payload)

    def wait_start(self, alive: Callable[[], bool] = lambda: True) -> int:
        """Block until a worker has taken the request; its sample rate. NoWorkerError once the deadline passes
        with the request still queued (it is withdrawn, so no worker speaks it later)."""
        extended = False
        while True:
            entries = self._read(alive, until=self.request.deadline)
            for position, entry in enumerate(entries):
                if entry.kind == EntryKind.start:
                    self.sample_rate = entry.sample_rate
                    # A short text's audio and end can come in the same read (they are deleted from the stream).
                    self._pending = entries[position + 1 :]
                    return entry.sample_rate
                self._raise_if_error(entry)
            if self.client.lrem(self.keys.speech_queue(self.request.speaker), 1, self._payload):
                self._ended = True  # withdrawn: no worker has it, none will
                raise NoWorkerError(
                    f"no worker serving speaker {self.request.speaker!r} took the request within "
                    f"{self.request.deadline - self.request.created_at:.0f} s"
                )
            if extended:  # taken, yet no start entry in a whole idle timeout: its worker dropped it (or died)
                self._ended = True
                raise SpeechError("the worker that took the request sent nothing", "worker_silent")
            # Taken just now: its start entry is on the way (once).
            extended = True
            self.request = self.request.model_copy(update={"deadline": time.time() + self.idle_timeout_s})

    def audio(self, alive: Callable[[], bool] = lambda: True) -> Iterator[bytes]:
        """The PCM pieces, in order, until the worker's end entry; SpeechError on its error entry, SpeechGone when
        the client goes (``alive`` says so) or the worker falls silent for the idle timeout."""
        while not self._ended:
            got = False
            entries, self._pending = self._pending or self._read(alive, until=time.time() + self.idle_timeout_s), []
            for entry in entries:
                got = True
                if entry.kind == EntryKind.audio:
                    yield entry.pcm
                elif entry.kind == EntryKind.end:
                    self._ended = True
                    return
                self._raise_if_error(entry)
            if not got:
                raise SpeechError(f"the worker sent nothing for {self.idle_timeout_s:.0f} s", "worker_silent")

    def _read(self, alive: Callable[[], bool], until: float) -> list[SpeechEntry]:
        """What arrives before ``until`` (the first batch of entries, or nothing); read entries are deleted."""
        while time.time() < until:
            if not alive():
                raise SpeechGone("the client went away")
            answer: Any = self.client.xread({self._stream: self._last_id}, count=MAX_BACKLOG, block=READ_BLOCK_MS)
            if not answer:
                continue
            messages: list[tuple[bytes, dict[bytes, bytes]]] = answer[0][1]
            ids = [message_id for message_id, _ in messages]
            self._last_id = ids[-1].decode()
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xdel(self._stream, *ids)
                pipe.pexpire(self._stream, int(self.idle_timeout_s * 1000))  # a slow reader keeps it alive too
                pipe.execute()
            return [SpeechEntry.parse(fields) for _, fields in messages]
        return []

    def _raise_if_error(self, entry: SpeechEntry) -> None:
        if entry.kind == EntryKind.error:
            self._ended = True
            raise SpeechError(entry.message, entry.code or None)

    def close(self) -> None:
        """Remove the stream; if the request had not ended, cancel it: withdrawn while still queued, else flagged so
        its worker stops within a sentence (the flag expires on its own, and the worker removes it sooner). Runs once
        however often it is called."""
        if self._closed:
            return
        self._closed = True
        try:
            self._remove()
        except redis.RedisError as error:  # both keys expire on their own; a worker still writing times out
            logger.warning("speech %s: could not clean up in Redis: %s", self.request.id, error)

    def _remove(self) -> None:
        if not self._ended and not self.client.lrem(self.keys.speech_queue(self.request.speaker), 1, self._payload):
            with self.client.pipeline() as pipe:
                pipe.set(
                    self.keys.speech_cancel(self.request.id), 1, px=int((self.idle_timeout_s + CANCEL_MARGIN_S) * 1000)
                )
                pipe.delete(self._stream)
                pipe.execute()
            return
        self.client.delete(self._stream)


# --- the worker's end ------------------------------------------------------------------------------------------------
def take_request(client: redis.Redis, keys: Keys, speakers: list[str], timeout_s: float) -> SpeechRequest | None:
    """The next request for one of ``speakers`` (None after ``timeout_s``); stale or canceled ones are dropped."""
    popped = client.blpop([keys.speech_queue(name) for name in speakers], timeout=timeout_s)
    if popped is None:
        return None
    try:
        request = SpeechRequest.model_validate_json(popped[1])
    except ValueError:
        logger.warning("dropping a malformed speech request from %s", popped[0])
        return None
    if time.time() > request.deadline:
        logger.info("speech %s: taken after its deadline; the API has answered already", request.id)
        return None
    return request


class SpeechWriter:
    """Append a request's audio to its stream, waiting while the reader is behind; SpeechGone once it has gone."""

    def __init__(self, client: redis.Redis, keys: Keys, request_id: str, idle_timeout_s: float) -> None:
        self.client = client
        self.idle_timeout_s = idle_timeout_s
        self._keys = (keys.speech_stream(request_id), keys.speech_cancel(request_id))
        self._ttl_ms = int(idle_timeout_s * 1000)
        self._append = client.register_script(scripts.SPEECH_APPEND)

    def start(self, sample_rate: int) -> None:
        self._put(SpeechEntry(EntryKind.start, sample_rate=sample_rate))

    def audio(self, pcm: bytes) -> None:
        for offset in range(0, len(pcm), MAX_ENTRY_BYTES):
            self._put(SpeechEntry(EntryKind.audio, pcm=pcm[offset : offset + MAX_ENTRY_BYTES]))

    def end(self) -> None:
        self._put(SpeechEntry(EntryKind.end))

    def error(self, code: str, message: str) -> None:
        with suppress(SpeechGone):  # nobody to tell
            self._put(SpeechEntry(EntryKind.error, code=code, message=message))

    def discard(self) -> None:
        """After the client went: nothing of the request stays in Redis."""
        self.client.delete(*self._keys)

    def _put(self, entry: SpeechEntry) -> None:
        backlog = int(self._append(keys=self._keys, args=[self._ttl_ms, *entry.fields()]))
        if backlog < 0:
            raise SpeechGone("the client went away")
        if backlog > MAX_BACKLOG:
            self._wait_for_reader()

    def _wait_for_reader(self) -> None:
        deadline = time.monotonic() + self.idle_timeout_s
        stream, cancel_flag = self._keys
        while time.monotonic() < deadline:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.xlen(stream)
                pipe.exists(cancel_flag)
                pipe.exists(stream)
                backlog, canceled, present = pipe.execute()
            if canceled or not present:  # canceled, or the stream expired with nobody reading
                raise SpeechGone("the client went away")
            if backlog <= MAX_BACKLOG // 2:
                return
            time.sleep(BACKLOG_POLL_S)  # the reader's XDELs leave no event to wait on
        raise SpeechGone(f"the client read nothing for {self.idle_timeout_s:.0f} s")
