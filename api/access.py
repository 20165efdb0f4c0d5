"""Who is calling /v1 (API keys), and how often they may ask (rate limits, kept in Redis). A key's concurrent-jobs
limit is checked where its job is recorded (JobStore.create)."""

from __future__ import annotations

import ipaddress
import math
import time

from flask import g, request

from ttsq.credentials import hash_api_key
from ttsq.keys import ANONYMOUS_OWNER

from .errors import ApiError
from .services import services

FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
"""A proxy's marks: behind one on this host every client's socket address is loopback."""
ANONYMOUS = ANONYMOUS_OWNER
"""Rate-limit and idempotency scope when the API runs without keys."""


def authenticate() -> None:
    """Run before every /v1 route: set ``g.owner`` to the key's name, or refuse with 401.

    Only SHA-256 digests of keys are configured and compared; the key itself is never stored or logged."""
    s = services()
    g.owner = None
    if not s.config.api_keys:
        # No keys: the API is for this host only (`ttsq api` binds loopback). Holds under gunicorn on 0.0.0.0 too.
        if not s.config.trusted_proxies and any(h in request.headers for h in FORWARDING_HEADERS):
            raise ApiError(
                401,
                "unauthorized",
                "this server has no API keys configured and does not answer forwarded requests; configure "
                "TTSQ_API_KEYS, or TTSQ_TRUSTED_PROXIES when a reverse proxy sits in front",
                headers={"WWW-Authenticate": 'Bearer realm="ttsq"'},
            )
        if s.config.trusted_proxies and "X-Forwarded-For" not in request.headers:
            # ProxyFix believes X-Forwarded-For alone: without it the socket address is the proxy's own (loopback).
            raise ApiError(
                401,
                "unauthorized",
                "with TTSQ_TRUSTED_PROXIES set and no API keys, a request must come through the proxy, which sets "
                "X-Forwarded-For",
                headers={"WWW-Authenticate": 'Bearer realm="ttsq"'},
            )
        if not _is_loopback(request.remote_addr):
            raise ApiError(
                401,
                "unauthorized",
                "this server has no API keys configured and answers only clients on its own host",
                headers={"WWW-Authenticate": 'Bearer realm="ttsq"'},
            )
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    g.owner = authenticate_key(key.strip() if scheme.lower() == "bearer" else "")


def authenticate_key(key: str) -> str:
    """The name of the key (counted against its rate limit), or 401: for a key that came another way than the
    Authorization header (a WebSocket's first message: browsers cannot set headers on one)."""
    owner = services().config.api_keys.get(hash_api_key(key)) if key else None
    if owner is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing or unknown API key; send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": 'Bearer realm="ttsq"'},
        )
    limit_rate(owner)
    return owner


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def owner_scope() -> str:
    return g.get("owner") or ANONYMOUS


def limit_rate(owner: str) -> None:
    """A fixed one-minute window per key, counted in Redis so every API process shares it."""
    s = services()
    limit = s.config.rate_limit_per_min
    if not limit:
        return
    now = time.time()
    window = int(now // 60)
    key = s.config.keys.rate(owner, window)
    with s.redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    if count > limit:
        retry_after = max(1, math.ceil((window + 1) * 60 - now))
        raise ApiError(
            429,
            "rate_limited",
            f"more than {limit} requests this minute for this key; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
