"""A broker loss with messages in flight does not stop the worker (worker/consumer.py)."""

from __future__ import annotations

from functools import partial

import kombu
import pytest
import redis
from celery.utils.imports import symbol_by_name
from celery.worker.consumer import Consumer as CeleryConsumer

from worker.consumer import CONSUMER, Consumer, collect_keeping_client

QUEUE = kombu.Queue("consumer-test")


def _consuming_one_message(url: str, ack_emulation: bool) -> tuple[kombu.Connection, kombu.Message]:
    """A consumer's connection holding one unacknowledged message."""
    with kombu.Connection(url) as producer_connection, producer_connection.Producer() as producer:
        producer.publish({"job": 1}, routing_key=QUEUE.name, declare=[QUEUE])
    connection = kombu.Connection(url, transport_options={"ack_emulation": ack_emulation})
    received: list[kombu.Message] = []
    consumer = kombu.Consumer(connection.default_channel, [QUEUE], callbacks=[lambda _, m: received.append(m)])
    consumer.consume()
    connection.drain_events(timeout=5)
    assert len(received) == 1
    return connection, received[0]


def _collect_whose_close_timed_out(connection: kombu.Connection, **_: object) -> None:
    """What kombu's collect() leaves when its close of the channels timed out on a dead socket: the transport's
    client dropped, the channel still open with its message unacknowledged."""
    connection._do_close_transport()
    connection._connection = None


@pytest.mark.parametrize("ack_emulation", [False, True], ids=["as-ttsq-runs-it", "kombu-default"])
def test_a_collected_connection_still_reaches_redis_to_close_and_ack(
    redis_url: str, redis_client: redis.Redis, ack_emulation: bool
) -> None:
    """Without our wrapper the close fails on the dropped client: with kombu's ack emulation it raises (what stopped
    Celery 5.7.0's worker), without it (as ttsq runs kombu) the message is not put back but dumped to a file;
    drop the wrapper once neither happens."""
    bare, _ = _consuming_one_message(redis_url, ack_emulation)
    _collect_whose_close_timed_out(bare)
    if ack_emulation:
        with pytest.raises(AttributeError):
            bare.close()
    else:
        bare.close()
        assert redis_client.llen(QUEUE.name) == 0, "the message went back without the wrapper"
    redis_client.flushdb()

    connection, message = _consuming_one_message(redis_url, ack_emulation)
    transport = connection._transport
    collect_keeping_client(partial(_collect_whose_close_timed_out, connection), transport, socket_timeout=1)
    connection.close()
    assert redis_client.hlen("unacked") == 0
    assert redis_client.llen(QUEUE.name) == 1, "the close put the unacknowledged message back on its queue"
    message.ack()  # a task that was running at the loss ends after it: its ack reaches Redis, and raises nothing


def test_the_worker_runs_our_consumer(runtime) -> None:  # type: ignore[no-untyped-def]
    assert runtime.celery.conf.worker_consumer == CONSUMER
    assert symbol_by_name(CONSUMER) is Consumer
    assert issubclass(Consumer, CeleryConsumer)
