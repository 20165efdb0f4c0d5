"""The commands that need no stack: say, pre-download, voices push/convert, keys new, webhook-secret."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from ..config import Config
from ..credentials import hash_api_key, secret_key, webhook_secret
from ..logs import setup_logging
from .common import _config


def cmd_keys_new(args: argparse.Namespace) -> int:
    from engine.constants import SPEAKER_NAME

    if not SPEAKER_NAME.match(args.name):
        print(f"ttsq: invalid key name {args.name!r}: use 1-64 of a-z, 0-9, '-' and '_'", file=sys.stderr)
        return 2
    key = f"ttsq_{secrets.token_urlsafe(32)}"
    print(f"API key (give it to the client; it is not stored anywhere): {key}")
    print(f"add to TTSQ_API_KEYS (comma-separated): {args.name}:{hash_api_key(key)}")
    return 0


def cmd_webhook_secret(args: argparse.Namespace) -> int:

    config = _config()
    print(webhook_secret(config, secret_key(config)).decode())
    return 0


def _engine(config: Config, speaker: str | None = None) -> Any:
    from worker.main import new_tts

    tts = new_tts(config)
    for name, source in config.speakers.items():
        if speaker is None or name == speaker:
            tts.load(name, source)
    return tts


def cmd_say(args: argparse.Namespace) -> int:
    from engine import EngineError, SynthesisOptions

    config = _config()
    if args.speaker not in config.speakers:
        sys.exit(f"ttsq: unknown speaker {args.speaker!r}; expected one of: {', '.join(sorted(config.speakers))}")
    try:
        tts = _engine(config, args.speaker).prepare(warmup=False)
        audio = tts.speakers[args.speaker].generate(args.text, SynthesisOptions(speed=args.speed))
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


def cmd_voices_convert(args: argparse.Namespace) -> int:
    """Convert a Piper voice for the torch backend ahead of time: into --output, or into the cache workers read."""
    from engine import EngineError
    from engine.sources import find_voice_files, parse_source

    config = _config()
    try:
        from engine.torch.convert import convert_piper, converted_voice

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
