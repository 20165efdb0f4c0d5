"""HMAC-signed, expiring URLs for stored audio."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

SIGNATURE = re.compile(r"[0-9a-f]{64}")


def signature(secret: str, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, key: str, ttl_s: int, now: float | None = None) -> tuple[int, str]:
    """Return (expires, signature) for a link to ``key`` valid for ``ttl_s`` seconds."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return expires, signature(secret, key, expires)


def verify(secret: str, key: str, expires: int, given: str, now: float | None = None) -> bool:
    """True only for an untampered signature that has not expired."""
    if expires < (time.time() if now is None else now) or not SIGNATURE.fullmatch(given):
        return False
    return hmac.compare_digest(signature(secret, key, expires), given)
