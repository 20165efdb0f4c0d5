"""``Idempotency-Key`` on POST /v1/jobs: a retried request gets the job the first one made, never a second job."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from flask import request

from .access import owner_scope
from .errors import ApiError
from .services import services

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
CLAIM_TTL_S = 60
"""A claim whose request died before recording its job frees the key after this; recording the job keeps the key as
long as the job (JobStore.create, in the same step)."""


@dataclass(frozen=True)
class Claim:
    """A key this request holds (it makes the job), or the job an earlier request with the same key made."""

    redis_key: str
    fingerprint: str
    job_id: str | None = None
    """Set when the key was already used: the earlier request's job."""


def claim(body: Any, new_job_id: str) -> Claim | None:
    """None without the header. The key is scoped to the API key, so two clients' keys never meet."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not raw or len(raw) > MAX_KEY_CHARS or not raw.isascii() or not raw.isprintable():
        raise ApiError(400, "invalid_idempotency_key", f"{HEADER} must be 1-{MAX_KEY_CHARS} printable ASCII characters")
    s = services()
    digest = hashlib.sha256(raw.encode("ascii")).hexdigest()
    redis_key = s.config.keys.idempotency(owner_scope(), digest)
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    record = json.dumps({"job_id": new_job_id, "fingerprint": fingerprint})
    if s.redis.set(redis_key, record, nx=True, ex=CLAIM_TTL_S):
        return Claim(redis_key, fingerprint)
    earlier = json.loads(s.redis.get(redis_key) or "null")
    if earlier is None:  # expired between the two calls: try once more
        return claim(body, new_job_id)
    if earlier["fingerprint"] != fingerprint:
        raise ApiError(409, "idempotency_conflict", f"this {HEADER} was already used with a different request body")
    return Claim(redis_key, fingerprint, job_id=earlier["job_id"])


def release(held: Claim | None) -> None:
    """Free a key whose request failed before its job was queued, so the client's retry can make it."""
    if held is not None and held.job_id is None:
        services().redis.delete(held.redis_key)
