"""Celery's own tools reach a running ttsq worker, and ``ttsq workers`` lists it (issue 15, item 6)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from conftest import worker_process
from test_cli import ttsq

from ttsq import presence
from ttsq.config import load_config
from ttsq.procinfo import stop_process

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_celery_inspect_ping_and_ttsq_workers_see_a_running_worker(config_env, redis_client) -> None:  # type: ignore[no-untyped-def]
    env = {**config_env, "TTSQ_WORKER_NAME": "tools-test@host", "TTSQ_LOCK_TTL_S": "3"}
    config = load_config(env)
    worker = worker_process(env)
    try:
        deadline = time.monotonic() + 120  # loading and warming the voice
        client = redis.Redis.from_url(config.effective_redis_url)
        while not presence.is_alive(client, config.keys, "tools-test@host"):
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker never announced itself"
            time.sleep(0.2)
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "worker.app", "inspect", "ping", "--timeout", "10"],
            env={**ttsq_env(env)},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert "tools-test@host" in ping.stdout and "pong" in ping.stdout
        listed = ttsq("workers", env=env)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split("\t")[:3] == ["tools-test@host", "cpu", "joe"]
        assert listed.stdout.strip().endswith("idle")
    finally:
        stop_process(worker)


def ttsq_env(env: dict[str, str]) -> dict[str, str]:
    import os

    return {**{k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}, **env}
