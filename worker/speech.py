"""Interactive speech: threads of the worker's own take speech requests from Redis and stream each sentence back.

They are not Celery threads, so a speech request never waits for a narration task to give one up; and the speaker
hands out its voice a sentence at a time, interactive first, so it waits at most for the sentence in flight."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import redis

from engine import InvalidInputError, Priority, SynthesisOptions
from ttsq.speech import SpeechGone, SpeechRequest
from ttsq.speech.channel import SpeechWriter, take_request

from .runtime import Runtime

logger = logging.getLogger(__name__)

TAKE_TIMEOUT_S = 1.0
"""How long one wait for a request lasts: how soon a stopping worker's speech threads notice."""
RETRY_AFTER_REDIS_ERROR_S = 1.0


def start_speech(runtime: Runtime) -> threading.Event:
    """Start TTSQ_SPEECH_THREADS takers; set the returned event to stop them (each ends its request first)."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_take_loop, args=(runtime, stop), name=f"ttsq-speech-{n}", daemon=True)
        for n in range(runtime.config.speech_threads)
    ]
    for thread in threads:
        thread.start()
    logger.info("speech: %d threads taking requests for %s", len(threads), ", ".join(runtime.tts.names))
    return stop


def _take_loop(runtime: Runtime, stop: threading.Event) -> None:
    client, keys = runtime.store.redis, runtime.config.keys
    names = sorted(runtime.tts.names)
    failing = False
    while not stop.is_set():
        try:
            request = take_request(client, keys, names, TAKE_TIMEOUT_S)
        except redis.RedisError as error:
            if not failing:  # one line per outage, not one a second
                logger.warning("speech: cannot reach Redis: %s", error)
            failing = True
            stop.wait(RETRY_AFTER_REDIS_ERROR_S)
            continue
        failing = False
        if request is None:
            continue
        try:
            speak(runtime, request)
        except Exception:  # Redis failing mid-error report, say: the thread must live on for the next request
            logger.exception("speech %s: could not end the request cleanly", request.id)


def speak(runtime: Runtime, request: SpeechRequest) -> None:
    """Stream one request's audio to its Redis stream, sentence by sentence, until it ends or its client goes."""
    config = runtime.config
    writer = SpeechWriter(runtime.store.redis, config.keys, request.id, config.speech_idle_timeout_s)
    started = time.monotonic()
    try:
        speaker = runtime.tts.speakers[request.speaker]
        sentences = speaker.stream(request.text, SynthesisOptions(speed=request.speed), Priority.interactive)
        with contextlib.closing(sentences):  # closing frees the voice at once when the client goes
            # The first sentence before "start": a text with nothing to speak is then an error the API can still
            # answer as a 400, not a 200 with no audio.
            first = next(sentences)
            writer.start(speaker.sample_rate)
            writer.audio(first.audio.samples.tobytes())
            for chunk in sentences:
                writer.audio(chunk.audio.samples.tobytes())
        writer.end()
        logger.info(
            "speech %s: %d chars for %s in %.2f s",
            request.id,
            len(request.text),
            request.speaker,
            time.monotonic() - started,
        )
    except SpeechGone as gone:
        logger.info("speech %s: stopped after %.2f s: %s", request.id, time.monotonic() - started, gone)
        writer.discard()
    except InvalidInputError as error:
        writer.error("invalid_input", str(error))
    except KeyError:
        writer.error("unknown_speaker", f"this worker does not serve speaker {request.speaker!r}")
    except redis.RedisError as error:
        logger.warning("speech %s: Redis failed mid-request: %s", request.id, error)
    except Exception:  # the client must hear why, whatever went wrong
        logger.exception("speech %s: unexpected error", request.id)
        writer.error("speech_failed", "the worker hit an unexpected error; it has been logged")
