"""Secrets: the signing secret (configured, or generated once into the data directory), API-key digests, and the
webhook signing secret derived from the signing secret."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

from .config import MIN_SECRET_CHARS, Config, ConfigError

SECRET_FILE = "secret_key"


def hash_api_key(key: str) -> str:
    """What TTSQ_API_KEYS holds for a key: only digests are ever configured or compared."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def webhook_secret(config: Config, secret: str) -> bytes:
    """The webhook signing secret: configured, or derived from the URL-signing secret (never equal to it)."""
    if config.webhook_secret:
        return config.webhook_secret.encode("utf-8")
    return hmac.new(secret.encode("utf-8"), b"ttsq webhook signing", hashlib.sha256).hexdigest().encode("ascii")


def secret_key(config: Config) -> str:
    """The signing secret: configured, or (embedded default only) generated once and kept 0600 in data_dir."""
    if config.secret_key:
        return config.secret_key
    path = config.data_dir / SECRET_FILE
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole to a private temp file, then linked into place: a racing process sees all or nothing.
        temp = path.with_name(f".{SECRET_FILE}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process won; use its secret
        finally:
            temp.unlink()
    secret = path.read_text().strip()
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(f"{path} holds no usable secret; delete it and start again to generate one")
    return secret
