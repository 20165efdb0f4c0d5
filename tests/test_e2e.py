"""Whole stack in real processes: a worker killed mid-job, and the embedded default end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PASSAGE = (
    "The lighthouse keeper climbed the tower every evening. He trimmed the wick and polished the lens. "
    "Ships he would never meet passed safely in the night. "
)


def wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}
    return {**env, **extra}


@pytest.fixture()
def start_worker(config_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    workers: list[subprocess.Popen[bytes]] = []
    # Short lock TTL so a dead worker is noticed in seconds, not the default 30.
    env = clean_env({**config_env, "TTSQ_LOCK_TTL_S": "3", "TTSQ_MAX_TEXT_CHARS": "20000"})

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "ttsq", "worker"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        workers.append(process)
        return process

    yield start
    for process in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_job_survives_a_worker_killed_mid_job(config_env, start_worker, tts) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**config_env, "TTSQ_MAX_TEXT_CHARS": "20000"}))
    client = app.test_client()
    first = start_worker()
    text = PASSAGE * 12  # ~36 sentences, several seconds of synthesis
    job_id = client.post("/v1/jobs", json={"text": text}).get_json()["id"]

    def job() -> dict:  # type: ignore[type-arg]
        return client.get(f"/v1/jobs/{job_id}").get_json()  # type: ignore[no-any-return]

    wait_for(lambda: job()["progress"]["chunks_done"] >= 2, 120, "the first worker to be mid-job")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    interrupted = job()
    assert interrupted["status"] == "running"
    assert interrupted["progress"]["chunks_done"] < interrupted["progress"]["chunks_total"]

    started = time.monotonic()
    start_worker()
    wait_for(lambda: job()["attempts"] == 2, 120, "the job to be picked up again")
    picked_up_s = time.monotonic() - started
    assert picked_up_s < 120
    final = wait_for(lambda: job()["status"] in ("succeeded", "failed") and job(), 300, "the job to finish")
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"]["chunks_done"] == final["progress"]["chunks_total"] == 36

    # The audio is whole: its length is the full text's, not the part after the restart.
    path = app.extensions["ttsq"].storage.path(f"{job_id}.wav")
    data, rate = soundfile.read(str(path), dtype="int16")
    assert len(data) / rate == pytest.approx(final["result"]["duration_s"], abs=0.01)
    reference = tts.speakers["joe"].generate(text, noise_w_scale=0.0).duration_s
    assert final["result"]["duration_s"] == pytest.approx(reference, rel=0.1)
    print(f"picked up again {picked_up_s:.1f} s after the new worker started")


def test_embedded_default_demo_end_to_end(tmp_path: Path) -> None:
    """The README's first command: no Redis URL, no S3, no GPU; speech comes back through HTTP + queue + signed URL."""
    env = clean_env({"TTSQ_DATA_DIR": str(tmp_path / "data"), "TTSQ_CACHE": str(tmp_path / "cache")})
    output = tmp_path / "demo.wav"
    done = subprocess.run(
        [sys.executable, "-m", "ttsq", "demo", "-o", str(output)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {output}" in done.stdout
    data, rate = soundfile.read(str(output), dtype="int16")
    assert rate == 22050
    assert len(data) / rate > 10  # the sample text is several sentences long
    assert abs(data).max() > 1000
    # ttsq serve owned the embedded Redis and stopped it.
    assert not (tmp_path / "data" / "redis.sock").exists()
    assert not (tmp_path / "data" / "redis.pid").exists()
