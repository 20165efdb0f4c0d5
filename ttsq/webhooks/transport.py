"""One POST to a checked destination: pinned to its address, under connect, read and whole-attempt timeouts."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import NamedTuple

from .policy import Destination

USER_AGENT = "ttsq-webhooks/1"
RETRY_STATUSES = frozenset({408, 429})
"""Besides 5xx: the receiver asked us to come back later."""


class Timeouts(NamedTuple):
    connect_s: float
    read_s: float
    """For each read (the response's status line and headers)."""
    total_s: float
    """The whole attempt, connect to status."""


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
        """For metrics: delivered, retry, failed or refused (``ttsq.metrics.record.WEBHOOK_OUTCOMES``)."""
        if self.delivered:
            return "delivered"
        if self.refused:
            return "refused"
        return "retry" if self.retry else "failed"


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
