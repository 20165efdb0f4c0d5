"""``/v1/audio/speech/ws``: speech for voice agents over a WebSocket (flask-sock), text in as it is written.

The client sends ``config`` (voice, response_format pcm|wav, speed; and ``api_key`` where it cannot set an
Authorization header, as browsers cannot), then ``text`` pieces, ``flush`` and ``end_of_stream``. Text is buffered
until a sentence ends, then that much is spoken through the queue like any speech request; each piece of audio
comes back as an ``audio`` message (base64: raw 16-bit PCM, or for wav each piece a small WAV file of its own)."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Blueprint, g, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from engine.constants import MAX_SPEED, MIN_SPEED
from ttsq.encoding import StreamEncoder
from ttsq.metrics.record import record_speech
from ttsq.speech import SpeechError

from . import access
from .errors import ApiError
from .services import services
from .speakers import served
from .speech import open_speech, resolve_speaker

logger = logging.getLogger(__name__)
bp = Blueprint("live", __name__, url_prefix="/v1")
sock = Sock()

KEEPALIVE_S = 5.0
"""Idle this long, the server sends a keepalive message (proxies drop quiet connections)."""
LIVE_FORMATS = ("pcm", "wav")
SENTENCE_END = re.compile("[.!?\u2026]+[\"'\u201d\u2019)\\]]*\\s+")
"""Where buffered text may be cut: a sentence end followed by a space (the piece after it waits for more text)."""
POLICY_VIOLATION = 1008


@dataclass
class LiveConfig:
    speaker: str
    response_format: str
    speed: float


class LiveError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@sock.route("/audio/speech/ws", bp=bp)
def speech_socket(ws: Server) -> None:
    s = services()
    header_key = request.headers.get("Authorization", "")
    if header_key or not s.config.api_keys:
        try:
            access.authenticate()  # the same rules as every /v1 route
        except ApiError as error:
            _refuse(ws, error)
            return
    config: LiveConfig | None = None
    buffer = ""
    while True:
        raw = ws.receive(timeout=KEEPALIVE_S)
        if raw is None:
            ws.send(json.dumps({"type": "keepalive"}))
            continue
        try:
            message = _parse(raw)
            kind = message.get("type")
            if kind == "config":
                config = _configure(ws, message, needs_key=bool(s.config.api_keys) and not header_key)
                continue
            if config is None:
                raise LiveError("not_configured", "send a config message first")
            if kind == "text":
                text = message.get("text")
                if not isinstance(text, str):
                    raise LiveError("invalid_text", "a text message needs a string field 'text'")
                limit = s.config.speech_max_chars
                if len(text) > limit:
                    raise LiveError("text_too_long", f"a text message has at most {limit} characters")
                if len(buffer) + len(text) > limit:  # no request is ever longer than a /v1/audio/speech one
                    _speak(ws, config, buffer)
                    buffer = ""
                buffer += text
                ready, buffer = _split_ready(buffer)
                _speak(ws, config, ready)
            elif kind == "flush":
                _speak(ws, config, buffer)
                buffer = ""
            elif kind == "end_of_stream":
                _speak(ws, config, buffer)
                ws.send(json.dumps({"type": "complete"}))
                return
            else:
                raise LiveError(
                    "unknown_type", f"unknown message type {kind!r}; expected config, text, flush or end_of_stream"
                )
        except LiveError as error:
            ws.send(json.dumps({"type": "error", "code": error.code, "message": error.message}))
        except ApiError as error:
            if error.status == 401:
                _refuse(ws, error)
                return
            ws.send(json.dumps({"type": "error", "code": error.code, "message": error.message}))


def _refuse(ws: Server, error: ApiError) -> None:
    try:
        ws.send(json.dumps({"type": "error", "code": error.code, "message": error.message}))
        ws.close(POLICY_VIOLATION, error.message[:120])
    except ConnectionClosed:
        pass


def _parse(raw: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        raise LiveError("invalid_json", "each message must be a JSON object") from None
    if not isinstance(message, dict):
        raise LiveError("invalid_json", "each message must be a JSON object")
    return message


def _configure(ws: Server, message: dict[str, Any], needs_key: bool) -> LiveConfig:
    s = services()
    if needs_key:
        key = message.get("api_key")
        g.owner = access.authenticate_key(key if isinstance(key, str) else "")
    voice = message.get("voice", "alloy")
    fmt = message.get("response_format", "pcm")
    speed = message.get("speed", 1.0)
    if not isinstance(voice, str):
        raise LiveError("invalid_voice", "voice must be a string")
    if fmt not in LIVE_FORMATS:
        raise LiveError("invalid_format", f"response_format must be one of: {', '.join(LIVE_FORMATS)}; got {fmt!r}")
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise LiveError("invalid_speed", f"speed must be a number from {MIN_SPEED} to {MAX_SPEED}; got {speed!r}")
    speaker = resolve_speaker(s, voice)
    announced = served(s, speaker).get(speaker)
    if announced is None:
        raise LiveError("no_worker", f"no worker serving speaker {speaker!r} is running")
    ws.send(json.dumps({"type": "ready", "sample_rate": announced.sample_rate}))
    return LiveConfig(speaker, fmt, float(speed))


def _split_ready(buffer: str) -> tuple[str, str]:
    """(the text up to the last finished sentence, the rest)."""
    cut = 0
    for match in SENTENCE_END.finditer(buffer):
        cut = match.end()
    return buffer[:cut], buffer[cut:]


def _speak(ws: Server, config: LiveConfig, text: str) -> None:
    if not text.strip():
        return
    s = services()
    if g.get("owner"):
        access.limit_rate(g.owner)  # each piece spoken is a request, as on /v1/audio/speech
    try:
        reader = open_speech(s, config.speaker, text, config.speed, alive=lambda: ws.connected)
    except ApiError as error:
        raise LiveError(error.code, error.message) from None
    record_speech(s.redis, s.config.key_prefix, len(text))
    with reader:
        try:
            for pcm in reader.audio(lambda: ws.connected):
                data = pcm
                if config.response_format == "wav":
                    piece = StreamEncoder("wav", reader.sample_rate)
                    data = piece.encode(np.frombuffer(pcm, dtype=np.int16)) + piece.finish()
                message = {"type": "audio", "data": base64.b64encode(data).decode(), "sample_rate": reader.sample_rate}
                ws.send(json.dumps(message))
        except SpeechError as error:
            raise LiveError(error.code, error.message) from None
