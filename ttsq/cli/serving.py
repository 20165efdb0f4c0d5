"""The API's server for `ttsq api` (and so `ttsq serve`): gunicorn's threaded worker, as in the image and compose.

Streamed speech, WebSockets and long polls each hold a thread for as long as they are open, so one process runs
many threads (TTSQ_API_THREADS); waitress, the previous choice, has no WebSocket support for flask-sock."""

from __future__ import annotations

import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from ..config import Config

WORKER_TIMEOUT_S = 60
GRACEFUL_TIMEOUT_S = 10
LISTEN_BACKLOG = 2048


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self._app, self._options = app, options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return self._app


def listen(host: str, port: int) -> socket.socket:
    """Bind here, so a taken port is one clear line (OSError) before gunicorn starts, which would retry it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does: restarts need no wait
        # Inherited by every accepted connection. gunicorn sets it on the sockets it binds, but takes a passed fd
        # for a Unix socket and leaves it off: a response's headers and body are two writes, and with Nagle's
        # algorithm the body then waited for the client's delayed ACK, 40 ms, on many keep-alive requests.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def run_api(app: Flask, config: Config, sock: socket.socket) -> None:
    """Serve ``app`` on the bound socket until SIGTERM or SIGINT."""
    options = {
        "bind": [f"fd://{sock.fileno()}"],
        "workers": 1,
        "worker_class": "gthread",
        "threads": config.api_threads,
        "timeout": WORKER_TIMEOUT_S,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "loglevel": "warning",
        "accesslog": None,
        "proc_name": "ttsq-api",
    }
    _Gunicorn(app, options).run()
