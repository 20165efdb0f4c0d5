"""Celery's consumer, with a broker loss that cannot stop the worker.

On a lost broker connection Celery 5.7.0's consumer collects the connection (kombu drops the transport's client)
and then closes it. When collect's own close timed out on the dead socket, a channel is still open: the close
restores its unacknowledged messages, and a task that was running at the loss acks its message on it when it ends.
Both reach Redis through a new pool whose address kombu reads from the client just dropped, and the AttributeError
that raises is not a connection error to Celery: the worker stops ("Unrecoverable error"), most often with several
Celery threads (several messages in flight). Keeping the client on the collected transport lets those channels
reach Redis again: the close restores the messages as a clean close does, and a late ack either lands or fails as
the connection error Celery expects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from celery.worker.consumer import Consumer as CeleryConsumer

CONSUMER = f"{__name__}:Consumer"
"""The ``worker_consumer`` setting that selects it."""


class Consumer(CeleryConsumer):  # type: ignore[misc]
    def on_connection_error_after_connected(self, exc: Exception) -> None:
        connection = self.connection
        transport = getattr(connection, "_transport", None)  # the property would build a new one
        if transport is not None:
            # Only this connection, which Celery is discarding: the next one is a new object.
            connection.collect = partial(collect_keeping_client, connection.collect, transport)
        super().on_connection_error_after_connected(exc)


def collect_keeping_client(collect: Callable[..., None], transport: Any, *args: Any, **kwargs: Any) -> None:
    """Collect a kombu connection, leaving its transport the client (broker address) its channels need."""
    client = transport.client
    try:
        collect(*args, **kwargs)
    finally:
        transport.client = client
