"""OpenAI-compatible speech through the queue, tested with the clients people use: the `openai` SDK and a WebSocket.

One real stack for the module: `ttsq api` (gunicorn, threaded) and `ttsq worker` as processes of their own on the
test Redis (a key prefix of this module's own), API keys on. Audio is decoded back with PyAV."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator

import av
import openai
import pytest
import requests
import simple_websocket
from conftest import ALICE
from live_stack import Stack, running_stack, wait_for

pytestmark = pytest.mark.slow

PREFIX = "ttsqspeech:"
SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
PARAGRAPH = " ".join(
    [
        "Speech through the queue starts with the first sentence.",
        "The worker sends each sentence as soon as it is ready.",
        "The API encodes it and writes it to the client at once.",
        "Nothing waits for the whole text to be synthesized.",
        "A client that goes away stops the work within a sentence.",
        "That keeps the voice free for the next person who asks.",
        "Long texts belong in jobs, which narrate them in segments.",
        "Short ones come back here, streamed, in one request.",
    ]
)


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_url, tmp_path_factory.mktemp("speech"), PREFIX) as running:
        yield running


def decoded_duration_s(data: bytes, fmt: str) -> float:
    if fmt == "pcm":
        return len(data) / 2 / 24_000  # OpenAI's raw pcm: 16-bit mono at 24 kHz
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_the_openai_sdk_gets_every_format_decodable_and_as_long_as_the_text(stack: Stack, fmt: str) -> None:
    response = stack.client().audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format=fmt)
    duration = decoded_duration_s(response.content, fmt)
    # About 70 characters: joe reads 14-20 a second, so 3.5-5 s; a broken stream would be far off either way.
    assert 2.5 < duration < 7.0, (fmt, duration)
    assert response.response.headers["content-type"].startswith(
        {
            "mp3": "audio/mpeg",
            "opus": "audio/ogg",
            "aac": "audio/aac",
            "flac": "audio/flac",
            "wav": "audio/wav",
            "pcm": "audio/pcm",
        }[fmt]
    )
    assert stack.speech_keys() == []  # nothing of the request is left in Redis


def test_streaming_response_gives_first_bytes_before_the_worker_has_finished(stack: Stack) -> None:
    client = stack.client()
    started = time.monotonic()
    first_at = None
    total = 0
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=PARAGRAPH, response_format="pcm"
    ) as response:
        for chunk in response.iter_bytes():
            if first_at is None and chunk:
                first_at = time.monotonic() - started
                # The worker is still at it: the request's stream is still open in Redis.
                assert stack.speech_keys(), "the first bytes came only after the worker had finished"
            total += len(chunk)
    whole = time.monotonic() - started
    assert first_at is not None and total / 2 / 24_000 > 15  # eight sentences: well over 15 s of audio
    assert first_at < whole / 3, (first_at, whole)


def test_sdk_errors_carry_our_messages(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError, match="missing or unknown API key"):
        stack.client("ttsq_wrong-key").audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    with pytest.raises(openai.NotFoundError, match="unknown voice 'nobody'") as not_found:
        stack.client().audio.speech.create(model="tts-1", voice="nobody", input="Hi.")
    assert not_found.value.body["param"] == "voice"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="unknown parameter 'bogus'"):
        stack.client().audio.speech.create(model="tts-1", voice="alloy", input="Hi.", extra_body={"bogus": 1})
    with pytest.raises(openai.BadRequestError, match=r"nothing|no letters"):  # a 400, not an empty 200
        stack.client().audio.speech.create(model="tts-1", voice="alloy", input="!!! ---")
    with pytest.raises(openai.BadRequestError, match="speed"):
        stack.client().audio.speech.create(model="tts-1", voice="alloy", input="Hi.", speed=9)
    too_long = "word " * 1000
    with pytest.raises(openai.APIStatusError, match="the limit is 4096") as error:
        stack.client().audio.speech.create(model="tts-1", voice="alloy", input=too_long)
    assert error.value.status_code == 413


def test_sse_events_concatenate_into_the_audio(stack: Stack) -> None:
    with stack.client().audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SENTENCE, response_format="mp3", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")]
    kinds = [event["type"] for event in events]
    assert kinds[-1] == "speech.audio.done" and set(kinds[:-1]) == {"speech.audio.delta"} and len(kinds) > 2
    audio = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
    assert 2.5 < decoded_duration_s(audio, "mp3") < 7.0


def test_listings_in_the_shapes_clients_read(stack: Stack) -> None:
    models = stack.client().models.list()
    assert {"tts-1", "tts-1-hd", "joe"} <= {model.id for model in models.data}
    voices = requests.get(f"{stack.url}/v1/audio/voices", timeout=10).json()  # Open WebUI sends no key here
    assert {"id": "joe", "name": "joe"} in voices["voices"]
    assert {"id": "alloy", "name": "alloy (joe)"} in voices["voices"]
    assert {"id": "tts-1"} in requests.get(f"{stack.url}/v1/audio/models", timeout=10).json()["models"]
    assert requests.get(f"{stack.url}/v1/models", timeout=10).status_code == 401  # OpenAI's own list needs the key


def test_a_websocket_gets_each_sentence_before_the_next_is_sent(stack: Stack) -> None:
    ws = simple_websocket.Client.connect(f"{stack.url.replace('http', 'ws')}/v1/audio/speech/ws")
    try:
        ws.send(json.dumps({"type": "config", "voice": "alloy", "response_format": "pcm", "api_key": ALICE}))
        ready = json.loads(ws.receive(timeout=10))
        assert ready == {"type": "ready", "sample_rate": 22050}
        sentences = PARAGRAPH.split(". ")[:3]
        for number, sentence in enumerate(sentences):
            words = (sentence.rstrip(".") + ". ").split(" ")
            for start in range(0, len(words), 3):  # a few words at a time, as an LLM writes
                ws.send(json.dumps({"type": "text", "text": " ".join(words[start : start + 3]) + " "}))
            # The sentence is complete: its audio comes before we send a word of the next one.
            message = json.loads(ws.receive(timeout=30))
            assert message["type"] == "audio", (number, message)
            assert message["sample_rate"] == 22050 and len(base64.b64decode(message["data"])) > 22050  # > 0.5 s
            while (more := ws.receive(timeout=0.3)) is not None:  # the rest of this sentence's pieces, if any
                assert json.loads(more)["type"] == "audio"
        ws.send(json.dumps({"type": "nonsense"}))
        assert json.loads(ws.receive(timeout=10))["code"] == "unknown_type"  # an error, and the connection stays
        ws.send(json.dumps({"type": "text", "text": "word " * 1000}))
        assert json.loads(ws.receive(timeout=10))["code"] == "text_too_long"  # as long as /v1/audio/speech allows
        ws.send(json.dumps({"type": "text", "text": "And a last piece without an end"}))
        ws.send(json.dumps({"type": "end_of_stream"}))
        kinds = []
        while not kinds or kinds[-1] != "complete":
            kinds.append(json.loads(ws.receive(timeout=30))["type"])
        assert kinds[0] == "audio" and kinds[-1] == "complete"
    finally:
        # The server ends it after complete; the client's reader may have closed the socket already (EBADF).
        with contextlib.suppress(simple_websocket.ConnectionClosed, OSError):
            ws.close()


def test_a_websocket_with_a_wrong_key_is_refused(stack: Stack) -> None:
    ws = simple_websocket.Client.connect(f"{stack.url.replace('http', 'ws')}/v1/audio/speech/ws")
    ws.send(json.dumps({"type": "config", "voice": "alloy", "api_key": "ttsq_wrong"}))
    assert json.loads(ws.receive(timeout=10))["code"] == "unauthorized"
    with pytest.raises(simple_websocket.ConnectionClosed):
        ws.receive(timeout=10)
    assert "ttsq_wrong" not in stack.api_log.read_text()  # the key is never logged


def test_a_client_that_disconnects_frees_the_speaker_within_a_sentence(stack: Stack) -> None:
    long_text = " ".join([SENTENCE] * 40)  # a minute of audio if it ran to the end
    body = {"model": "tts-1", "voice": "alloy", "input": long_text, "response_format": "pcm"}
    headers = {"Authorization": f"Bearer {ALICE}"}
    response = requests.post(f"{stack.url}/v1/audio/speech", json=body, headers=headers, stream=True, timeout=30)
    assert response.status_code == 200
    next(response.iter_content(4096))
    assert stack.speech_keys()  # the request is under way
    response.close()  # the client hangs up
    hung_up = time.monotonic()
    wait_for(lambda: not stack.speech_keys(), 10, "the worker did not stop and clean up")
    stopped_s = time.monotonic() - hung_up
    # One sentence of this text takes well under a second to synthesize here; allow two and the polling.
    assert stopped_s < 3.0, stopped_s
    # The voice is free: a new request is answered as fast as it would be on an idle worker.
    started = time.monotonic()
    stack.client().audio.speech.create(model="tts-1", voice="alloy", input="Free again.", response_format="pcm")
    assert time.monotonic() - started < 3.0


def test_a_speech_request_overtakes_a_running_narration_of_the_same_speaker(stack: Stack) -> None:
    client = stack.client()
    started = time.monotonic()
    client.audio.speech.create(model="tts-1", voice="joe", input=SENTENCE, response_format="pcm")
    idle_s = time.monotonic() - started
    headers = {"Authorization": f"Bearer {ALICE}"}
    text = " ".join([SENTENCE] * 30)  # one segment: the narration holds joe for all of it
    job = requests.post(f"{stack.url}/v1/jobs", json={"text": text}, headers=headers, timeout=10).json()

    def progress() -> int:
        state = requests.get(f"{stack.url}/v1/jobs/{job['id']}", headers=headers, timeout=10).json()
        return int(state["progress"]["chunks_done"]) if state["status"] == "running" else 0

    wait_for(lambda: progress() >= 2, 60, "the narration did not get going")
    started = time.monotonic()
    client.audio.speech.create(model="tts-1", voice="joe", input=SENTENCE, response_format="pcm")
    loaded_s = time.monotonic() - started
    state = requests.get(f"{stack.url}/v1/jobs/{job['id']}", headers=headers, timeout=10).json()
    assert state["status"] == "running", "the speech request waited for the narration to end"
    assert state["progress"]["chunks_done"] < state["progress"]["chunks_total"]
    # At most the narration sentence in flight (each under a second here) more than on an idle worker.
    assert loaded_s < idle_s + 1.5, (idle_s, loaded_s)
    requests.post(f"{stack.url}/v1/jobs/{job['id']}/cancel", headers=headers, timeout=10)


def test_many_concurrent_streams_are_all_answered(stack: Stack) -> None:
    """A smaller version of bench/speech.py's 200: every client answered, none refused for want of a thread."""
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        body = {"model": "tts-1", "voice": "alloy", "input": "Hello.", "response_format": "pcm"}
        answer = requests.post(
            f"{stack.url}/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {ALICE}"}, timeout=120
        )
        with lock:
            results.append(answer.status_code if answer.content else -1)

    threads = [threading.Thread(target=one) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(150)
    assert results == [200] * 24
    assert stack.speech_keys() == []
