"""Signed webhook events: ``events`` (build, sign, verify), ``policy`` (where they may go), ``transport``, ``delivery``.

Only :func:`verify` and the header names are re-exported, so a receiver's ``from ttsq.webhooks import verify``
loads no Redis, Celery or Prometheus client.
"""

from .events import EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, verify

__all__ = ["EVENT_HEADER", "EVENT_ID_HEADER", "SIGNATURE_HEADER", "verify"]
