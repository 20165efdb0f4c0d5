"""A whole ttsq deployment in real processes, one host each: Redis (AOF), S3 (moto_server), the API (gunicorn), two
workers, the webhook consumer and a webhook receiver. Audio goes to S3 and each host has a data directory of its
own, so nothing can pass through a shared file. The test talks to it as a client on a host of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import redis
import requests

from ttsq.credentials import hash_api_key

from .netns import Host, Network

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFIX = "chaos:"
BUCKET = "audio"
API_KEY = "ttsq_chaos-key-0123456789abcdef"
SECRET = "chaos-secret-0123456789abcdef"
WEBHOOK_SECRET = "chaos-webhook-secret-0123456789"
SPEAKER_QUEUE = f"{PREFIX}speaker.joe"
WORKERS = ("w1", "w2")
START_TIMEOUT_S = 60.0
POLL_S = 0.05

# Short lock TTL: a dead or cut-off worker's job moves within seconds. Small segments: a long job has many, so a
# fault lands mid-job and the resume is visible. Short retention, swept every 2 s: longer than the webhook outbox's
# minute (WEBHOOK_GRACE_S), or a job whose first delivery was cut would be removed before its event is sent again. A
# queued job that lost its message is sent again after 10 s (TTSQ_VISIBILITY_TIMEOUT_S), within the test.
CONFIG: dict[str, str] = {
    "TTSQ_KEY_PREFIX": PREFIX,
    "TTSQ_SECRET_KEY": SECRET,
    "TTSQ_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "TTSQ_STORAGE": f"s3://{BUCKET}/jobs",
    "TTSQ_S3_PART_SIZE": str(64 * 1024),
    "TTSQ_LOCK_TTL_S": "3",
    "TTSQ_SEGMENT_CHARS": "200",
    "TTSQ_MAX_TEXT_CHARS": "20000",
    "TTSQ_RETENTION_S": "75",
    "TTSQ_CLEANUP_INTERVAL_S": "2",
    "TTSQ_TASK_TIME_LIMIT_S": "5",
    "TTSQ_VISIBILITY_TIMEOUT_S": "10",
    "TTSQ_WEBHOOK_TIMEOUT_S": "5",
    "TTSQ_WEBHOOK_BACKOFF_S": "0.5",
    "TTSQ_API_KEYS": f"chaos:{hash_api_key(API_KEY)}",
    "TTSQ_RATE_LIMIT_PER_MIN": "0",
    "TTSQ_MAX_ACTIVE_JOBS": "0",
    "TTSQ_THREADS": "1",
    "TTSQ_LOG_LEVEL": "INFO",
}
LOCK_TTL_S = float(CONFIG["TTSQ_LOCK_TTL_S"])
VISIBILITY_TIMEOUT_S = float(CONFIG["TTSQ_VISIBILITY_TIMEOUT_S"])
RETENTION_S = float(CONFIG["TTSQ_RETENTION_S"])


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = POLL_S) -> Any:
    """The condition's first truthy value, polled until ``timeout_s``; AssertionError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


@dataclass
class Service:
    """One process on one host. Signals go to its process group (gunicorn's workers too)."""

    name: str
    host: Host
    argv: list[str]
    env: dict[str, str]
    ready: Callable[[], bool]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    started_at: float = 0.0
    """Wall-clock time of the latest start (a worker is ready once it announces itself after it)."""

    @property
    def log(self) -> Path:
        return self.host.directory / f"{self.name}.log"

    def start(self, wait: bool = True) -> Service:
        with open(self.log, "ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.host.command(self.argv),
                env=self.env,
                cwd=self.host.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.started_at = time.time()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        def up() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited before it was ready:\n{self.log_tail()}")
            try:
                return self.ready()
            except (OSError, redis.RedisError, requests.RequestException):
                return False

        wait_for(up, timeout_s, f"{self.name} to be ready", poll_s=0.2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        os.killpg(self.pid, signum)

    def kill(self) -> None:
        if self.alive:
            self.signal(signal.SIGCONT)  # a stopped process dies too
            self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]


SERVICES = ("redis", "s3", "receiver", "api", *WORKERS, "hooks")


@dataclass
class Stack:
    """``names``: the services to run (all by default); ``overrides``: config for every host; ``api_args``: more
    gunicorn arguments (a config file of server hooks, say)."""

    network: Network
    names: tuple[str, ...] = SERVICES
    overrides: dict[str, str] = field(default_factory=dict)
    api_args: tuple[str, ...] = ()
    hosts: dict[str, Host] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    # --- addresses ------------------------------------------------------------------------------------------------
    def _address(self, name: str, port: int) -> str:
        return f"{self.hosts[name].address}:{port}"

    def build(self) -> Stack:
        for name in ("client", *SERVICES):
            self.hosts[name] = self.network.add(name)
        self.redis_port = self.hosts["redis"].port(6379)
        self.s3_port = self.hosts["s3"].port(5000)
        self.api_port = self.hosts["api"].port(8000)
        self.receiver_port = self.hosts["receiver"].port(8080)
        self.redis_url = f"redis://{self._address('redis', self.redis_port)}/0"
        self.s3_url = f"http://{self._address('s3', self.s3_port)}"
        self.api_url = f"http://{self._address('api', self.api_port)}"
        self.receiver_url = f"http://{self._address('receiver', self.receiver_port)}"
        allow = "198.18.0.0/15" if self.network.isolated else "127.0.0.1"
        self.config = {
            **CONFIG,
            "TTSQ_REDIS_URL": self.redis_url,
            "TTSQ_PUBLIC_URL": self.api_url,
            "TTSQ_WEBHOOK_ALLOW": allow,
            **self.overrides,
        }
        self._define_services()
        return self

    def env(self, host: str, **extra: str) -> dict[str, str]:
        """A host's environment: no TTSQ_* or AWS_* of the caller's, the stack's config, its own directories."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TTSQ_", "AWS_"))}
        directory = self.hosts[host].directory
        return {
            **base,
            **self.config,
            "HOME": str(directory),
            "TTSQ_DATA_DIR": str(directory / "data"),
            "TTSQ_CACHE": str(directory / "cache"),
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(directory / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(directory / "no-aws-credentials"),
            "S3_UPLOAD_PART_MIN_SIZE": str(64 * 1024),  # moto's own: parts as small as the stack's part size
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def _define_services(self) -> None:
        redis_dir = self.hosts["redis"].directory / "data"
        redis_dir.mkdir(parents=True, exist_ok=True)
        redis_host = self.hosts["redis"].address
        self.services["redis"] = Service(
            "redis",
            self.hosts["redis"],
            [
                "redis-server",
                *("--bind", redis_host, "--port", str(self.redis_port), "--dir", str(redis_dir)),
                *("--appendonly", "yes", "--save", "", "--protected-mode", "no"),
            ],
            self.env("redis"),
            lambda: bool(self.redis.ping()),
        )
        self.services["s3"] = Service(
            "s3",
            self.hosts["s3"],
            [str(BIN / "moto_server"), "-H", self.hosts["s3"].address, "-p", str(self.s3_port)],
            self.env("s3"),
            lambda: _answers(f"{self.s3_url}/moto-api/"),
        )
        self.services["receiver"] = Service(
            "receiver",
            self.hosts["receiver"],
            [
                sys.executable,
                str(Path(__file__).with_name("receiver.py")),
                *(self.hosts["receiver"].address, str(self.receiver_port), WEBHOOK_SECRET),
            ],
            self.env("receiver"),
            lambda: _answers(f"{self.receiver_url}/deliveries"),
        )
        self.services["api"] = Service(
            "api",
            self.hosts["api"],
            [
                str(BIN / "gunicorn"),
                *("--workers", "2", "--worker-class", "gthread", "--threads", "8", "--timeout", "60"),
                *("-b", self._address("api", self.api_port), *self.api_args, "api.wsgi:app"),
            ],
            self.env("api", PYTHONPATH=str(ROOT)),
            lambda: _answers(f"{self.api_url}/healthz"),
        )
        for name in WORKERS:
            self.services[name] = Service(
                name,
                self.hosts[name],
                [sys.executable, "-m", "ttsq", "worker"],
                self.env(name, TTSQ_WORKER_NAME=name, PYTHONPATH=str(ROOT)),
                lambda name=name: self._announced(name),  # type: ignore[misc]
            )
        self.services["hooks"] = Service(
            "hooks",
            self.hosts["hooks"],
            [sys.executable, "-m", "ttsq", "webhooks"],
            self.env("hooks", TTSQ_WORKER_NAME="hooks", PYTHONPATH=str(ROOT)),
            lambda: "ready." in self.services["hooks"].log_text().rsplit("--- start", 1)[-1],
        )

    def _announced(self, name: str) -> bool:
        """The worker announced itself since its latest start (not a key its previous process left)."""
        raw = self.redis.get(f"{PREFIX}workers:{name}")
        return raw is not None and float(json.loads(raw)["at"]) >= self.services[name].started_at

    # --- lifetime -------------------------------------------------------------------------------------------------
    def start(self) -> Stack:
        """Every service, each waited for; the clients are made on the client host (the caller entered it)."""
        started = time.monotonic()
        self.redis = redis.Redis.from_url(self.redis_url, socket_timeout=10, socket_connect_timeout=2)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {API_KEY}"
        self.services["redis"].start()
        self.services["s3"].start()
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=BUCKET)
        rest = [name for name in SERVICES[2:] if name in self.names]
        for name in rest:
            self.services[name].start(wait=False)
        for name in rest:
            self.services[name].wait_ready()
        self.figures["stack_start_s"] = round(time.monotonic() - started, 1)
        return self

    def close(self) -> None:
        for service in reversed(list(self.services.values())):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                service.kill()

    # --- the client's side ----------------------------------------------------------------------------------------
    def submit(
        self,
        text: str,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        webhook: bool = True,
        timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> str:
        body: dict[str, Any] = {"text": text, "noise_scale": 0, "noise_w_scale": 0}
        if webhook:
            body["webhook_url"] = f"{self.receiver_url}/hooks"
        if metadata is not None:
            body["metadata"] = metadata
        headers = {**(headers or {}), **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
        response = self.http.post(f"{self.api_url}/v1/jobs", json=body, headers=headers, timeout=timeout_s)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's record as stored (each field decoded), read straight from Redis: {} when there is none."""
        raw = self.redis.hgetall(f"{PREFIX}job:{job_id}")
        return {k.decode(): _json(v) for k, v in raw.items()}

    def api_job(self, job_id: str) -> requests.Response:
        return self.http.get(f"{self.api_url}/v1/jobs/{job_id}", timeout=10)

    def deliveries(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.receiver_url}/deliveries", timeout=10).json())

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"{self.api_url}/metrics", timeout=10).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def objects(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"jobs/{prefix}")
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def uploads(self, prefix: str = "") -> list[str]:
        listed = self.s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"jobs/{prefix}")
        return sorted(item["Key"] for item in listed.get("Uploads", []))

    def audio(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=f"jobs/{key}")["Body"].read())

    def running_on(self, job_id: str) -> str | None:
        """The worker whose task holds the job now (its lock is held and the record says so)."""
        job = self.job(job_id)
        if job.get("status") == "running" and job.get("in_task") and self.redis.exists(f"{PREFIX}job:{job_id}:lock"):
            return str(job["worker"])
        return None

    def chunks_done(self, job_id: str) -> int:
        return int((self.job(job_id).get("progress") or {}).get("chunks_done", 0))

    def worker_log_since(self, name: str, mark: int) -> str:
        return self.services[name].log_text()[mark:]


def new_key() -> str:
    return f"chaos-{uuid.uuid4().hex}"


def _json(raw: bytes) -> Any:
    return json.loads(raw)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False
