"""Links to a finished job's audio, as the API and webhook events hand them out."""

from __future__ import annotations

import time
from urllib.parse import quote

from . import signing
from .config import Config
from .storage.base import Storage

FILES_PATH = "/v1/files/"
"""Where the API serves local audio (``api/files.py``)."""


def result_link(config: Config, storage: Storage, secret: str, key: str, base_url: str | None) -> tuple[str, float]:
    """A fresh URL for ``key`` and when it expires: S3's presigned GET, or the API's HMAC-signed download.

    ``base_url`` is used when TTSQ_PUBLIC_URL is unset (the API passes the request's host); without either the
    link is relative."""
    ttl_s = config.url_ttl_s
    url = storage.public_url(key, ttl_s)
    if url is not None:
        return url, time.time() + ttl_s
    expires, signature = signing.sign(secret, key, ttl_s)
    base = config.public_url or (base_url or "").rstrip("/")
    return f"{base}{FILES_PATH}{quote(key)}?expires={expires}&signature={signature}", float(expires)
