"""What every ``ttsq`` command shares: the configuration read from the environment, and the Redis probe."""

from __future__ import annotations

import logging
import os
import sys

from ..config import Config, ConfigError, load_config


def probe_redis(config: Config, role: str) -> None:
    """Before a long start (loading voices): a Redis that refuses us is fatal, in one line and a non-zero exit; one
    that does not answer yet is a warning (the broker connection keeps retrying)."""
    import redis

    client = redis.Redis.from_url(config.effective_redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.ResponseError as error:  # answered, but no: a database out of range, a wrong password
        sys.exit(f"ttsq {role}: Redis at {config.effective_redis_url} refused us: {error}")
    except redis.RedisError as error:
        logging.getLogger("ttsq").warning(
            "Redis at %s is not answering (%s); the %s will keep trying", config.effective_redis_url, error, role
        )
    finally:
        client.close()


def _config(**overrides: str) -> Config:
    """Config from the environment; a command-line flag overrides its TTSQ_* variable."""
    try:
        return load_config({**os.environ, **overrides})
    except ConfigError as error:
        sys.exit(f"ttsq: configuration error: {error}")
