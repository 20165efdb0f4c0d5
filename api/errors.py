"""One error shape for every failure: {"error": {"code", "message"}} with the right status."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.routing.exceptions import WebsocketMismatch

from ttsq.storage.base import StorageError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        return jsonify(error_body(error.code, error.message, error.details)), error.status, error.headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        code = (error.name or "error").lower().replace(" ", "_")
        # Keep what the error says beyond its body: Allow on a 405 (RFC 9110), Retry-After, WWW-Authenticate.
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return jsonify(error_body(code, error.description or error.name)), error.code or 500, headers

    @app.errorhandler(WebsocketMismatch)
    def _not_a_websocket(error: WebsocketMismatch) -> ResponseReturnValue:
        message = "this is a WebSocket endpoint; connect with a WebSocket client"
        return jsonify(error_body("upgrade_required", message)), 426, {"Upgrade": "websocket", "Connection": "Upgrade"}

    @app.errorhandler(StorageError)
    def _storage_down(error: StorageError) -> ResponseReturnValue:
        logger.error("storage error: %s", error)
        return jsonify(error_body("storage_unavailable", "the audio storage is not reachable; try again shortly")), 503

    @app.errorhandler(redis.RedisError)
    def _redis_down(error: redis.RedisError) -> ResponseReturnValue:
        logger.error("Redis error: %s", error)
        return jsonify(error_body("redis_unavailable", "the job store is not reachable; try again shortly")), 503

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        logger.exception("unhandled error")
        return jsonify(error_body("internal_error", "the server hit an unexpected error; it has been logged")), 500
