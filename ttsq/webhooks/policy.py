"""Where a webhook may go: the URL's shape, the allow-list, and the resolved addresses, checked before each attempt.

Standard library only: ``ttsq.config`` validates ``TTSQ_WEBHOOK_ALLOW`` with :func:`parse_allow`.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
SCHEMES = ("http", "https")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)
"""Cloud instance metadata endpoints (AWS, ECS, Alibaba, AWS IPv6): never reachable without the allow-list."""
TRANSLATED_V6 = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
"""IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, IPv4-compatible, SIIT): a gateway on
the path would deliver to that IPv4 address, so it is what gets checked."""
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?)*")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebhookRefused(ValueError):
    """The destination may not be called (scheme, credentials, or a private address not in the allow-list)."""


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address it resolved to: the request goes to that address and nowhere else."""

    scheme: str
    host: str
    port: int
    target: str
    address: str


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


def _refuse_unless_allowed(host: str, address: IPAddress, networks: Sequence[Network]) -> None:
    reason = forbidden_reason(address)
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    allowed = any(address in net or (mapped is not None and mapped in net) for net in networks)
    if reason is not None and not allowed:
        where = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
        raise WebhookRefused(f"{where} a {reason} address; add it to TTSQ_WEBHOOK_ALLOW to permit it")


def check_written_address(url: str, allow: Sequence[str] = ()) -> None:
    """At POST, without DNS: a URL whose host is an address (or localhost) gets the delivery's verdict at once.
    Names are resolved, and checked again, at each delivery (their answers may change meanwhile)."""
    validate_url(url)
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    networks, hosts = parse_allow(allow)
    if host in hosts:
        return
    if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always loopback
        _refuse_unless_allowed(host, ipaddress.ip_address("127.0.0.1"), networks)
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name
    _refuse_unless_allowed(str(address), address, networks)


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
            _refuse_unless_allowed(host, ipaddress.ip_address(raw.split("%", 1)[0]), networks)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=scheme, host=host, port=port, target=target, address=addresses[0])
