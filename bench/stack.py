"""What the benchmarks share: the stack under test (embedded Redis, a worker process, the API) and output helpers."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.serving import make_server

from api import create_app
from ttsq.config import load_config
from ttsq.embedded import EmbeddedRedis
from ttsq.procinfo import stop_process

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_STOP_TIMEOUT_S = 20.0

Synthesize = Callable[[str], np.ndarray]
"""Synthesize a whole text; return its int16 samples."""


@dataclass(frozen=True)
class EngineRun:
    engine: str
    """``ttsq``, ``piper``, ``onnx`` or ``torch-bN``."""
    round: int
    audio_s: float
    wall_s: float
    x_realtime: float
    """audio_s / wall_s."""


class BenchError(Exception):
    """The stack under test did not do what the benchmark needs."""


# --- engine throughput ---------------------------------------------------------------------------------------------


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    server = EmbeddedRedis(data_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def worker_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m ttsq worker`` with only our TTSQ_* settings; its log is shown if the benchmark fails."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")} | env
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ttsq", "worker"],
            env=child_env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    except BaseException:
        tail = log_path.read_text(errors="replace")[-4000:]
        print(f"--- worker log ({log_path}) ---\n{tail}", file=sys.stderr)
        raise
    finally:
        stop_process(process, WORKER_STOP_TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (``ttsq api``, piper's), its output to ``log``, stopped on the way out."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process)


@contextmanager
def api_server(env: dict[str, str]) -> Iterator[str]:
    """The real Flask app on a threaded werkzeug server on 127.0.0.1; yields its base URL."""
    server = make_server("127.0.0.1", 0, create_app(load_config(env)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="bench-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _format_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    """The first column left-aligned (labels), the others right-aligned (numbers)."""
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [_format_row(headers, widths), "  ".join("-" * w for w in widths)]
    lines.extend(_format_row(row, widths) for row in rows)
    return "\n".join(lines)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


PACKAGES = ("piper-tts", "onnxruntime", "celery", "kombu", "redis", "flask", "werkzeug", "soundfile")


# The engine's speed depends on these: onnxruntime's convolution kernels are wider with AVX-512.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16")


def cpu() -> dict[str, Any]:
    """The CPU's model and vector extensions, from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name", ""),
        "family": fields.get("cpu family", ""),
        "model_number": fields.get("model", ""),
        "flags": [flag for flag in CPU_FLAGS if flag in flags],
    }


def environment(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """What the figures were measured on, for the JSON next to them."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu": cpu(),
        "packages": {name: version(name) for name in PACKAGES},
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
