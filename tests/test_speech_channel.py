"""The pieces of interactive speech without a stack: the speaker's turns, the Redis channel, the OpenAI-shaped route."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from engine.turns import Priority, Turns
from ttsq.keys import Keys
from ttsq.speech import MAX_BACKLOG, MAX_ENTRY_BYTES, SpeechGone, SpeechRequest
from ttsq.speech.channel import SpeechReader, SpeechWriter, take_request

KEYS = Keys("ttsqtest:")


def test_an_interactive_turn_goes_before_every_waiting_batch_turn() -> None:
    turns = Turns(1)
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with turns.take(Priority.batch):
            holding.set()
            release.wait(10)

    def take(name: str, priority: Priority) -> None:
        with turns.take(priority):
            order.append(name)

    first = threading.Thread(target=hold)
    first.start()
    assert holding.wait(10)
    waiting = [threading.Thread(target=take, args=(f"batch{n}", Priority.batch)) for n in range(3)]
    for thread in waiting:
        thread.start()
    deadline = time.monotonic() + 10
    while turns.waiting < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    speech = threading.Thread(target=take, args=("speech", Priority.interactive))
    speech.start()
    while turns.waiting < 4 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for thread in [first, *waiting, speech]:
        thread.join(10)
    assert order == ["speech", "batch0", "batch1", "batch2"]  # batch turns keep their order among themselves
    assert turns.busy == 0


def test_no_batch_turn_starts_beside_a_running_interactive_one() -> None:
    """Issue 12: two slots share the cores; while a listener's sentence runs, a narration's next one waits."""
    turns = Turns(2)
    speaking, done = threading.Event(), threading.Event()
    started: list[str] = []

    def speak() -> None:
        with turns.take(Priority.interactive):
            speaking.set()
            done.wait(10)

    def narrate() -> None:
        with turns.take(Priority.batch):
            started.append("batch")

    speech = threading.Thread(target=speak)
    speech.start()
    assert speaking.wait(10)
    narration = threading.Thread(target=narrate)
    narration.start()
    deadline = time.monotonic() + 10
    while turns.waiting < 1 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert turns.busy == 1 and turns.waiting == 1 and started == []  # a slot is free, yet the batch turn waits
    done.set()
    for thread in (speech, narration):
        thread.join(10)
    assert started == ["batch"] and turns.busy == 0


def test_after_speech_batch_turns_leave_a_slot_free_until_the_reservation_lapses() -> None:
    """Issue 12: a speaker that spoke lately keeps a slot for the next interactive sentence, so it starts at once."""
    turns = Turns(2, reserve_s=0.5)
    with turns.take(Priority.interactive):
        pass
    spoke = time.monotonic()
    with turns.take(Priority.batch):  # one batch sentence may run
        second: list[float] = []

        def take_second() -> None:
            with turns.take(Priority.batch):
                second.append(time.monotonic())

        thread = threading.Thread(target=take_second)
        thread.start()
        with turns.take(Priority.interactive):  # the kept slot: no wait
            assert turns.busy == 2
        thread.join(10)
    assert second and second[0] - spoke >= 0.5  # the second batch sentence waited out the reservation
    assert turns.busy == 0


def _request(**fields: object) -> SpeechRequest:
    return SpeechRequest(**{"speaker": "joe", "text": "Hello.", "deadline": time.time() + 5, **fields})  # type: ignore[arg-type]


def test_audio_goes_through_in_order_and_nothing_stays(redis_client: redis.Redis) -> None:
    request = _request()
    with SpeechReader(redis_client, KEYS, request, idle_timeout_s=5) as reader:
        reader.submit()
        taken = take_request(redis_client, KEYS, ["joe"], 1)
        assert taken is not None and taken.id == request.id
        writer = SpeechWriter(redis_client, KEYS, taken.id, idle_timeout_s=5)
        writer.start(22050)
        assert reader.wait_start() == 22050
        pieces = [bytes([n]) * (MAX_ENTRY_BYTES + 10) for n in range(3)]  # each split in two entries
        for piece in pieces:
            writer.audio(piece)
        writer.end()
        assert b"".join(reader.audio()) == b"".join(pieces)
    assert list(redis_client.scan_iter(match="ttsqtest:speech*")) == []


def test_audio_written_before_the_reader_saw_the_start_is_not_lost(redis_client: redis.Redis) -> None:
    """Issue 12: a short text's start, audio and end can all be in the stream by the API's first read (a fast
    worker, a busy API); the entries read with the start were deleted and dropped, and the client waited out the
    idle timeout for audio already sent (2 of 200 concurrent clients hung 30 s in bench/speech.py)."""
    request = _request()
    with SpeechReader(redis_client, KEYS, request, idle_timeout_s=5) as reader:
        reader.submit()
        taken = take_request(redis_client, KEYS, ["joe"], 1)
        assert taken is not None
        writer = SpeechWriter(redis_client, KEYS, taken.id, idle_timeout_s=5)
        writer.start(22050)
        writer.audio(b"spoken")
        writer.end()
        assert reader.wait_start() == 22050
        started = time.monotonic()
        assert b"".join(reader.audio()) == b"spoken"
        assert time.monotonic() - started < 1
    assert list(redis_client.scan_iter(match="ttsqtest:speech*")) == []


def test_a_reader_that_stops_reading_bounds_the_stream_and_the_writer_gives_up(redis_client: redis.Redis) -> None:
    request = _request()
    writer = SpeechWriter(redis_client, KEYS, request.id, idle_timeout_s=0.5)
    writer.start(22050)
    stream = KEYS.speech_stream(request.id)
    longest = 0
    with pytest.raises(SpeechGone, match="read nothing"):
        for _ in range(100):
            writer.audio(b"x" * MAX_ENTRY_BYTES)
            longest = max(longest, redis_client.xlen(stream))
    assert longest <= MAX_BACKLOG + 1  # at most ~1 MiB held for a client that reads nothing
    writer.discard()
    assert not redis_client.exists(stream)


def test_a_reader_closed_early_stops_the_writer_and_leaves_nothing(redis_client: redis.Redis) -> None:
    request = _request()
    reader = SpeechReader(redis_client, KEYS, request, idle_timeout_s=5)
    reader.submit()
    taken = take_request(redis_client, KEYS, ["joe"], 1)
    assert taken is not None
    writer = SpeechWriter(redis_client, KEYS, taken.id, idle_timeout_s=5)
    writer.start(22050)
    reader.wait_start()
    reader.close()  # the client went away mid-request
    with pytest.raises(SpeechGone):
        writer.audio(b"x" * 100)
    writer.discard()
    assert list(redis_client.scan_iter(match="ttsqtest:speech*")) == []


def test_a_request_nobody_takes_is_withdrawn(redis_client: redis.Redis) -> None:
    from ttsq.speech import NoWorkerError

    request = _request(deadline=time.time() + 0.3)
    reader = SpeechReader(redis_client, KEYS, request, idle_timeout_s=5)
    reader.submit()
    with pytest.raises(NoWorkerError, match="took the request"):
        reader.wait_start()
    reader.close()
    assert take_request(redis_client, KEYS, ["joe"], 0.1) is None  # no worker speaks it later
    assert list(redis_client.scan_iter(match="ttsqtest:speech*")) == []


def test_a_request_taken_and_dropped_is_not_waited_for_forever(redis_client: redis.Redis) -> None:
    """Regression (review): a worker that took a request just after its deadline dropped it, and the API waited on,
    extending the deadline again and again."""
    from ttsq.speech import SpeechError

    request = _request(deadline=time.time() + 0.3)
    reader = SpeechReader(redis_client, KEYS, request, idle_timeout_s=0.5)
    reader.submit()
    assert redis_client.lpop(KEYS.speech_queue("joe"))  # a worker takes it and writes nothing
    started = time.monotonic()
    with pytest.raises(SpeechError, match="sent nothing") as error:
        reader.wait_start()
    assert error.value.code == "worker_silent" and time.monotonic() - started < 2.0
    reader.close()
    assert list(redis_client.scan_iter(match="ttsqtest:speech*")) == []


# --- the route, in OpenAI's shape, without a worker ---------------------------------------------------------------


def _openai_error(answer, status: int, code: str) -> dict:  # type: ignore[no-untyped-def, type-arg]
    assert answer.status_code == status, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error  # type: ignore[no-any-return]


def test_no_live_worker_is_a_503_with_retry_after(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": {"id": "joe"}, "input": "Hi."})
    error = _openai_error(answer, 503, "no_worker")
    assert error["type"] == "server_error" and answer.headers["Retry-After"]


def test_bad_bodies_name_the_parameter(client) -> None:  # type: ignore[no-untyped-def]
    base = {"model": "tts-1", "voice": "alloy", "input": "Hi."}
    cases = [
        ({**base, "response_format": "ogg"}, "response_format"),
        ({**base, "speed": 0.1}, "speed"),
        ({**base, "stream_format": "chunks"}, "stream_format"),
        ({"model": "tts-1", "voice": "alloy"}, "input"),
        ({**base, "voice": {"name": "joe"}}, "voice"),
    ]
    for body, param in cases:
        error = _openai_error(client.post("/v1/audio/speech", json=body), 400, "invalid_value")
        assert error["param"].startswith(param), (body, error)
    assert _openai_error(client.post("/v1/audio/speech", json={**base, "input": "  "}), 400, "invalid_value")
    answer = client.post("/v1/audio/speech", data="{", content_type="application/json")
    _openai_error(answer, 400, "invalid_json")


def test_rate_limits_answer_429_in_openai_shape(keyed_env) -> None:  # type: ignore[no-untyped-def]
    from conftest import ALICE

    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**keyed_env, "TTSQ_RATE_LIMIT_PER_MIN": "1"}))
    client = app.test_client()
    headers = {"Authorization": f"Bearer {ALICE}"}
    body = {"model": "tts-1", "voice": "nobody", "input": "Hi."}
    _openai_error(client.post("/v1/audio/speech", json=body, headers=headers), 404, "voice_not_found")
    answer = client.post("/v1/audio/speech", json=body, headers=headers)
    error = _openai_error(answer, 429, "rate_limited")
    assert error["type"] == "rate_limit_error" and int(answer.headers["Retry-After"]) >= 1
    assert _openai_error(client.get("/v1/models"), 401, "unauthorized")["type"] == "authentication_error"


def test_voices_list_the_aliases_without_a_key(keyed_env) -> None:  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config

    app = create_app(load_config({**keyed_env, "TTSQ_VOICE_ALIASES": "alloy=joe,narrator=joe"}))
    voices = app.test_client().get("/v1/audio/voices").get_json()["voices"]
    assert {"id": "narrator", "name": "narrator (joe)"} in voices
    assert json.dumps(voices).count('"alloy"') == 1


def test_without_keys_the_public_listings_answer_this_host_only(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/audio/voices").status_code == 200
    forwarded = client.get("/v1/audio/models", headers={"X-Forwarded-For": "203.0.113.9"})
    _openai_error(forwarded, 401, "unauthorized")
    remote = client.get("/v1/audio/voices", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    _openai_error(remote, 401, "unauthorized")


def test_a_reader_closed_while_redis_is_away_leaves_it_to_expire_and_does_not_raise() -> None:
    """Regression: under 200 clients a Redis error in close() escaped the response generator as a 500."""
    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    reader = SpeechReader(away, KEYS, _request(), idle_timeout_s=1)
    reader.close()  # logs a warning; the stream and the cancel flag would have expired on their own


def test_the_api_has_a_redis_connection_for_each_of_its_threads(config_env) -> None:  # type: ignore[no-untyped-def]
    """Regression: redis-py 8 caps a pool at 100 connections and raises past it, so an API holding a blocking read
    per open speech stream answered half of 200 concurrent clients 503 (bench/speech.py)."""
    from api import create_app
    from ttsq.config import load_config

    config = load_config({**config_env, "TTSQ_API_THREADS": "300"})
    pool = create_app(config).extensions["ttsq"].redis.connection_pool
    assert pool.max_connections >= 300
