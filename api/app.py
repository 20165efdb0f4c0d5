"""The Flask app factory."""

from __future__ import annotations

from celery import Celery
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ttsq.config import Config, load_config
from ttsq.connections import redis_client
from ttsq.credentials import secret_key
from ttsq.jobs.events import JobEvents
from ttsq.jobs.store import JobStore
from ttsq.presence import ServedVoices
from ttsq.queue import create_celery
from ttsq.storage import open_storage

from . import console, files, health, jobs, listing, live, metrics, speakers, speech
from .errors import register_error_handlers
from .services import Services


def create_app(config: Config | None = None, celery: Celery | None = None) -> Flask:
    config = config or load_config()
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Refuse oversized bodies before reading them: JSON escapes take at most 6 bytes a character, plus slack.
    app.config["MAX_CONTENT_LENGTH"] = config.max_text_chars * 6 + 64 * 1024
    # Each thread holds at most one connection at a time (an open speech stream's blocking read, a long poll's).
    client = redis_client(config.effective_redis_url, config.api_threads, socket_connect_timeout=2, socket_timeout=5)
    app.extensions["ttsq"] = Services(
        config=config,
        redis=client,
        store=JobStore(client, config.key_prefix),
        celery=celery or create_celery(config),
        storage=open_storage(config),
        secret=secret_key(config),
        events=JobEvents(client, config.keys),
        served=ServedVoices(client, config.keys),
    )
    if config.trusted_proxies:
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)  # type: ignore[method-assign]
    register_error_handlers(app)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(listing.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(speakers.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(speech.bp)
    app.register_blueprint(speech.public)
    # A WebSocket message is at most a text piece of TTSQ_SPEECH_MAX_CHARS (JSON escapes included), read before auth.
    app.config["SOCK_SERVER_OPTIONS"] = {"max_message_size": config.speech_max_chars * 6 + 1024}
    live.sock.init_app(app)
    app.register_blueprint(live.bp)
    return app
