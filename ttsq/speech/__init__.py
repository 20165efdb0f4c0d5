"""Interactive speech through Redis: the API queues a request, the worker holding the voice streams its PCM back.

Not a Celery task: a speech request must start within milliseconds and never wait behind narration tasks for a
thread, so workers take requests from a plain Redis list (``BLPOP``) on threads of their own, and each request's
audio comes back on a Redis Stream of its own (``Keys.speech_stream``):

- the worker appends ``start`` (with the sample rate), then ``audio`` entries of at most ``MAX_ENTRY_BYTES`` of
  16-bit PCM as each sentence is ready, then ``end`` or ``error``; each append refreshes the stream's expiry and is
  refused once the client has gone (``scripts.SPEECH_APPEND``);
- the API reads with a blocking ``XREAD``, deletes what it has read, and removes the stream at the end;
- the worker waits while ``MAX_BACKLOG`` entries are unread, so one open stream holds at most
  ``MAX_BACKLOG * MAX_ENTRY_BYTES`` (1 MiB) of audio in Redis however long the input is.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from enum import Enum

from pydantic import BaseModel, Field

MAX_ENTRY_BYTES = 64 * 1024
"""PCM per stream entry (about 1.5 s at 22,050 Hz); a sentence's audio is split into entries of this size."""
MAX_BACKLOG = 16
"""Unread entries a worker lets pile up before it waits for the reader."""


def new_request_id() -> str:
    return secrets.token_hex(16)


class SpeechRequest(BaseModel):
    """What the API queues for the worker; ``deadline`` is when the API stops waiting for a worker to take it."""

    id: str = Field(default_factory=new_request_id)
    speaker: str
    text: str
    speed: float = 1.0
    owner: str | None = None
    created_at: float = Field(default_factory=time.time)
    deadline: float


class EntryKind(str, Enum):
    start = "start"
    audio = "audio"
    end = "end"
    error = "error"


@dataclass(frozen=True)
class SpeechEntry:
    """One entry of a request's stream."""

    kind: EntryKind
    pcm: bytes = b""
    sample_rate: int = 0
    code: str = ""
    message: str = ""

    def fields(self) -> list[bytes | str | int]:
        """Field/value pairs for XADD; only the ones the kind uses."""
        pairs: list[bytes | str | int] = ["kind", self.kind.value]
        if self.kind == EntryKind.audio:
            pairs += ["pcm", self.pcm]
        elif self.kind == EntryKind.start:
            pairs += ["rate", self.sample_rate]
        elif self.kind == EntryKind.error:
            pairs += ["code", self.code, "message", self.message]
        return pairs

    @classmethod
    def parse(cls, fields: dict[bytes, bytes]) -> SpeechEntry:
        kind = EntryKind(fields.get(b"kind", b"error").decode())
        return cls(
            kind=kind,
            pcm=fields.get(b"pcm", b""),
            sample_rate=int(fields.get(b"rate", b"0")),
            code=fields.get(b"code", b"").decode(),
            message=fields.get(b"message", b"").decode(),
        )


class SpeechError(Exception):
    """A speech request that can't go on; ``code`` is machine-readable, the message is for people."""

    code = "speech_failed"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class SpeechGone(SpeechError):
    """The client went away (the API canceled the request), or stopped reading for too long."""

    code = "client_gone"


class NoWorkerError(SpeechError):
    """No worker took the request in time."""

    code = "no_worker"
