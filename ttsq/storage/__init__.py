"""Where audio lives: a directory (``local``) or an S3 bucket, chosen by TTSQ_STORAGE."""

from __future__ import annotations

from ttsq.config import Config

from .base import Storage
from .local import LocalStorage


def open_storage(config: Config) -> Storage:
    """The storage that TTSQ_STORAGE names (validated in config)."""
    if config.s3_location is not None:
        from .s3 import S3Storage

        bucket, prefix = config.s3_location
        return S3Storage(bucket, prefix, config.s3_part_size)
    return LocalStorage(config.audio_dir)
