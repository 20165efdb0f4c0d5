"""Shared fixtures: a real Redis database of the tests' own, the real bundled voice, the app from its factory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import TTS

TEST_REDIS_URL = os.environ.get("TTSQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-0123456789abcdef"
TEST_PREFIX = "ttsqtest:"


@pytest.fixture(scope="session")
def tts() -> TTS:
    """The real joe voice, prepared once for the whole run."""
    return TTS(device="cpu").load("joe").prepare(warmup=False)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The machine's Redis (database 15); where none answers, a real one of our own on a unix socket."""
    probe = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        probe.ping()
    except redis.ConnectionError:
        from ttsq.embedded import EmbeddedRedis

        server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
        yield server.start() + "?db=15"
        server.stop()
        return
    finally:
        probe.close()
    yield TEST_REDIS_URL


@pytest.fixture()
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def config_env(tmp_path: Path, redis_url: str, redis_client: redis.Redis) -> dict[str, str]:
    """TTSQ_* variables for a stack on the test Redis with everything under tmp_path."""
    return {
        "TTSQ_REDIS_URL": redis_url,
        "TTSQ_SECRET_KEY": TEST_SECRET,
        "TTSQ_DATA_DIR": str(tmp_path / "data"),
        "TTSQ_CACHE": str(tmp_path / "cache"),
        "TTSQ_KEY_PREFIX": TEST_PREFIX,
        "TTSQ_MAX_TEXT_CHARS": "2000",
    }


@pytest.fixture()
def config(config_env: dict[str, str]):  # type: ignore[no-untyped-def]
    from ttsq.config import load_config

    return load_config(config_env)


@pytest.fixture()
def app(config):  # type: ignore[no-untyped-def]
    from api import create_app

    app = create_app(config)
    app.config["TESTING"] = True
    return app


@pytest.fixture()
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture()
def runtime(config, tts):  # type: ignore[no-untyped-def]
    """A worker runtime in this process, sharing the session's engine; tests call run_job directly."""
    from worker.main import build_runtime

    return build_runtime(config, tts=tts)
