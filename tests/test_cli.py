"""The ttsq command: one-line errors, and the container healthchecks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_a_redis_url_with_a_bad_database_stops_start_with_one_line(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): /abc passed (db 0 for the API; a 119-line traceback and exit 0 for the worker) and
    /99 made Celery retry a hundred times."""
    for url in ("redis://127.0.0.1:6379/abc", "redis://127.0.0.1:6379/99", "redis://127.0.0.1:port/0"):
        for command in ("worker", "api"):
            done = ttsq(command, env={**config_env, "TTSQ_REDIS_URL": url})
            assert done.returncode != 0, (command, url)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("ttsq: configuration error: TTSQ_REDIS_URL:"), lines


def on_a_taken_port(command: str, env: dict[str, str]) -> tuple[int, subprocess.CompletedProcess[str]]:
    """``ttsq COMMAND --port P`` while something else listens on P."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        return port, ttsq(command, "--port", str(port), env={**env, "TTSQ_LOG_LEVEL": "ERROR"})


def test_a_port_in_use_is_one_line(config_env) -> None:  # type: ignore[no-untyped-def]
    port, done = on_a_taken_port("api", config_env)
    assert done.returncode != 0
    assert done.stderr.strip() == f"ttsq api: cannot listen on 127.0.0.1:{port}: Address already in use"


class _Recorder:
    """A one-route HTTP server on loopback that records the job requests it gets."""

    def __init__(self, status: int = 202) -> None:
        import json as json_module
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict[str, object]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                recorder.bodies.append(json_module.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self._answer({"id": "0" * 32, "status": "queued"})

            def do_GET(self) -> None:
                self._answer({"error": {"code": "unauthorized", "message": "missing or unknown API key"}})

            def _answer(self, body: dict[str, object]) -> None:
                data = json_module.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_submit_takes_the_format_from_the_output_and_passes_the_job_options(tmp_path: Path) -> None:
    """Regression (issue 15): `ttsq submit -o x.mp3` asked for WAV (and wrote its bytes into x.mp3)."""
    from ttsq.cli import main

    text = tmp_path / "t.txt"
    text.write_text("Hello.")
    server = _Recorder()
    try:
        assert main(["submit", str(text), "--url", server.url, "-o", str(tmp_path / "x.mp3")]) == 0
        assert main(["submit", str(text), "--url", server.url, "--format", "flac", "--marks",
                     "--webhook-url", "https://hooks.example.com/t", "--metadata", '{"book": 1}']) == 0  # fmt: skip
        assert main(["submit", str(text), "--url", server.url, "--format", "ogg", "-o", str(tmp_path / "x.mp3")]) == 2
        assert main(["submit", str(text), "--url", server.url, "--metadata", "{nope"]) == 2
    finally:
        server.close()
    first, second = server.bodies
    assert first["format"] == "mp3"
    assert second == {"text": "Hello.", "speed": 1.0, "format": "flac", "marks": True,
                      "webhook_url": "https://hooks.example.com/t", "metadata": {"book": 1}}  # fmt: skip
    assert len(server.bodies) == 2  # the two refused ones sent nothing


def test_a_401_names_the_api_key_flag(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): `ttsq speakers` said "no server at ..." when the server answered 401."""
    from ttsq.cli import main

    text = tmp_path / "t.txt"
    text.write_text("Hello.")
    server = _Recorder(status=401)
    try:
        assert main(["speakers", "--url", server.url]) == 1
        assert main(["submit", str(text), "--url", server.url]) == 1
    finally:
        server.close()
    err = capsys.readouterr().err
    assert "no server" not in err
    assert err.count("--api-key or TTSQ_API_KEY") == 2


def test_serve_names_the_component_that_exited(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): on a taken port `ttsq serve` said only "a component exited"."""
    port, done = on_a_taken_port("serve", config_env)
    assert done.returncode == 1
    assert f"ttsq api: cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert "ttsq serve: the API exited with 1; stopping" in done.stderr
    assert "Traceback" not in done.stderr


def _first_line_with(command: list[str], env: dict[str, str], needle: str) -> str:
    """Start ``ttsq COMMAND`` (a server), read its stderr until a line holds ``needle`` (bounded), then stop it."""
    from ttsq.procinfo import stop_process

    base = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ttsq", *command],
        env={**base, **env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        line = ""
        for _ in range(200):  # bounded: the line comes at start
            line = process.stderr.readline()
            if not line or needle in line:
                break
        return line
    finally:
        stop_process(process)  # type: ignore[arg-type]


def test_the_webhook_consumer_warns_when_links_would_be_relative(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): without TTSQ_PUBLIC_URL a receiver got /v1/files/... links, and nothing said so."""
    line = _first_line_with(["webhooks"], config_env, "TTSQ_PUBLIC_URL is not set")
    assert "TTSQ_PUBLIC_URL is not set" in line, line


def test_the_api_says_at_start_when_redis_does_not_answer(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 15): `ttsq api` with Redis down started silently."""
    env = {**config_env, "TTSQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    import socket

    with socket.socket() as probe:  # a free port for the API (it answers nothing here)
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    line = _first_line_with(["api", "--port", port], env, "is not answering")
    assert "Redis at redis://127.0.0.1:1/0 is not answering" in line and "the API will keep trying" in line, line


def test_a_worker_on_jemalloc_runs_on_it(config_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """--allocator jemalloc re-executes the worker with libjemalloc preloaded; the start-up log says which malloc
    the process has mapped. (Its voice then is not found, so the worker stops before it consumes anything.)"""
    from ttsq.cli.allocator import find_jemalloc

    if find_jemalloc() is None:
        pytest.skip("Debian's libjemalloc2 is missing (.ci/run installs it)")
    refused = {**config_env, "TTSQ_SPEAKERS": f"joe=file://{tmp_path}/missing", "TTSQ_LOG_LEVEL": "INFO"}
    done = ttsq("worker", "--allocator", "jemalloc", env=refused)
    assert "worker malloc: jemalloc" in done.stderr, done.stderr
    assert done.returncode != 0 and done.stderr.strip().splitlines()[-1].startswith("ttsq worker: ")
    assert "worker malloc: jemalloc" in ttsq("worker", env=refused).stderr  # auto, the default: it is installed
    system = ttsq("worker", "--allocator", "system", env=refused)
    assert "worker malloc: the system's" in system.stderr, system.stderr


def test_jemalloc_asked_for_but_missing_is_one_line(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ttsq.cli import allocator

    monkeypatch.setattr(allocator, "JEMALLOC_DIRS", (str(tmp_path),))
    monkeypatch.setattr(allocator, "jemalloc_loaded", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        allocator.use_allocator("jemalloc", ["worker"])
    assert "libjemalloc.so.2 is not installed (Debian: apt-get install libjemalloc2)" in str(stopped.value)
    allocator.use_allocator("auto", ["worker"])  # auto stays on the system's malloc: returns, no exec


def test_the_api_socket_sends_a_response_at_once() -> None:
    """Found in issue 12: gunicorn takes our bound socket (fd://) for a Unix socket and never set TCP_NODELAY, so a
    response's body (its second write) waited out the client's delayed ACK: 44 ms on many keep-alive requests."""
    import socket

    from ttsq.cli.serving import listen

    with listen("127.0.0.1", 0) as listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
