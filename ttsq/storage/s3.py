"""Audio on S3 (or MinIO, R2): streamed up as a multipart upload while it is produced, fetched by presigned URL."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Collection, Iterator
from typing import Any, BinaryIO

from .base import Fence, StorageError, WriteFenced, check_key, kept_keys, mime_type

logger = logging.getLogger(__name__)


def _client() -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as error:  # pragma: no cover - a core dependency
        raise StorageError("S3 storage needs boto3: pip install boto3") from error
    # Endpoint (AWS_ENDPOINT_URL_S3), region and credentials come from boto3's usual chain. SigV4 presigned
    # URLs carry their expiry (X-Amz-Expires) and work on every region and on MinIO/R2.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


class MultipartFile(io.RawIOBase):
    """A write-only, seekable file that becomes one S3 object through a multipart upload.

    Parts 2..N are uploaded as soon as they fill. Part 1 stays in memory until the end, because audio
    writers (libsndfile) go back to the start to fill in the header's sizes when they close. So memory
    holds at most two parts, whatever the length of the output; nothing touches the local disk.
    """

    def __init__(self, client: Any, bucket: str, key: str, part_size: int, content_type: str) -> None:
        self._client, self._bucket, self._key, self._part_size = client, bucket, key, part_size
        self._upload_id: str = client.create_multipart_upload(Bucket=bucket, Key=key, ContentType=content_type)[
            "UploadId"
        ]
        self._head = bytearray()
        self._tail = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._size = 0
        self._pos = 0
        self.parts_uploaded = 0
        # Errors raised inside write() would be swallowed by libsndfile's C callback; keep them for flush().
        self.error: StorageError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if not 0 <= base + offset <= self._size:
            # Raising here would be swallowed by libsndfile's callback: record it for flush() and complete().
            self.error = self.error or StorageError(f"cannot seek to {base + offset} in a {self._size}-byte upload")
            return self._pos
        self._pos = base + offset
        return self._pos

    def flush(self) -> None:
        """Raise the upload's failure, if any: callers flush after each chunk to stop early."""
        if self.error is not None:
            raise self.error

    def write(self, data: Any) -> int:
        data = bytes(data)
        if self.error is not None:
            return len(data)  # the upload has failed; flush() and complete() report it
        if self._pos < self._size:
            return self._rewrite(data)
        written = len(data)
        room = self._part_size - len(self._head)
        if room > 0:  # still filling part 1
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        while len(self._tail) >= self._part_size:
            self._upload_part(bytes(self._tail[: self._part_size]))
            del self._tail[: self._part_size]
        self._size += written
        self._pos = self._size
        return written

    def _rewrite(self, data: bytes) -> int:
        end = self._pos + len(data)
        if end > len(self._head):
            self.error = self.error or StorageError("only the first part of an upload can be written again")
            return len(data)
        self._head[self._pos : end] = data
        self._pos = end
        return len(data)

    def _upload_part(self, body: bytes) -> None:
        number = len(self._parts) + 2  # part 1 is the head, uploaded last
        try:
            response = self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
            )
        except Exception as error:  # botocore's errors share no useful base
            self.error = StorageError(f"uploading part {number} to s3://{self._bucket}/{self._key} failed: {error}")
            return
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self.parts_uploaded += 1

    def complete(self) -> int:
        """Upload what is left and publish the object; returns its size in bytes."""
        if self._tail:
            self._upload_part(bytes(self._tail))
            self._tail.clear()
        self.flush()
        try:
            head = self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=1, Body=bytes(self._head)
            )
            self.parts_uploaded += 1
            parts = [{"PartNumber": 1, "ETag": head["ETag"]}, *self._parts]
            self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
            )
        except Exception as error:  # botocore's errors share no useful base
            raise StorageError(f"completing the upload to s3://{self._bucket}/{self._key} failed: {error}") from error
        return self._size

    def abort(self) -> None:
        """Drop every uploaded part: no half object is ever left behind."""
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except Exception:  # the original failure matters more than this one
            logger.exception("could not abort the upload of s3://%s/%s", self._bucket, self._key)


class S3Storage:
    """Objects under ``s3://bucket/prefix``; clients download them by presigned URL."""

    def __init__(self, bucket: str, prefix: str = "", part_size: int = 8 * 1024 * 1024, client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.part_size = part_size
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _client()
        return self._client

    def object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    @contextlib.contextmanager
    def writer(self, key: str, tag: str = "", fence: Fence | None = None) -> Iterator[BinaryIO]:
        # Runs of one job upload under separate upload ids; only a completed one becomes the object.
        try:
            upload = MultipartFile(self.client, self.bucket, self.object_key(key), self.part_size, mime_type(key))
        except Exception as error:
            raise StorageError(f"could not start the upload to {self.uri(key)}: {error}") from error
        try:
            yield upload  # type: ignore[misc]
            if fence is not None and not fence():
                raise WriteFenced(f"{self.uri(key)}: this run lost its lock before the upload was completed")
            upload.complete()
        except BaseException:
            upload.abort()
            raise

    @contextlib.contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        except Exception as error:  # botocore's errors share no useful base
            raise StorageError(f"could not read {self.uri(key)}: {error}") from error
        try:
            yield body
        finally:
            body.close()

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"])
        except self.client.exceptions.ClientError:
            return None

    def remove_job(self, job_id: str, keep: str | Collection[str] | None = None) -> None:
        prefix = self.object_key(f"{job_id}.wav").removesuffix("wav")  # "<prefix>/<job id>."
        kept = {self.object_key(key) for key in kept_keys(keep)}
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                if item["Key"] not in kept:
                    self.client.delete_object(Bucket=self.bucket, Key=item["Key"])
        uploads = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])
        for upload in uploads:  # a run killed mid-upload leaves its parts stored (and billed) until aborted
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    def remove_jobs(self, job_ids: Collection[str]) -> set[str]:
        """A listing per job is by its prefix here: cheap, whatever else the bucket holds."""
        failed = set[str]()
        for job_id in job_ids:
            try:
                self.remove_job(job_id)
            except Exception:  # boto3 raises several unrelated types; the caller retries the job
                logger.exception("%s: could not remove its objects", job_id)
                failed.add(job_id)
        return failed

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def public_url(self, key: str, ttl_s: int) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentType": mime_type(key),
            "ResponseContentDisposition": f'attachment; filename="{key}"',
        }
        return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=ttl_s))
