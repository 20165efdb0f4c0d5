"""Audio as files under one directory, served by the API at signed URLs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

from .base import Fence, StorageError, WriteFenced, check_key, kept_keys


class LocalStorage:
    """Files under one directory; served by the API at signed URLs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextlib.contextmanager
    def writer(self, key: str, tag: str = "", fence: Fence | None = None) -> Iterator[BinaryIO]:
        """A run's own partial file, renamed into place once its fence holds. Partial files a killed run left go
        with its job (``remove_job``), not here: looking for them would list the whole directory, which a week's
        retention fills with hundreds of thousands of files, for every file written."""
        final = self.path(key)
        partial = final.with_name(f".{final.name}.{tag or os.getpid()}.part")
        committed = False
        try:
            with self._created(partial) as handle:
                yield handle
            if fence is not None and not fence():
                raise WriteFenced(f"{key}: this run lost its lock before the file was committed")
            os.replace(partial, final)
            committed = True
        finally:
            if not committed:
                partial.unlink(missing_ok=True)

    def _created(self, path: Path) -> BinaryIO:
        """A new file; the directory is made only when it is missing (not asked for at every file: issue 12)."""
        try:
            return open(path, "w+b")
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            return open(path, "w+b")

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

    def remove_job(self, job_id: str, keep: str | Collection[str] | None = None) -> None:
        """Every file of the job but ``keep``, whichever run left it (a listing of the directory)."""
        check_key(f"{job_id}.wav")  # a job id, not a pattern
        kept = kept_keys(keep)
        for path in [*self.root.glob(f"{job_id}.*"), *self.root.glob(f".{job_id}.*.part")]:
            if path.name not in kept:
                path.unlink(missing_ok=True)

    def remove_jobs(self, job_ids: Collection[str]) -> set[str]:
        """One listing of the directory for the whole batch, not two per job."""
        for job_id in job_ids:
            check_key(f"{job_id}.wav")
        wanted, failed = set(job_ids), set[str]()
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return failed
        for entry in entries:
            job_id = entry.name.removeprefix(".").split(".", 1)[0]  # "<job id>.<...>" or ".<job id>.<...>.part"
            if job_id in wanted:
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    pass
                except OSError:
                    failed.add(job_id)
        return failed

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def public_url(self, key: str, ttl_s: int) -> str | None:
        return None  # served by the API at /v1/files/<key> with an HMAC-signed link
