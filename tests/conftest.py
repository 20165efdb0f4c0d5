"""Shared fixtures: a real Redis database of the tests' own, the real bundled voice, the app from its factory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis

from engine import TTS

TEST_REDIS_URL = os.environ.get("TTSQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-0123456789abcdef"
TEST_PREFIX = "ttsqtest:"
MOTO_START_TIMEOUT_S = 30.0
MOTO_MIN_PART_SIZE = 64 * 1024


_shared_rewrites: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def shared_rewrites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every test's cache keeps the bundled voice's CPU rewrites (engine/cpu_cache.py): each file is named by
    the voice's content, the rewrite's version and the machine, so they are shared safely, made once a run rather
    than at each test's first worker start (~5 s each)."""
    _shared_rewrites.append(tmp_path_factory.mktemp("rewrites"))
    return _shared_rewrites[-1]


def cache_dir(root: Path) -> Path:
    """A test's TTSQ_CACHE under ``root``, its CPU rewrites shared with the other tests'."""
    cache = root / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if _shared_rewrites and not (cache / "onnx").exists():
        (cache / "onnx").symlink_to(_shared_rewrites[-1], target_is_directory=True)
    return cache


@pytest.fixture(scope="session")
def tts() -> TTS:
    """The real joe voice, prepared once for the whole run: two streams, whatever the host's cores."""
    return TTS(device="cpu", threads=2).load("joe").prepare(warmup=False)


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
        "TTSQ_CACHE": str(cache_dir(tmp_path)),
        "TTSQ_KEY_PREFIX": TEST_PREFIX,
        "TTSQ_MAX_TEXT_CHARS": "2000",
    }


ALICE = "ttsq_alice-key-0123456789abcdef"
BOB = "ttsq_bob-key-0123456789abcdef01"


@pytest.fixture()
def keyed_env(config_env: dict[str, str]) -> dict[str, str]:
    """config_env with two API keys configured (by their hashes): alice and bob."""
    from ttsq.credentials import hash_api_key

    return {**config_env, "TTSQ_API_KEYS": f"alice:{hash_api_key(ALICE)},bob:{hash_api_key(BOB)}"}


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


# --- a real S3 endpoint: moto_server on 127.0.0.1 ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer {url} within {timeout_s}s") from None
            time.sleep(0.05)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto_server) on a free local port; parts as small as 64 KiB are accepted."""
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if moto is None:
        pytest.fail("moto_server is not installed; pip install 'moto[server]'")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(MOTO_MIN_PART_SIZE)}
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_until_answering(f"{endpoint}/moto-api/", process, MOTO_START_TIMEOUT_S)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


@pytest.fixture()
def s3(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A boto3 client on the moto endpoint, with the env S3Source reads; moto is emptied before and after."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    _reset_moto(moto_endpoint)
    client = boto3.client("s3")
    client.create_bucket(Bucket="voices")
    client.create_bucket(Bucket="audio")
    yield client
    _reset_moto(moto_endpoint)


def worker_process(env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """``ttsq worker`` as a process of its own, configured by ``env`` alone (no TTSQ_* of the caller's leaks in);
    its output goes to ``log`` where given, for a failing test to be read afterwards."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}
    with open(log or os.devnull, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "ttsq", "worker"],
            env={**clean, **env},
            cwd=Path(__file__).resolve().parent.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_to_end(runtime, job_id: str, limit: int = 500) -> str:  # type: ignore[no-untyped-def]
    """Run a job's tasks in this process, as a worker would take them one after another; the last outcome."""
    from worker.outcomes import Outcome
    from worker.synthesis import run_job

    for _ in range(limit):
        outcome = run_job(runtime, job_id)
        if outcome != Outcome.continued:
            return outcome
    raise AssertionError(f"job {job_id} did not end within {limit} tasks")
