"""Hosts for a stack with no shared network: network namespaces on a private bridge, or loopback when none can be made.

Every address is inside namespaces the test makes (198.18.0.0/15, the benchmarking range): a "switch" namespace holds
the bridge, each host namespace one end of a veth pair whose other end is on that bridge. Nothing is added to the
machine's own namespace, and names carry the test's pid so parallel runs never meet.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
SUBNET = "198.18.0"
"""Hosts get SUBNET.2, .3, ... /24; the range is the benchmarking one (RFC 2544), inside our namespaces only."""
CLONE_NEWNET = 0x40000000
HOST_IF = "eth0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=10)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def unavailable_reason() -> str | None:
    """Why namespaces can't be made here (not root, no ``ip``, or ``ip netns add`` refused); None when they can.
    ``TTSQ_TEST_NO_NETNS=1`` says no, to run the loopback form on a machine that could."""
    if os.environ.get("TTSQ_TEST_NO_NETNS") == "1":
        return "TTSQ_TEST_NO_NETNS=1"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not os.path.exists(IP):
        return "no `ip` command (iproute2)"
    probe = f"ttsq-probe-{os.getpid()}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"`ip netns add` failed: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


@dataclass
class Host:
    """One machine of the stack: an address, a directory of its own, and (in a namespace) a link that can be cut."""

    name: str
    address: str
    directory: Path
    namespace: str | None = None
    switch_port: str | None = None
    """The bridge's end of this host's link (in the switch namespace): down is a cut cable."""

    def port(self, fixed: int) -> int:
        """``fixed`` in a namespace (the host is alone there); a free one on a shared loopback."""
        return fixed if self.namespace else _free_port(self.address)

    def command(self, argv: list[str]) -> list[str]:
        return [IP, "netns", "exec", self.namespace, *argv] if self.namespace else argv


@dataclass
class Network:
    """The hosts of one stack; ``close()`` removes every namespace it made (the veth pairs go with them)."""

    root: Path
    isolated: bool
    tag: str = field(default_factory=lambda: f"ttsq{os.getpid()}")
    hosts: dict[str, Host] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)

    @property
    def switch(self) -> str:
        return f"{self.tag}-switch"

    def _netns(self, name: str) -> str:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")
        return name

    def start(self) -> Network:
        if self.isolated:
            self._netns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def add(self, name: str) -> Host:
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        if not self.isolated:
            host = Host(name, "127.0.0.1", directory)
        else:
            index = len(self.hosts) + 2
            namespace = self._netns(f"{self.tag}-{name}")
            port = f"p{index}"
            _ip("link", "add", "name", HOST_IF, "netns", namespace, "type", "veth", "peer", "name", port, "netns",
                self.switch)  # fmt: skip
            _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
            address = f"{SUBNET}.{index}"
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", HOST_IF)
            _ip("-n", namespace, "link", "set", HOST_IF, "up")
            host = Host(name, address, directory, namespace, port)
        self.hosts[name] = host
        return host

    def cut(self, host: Host) -> None:
        """The host's cable is pulled: its packets go nowhere and nothing reaches it (no reset, no error)."""
        if host.switch_port is None:
            raise RuntimeError(f"{host.name} is on loopback; only a host in a namespace can be cut off")
        _ip("-n", self.switch, "link", "set", host.switch_port, "down")

    def mend(self, host: Host) -> None:
        assert host.switch_port is not None
        _ip("-n", self.switch, "link", "set", host.switch_port, "up", "master", "br0")

    @contextlib.contextmanager
    def entered(self, host: Host) -> Iterator[None]:
        """Run the calling thread (and threads it starts) in ``host``'s namespace, as a client on that host."""
        if host.namespace is None:
            yield
            return
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net", "rb") as mine, open(f"/run/netns/{host.namespace}", "rb") as theirs:
            if libc.setns(theirs.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {host.namespace}")
            try:
                yield
            finally:
                if libc.setns(mine.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's own namespace")

    def close(self) -> None:
        for name in reversed(self._namespaces):
            _ip("netns", "del", name, check=False)
        self._namespaces.clear()
