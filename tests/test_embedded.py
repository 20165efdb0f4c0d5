"""The embedded Redis: started, stopped, and a leftover from a killed holder reused or cleaned up."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import redis

from ttsq.embedded import EmbeddedRedis, EmbeddedRedisError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    assert url == f"unix://{tmp_path / 'redis.sock'}"
    assert redis.Redis.from_url(url).ping()
    pid = server.pid
    server.stop()
    assert pid is not None and not _alive(pid)
    assert not (tmp_path / "redis.sock").exists()
    assert not (tmp_path / "redis.pid").exists()


def test_leftover_server_is_reused_then_stopped(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    redis.Redis.from_url(first.url).set("kept", "1")
    # The holder is gone (killed), its server is not: a new holder adopts it.
    second = EmbeddedRedis(tmp_path)
    second.start()
    assert second.pid == first.pid
    assert redis.Redis.from_url(second.url).get("kept") == b"1"
    second.stop()
    first.process.wait(timeout=10)  # type: ignore[union-attr]


def test_stale_pid_file_is_cleaned_up(tmp_path: Path) -> None:
    (tmp_path / "redis.pid").write_text("999999")
    server = EmbeddedRedis(tmp_path)
    server.start()
    assert server.pid != 999999
    server.stop()


def test_unresponsive_leftover_is_killed(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    first.start()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGSTOP)  # alive but not answering
    second = EmbeddedRedis(tmp_path)
    try:
        second.start()
        assert second.pid != first.pid
        first.process.wait(timeout=10)  # type: ignore[union-attr]
    finally:
        if first.process and first.process.poll() is None:
            first.process.kill()
        second.stop()


def test_socket_path_too_long_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match="too long"):
        EmbeddedRedis(tmp_path / ("x" * 120)).start()
