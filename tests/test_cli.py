"""The ttsq command: one-line errors, and the container healthchecks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ttsq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}
    return subprocess.run(
        [sys.executable, "-m", "ttsq", *args],
        env={**base, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_config_stops_start_with_one_line() -> None:
    done = ttsq("worker", env={"TTSQ_DEVICE": "tpu"})
    assert done.returncode != 0
    assert (
        done.stderr.strip() == "ttsq: configuration error: TTSQ_DEVICE: got 'tpu'; expected one of: cpu, cuda, cuda:N"
    )


def test_bad_port_variable_is_one_line() -> None:
    done = ttsq("api", env={"TTSQ_PORT": "abc"})
    assert done.returncode == 2
    assert "expected a port number" in done.stderr
    assert "Traceback" not in done.stderr


def test_submit_without_a_server_is_one_line(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("Hello.")
    done = ttsq("submit", str(text), "--url", "http://127.0.0.1:1")
    assert done.returncode == 1
    assert "cannot reach the server" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_healthcheck_follows_the_announcement(config_env, runtime) -> None:  # type: ignore[no-untyped-def]
    from worker.upkeep import announce

    env = {**config_env, "TTSQ_WORKER_NAME": runtime.name}
    assert ttsq("healthcheck", "worker", env=env).returncode == 1
    announce(runtime)
    done = ttsq("healthcheck", "worker", env=env)
    assert done.returncode == 0 and done.stdout.strip() == "healthy"


def test_api_healthcheck_without_an_api_is_unhealthy() -> None:
    assert ttsq("healthcheck", "api", "--port", "1").returncode == 1
