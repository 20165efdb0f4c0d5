"""What every ``ttsq`` command shares: the default address and the configuration read from the environment."""

from __future__ import annotations

import os
import sys

from ..config import Config, ConfigError, load_config


def _config(**overrides: str) -> Config:
    """Config from the environment; a command-line flag overrides its TTSQ_* variable."""
    try:
        return load_config({**os.environ, **overrides})
    except ConfigError as error:
        sys.exit(f"ttsq: configuration error: {error}")
