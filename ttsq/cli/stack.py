"""The commands that run the stack: serve, api, worker, webhooks, and demo (the embedded stack, once)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..config import DEFAULT_HOST, Config
from ..credentials import secret_key
from ..logs import setup_logging
from ..procinfo import stop_process
from .allocator import jemalloc_loaded, use_allocator
from .common import _config, probe_redis
from .remote import cmd_submit

logger = logging.getLogger("ttsq")

DEMO_TEXT = Path(__file__).resolve().parent.parent.parent / "examples" / "sample.txt"
DEMO_FALLBACK = "This is ttsq, narrating through its queue. The audio came back through a signed link."


def _exit_with_parent(parent_pid: int | None) -> None:
    """Children of `ttsq serve` stop when it dies, even by SIGKILL, instead of lingering on a dead Redis."""
    if not parent_pid:
        return

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="ttsq-parent-watch", daemon=True).start()


def cmd_api(args: argparse.Namespace) -> int:
    from api import create_app

    from .serving import listen, run_api

    config = _config()
    setup_logging(config.log_level, config.log_format)
    check_bind(config, args.host)
    _exit_with_parent(args.parent_pid)
    probe_redis(config, "API")
    app = create_app(config)
    if not config.api_keys:
        logger.warning(
            "no API keys configured (TTSQ_API_KEYS): anyone on this host can use the API, so it listens on %s only",
            args.host,
        )
    try:
        sock = listen(args.host, args.port)
    except OSError as error:  # the port is taken, or the address is not this host's
        sys.exit(f"ttsq api: cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    logger.info("API on http://%s:%d (%d threads)", args.host, args.port, config.api_threads)
    run_api(app, config, sock)
    return 0


def check_bind(config: Config, host: str) -> None:
    """Without API keys the API is open to whoever reaches it: refuse anything but a loopback address."""
    if config.api_keys:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        sys.exit(
            f"ttsq: refusing to listen on {host} without API keys; make one with `ttsq keys new NAME` and set "
            "TTSQ_API_KEYS, or listen on 127.0.0.1"
        )


def cmd_worker(args: argparse.Namespace) -> int:
    config = _config(**_worker_overrides(args))
    if config.redis_url is None:
        sys.exit("ttsq: TTSQ_REDIS_URL is not set; run `ttsq serve` for the embedded stack, or point it at your Redis")
    use_allocator(config.allocator, _worker_argv(args, config.allocator))  # before anything allocates much
    setup_logging(config.log_level, config.log_format)
    logger.info("worker malloc: %s", "jemalloc" if jemalloc_loaded() else "the system's")
    _exit_with_parent(args.parent_pid)
    probe_redis(config, "worker")
    from engine import EngineError
    from worker.main import run_worker

    try:
        run_worker(config)
    except EngineError as error:
        sys.exit(f"ttsq worker: {error}")
    return 0


def _worker_argv(args: argparse.Namespace, allocator: str) -> list[str]:
    """This worker's command line again, for running it on another allocator."""
    flags = {"--device": args.device, "--backend": args.backend, "--parent-pid": args.parent_pid}
    return ["worker", *(f"{flag}={value}" for flag, value in flags.items() if value), f"--allocator={allocator}"]


def _worker_overrides(args: argparse.Namespace) -> dict[str, str]:
    """--device, --backend and --allocator override their variables; a worker per GPU gets a name of its own."""
    overrides = {"TTSQ_DEVICE": args.device, "TTSQ_BACKEND": args.backend, "TTSQ_ALLOCATOR": args.allocator}
    overrides = {name: value for name, value in overrides.items() if value}
    device = overrides.get("TTSQ_DEVICE") or os.environ.get("TTSQ_DEVICE", "")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if device.startswith("cuda") and visible and not os.environ.get("TTSQ_WORKER_NAME"):
        # One worker per GPU through CUDA_VISIBLE_DEVICES: each numbers its GPUs from 0, so the variable (an
        # index, a list or a UUID) is what tells two workers apart; the device index adds the GPU within it.
        gpus = re.sub(r"[^A-Za-z0-9-]+", "-", visible).strip("-")[:40]
        index = device.partition(":")[2] or "0"
        suffix = "" if "," not in visible and index == "0" else f"-{index}"
        overrides["TTSQ_WORKER_NAME"] = f"ttsq-gpu{gpus}{suffix}@{socket.gethostname()}"
    return overrides


def cmd_webhooks(args: argparse.Namespace) -> int:
    config = _config()
    if config.redis_url is None:
        sys.exit("ttsq: TTSQ_REDIS_URL is not set; run `ttsq serve` for the embedded stack, or point it at your Redis")
    setup_logging(config.log_level, config.log_format)
    _exit_with_parent(args.parent_pid)
    from worker.delivery import run_webhook_worker

    run_webhook_worker(config)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """API + worker + (unless TTSQ_REDIS_URL is set) the embedded Redis, as one command."""
    from ..embedded import EmbeddedRedis, EmbeddedRedisError

    config = _config()
    setup_logging(config.log_level, config.log_format)
    check_bind(config, args.host)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    embedded = EmbeddedRedis(config.data_dir) if config.redis_url is None else None
    children: list[subprocess.Popen[bytes]] = []
    try:
        # Webhook events carry absolute links, so the consumer must know where the API is reached.
        host = f"[{args.host}]" if ":" in args.host else args.host
        public_url = config.public_url or f"http://{host}:{args.port}"
        env = {**os.environ, "TTSQ_DATA_DIR": str(config.data_dir), "TTSQ_PUBLIC_URL": public_url}
        if embedded is not None:
            env["TTSQ_REDIS_URL"] = embedded.start()
            env["TTSQ_SECRET_KEY"] = secret_key(config)
        base = [sys.executable, "-m", "ttsq"]
        parent = ["--parent-pid", str(os.getpid())]
        # Own sessions: Ctrl-C reaches only this process, which then stops the API, the worker, and Redis last.
        api = ["api", "--host", args.host, "--port", str(args.port), *parent]
        commands = {"worker": ["worker", *parent], "webhook consumer": ["webhooks", *parent], "API": api}
        for command in commands.values():
            children.append(subprocess.Popen([*base, *command], env=env, start_new_session=True))
        print(f"ttsq serving on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
        while not stopping.wait(0.2):
            for name, child in zip(commands, children, strict=True):
                if child.poll() is not None:
                    print(f"ttsq serve: the {name} exited with {child.returncode}; stopping", file=sys.stderr)
                    return 1
        return 0
    except EmbeddedRedisError as error:
        print(f"ttsq serve: {error}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):  # the API first, then webhooks, then the worker (it ends its sentence)
            stop_process(child)
        if embedded is not None:
            embedded.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded stack, narrate the sample text over HTTP, fetch it by its signed URL, stop."""
    from .. import client

    config = _config()
    text_file = Path(args.file)
    if text_file == DEMO_TEXT and not text_file.exists():  # installed without the repository's examples/
        text_file = config.data_dir / "demo.txt"
        text_file.parent.mkdir(parents=True, exist_ok=True)
        text_file.write_text(DEMO_FALLBACK, encoding="utf-8")
    port = _free_port()
    url = f"http://{DEFAULT_HOST}:{port}"
    started = time.monotonic()
    # The stack's own logs would bury the demo's few lines; TTSQ_LOG_LEVEL=INFO shows them.
    env = {"TTSQ_LOG_LEVEL": "WARNING", **os.environ}
    server = subprocess.Popen([sys.executable, "-m", "ttsq", "serve", "--port", str(port)], env=env)
    try:
        client.wait_ready(url, alive=lambda: server.poll() is None)
        print(f"stack ready in {time.monotonic() - started:.1f} s", flush=True)
        output = Path(args.output) if args.output else config.data_dir / "demo.wav"
        return cmd_submit(
            argparse.Namespace(
                file=str(text_file),
                url=url,
                speaker=None,
                speed=1.0,
                wait=True,
                output=str(output),
                api_key=None,
                format=None,
                marks=False,
                webhook_url=None,
                metadata=None,
            )
        )
    except client.ClientError as error:
        print(f"ttsq demo: {error}", file=sys.stderr)
        return 1
    finally:
        stop_process(server, timeout_s=60)
