"""The WSGI entry point for production servers: ``gunicorn 'api.wsgi:app'``.

Configures logging as TTSQ_LOG_LEVEL / TTSQ_LOG_FORMAT say (the CLI does this for ``ttsq api``; under gunicorn
nothing else would, and the API's lines, each with its job id, would be dropped), then builds the app."""

from __future__ import annotations

from ttsq.config import load_config
from ttsq.logs import setup_logging

from . import create_app

config = load_config()
setup_logging(config.log_level, config.log_format)
app = create_app(config)
