"""What every storage backend shares: the keys ttsq makes (never a request), their types, the protocol, errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection
from typing import BinaryIO, Protocol

from engine.constants import CAPTION_TYPES, MIME_TYPES
from ttsq.models import JOB_ID

OUTPUT_FORMATS = tuple(MIME_TYPES)

OUTPUT_KEY = re.compile(JOB_ID.pattern + r"\.(" + "|".join(OUTPUT_FORMATS) + r")")
CAPTION_KEY = re.compile(JOB_ID.pattern + r"\.(" + "|".join(CAPTION_TYPES) + r")")
"""A finished job's captions, one object per format (issue 14)."""
COVER_KEY = re.compile(JOB_ID.pattern + r"\.cover")
"""The cover image of an uploaded document, kept for the output's tags until the job ends."""
SEGMENT_KEY = re.compile(JOB_ID.pattern + r"\.s[0-9]{6}(\.[0-9a-f]{12})?\.pcm")
"""A finished piece of a long job: raw int16 PCM, assembled into the output at the end. Named after the run that
made it, so a run that lost its lock can never replace the piece another run recorded."""


class StorageError(OSError):
    """Writing or reading stored audio failed; the message says where and why."""


class WriteFenced(Exception):
    """The writer's fence said no (its run lost the job's lock): nothing was stored, nothing replaced."""


Fence = Callable[[], bool]
"""Asked just before an object is committed (and before a writer removes anything): True while the run may write."""


class InvalidKeyError(ValueError):
    """A storage key that ttsq could not have made (path traversal, odd names)."""


def key_for(job_id: str, fmt: str) -> str:
    key = f"{job_id}.{fmt}"
    check_key(key)
    return key


def segment_key(job_id: str, index: int, run: str = "") -> str:
    """``run`` is the run's token (its first 12 characters name the object); empty: the name before runs had one."""
    return check_key(f"{job_id}.s{index:06d}{'.' + run[:12] if run else ''}.pcm")


def caption_key(job_id: str, fmt: str) -> str:
    return check_key(f"{job_id}.{fmt}")


def cover_key(job_id: str) -> str:
    return check_key(f"{job_id}.cover")


def kept_keys(keep: str | Collection[str] | None) -> frozenset[str]:
    """``remove_job``'s ``keep`` as a set: one key (a str), several, or none."""
    if keep is None:
        return frozenset()
    return frozenset((keep,)) if isinstance(keep, str) else frozenset(keep)


def check_key(key: str) -> str:
    if not any(pattern.fullmatch(key) for pattern in (OUTPUT_KEY, SEGMENT_KEY, CAPTION_KEY, COVER_KEY)):
        raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


def mime_type(key: str) -> str:
    ending = key.rsplit(".", 1)[1]
    return MIME_TYPES.get(ending) or CAPTION_TYPES.get(ending) or "application/octet-stream"


class Storage(Protocol):
    def writer(
        self, key: str, tag: str = "", fence: Fence | None = None
    ) -> contextlib.AbstractContextManager[BinaryIO]:
        """A seekable binary file to write; the object appears under ``key`` only if the block succeeds and
        ``fence`` (if given) still allows it just before the commit, else WriteFenced and nothing changes.

        ``tag`` names this run, so that two runs of one job never write the same partial object."""
        ...

    def reader(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The stored object, to read in blocks."""
        ...

    def size(self, key: str) -> int | None: ...

    def remove_job(self, job_id: str, keep: str | Collection[str] | None = None) -> None:
        """Delete every object and partial upload of the job, whichever run left it, but ``keep`` (a key or keys)."""
        ...

    def remove_jobs(self, job_ids: Collection[str]) -> set[str]:
        """``remove_job`` for each of many jobs (retention's batch), as cheaply as the backend allows; the ids whose
        objects could not all be deleted."""
        ...

    def delete(self, key: str) -> None: ...

    def public_url(self, key: str, ttl_s: int) -> str | None:
        """A URL a client can fetch directly for ``ttl_s`` seconds, or None when the API serves the file."""
        ...
