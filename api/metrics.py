"""GET /metrics: Prometheus exposition of what API and workers recorded in Redis (see ttsq.metrics)."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from ttsq.metrics.collect import RedisCollector, metrics_response
from ttsq.queue import monitored_queues

from .errors import error_body
from .services import services

logger = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """No auth (scrapers sit on the private network); never a 500: without Redis a 503, as every route answers."""
    s = services()
    collector = RedisCollector(s.redis, s.config.key_prefix, monitored_queues(s.config))
    try:
        body, content_type = metrics_response(collector)
    except redis.RedisError as error:
        logger.error("metrics: Redis error: %s", error)
        return jsonify(error_body("redis_unavailable", "the job store is not reachable; try again shortly")), 503
    except Exception:  # a scrape must not take the API's error budget down with it
        logger.exception("metrics: could not collect")
        return jsonify(error_body("metrics_unavailable", "metrics could not be collected; it has been logged")), 503
    return Response(body, status=200, content_type=content_type)
