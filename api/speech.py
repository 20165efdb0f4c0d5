"""OpenAI-compatible speech: ``POST /v1/audio/speech`` streamed from the worker through Redis, and the listings
OpenAI clients read (``/v1/models``, ``/v1/audio/voices``, ``/v1/audio/models``)."""

from __future__ import annotations

import base64
import json
import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import redis
from flask import Blueprint, Response, g, jsonify, request, stream_with_context
from flask.typing import ResponseReturnValue

from ttsq.encoding import SPEECH_FORMATS, StreamEncoder
from ttsq.metrics.record import record_speech
from ttsq.parsing import OPENAI_VOICES
from ttsq.speech import NoWorkerError, SpeechError, SpeechGone, SpeechRequest
from ttsq.speech.channel import SpeechReader

from . import access
from .openai_shape import OPENAI_MODELS, OpenAIError, parse_speech_body, use_openai_errors
from .schemas import read_json_body
from .services import Services, services
from .speakers import known_speakers, served

logger = logging.getLogger(__name__)
bp = Blueprint("speech", __name__, url_prefix="/v1")
bp.before_request(access.authenticate)
use_openai_errors(bp)
# Open WebUI asks for voices and models without its key: these two answer anyone (they name only the voices).
public = Blueprint("speech_listings", __name__, url_prefix="/v1")
use_openai_errors(public)


@public.before_request
def _loopback_without_keys() -> None:
    """Without keys the API answers its own host only, these listings too; with keys they answer anyone."""
    if not services().config.api_keys:
        access.authenticate()


NO_WORKER_RETRY_S = 5


@bp.post("/audio/speech")
def create_speech() -> ResponseReturnValue:
    s = services()
    body = parse_speech_body(read_json_body())
    if not body.input.strip():
        raise OpenAIError(400, "invalid_value", "input is empty", param="input")
    if len(body.input) > s.config.speech_max_chars:
        raise OpenAIError(
            413,
            "input_too_long",
            f"input has {len(body.input)} characters; the limit is {s.config.speech_max_chars} "
            "(TTSQ_SPEECH_MAX_CHARS); narrate longer texts as jobs (POST /v1/jobs)",
            param="input",
        )
    speaker = resolve_speaker(s, body.voice_name)
    _cut_off_stalled_writes(s.config.speech_idle_timeout_s)
    reader = open_speech(s, speaker, body.input, float(body.speed))
    try:
        encoder = StreamEncoder(body.response_format, reader.sample_rate)
        record_speech(s.redis, s.config.key_prefix, len(body.input))
    except BaseException:
        reader.close()
        raise
    if body.stream_format == "sse":
        response = Response(
            stream_with_context(_sse(reader, encoder, client_alive())),
            mimetype="text/event-stream",
            headers=_NO_BUFFERING,
        )
    else:
        content_type = SPEECH_FORMATS[body.response_format]
        audio = stream_with_context(_audio(reader, encoder, client_alive()))
        response = Response(audio, content_type=content_type, headers=_NO_BUFFERING)
    response.call_on_close(reader.close)  # also when the body is never read (close() runs once)
    return response


_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def resolve_speaker(s: Services, voice: str) -> str:
    """The speaker an OpenAI voice name, alias or speaker name means; 404 for one nobody serves."""
    speaker = s.config.speaker_for_voice(voice)
    known = sorted(known_speakers(s, speaker))
    if speaker not in known:
        raise OpenAIError(
            404,
            "voice_not_found",
            f"unknown voice {voice!r}; expected one of OpenAI's voice names or a speaker: {', '.join(known)}",
            param="voice",
        )
    return speaker


def open_speech(
    s: Services, speaker: str, text: str, speed: float, alive: Callable[[], bool] | None = None
) -> SpeechReader:
    """Queue the request and wait until a worker has it (its sample rate is then known); 503 when none does."""
    if speaker not in served(s, speaker):
        raise OpenAIError(
            503,
            "no_worker",
            f"no worker serving speaker {speaker!r} is running; start one (ttsq worker)",
            headers={"Retry-After": str(NO_WORKER_RETRY_S)},
        )
    deadline = time.time() + s.config.speech_start_timeout_s
    speech = SpeechRequest(speaker=speaker, text=text, speed=speed, owner=g.get("owner"), deadline=deadline)
    reader = SpeechReader(s.redis, s.config.keys, speech, s.config.speech_idle_timeout_s)
    try:
        reader.submit()
        reader.wait_start(alive or client_alive())
    except NoWorkerError as error:
        reader.close()
        raise OpenAIError(503, error.code, error.message, headers={"Retry-After": str(NO_WORKER_RETRY_S)}) from None
    except SpeechError as error:
        reader.close()
        raise OpenAIError(503 if isinstance(error, SpeechGone) else 400, error.code, error.message) from None
    except BaseException:
        reader.close()
        raise
    return reader


def _cut_off_stalled_writes(timeout_s: float) -> None:
    """A client that stops reading fills its socket: give up a write after ``timeout_s`` rather than hold the
    thread for as long as TCP takes (gunicorn puts the socket back to non-blocking for the next request)."""
    sock: socket.socket | None = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(timeout_s)


def client_alive() -> Callable[[], bool]:
    """Whether the client is still connected, where the server lets us look (gunicorn hands over its socket): a
    client that hung up makes its socket readable with nothing to read. Elsewhere, a failed write tells."""
    sock: socket.socket | None = request.environ.get("gunicorn.socket")
    if sock is None:
        return lambda: True

    def alive() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return not readable or bool(sock.recv(1, socket.MSG_PEEK))
        except (OSError, ValueError):
            return False

    return alive


def _audio(reader: SpeechReader, encoder: StreamEncoder, alive: Callable[[], bool]) -> Iterator[bytes]:
    """The encoded bytes as each piece of PCM arrives; closing (the client went) cancels the request."""
    with reader:
        try:
            for pcm in reader.audio(alive):
                if data := encoder.encode(np.frombuffer(pcm, dtype=np.int16)):
                    yield data
        except SpeechError as error:  # the status is sent already: the stream just ends early
            logger.warning("speech %s: ended early: %s", reader.request.id, error.message)
            return
        except redis.RedisError as error:
            logger.warning("speech %s: ended early: Redis: %s", reader.request.id, error)
            return
        yield encoder.finish()


def _sse(reader: SpeechReader, encoder: StreamEncoder, alive: Callable[[], bool]) -> Iterator[str]:
    """OpenAI's speech events: ``speech.audio.delta`` with base64 audio, then ``speech.audio.done``."""
    with reader:
        try:
            for pcm in reader.audio(alive):
                if data := encoder.encode(np.frombuffer(pcm, dtype=np.int16)):
                    yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
        except SpeechError as error:
            yield _event({"type": "error", "error": {"code": error.code, "message": error.message}})
            return
        except redis.RedisError as error:
            logger.warning("speech %s: ended early: Redis: %s", reader.request.id, error)
            yield _event(
                {"type": "error", "error": {"code": "redis_unavailable", "message": "the job store is not reachable"}}
            )
            return
        if data := encoder.finish():
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})
        tokens = len(reader.request.text.split())
        usage = {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens}
        yield _event({"type": "speech.audio.done", "usage": usage})


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _model_ids(s: Services) -> list[str]:
    return [*OPENAI_MODELS, *sorted(known_speakers(s))]


@bp.get("/models")
def list_models() -> ResponseReturnValue:
    """OpenAI's model list: its TTS model names and each speaker (all of them mean this engine)."""
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "ttsq"} for name in _model_ids(services())]
    return jsonify({"object": "list", "data": data})


@public.get("/audio/models")
def list_audio_models() -> ResponseReturnValue:
    return jsonify({"models": [{"id": name} for name in _model_ids(services())]})


@public.get("/audio/voices")
def list_voices() -> ResponseReturnValue:
    """Every speaker, then each OpenAI voice name with the speaker it means."""
    s = services()
    voices = [{"id": name, "name": name} for name in sorted(known_speakers(s))]
    aliases = [*OPENAI_VOICES, *(a for a in sorted(s.config.voice_aliases) if a not in OPENAI_VOICES)]
    voices += [{"id": alias, "name": f"{alias} ({s.config.speaker_for_voice(alias)})"} for alias in aliases]
    return jsonify({"voices": voices})
