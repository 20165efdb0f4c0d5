"""The WSGI entry point for production servers: ``gunicorn 'api.wsgi:app'``.

Configures logging as TTSQ_LOG_LEVEL / TTSQ_LOG_FORMAT say (the CLI does this for ``ttsq api``; under gunicorn
nothing else would, and the API's lines, each with its job id, would be dropped), then builds the app."""

from __future__ import annotations

import sys

from ttsq.config import ConfigError, load_config
from ttsq.logs import setup_logging

from . import create_app

WORKER_BOOT_ERROR = 3
"""gunicorn's exit code for a worker that cannot boot: the arbiter stops instead of starting it again and again."""

try:
    config = load_config()
except ConfigError as error:  # one line, not a traceback per worker
    print(f"ttsq: configuration error: {error}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)
setup_logging(config.log_level, config.log_format)
app = create_app(config)
