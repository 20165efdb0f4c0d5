"""The web console at ``/`` (and ``/console``): one static page and its script, for people who narrate.

Server-rendered once (a static file) and driven by a small script against the public API: nothing is fetched from
any other host, which a strict Content-Security-Policy on every console response enforces in the browser. The one
exception is the audio itself where the storage serves it (S3's presigned links): its origin may be played."""

from __future__ import annotations

from importlib import resources
from urllib.parse import urlsplit

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from ttsq.storage.base import key_for

from .errors import ApiError
from .services import services

bp = Blueprint("console", __name__)

ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
MEDIA_SOURCES = "'self' blob:"
"""Where the console plays audio from: this server, and blob: for audio streamed in (plus the storage's origin)."""
_POLICY = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src {media}",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
]


def content_security_policy() -> str:
    """Same origin only, but for the audio the storage serves from elsewhere (an S3 presigned link's origin)."""
    return "; ".join(_POLICY).format(media=" ".join([MEDIA_SOURCES, *_storage_origin()]))


def _storage_origin() -> list[str]:
    # Presigning is local (an HMAC over the request): no network, and the origin is the one every link will have.
    url = services().storage.public_url(key_for("0" * 32, "wav"), 60)
    if not url:
        return []
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}"]


def _file(name: str, content_type: str, body: bytes | None = None) -> Response:
    body = resources.files("api").joinpath("console", name).read_bytes() if body is None else body
    response = Response(body, content_type=f"{content_type}; charset=utf-8")
    response.headers["Content-Security-Policy"] = content_security_policy()
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
@bp.get("/console")
def console() -> ResponseReturnValue:
    """The page, told whether this server wants an API key (so it shows the key field only then)."""
    page = resources.files("api").joinpath("console", "index.html").read_bytes()
    keys = b"true" if services().config.api_keys else b"false"
    return _file("index.html", "text/html", page.replace(b"{{keys}}", keys))


@bp.get("/console/<name>")
def asset(name: str) -> ResponseReturnValue:
    if name not in ASSETS:
        raise ApiError(404, "not_found", f"no console file {name!r}")
    return _file(name, ASSETS[name])
