"""Audio on S3 (moto_server, a real endpoint): streamed multipart uploads, presigned URLs, clean failures."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import requests
import soundfile
from conftest import run_to_end, worker_process

from engine.audio import open_wav_writer
from ttsq.storage.base import StorageError
from ttsq.storage.s3 import S3Storage

PART = 64 * 1024
JOB = "0123456789abcdef0123456789abcdef"
KEY = f"{JOB}.wav"
TEXT = " ".join(f"This is sentence number {n} of a short narration." for n in range(1, 13))


def tone(start: int, count: int) -> np.ndarray:
    return (np.sin(np.arange(start, start + count) / 10) * 8000).astype(np.int16)


def write_wav(sink, seconds: float, chunk_s: float = 0.5) -> int:  # type: ignore[no-untyped-def]
    """Write a tone chunk by chunk, as the worker does (never the whole in memory); return the sample count."""
    rate, total = 22050, int(seconds * 22050)
    step = int(chunk_s * rate)
    with open_wav_writer(sink, rate) as out:
        for start in range(0, total, step):
            out.write(tone(start, min(step, total - start)))
            if not isinstance(sink, str):
                sink.flush()
    return total


def no_uploads_left(s3) -> bool:  # type: ignore[no-untyped-def]
    return not s3.list_multipart_uploads(Bucket="audio").get("Uploads")


def test_streamed_upload_is_multipart_and_byte_exact(s3, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    storage = S3Storage("audio", "jobs", part_size=PART)
    with storage.writer(KEY) as sink:
        samples = write_wav(sink, seconds=10)  # ~441 KB: seven parts of 64 KiB
    local = tmp_path / "same.wav"
    write_wav(str(local), seconds=10)
    stored = s3.get_object(Bucket="audio", Key=f"jobs/{KEY}")
    body = stored["Body"].read()
    assert body == local.read_bytes()
    assert stored["ContentType"] == "audio/wav"
    assert stored["ETag"].strip('"').endswith(f"-{-(-len(body) // PART)}")  # one part per 64 KiB
    data, _ = soundfile.read(io.BytesIO(body), dtype="int16")
    np.testing.assert_array_equal(data, tone(0, samples))
    assert storage.size(KEY) == len(body)
    assert no_uploads_left(s3)


MEASURE = """
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from test_s3_storage import KEY, PART, write_wav
from ttsq.storage.s3 import S3Storage

storage = S3Storage("audio", "", part_size=PART)
with storage.writer(KEY) as sink:  # first use: boto3's lazy imports and caches are not the upload's memory
    write_wav(sink, 2)
ours = [tracemalloc.Filter(True, "*/ttsq/storage/*")]  # allocated by our code itself: its buffers
for seconds in (20, 160):  # ~0.9 MB and ~7 MB of WAV
    tracemalloc.start(30)
    with storage.writer(KEY) as sink:
        write_wav(sink, seconds)
        held = sum(stat.size for stat in tracemalloc.take_snapshot().filter_traces(ours).statistics("filename"))
    print(seconds, held, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
"""


def test_the_upload_holds_no_more_memory_for_a_longer_output(s3) -> None:  # type: ignore[no-untyped-def]
    """What the writer holds once the whole output is written (the header's part, the tail) must not grow with
    the output. Counted as the memory our storage code allocated itself, in a process of its own: tracemalloc's
    peak counts every thread and library (soundfile's cffi casts kept ~1.9 MB alive over 160 s of audio in a fresh
    process, botocore's and urllib's caches fill up over the first hundred requests, and in a whole test run this
    process holds earlier tests' threads), which made the old peak-based form of this test fail on CI hosts."""
    tests = Path(__file__).resolve().parent
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tests)], cwd=tests.parent, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    held = {int(line.split()[0]): int(line.split()[1]) for line in run.stdout.splitlines()}
    size = s3.head_object(Bucket="audio", Key=KEY)["ContentLength"]
    assert size > 7_000_000
    # The first part (kept for the header) and the tail (under a part plus a chunk), whatever the output's length.
    assert held[160] < held[20] + PART, run.stdout
    assert held[160] < 3 * PART, run.stdout


def test_a_failing_producer_leaves_no_object_and_no_upload(s3) -> None:  # type: ignore[no-untyped-def]
    storage = S3Storage("audio", "jobs", part_size=PART)
    with pytest.raises(RuntimeError, match="synthesis broke"), storage.writer(KEY) as sink:
        sink.write(b"\0" * (3 * PART))  # parts already uploaded
        raise RuntimeError("synthesis broke")
    assert no_uploads_left(s3)
    assert s3.list_objects_v2(Bucket="audio").get("KeyCount") == 0


def test_a_failing_upload_is_a_storage_error_and_is_aborted(s3) -> None:  # type: ignore[no-untyped-def]
    storage = S3Storage("audio", "jobs", part_size=PART // 2)  # below the server's minimum part size
    with pytest.raises(StorageError, match=f"s3://audio/jobs/{KEY}"), storage.writer(KEY) as sink:
        write_wav(sink, seconds=5)
    assert no_uploads_left(s3)
    assert s3.list_objects_v2(Bucket="audio").get("KeyCount") == 0


def test_missing_bucket_is_a_storage_error(s3) -> None:  # type: ignore[no-untyped-def]
    storage = S3Storage("nowhere", "", part_size=PART)
    with pytest.raises(StorageError, match="could not start the upload to s3://nowhere/"), storage.writer(KEY):
        pass


def test_presigned_url_carries_the_configured_expiry_type_and_name(s3) -> None:  # type: ignore[no-untyped-def]
    storage = S3Storage("audio", "jobs", part_size=PART)
    with storage.writer(KEY) as sink:
        write_wav(sink, seconds=1)
    url = storage.public_url(KEY, ttl_s=900)
    assert url is not None
    query = parse_qs(urlparse(url).query)
    assert query["X-Amz-Expires"] == ["900"]  # moto does not enforce expiry: check what we issue
    assert query["response-content-type"] == ["audio/wav"]
    assert query["response-content-disposition"] == [f'attachment; filename="{KEY}"']
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == s3.get_object(Bucket="audio", Key=f"jobs/{KEY}")["Body"].read()


@pytest.fixture()
def s3_env(config_env: dict[str, str], s3) -> dict[str, str]:  # type: ignore[no-untyped-def]
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    return {**config_env, **aws, "TTSQ_STORAGE": "s3://audio/jobs", "TTSQ_S3_PART_SIZE": str(PART)}


def test_job_through_the_stack_lands_on_s3_and_its_url_downloads_it(s3_env, s3, tts) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config
    from worker.main import build_runtime

    config = load_config(s3_env)
    runtime = build_runtime(config, tts=tts)
    client = create_app(config).test_client()
    job_id = client.post("/v1/jobs", json={"text": TEXT}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    stored = s3.get_object(Bucket="audio", Key=f"jobs/{job_id}.wav")
    body = stored["Body"].read()
    assert len(body) > 2 * PART and stored["ETag"].strip('"').endswith(f"-{-(-len(body) // PART)}")
    assert job["result"]["size_bytes"] == len(body)
    downloaded = requests.get(job["result"]["url"], timeout=10)
    assert downloaded.content == body
    data, rate = soundfile.read(io.BytesIO(body), dtype="int16")
    assert len(data) / rate == pytest.approx(job["result"]["duration_s"], abs=0.01)

    # The console plays this link: its page lets audio come from the storage's origin, and from nowhere else new.
    from urllib.parse import urlsplit

    page = client.get("/")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    policy = page.headers["Content-Security-Policy"]
    link = urlsplit(job["result"]["url"])
    media = next(part.split()[1:] for part in policy.split("; ") if part.startswith("media-src "))
    assert media == ["'self'", "blob:", f"{link.scheme}://{link.netloc}"]
    assert "connect-src 'self';" in policy


def test_job_fails_with_a_reason_when_the_upload_fails(s3_env, s3, tts) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config
    from worker.main import build_runtime

    config = load_config({**s3_env, "TTSQ_STORAGE": "s3://no-such-bucket/jobs"})
    runtime = build_runtime(config, tts=tts)
    client = create_app(config).test_client()
    job_id = client.post("/v1/jobs", json={"text": "Hello there."}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    error = client.get(f"/v1/jobs/{job_id}").get_json()["error"]
    assert error["code"] == "storage_error"
    assert "s3://no-such-bucket/jobs/" in error["message"]


@pytest.mark.slow
def test_worker_process_writes_to_s3(s3_env, s3) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    worker = worker_process(s3_env)
    try:
        client = create_app(load_config(s3_env)).test_client()
        job_id = client.post("/v1/jobs", json={"text": TEXT}).get_json()["id"]
        deadline = time.monotonic() + 120
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}?wait=10").get_json()
        assert job["status"] == "succeeded", job["error"]
        assert requests.get(job["result"]["url"], timeout=10).content == (
            s3.get_object(Bucket="audio", Key=f"jobs/{job_id}.wav")["Body"].read()
        )
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_every_format_streams_to_s3_byte_for_byte(s3, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    """libsndfile goes back to rewrite headers on close; the upload must end up as the same bytes as a local file."""
    from engine.audio import open_audio_writer

    def write(target) -> None:  # type: ignore[no-untyped-def]
        with open_audio_writer(target, 22050, fmt) as out:
            for start in range(0, 22050 * 30, 11025):
                out.write(tone(start, 11025))

    key = f"{JOB}.{fmt}"
    with S3Storage("audio", "", part_size=PART).writer(key) as sink:
        write(sink)
    local = tmp_path / key
    write(str(local))
    body = s3.get_object(Bucket="audio", Key=key)["Body"].read()
    if fmt == "ogg":  # each Ogg stream gets a random serial number: compare what a player decodes
        ours, _ = soundfile.read(io.BytesIO(body), dtype="int16")
        np.testing.assert_array_equal(ours, soundfile.read(str(local), dtype="int16")[0])
    else:
        assert body == local.read_bytes()
    assert soundfile.info(io.BytesIO(body)).duration == pytest.approx(30, abs=0.1)
