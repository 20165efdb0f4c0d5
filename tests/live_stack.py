"""A real stack for browser and client tests: `ttsq api` (gunicorn, threaded) and `ttsq worker` as processes of their
own on the test Redis, under a key prefix of the caller's, API keys on (alice and bob)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import redis
import requests
from conftest import ALICE, BOB, TEST_SECRET, cache_dir, worker_process

from ttsq.credentials import hash_api_key
from ttsq.procinfo import stop_process

READY_TIMEOUT_S = 120.0


@dataclass
class Stack:
    url: str
    redis: redis.Redis
    api_log: Path
    prefix: str

    def client(self, key: str = ALICE) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=60)

    def speech_keys(self) -> list[bytes]:
        return sorted(self.redis.scan_iter(match=f"{self.prefix}speech*", count=1000))


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} within {timeout_s} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stack(redis_url: str, root: Path, prefix: str, extra: dict[str, str] | None = None) -> Iterator[Stack]:
    env = {
        "TTSQ_REDIS_URL": redis_url,
        "TTSQ_SECRET_KEY": TEST_SECRET,
        "TTSQ_DATA_DIR": str(root / "data"),
        "TTSQ_CACHE": str(cache_dir(root)),
        "TTSQ_KEY_PREFIX": prefix,
        "TTSQ_API_KEYS": f"alice:{hash_api_key(ALICE)},bob:{hash_api_key(BOB)}",
        "TTSQ_LOG_LEVEL": "INFO",
        **(extra or {}),
    }
    client = redis.Redis.from_url(redis_url)
    _clean(client, prefix)
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}
    api_log = root / "api.log"
    with api_log.open("wb") as log:
        api = subprocess.Popen(
            [sys.executable, "-m", "ttsq", "api", "--host", "127.0.0.1", "--port", str(port)],
            env={**clean, **env},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = worker_process(env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url), READY_TIMEOUT_S, "the stack was not ready")
        yield Stack(url, client, api_log, prefix)
    finally:
        stop_process(api)
        stop_process(worker, timeout_s=30)
        _clean(client, prefix)
        client.close()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _clean(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
