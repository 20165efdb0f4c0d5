"""A prepared voice that turns text into audio, one caller at a time."""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from itertools import islice
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np
from piper.config import PiperConfig

from .audio import Audio, AudioChunk, float_to_int16
from .errors import EngineError, InvalidInputError
from .options import Batching, SynthesisOptions
from .phonemize import sentence_ids
from .text.clean import check_speakable, clean_text
from .turns import Priority, Slots, Turns

Frontend = Callable[[str], list[list[int]]]
"""Text to model input ids, one list per sentence."""
R = TypeVar("R")
Work = Iterator[tuple[int, list[int]]]
"""(index of the text, ids of one of its sentences); an empty id list opens each text."""


class Voice(Protocol):
    """What a speaker needs of a loaded model (OnnxVoice, TorchVoice)."""

    config: PiperConfig

    @property
    def sample_rate(self) -> int: ...

    def infer(self, phoneme_ids: list[int], options: SynthesisOptions) -> np.ndarray: ...


@runtime_checkable
class ArenaVoice(Voice, Protocol):
    """A voice whose runtime keeps freed memory for itself until told (OnnxVoice: onnxruntime's CPU arena)."""

    def release_memory(self, always: bool = False) -> None: ...


@runtime_checkable
class BatchVoice(Voice, Protocol):
    """A voice that can synthesize several sentences in one padded batch (TorchVoice)."""

    def infer_batch(self, batch: Sequence[Sequence[int]], options: SynthesisOptions) -> list[np.ndarray]: ...


class Speaker:
    """A named voice with ``parallel`` inference streams. A batch call (the default) holds one of the speaker's
    ``syntheses`` slots while it runs, so at most ``parallel`` narrations of one voice run at once (two, on the
    default CPU speaker); interactive calls hold none. Every sentence, either kind, takes a turn at one of the
    streams (``turns``), and an interactive sentence goes first: speech never waits behind a narration's whole
    segment."""

    def __init__(
        self,
        name: str,
        voice: Voice,
        parallel: int = 1,
        batching: Batching | None = None,
        frontend: Frontend | None = None,
    ) -> None:
        """``batching`` with batch_size > 1 needs a BatchVoice; ``frontend`` defaults to espeak-ng phonemes
        with the voice's Piper phoneme map."""
        self.name = name
        self.voice = voice
        self.batching = batching or Batching()
        if self.batching.batch_size > 1 and not isinstance(voice, BatchVoice):
            raise EngineError(f"{type(voice).__name__} cannot synthesize batches; use batch_size 1")
        self.sentence_ids: Frontend = frontend or partial(sentence_ids, config=voice.config)
        # Up to `parallel` sentences run at once (TTS.CPU_STREAMS on one session, or one per single-threaded
        # session in the parallel-sentences mode): on a CPU two side by side beat one on all cores (less
        # synchronisation per operator), see bench/engine.py. They may be one synthesis's sentences or several
        # syntheses' (jobs side by side: one job's Redis, storage and Python work between its sentences then overlaps
        # the other's inference). Different speakers run in parallel.
        self.parallel = max(1, parallel)
        self.syntheses = Slots(self.parallel)
        self.turns = Turns(self.parallel)
        # A pool per priority: an interactive sentence must not queue behind batch sentences already submitted.
        self._pools = {
            priority: ThreadPoolExecutor(self.parallel, thread_name_prefix=f"ttsq-{name}-{priority.name}")
            for priority in Priority
        }

    @property
    def sample_rate(self) -> int:
        return self.voice.sample_rate

    def generate(
        self, text: str, options: SynthesisOptions | None = None, priority: Priority = Priority.batch
    ) -> Audio:
        """Synthesize the whole text; sentences are joined back to back, as piper does."""
        parts = [chunk.audio for chunk in self.stream(text, options, priority)]
        return Audio.concatenate(parts, self.sample_rate)

    def stream(
        self, text: str, options: SynthesisOptions | None = None, priority: Priority = Priority.batch
    ) -> Generator[AudioChunk, None, None]:
        """Yield one chunk per sentence; closing the generator early frees the speaker."""
        text = check_speakable(text)
        options = _checked(options)
        with self._held(priority):
            sentences = self.sentence_ids(text)
            if not sentences:
                raise InvalidInputError("text has nothing the voice can speak")
            work = ((index, ids) for index, ids in enumerate(sentences))
            for index, audio in self._pipeline(work, options, priority):
                samples = float_to_int16(audio, options.volume)
                yield AudioChunk(Audio(samples, self.sample_rate), index, len(sentences))

    def stream_chunks(
        self, texts: Iterable[str], options: SynthesisOptions | None = None, priority: Priority = Priority.batch
    ) -> Iterator[np.ndarray]:
        """int16 samples for each text in turn (its sentences joined), for long narrations.

        Texts are phonemized only as the pipeline reaches them, so memory stays flat however long the input;
        a text with nothing speakable yields no samples rather than failing the whole narration."""
        options = _checked(options)
        with self._held(priority):
            work = (
                (index, ids)
                for index, text in enumerate(texts)
                for ids in _with_marker(self.sentence_ids(clean_text(text)))
            )
            parts: list[np.ndarray] = []
            current = 0
            for index, audio in self._pipeline(work, options, priority):
                while index > current:  # every text starts with an empty marker, so none is skipped
                    yield _join(parts)
                    parts, current = [], current + 1
                parts.append(float_to_int16(audio, options.volume))
            if current or parts:
                yield _join(parts)

    def _held(self, priority: Priority) -> contextlib.AbstractContextManager[object]:
        """A synthesis slot for a batch call; nothing for an interactive one (its sentences take turns only)."""
        return self._batch_call() if priority == Priority.batch else contextlib.nullcontext()

    @contextlib.contextmanager
    def _batch_call(self) -> Iterator[None]:
        """Hold a slot; after the last one running, the memory the calls' longest sentences grew goes back
        (so a worker's RSS is the same after each narration segment, not the most any sentence ever needed). While
        another narration runs or waits it stays: it would grow it again at once, and the release and the
        regrowth cost ~3% of a busy speaker's throughput (29 ms a paragraph, issue 12); what a busy speaker holds
        is what its longest sentences need, no more. Speech calls are short and latency-bound: they leave it."""
        held = None
        try:
            with self.syntheses.hold() as held:
                yield
        finally:
            if held is not None and held.last and isinstance(self.voice, ArenaVoice):
                self.voice.release_memory()

    def _pipeline(self, work: Work, options: SynthesisOptions, priority: Priority) -> Iterator[tuple[int, np.ndarray]]:
        """Run phoneme-id lists on the pool, a bounded window ahead of the consumer, and yield them in order."""
        if self.batching.batch_size > 1:
            yield from self._batched_pipeline(work, options, priority)
            return
        pending: deque[tuple[int, Future[np.ndarray]]] = deque()
        window = 2 * self.parallel
        try:
            # An interactive call's first sentence runs alone (on every thread of its stream, where a stream has more
            # than one): what a listener waits for is the first audio (issue 12: 207 -> ~115 ms for a paragraph
            # with two sentences at once on all threads).
            for item in work:
                pending.append(self._submit(item, options, priority))
                if len(pending) >= window or priority == Priority.interactive:
                    break
            while pending:
                index, future = pending.popleft()
                audio = future.result()
                while len(pending) < window and (following := next(work, None)) is not None:
                    pending.append(self._submit(following, options, priority))
                yield index, audio
        finally:
            # Closed early: drop what has not started and let running sentences end before the lock goes.
            for _, future in pending:
                future.cancel()
            wait([future for _, future in pending])

    def _batched_pipeline(
        self, work: Work, options: SynthesisOptions, priority: Priority
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Sentences a window at a time, in padded batches of similar lengths; the next window runs while the
        consumer takes this one, and audio comes out in the order the sentences went in."""
        windows: deque[tuple[list[tuple[int, list[int]]], dict[int, tuple[Future[list[np.ndarray]], int]]]] = deque()

        def start_window() -> None:
            window = list(islice(work, self.batching.window))
            if not window:
                return
            spoken = [position for position, (_, ids) in enumerate(window) if ids]
            placed: dict[int, tuple[Future[list[np.ndarray]], int]] = {}
            for batch in plan_batches([len(window[p][1]) for p in spoken], self.batching):
                positions = [spoken[i] for i in batch]
                voice: BatchVoice = self.voice  # type: ignore[assignment]  # checked in __init__
                batch_ids = [window[p][1] for p in positions]
                future = self._pools[priority].submit(self._in_turn, priority, voice.infer_batch, batch_ids, options)
                placed.update((position, (future, slot)) for slot, position in enumerate(positions))
            windows.append((window, placed))

        try:
            start_window()
            start_window()
            while windows:
                window, placed = windows.popleft()
                for position, (index, _) in enumerate(window):
                    if position in placed:
                        future, slot = placed[position]
                        yield index, future.result()[slot]
                    else:  # the marker that opens a text
                        yield index, np.zeros(0, dtype=np.float32)
                start_window()
        finally:
            futures = {future for _, placed in windows for future, _ in placed.values()}
            for future in futures:
                future.cancel()
            wait(futures)

    def _submit(
        self, item: tuple[int, list[int]], options: SynthesisOptions, priority: Priority
    ) -> tuple[int, Future[np.ndarray]]:
        index, ids = item
        if not ids:  # the marker that opens a text
            done: Future[np.ndarray] = Future()
            done.set_result(np.zeros(0, dtype=np.float32))
            return index, done
        return index, self._pools[priority].submit(self._in_turn, priority, self.voice.infer, ids, options)

    def _in_turn(self, priority: Priority, infer: Callable[..., R], *args: object) -> R:
        with self.turns.take(priority):
            return infer(*args)

    def warmup(self, rounds: int = 2) -> None:
        """Run a few short syntheses so the first real request pays no kernel set-up or cache cost. What they grew
        of the runtime's working memory goes back (a worker's requests grow what they need): two sentences at once
        left ~90 MB in onnxruntime's arena, most of an added speaker's cost at start (issue 12: 175 -> 82 MB)."""
        for _ in range(rounds):
            self.generate("Warming up. This is a short sentence, with a comma!")
        if isinstance(self.voice, ArenaVoice):
            self.voice.release_memory(always=True)


def plan_batches(lengths: Sequence[int], batching: Batching) -> list[list[int]]:
    """Positions grouped into batches of at most ``batch_size``, sentences of one length bucket together (so a
    batch is little padding), batches ordered by their earliest position (so the first audio is ready first)."""
    groups: dict[int, list[int]] = {}
    for position in sorted(range(len(lengths)), key=lambda p: lengths[p]):
        groups.setdefault(batching.bucket(lengths[position]), []).append(position)
    size = batching.batch_size
    batches = [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]
    return sorted(batches, key=min)


def _checked(options: SynthesisOptions | None) -> SynthesisOptions:
    """The request's options (the defaults when none), or InvalidInputError for a value the voices cannot take."""
    options = options or SynthesisOptions()
    options.check()
    return options


def _with_marker(sentences: list[list[int]]) -> list[list[int]]:
    """An empty id list opens each text, so a text with nothing to speak still shows up (as no samples)."""
    return [[], *sentences]


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
