"""What OpenAI's clients expect of the speech routes: the request body, the error shape, the listings' models."""

from __future__ import annotations

import logging
from typing import Any, Literal

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator
from werkzeug.exceptions import HTTPException

from engine.constants import MAX_SPEED, MIN_SPEED
from ttsq.encoding import SPEECH_FORMATS

from .errors import ApiError

logger = logging.getLogger(__name__)

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""Model names clients send; every one is accepted and means the same engine (the voice picks the speaker)."""
ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error", 429: "rate_limit_error"}


class VoiceId(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr


class SpeechBody(BaseModel):
    """``POST /v1/audio/speech``, as OpenAI's schema defines it; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr
    input: StrictStr
    voice: StrictStr | VoiceId
    response_format: StrictStr = "mp3"
    speed: StrictFloat | StrictInt = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: StrictStr | None = None
    """Accepted for compatibility and ignored: Piper voices take no style prompt."""

    @field_validator("response_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in SPEECH_FORMATS:
            raise ValueError(f"got {value!r}; expected one of: {', '.join(SPEECH_FORMATS)}")
        return value

    @property
    def voice_name(self) -> str:
        return self.voice if isinstance(self.voice, str) else self.voice.id


class OpenAIError(ApiError):
    """An ApiError that also names the request parameter at fault, as OpenAI's errors do."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None, **kwargs: Any) -> None:
        super().__init__(status, code, message, **kwargs)
        self.param = param


def parse_speech_body(body: Any) -> SpeechBody:
    if not isinstance(body, dict):
        raise OpenAIError(400, "invalid_request", "the body must be a JSON object")
    try:
        return SpeechBody.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = f"unknown parameter {param!r}"
        elif param:
            message = f"{param}: {message}"
        raise OpenAIError(400, "invalid_value", message, param=param) from None


def openai_error_body(error: ApiError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status, "server_error" if error.status >= 500 else "invalid_request_error")
    return {
        "error": {"message": error.message, "type": kind, "param": getattr(error, "param", None), "code": error.code}
    }


def use_openai_errors(bp: Blueprint) -> None:
    """Errors of this blueprint's routes in OpenAI's shape, so the SDK raises the right exception with our message."""

    @bp.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        return jsonify(openai_error_body(error)), error.status, error.headers

    @bp.errorhandler(redis.RedisError)
    def _redis_down(error: redis.RedisError) -> ResponseReturnValue:
        logger.error("Redis error: %s", error)
        wrapped = ApiError(503, "redis_unavailable", "the job store is not reachable; try again shortly")
        return jsonify(openai_error_body(wrapped)), 503

    @bp.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = (error.name or "error").lower().replace(" ", "_")
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        wrapped = ApiError(error.code or 500, code, error.description or error.name)
        return jsonify(openai_error_body(wrapped)), wrapped.status, headers
