"""Where finished audio lives. Keys are made by ttsq, never by a request."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from engine.constants import MIME_TYPES

from .config import Config
from .jobs import OUTPUT_FORMATS

OUTPUT_KEY = re.compile(r"[0-9a-f]{32}\.(" + "|".join(OUTPUT_FORMATS) + r")")
SEGMENT_KEY = re.compile(r"[0-9a-f]{32}\.s[0-9]{6}\.pcm")
"""A finished piece of a long job: raw int16 PCM, assembled into the output at the end."""


class StorageError(OSError):
    """Writing or reading stored audio failed; the message says where and why."""


class InvalidKeyError(ValueError):
    """A storage key that ttsq could not have made (path traversal, odd names)."""


def key_for(job_id: str, fmt: str) -> str:
    key = f"{job_id}.{fmt}"
    check_key(key)
    return key


def segment_key(job_id: str, index: int) -> str:
    return check_key(f"{job_id}.s{index:06d}.pcm")


def check_key(key: str) -> str:
    if not (OUTPUT_KEY.fullmatch(key) or SEGMENT_KEY.fullmatch(key)):
        raise InvalidKeyError(f"invalid storage key {key!r}")
    return key


def is_output_key(key: str) -> bool:
    return OUTPUT_KEY.fullmatch(key) is not None


def mime_type(key: str) -> str:
    return MIME_TYPES.get(key.rsplit(".", 1)[1], "application/octet-stream")


class Storage(Protocol):
    def writer(self, key: str, tag: str = "") -> contextlib.AbstractContextManager[BinaryIO]:
        """A seekable binary file to write; the object appears under ``key`` only if the block succeeds.

        ``tag`` names this run, so that two runs of one job never write the same partial object."""
        ...

    def reader(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The stored object, to read in blocks."""
        ...

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> None: ...

    def public_url(self, key: str, ttl_s: int) -> str | None:
        """A URL a client can fetch directly for ``ttl_s`` seconds, or None when the API serves the file."""
        ...


class LocalStorage:
    """Files under one directory; served by the API at signed URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextlib.contextmanager
    def writer(self, key: str, tag: str = "") -> Iterator[BinaryIO]:
        final = self.path(key)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f".{final.name}.*.part"):
            stale.unlink(missing_ok=True)  # left by a run that was killed; callers hold the job's lock
        partial = final.with_name(f".{final.name}.{tag or os.getpid()}.part")
        try:
            with open(partial, "w+b") as handle:
                yield handle
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        try:
            with open(self.path(key), "rb") as handle:
                yield handle
        except FileNotFoundError as error:
            raise StorageError(f"{key} is missing from {self.root}") from error

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def public_url(self, key: str, ttl_s: int) -> str | None:
        return None  # served by the API at /v1/files/<key> with an HMAC-signed link


def open_storage(config: Config) -> Storage:
    """The storage that TTSQ_STORAGE names (validated in config)."""
    if config.s3_location is not None:
        from .s3_storage import S3Storage

        bucket, prefix = config.s3_location
        return S3Storage(bucket, prefix, config.s3_part_size)
    return LocalStorage(config.audio_dir)
