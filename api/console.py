"""The web console at ``/`` (and ``/console``): one static page and its script, for people who narrate.

Server-rendered once (a static file) and driven by a small script against the public API: nothing is fetched from
any other host, which a strict Content-Security-Policy on every console response enforces in the browser."""

from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from .errors import ApiError
from .services import services

bp = Blueprint("console", __name__)

ASSETS = {"console.js": "text/javascript", "console.css": "text/css"}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
"""Same origin only: the page, its script, the API and the audio it plays (blob: for audio streamed in)."""


def _file(name: str, content_type: str, body: bytes | None = None) -> Response:
    body = resources.files("api").joinpath("console", name).read_bytes() if body is None else body
    response = Response(body, content_type=f"{content_type}; charset=utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
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
