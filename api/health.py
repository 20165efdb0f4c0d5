"""Liveness, readiness, and the OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import redis
import yaml
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ttsq import presence

from .errors import error_body
from .services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    s = services()
    try:
        s.redis.ping()
    except redis.RedisError as error:
        return jsonify(error_body("redis_unavailable", f"Redis is not reachable: {error}")), 503
    workers = presence.live_workers(s.redis, s.config.keys)
    if not workers:
        return jsonify(error_body("no_workers", "no worker is alive; start one with `ttsq worker`")), 503
    serving = {w.name: sorted(w.speakers) for w in sorted(workers, key=lambda w: w.name)}
    return jsonify({"status": "ready", "workers": list(serving), "serving": serving})


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    text = resources.files("api").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)  # type: ignore[no-any-return]


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())
