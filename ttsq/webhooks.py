"""Signed webhook events for a job's end: building, signing, verifying, and one safe delivery attempt.

Header scheme (like Stripe's): ``Ttsq-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256(secret, ``<t>`` + ``.`` + raw body). Receivers recompute it over the exact bytes received, compare in
constant time, and reject a ``t`` more than a few minutes from their clock (a replayed request). ``v1`` may appear
more than once (while a secret is being rotated); any match is enough.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import redis
from pydantic import BaseModel

from ttsq import metrics
from ttsq.jobs import Job, JobError, JobStatus, JobStore, WebhookState

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Ttsq-Signature"
EVENT_HEADER = "Ttsq-Event"
EVENT_ID_HEADER = "Ttsq-Event-Id"
USER_AGENT = "ttsq-webhooks/1"
DEFAULT_TOLERANCE_S = 300
"""How far a signature's timestamp may be from the receiver's clock before it is taken for a replay."""
MAX_BACKOFF_S = 600.0
"""No wait between attempts is longer than this, however many attempts are configured."""
MAX_URL_CHARS = 2048
SCHEMES = ("http", "https")
RETRY_STATUSES = frozenset({408, 429})
"""Besides 5xx: the receiver asked us to come back later."""
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud instance metadata endpoints (AWS, ECS, Alibaba, AWS IPv6): never reachable without the allow-list."""
TRANSLATED_V6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
"""IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible, SIIT): a gateway on
the path would deliver to that IPv4 address, so it is what gets checked."""
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookRefused(ValueError):
    """The destination may not be called (scheme, credentials, or a private address not in the allow-list)."""


class Timeouts(NamedTuple):
    connect_s: float
    read_s: float
    """For each read (the response's status line and headers)."""
    total_s: float
    """The whole attempt, connect to status."""


@dataclass(frozen=True)
class WebhookSettings:
    secret: bytes
    allow: tuple[str, ...] = ()
    """Hosts or CIDR networks that may be reached although private, loopback or link-local."""
    max_attempts: int = 8
    backoff_s: float = 2.0
    """Delay cap before the second attempt; doubled for each one after, with full jitter."""
    timeout_s: float = 5.0
    """Connect timeout, and read timeout for the response's status and headers; an attempt takes at most twice it."""

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(connect_s=self.timeout_s, read_s=self.timeout_s, total_s=2 * self.timeout_s)


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address it resolved to: the request goes to that address and nowhere else."""

    scheme: str
    host: str
    port: int
    target: str
    address: str


@dataclass(frozen=True)
class AttemptOutcome:
    status_code: int | None = None
    """The receiver's HTTP status; None when it gave none (refused, timed out, network error, skipped)."""
    error: str | None = None
    retry: bool = False
    """Another attempt should be made (and may be: ``deliver`` clears it once attempts run out)."""
    attempt: int = 0
    """Which attempt this was (set by ``deliver``); 0 when none was made."""
    refused: bool = False
    """The destination was never called (see ``check_destination``)."""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def label(self) -> str:
        """For metrics: delivered, retry, failed or refused (``ttsq.metrics.WEBHOOK_OUTCOMES``)."""
        if self.delivered:
            return "delivered"
        if self.refused:
            return "refused"
        return "retry" if self.retry else "failed"


class EventResult(BaseModel):
    url: str
    url_expires_at: str
    duration_s: float
    size_bytes: int
    format: str
    sample_rate: int


class WebhookEvent(BaseModel):
    """The JSON body POSTed when a job ends. ``id`` is the same on every attempt: receivers dedupe on it."""

    id: str
    type: str
    """``job.succeeded``, ``job.failed`` or ``job.canceled``."""
    job_id: str
    status: str
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    result: EventResult | None = None
    error: JobError | None = None
    metadata: dict[str, Any] | None = None


# --- events and signatures -------------------------------------------------------------------------------------


def build_event(job: Job, result_url: str | None = None, url_expires_at: float | None = None) -> dict[str, Any]:
    """The event for an ended job; a succeeded job's result carries a fresh signed link."""
    if not job.status.terminal:
        raise ValueError(f"job {job.id} has not ended (status {job.status.value!r}); only ended jobs have events")
    result = None
    if job.status == JobStatus.succeeded and job.result is not None and result_url is not None:
        result = EventResult(
            url=result_url,
            url_expires_at=_iso(url_expires_at) or "",
            duration_s=job.result.duration_s,
            size_bytes=job.result.size_bytes,
            format=job.result.format,
            sample_rate=job.result.sample_rate,
        )
    event = WebhookEvent(
        id=f"{job.id}.{job.status.value}",
        type=f"job.{job.status.value}",
        job_id=job.id,
        status=job.status.value,
        created_at=_iso(job.created_at),
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        result=result,
        error=job.error,
        metadata=job.metadata,
    )
    return event.model_dump(mode="json")


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(
    secret: bytes | str,
    header_value: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True only for a ``Ttsq-Signature`` made with ``secret`` over ``body``, timestamped within ``tolerance_s``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    fields = [part.strip().split("=", 1) for part in header_value.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
        return False
    timestamp = int(stamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(key, timestamp, body)
    return any(
        hmac.compare_digest(expected, value) for name, value in fields if name == "v1" and _HEX64.fullmatch(value)
    )


# --- where a webhook may go ------------------------------------------------------------------------------------


def validate_url(url: str) -> str:
    """The URL's shape (no DNS): http(s), a host, no credentials, printable ASCII, at most 2048 characters."""
    if len(url) > MAX_URL_CHARS:
        raise WebhookRefused(f"webhook_url is {len(url)} characters; at most {MAX_URL_CHARS} are allowed")
    if not (url.isascii() and url.isprintable()) or " " in url:
        raise WebhookRefused(
            f"webhook_url must be printable ASCII without spaces (percent-encode the rest), got {url!r}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookRefused(f"webhook_url {url!r} is not a valid URL: {error}") from None
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise WebhookRefused(f"webhook_url must be an http:// or https:// URL with a host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook_url must not carry credentials; verify the Ttsq-Signature header instead")
    if port == 0:
        raise WebhookRefused(f"webhook_url has port 0: {url!r}")
    return url


def parse_allow(entries: Sequence[str]) -> tuple[list[Network], set[str]]:
    """``TTSQ_WEBHOOK_ALLOW`` entries: CIDR networks or single addresses, and host names."""
    networks: list[Network] = []
    hosts: set[str] = set()
    for entry in (e.strip().lower() for e in entries):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.fullmatch(entry.rstrip(".")):
            raise ValueError(f"webhook allow-list entry {entry!r} is neither a host name nor an address/CIDR network")
        hosts.add(entry.rstrip("."))
    return networks, hosts


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook may not reach ``address`` without the allow-list; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return forbidden_reason(embedded)
        if address in ipaddress.IPv6Network("fec0::/10"):
            return "site-local"
        if address in ipaddress.IPv6Network("64:ff9b:1::/48"):
            return "local-use NAT64"  # translates into the operator's own network
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    ):
        if hit:
            return reason
    return None if address.is_global else "non-public"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo server, NAT64, compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address.is_loopback or address.is_unspecified:  # ::1 and :: are themselves, not IPv4-compatible forms
        return None
    if any(address in network for network in TRANSLATED_V6):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_destination(url: str, allow: Sequence[str] = ()) -> Destination:
    """Resolve ``url``'s host and check every address it has; return one to connect to (pinned: no second lookup,
    so a DNS answer that changes between check and connect cannot redirect the request).

    Raises WebhookRefused for a URL that may not be called, OSError (``socket.gaierror``) when the host does not
    resolve."""
    validate_url(url)
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    port = parts.port or (443 if scheme == "https" else 80)
    networks, hosts = parse_allow(allow)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise socket.gaierror(f"{host} has no addresses")
    if host.lower() not in hosts:
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            reason = forbidden_reason(address)
            mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
            allowed = any(address in net or (mapped is not None and mapped in net) for net in networks)
            if reason is not None and not allowed:
                raise WebhookRefused(
                    f"{host} resolves to {address}, a {reason} address; add it to TTSQ_WEBHOOK_ALLOW to permit it"
                )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=scheme, host=host, port=port, target=target, address=addresses[0])


# --- one attempt -----------------------------------------------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Host header from the URL's host, TCP to the checked address; ``abort()`` ends a wait from another thread."""

    def __init__(self, destination: Destination, timeouts: Timeouts) -> None:
        super().__init__(destination.host, destination.port, timeout=timeouts.connect_s)
        self._address, self._read_s = (destination.address, destination.port), timeouts.read_s
        self.aborted = False

    def connect(self) -> None:
        sock = socket.create_connection(self._address, self.timeout)
        sock.settimeout(self._read_s)
        self.sock = sock  # abort() can reach it from here on
        if self.aborted:
            raise TimeoutError("aborted")

    def abort(self) -> None:
        self.aborted = True
        if self.sock is not None:
            with contextlib.suppress(OSError):  # already closed
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)  # wakes a blocked read, TLS or not


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """As above, with TLS: SNI and certificate checked against the URL's host, not the address."""

    default_port = 443

    def __init__(self, destination: Destination, timeouts: Timeouts) -> None:
        super().__init__(destination, timeouts)
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host, do_handshake_on_connect=False)
        if self.aborted:
            raise TimeoutError("aborted")
        self.sock.do_handshake()


def post_once(destination: Destination, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> AttemptOutcome:
    """POST ``body`` to the checked destination. Redirects are not followed (a 3xx is a failure, not retried);
    the response body is never read. Never raises for network trouble: the outcome says what happened.

    Besides the connect and per-read timeouts, the whole attempt is cut off after ``timeouts.total_s``: a receiver
    that drips its answer a byte at a time must not hold a delivery thread for long."""
    pinned = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(destination, timeouts)
    watchdog = threading.Timer(timeouts.total_s, connection.abort)
    watchdog.daemon = True
    watchdog.start()
    cut_off = AttemptOutcome(error=f"no complete answer within {timeouts.total_s:g} s", retry=True)
    try:
        connection.request("POST", destination.target, body=body, headers=headers)
        status = connection.getresponse().status
    except ssl.SSLCertVerificationError as error:
        return AttemptOutcome(error=f"TLS certificate not accepted: {error.verify_message}", retry=False)
    except TimeoutError:
        return cut_off if connection.aborted else AttemptOutcome(error="timed out", retry=True)
    except (OSError, http.client.HTTPException) as error:
        if connection.aborted:
            return cut_off
        return AttemptOutcome(error=f"{type(error).__name__}: {error}"[:300], retry=True)
    finally:
        watchdog.cancel()
        connection.close()
    if connection.aborted:  # http.client takes headers cut short for complete ones
        return cut_off
    if 200 <= status < 300:
        return AttemptOutcome(status_code=status)
    if 300 <= status < 400:
        return AttemptOutcome(status_code=status, error=f"HTTP {status}: redirects are not followed", retry=False)
    retry = status >= 500 or status in RETRY_STATUSES
    return AttemptOutcome(status_code=status, error=f"HTTP {status}", retry=retry)


def backoff_s(
    attempt: int, base_s: float, cap_s: float = MAX_BACKOFF_S, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: a wait drawn from [0, min(cap, base * 2^(attempt-1))] after failed attempt number ``attempt``."""
    return rand() * min(cap_s, base_s * 2 ** max(0, attempt - 1))


# --- the delivery of one job's event ---------------------------------------------------------------------------

ResultLink = Callable[[Job], tuple[str, float] | None]
"""A fresh (url, expires_at) for a succeeded job's audio."""


def deliver(
    store: JobStore,
    job_id: str,
    settings: WebhookSettings,
    url_for_result: ResultLink,
    expected_attempt: int | None = None,
) -> AttemptOutcome:
    """Make the next attempt to deliver the job's end event and record it in the job (``webhook``).

    The outcome's ``retry`` says whether the caller should schedule another attempt (False once attempts run out).
    A job without a webhook, already delivered, given up on, or being delivered elsewhere gets no attempt; so does
    a task for ``expected_attempt`` when the job has moved past it (a duplicate of an attempt already made)."""
    lock = f"{store.prefix}job:{job_id}:webhook-lock"
    token = uuid.uuid4().hex
    lock_ms = int((settings.timeout_s * 2 + 30) * 1000)
    if not store.redis.set(lock, token, nx=True, px=lock_ms):
        return AttemptOutcome(error="an attempt is in progress elsewhere")
    try:
        # Read and record under the lock, so a second task never repeats an attempt that just ended.
        job = store.get(job_id)
        if job is None or not job.webhook_url or not job.status.terminal:
            store.webhook_settled(job_id)
            return AttemptOutcome(error="no ended job with a webhook_url")
        state = job.webhook or WebhookState()
        if state.delivered_at is not None or state.failed:
            store.webhook_settled(job_id)
            return AttemptOutcome(error="already delivered or given up")
        if expected_attempt is not None and expected_attempt != state.attempts + 1:
            return AttemptOutcome(error=f"attempt {expected_attempt} was made already")
        outcome = replace(_attempt(job, settings, url_for_result), attempt=state.attempts + 1)
        if outcome.retry and outcome.attempt >= settings.max_attempts:
            outcome = replace(outcome, retry=False)
        record = WebhookState(
            attempts=outcome.attempt,
            last_status=outcome.status_code,
            last_error=outcome.error,
            delivered_at=time.time() if outcome.delivered else None,
            failed=not outcome.delivered and not outcome.retry,
        )
        # Only while the record exists: a job removed meanwhile (retention) must not come back as a fragment.
        store.update_if(job_id, tuple(s for s in JobStatus if s.terminal), webhook=record.model_dump())
        if not outcome.retry:
            store.webhook_settled(job_id)
    finally:
        store.redis.eval(_RELEASE, 1, lock, token)
    log = logger.info if outcome.delivered or outcome.retry else logger.warning
    log("%s: webhook attempt %d: %s", job_id, outcome.attempt, outcome.error or f"HTTP {outcome.status_code}")
    _count(store, job_id, outcome)
    return outcome


def _count(store: JobStore, job_id: str, outcome: AttemptOutcome) -> None:
    """Metrics are best effort: a failure to count never changes a delivery."""
    try:
        metrics.record_webhook(store.redis, store.prefix, outcome.label)
    except redis.RedisError as error:
        logger.warning("%s: could not count the webhook attempt: %s", job_id, error)


def _attempt(job: Job, settings: WebhookSettings, url_for_result: ResultLink) -> AttemptOutcome:
    try:
        destination = check_destination(job.webhook_url or "", settings.allow)
    except WebhookRefused as error:
        return AttemptOutcome(error=str(error), retry=False, refused=True)
    except OSError as error:  # DNS can fail for a moment
        return AttemptOutcome(error=f"could not resolve the host: {error}", retry=True)
    link = url_for_result(job) if job.status == JobStatus.succeeded else None
    event = build_event(job, *(link or (None, None)))
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Connection": "close",
        EVENT_HEADER: event["type"],
        EVENT_ID_HEADER: event["id"],
        SIGNATURE_HEADER: signature_header(settings.secret, int(time.time()), body),
    }
    return post_once(destination, body, headers, settings.timeouts)


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
