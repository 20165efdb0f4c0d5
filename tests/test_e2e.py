"""Whole stack in real processes: a worker killed mid-job, and the embedded default end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import worker_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PASSAGE = (
    "The lighthouse keeper climbed the tower every evening. He trimmed the wick and polished the lens. "
    "Ships he would never meet passed safely in the night. "
)


# Short lock TTL so a dead worker is noticed in seconds, not the default 30; small segments so a job has many.
WORKER_ENV = {"TTSQ_LOCK_TTL_S": "3", "TTSQ_MAX_TEXT_CHARS": "20000", "TTSQ_SEGMENT_CHARS": "500"}


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
def start_worker(config_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Workers logging at INFO to worker-N.log in the test's directory, where a failure can be read."""
    workers: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{len(workers) + 1}.log"
        process = worker_process({**config_env, **WORKER_ENV, "TTSQ_LOG_LEVEL": "INFO"}, log)
        workers.append(process)
        return process

    yield start
    for process in workers:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_job_survives_a_worker_killed_mid_job(config_env, start_worker, tts) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL mid-job: the job resumes from its last finished segment, and the audio is whole, with nothing twice."""
    from api import create_app
    from engine.narration import NarrationChunk, PauseOptions, narrate
    from engine.options import SynthesisOptions
    from engine.text.split import split_text
    from ttsq.config import load_config

    config = load_config({**config_env, **WORKER_ENV})
    client = create_app(config).test_client()
    first = start_worker()
    text = "\n\n".join([PASSAGE * 3] * 6)  # 54 sentences in 6 paragraphs, many segments
    body = {"text": text, "noise_scale": 0, "noise_w_scale": 0}  # deterministic, to compare sample for sample
    job_id = client.post("/v1/jobs", json=body).get_json()["id"]

    def job() -> dict:  # type: ignore[type-arg]
        return client.get(f"/v1/jobs/{job_id}").get_json()  # type: ignore[no-any-return]

    wait_for(lambda: job()["progress"]["chunks_done"] >= 15, 120, "the first worker to be mid-job")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    interrupted = job()
    assert interrupted["status"] == "running"
    done_at_kill = interrupted["progress"]["chunks_done"]
    assert done_at_kill < interrupted["progress"]["chunks_total"]

    started = time.monotonic()
    start_worker()
    wait_for(lambda: job()["progress"]["chunks_done"] > done_at_kill, 120, "the job to be picked up again")
    picked_up_s = time.monotonic() - started
    assert picked_up_s < 120
    final = wait_for(lambda: job()["status"] in ("succeeded", "failed") and job(), 300, "the job to finish")
    assert final["status"] == "succeeded", final["error"]
    chunks = split_text(text)
    assert final["progress"]["chunks_done"] == final["progress"]["chunks_total"] == len(chunks) == 54

    # The same text narrated in one go, in this process: the resumed job must equal it exactly.
    pauses = PauseOptions(config.sentence_silence_s, config.paragraph_silence_s)
    pieces = narrate(
        tts.speakers["joe"],
        [NarrationChunk(c.spoken, c.paragraph, c.heading) for c in chunks],
        options=pauses,
        synthesis=SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0),
    )
    expected = np.concatenate([p.samples for p in pieces])
    data, rate = soundfile.read(str(config.audio_dir / f"{job_id}.wav"), dtype="int16")
    np.testing.assert_array_equal(data, expected)
    assert final["result"]["duration_s"] == pytest.approx(len(expected) / rate, abs=0.001)
    print(f"picked up again {picked_up_s:.1f} s after the new worker started; killed at chunk {done_at_kill}")


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
