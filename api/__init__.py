"""The HTTP API: a thin adapter over the job store, the queue and storage. It never loads a model."""

from .app import create_app

__all__ = ["create_app"]
