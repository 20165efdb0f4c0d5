"""Long-form narration: chunks of text to one stream of audio with chosen pauses, and where each paragraph starts."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .constants import MAX_SPEED, MIN_SPEED
from .options import SynthesisOptions
from .speaker import Speaker
from .text.clean import display_text

SILENCE_THRESHOLD = 300
"""int16 amplitude below which a chunk's leading and trailing samples count as silence (about -40 dBFS)."""
MARK_TEXT_CHARS = 80
"""A mark's ``text`` is at most this many characters of its chunk's source."""


@dataclass(frozen=True)
class PauseOptions:
    sentence_silence_s: float = 0.35
    """Between chunks of one paragraph."""
    paragraph_silence_s: float = 0.9
    """Before a new paragraph or heading."""
    edge_keep_s: float = 0.03
    """Silence kept at each end of a chunk after trimming, so words are not clipped."""
    clause_silence_s: float = 0.15
    """Before a chunk that goes on with the previous one's sentence (an over-long sentence cut at a clause): a
    comma's pause, not a sentence's."""


@dataclass(frozen=True)
class NarrationChunk:
    """What the narrator needs of a text chunk (engine.text.split.Chunk fits)."""

    spoken: str
    paragraph: int
    heading: bool = False
    source: str = ""
    """The chunk as written: what a mark shows ("Chapter IV", not "Chapter four"). Empty for a caller that has only
    the spoken form (and in plans stored before issue 16): the mark then shows that."""
    continues: bool = False
    """It goes on with the previous chunk's sentence: a clause's pause before it."""
    level: int = 0
    """Its heading's Markdown level (1 a chapter, 2 a section), 0 for none (``engine.text.split.Chunk.level``)."""
    pause_s: float | None = None
    """Exactly this much silence before it (an SSML ``<break>``) instead of the pause ``pause_s()`` would choose;
    None for the usual pause."""
    rate: float = 1.0
    """Its speaking rate as a multiplier on the narration's speed (an SSML ``<prosody rate>``; > 1 is faster)."""


@dataclass(frozen=True)
class Mark:
    """Where a paragraph (or heading) starts in the audio, for players that seek."""

    paragraph: int
    heading: bool
    start_s: float
    text: str
    """The start of the paragraph as written, Markdown heading marks aside (``display_text``): a player's table of
    contents. The spoken form ("Section zero: Definitions.") stays internal."""


@dataclass(frozen=True)
class NarratedChunk:
    samples: np.ndarray
    """int16: the pause before the chunk, then its trimmed speech."""
    mark: Mark | None
    """Set on the first chunk of each paragraph."""
    start_s: float | None = None
    """Where its speech starts in the whole narration (after its pause), in seconds; None: nothing to hear."""
    end_s: float | None = None
    """Where its speech ends: with ``start_s``, a caption cue's times (issue 14)."""


def trim_silence(
    samples: np.ndarray, sample_rate: int, keep_s: float, threshold: int = SILENCE_THRESHOLD
) -> np.ndarray:
    """Cut leading and trailing near-silence (keeping ``keep_s``), so the pauses between chunks are ours."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return samples[:0]
    keep = round(keep_s * sample_rate)
    return samples[max(0, loud[0] - keep) : min(len(samples), loud[-1] + 1 + keep)]


def pause_s(previous: NarrationChunk | None, chunk: NarrationChunk, options: PauseOptions) -> float:
    if chunk.pause_s is not None:
        return chunk.pause_s
    if previous is None:
        return 0.0
    if chunk.paragraph != previous.paragraph:
        return options.paragraph_silence_s
    return options.clause_silence_s if chunk.continues else options.sentence_silence_s


def narrate(
    speaker: Speaker,
    chunks: Sequence[NarrationChunk],
    offset_s: float = 0.0,
    previous: NarrationChunk | None = None,
    options: PauseOptions | None = None,
    synthesis: SynthesisOptions | None = None,
) -> Generator[NarratedChunk, None, None]:
    """Speak ``chunks`` in order. ``offset_s`` and ``previous`` continue a narration begun elsewhere (a segment)."""
    options = options or PauseOptions()
    rate = speaker.sample_rate
    position = round(offset_s * rate)
    audio = _speech(speaker, chunks, synthesis or SynthesisOptions())
    for chunk, samples in zip(chunks, audio, strict=True):
        speech = trim_silence(samples, rate, options.edge_keep_s)
        if not len(speech):
            # Nothing to hear (a scene break "* * *", a lone footnote mark): no pause of its own either, or the
            # listener would hear two pauses back to back.
            yield NarratedChunk(speech, None)
            continue
        pause = np.zeros(round(pause_s(previous, chunk, options) * rate), dtype=np.int16)
        mark = None
        if previous is None or chunk.paragraph != previous.paragraph:
            text = display_text(chunk.source) if chunk.source else chunk.spoken
            mark = Mark(chunk.paragraph, chunk.heading, (position + len(pause)) / rate, text[:MARK_TEXT_CHARS])
        start = position + len(pause)
        position = start + len(speech)
        previous = chunk
        yield NarratedChunk(np.concatenate([pause, speech]), mark, start / rate, position / rate)


def _speech(speaker: Speaker, chunks: Sequence[NarrationChunk], synthesis: SynthesisOptions) -> Iterator[np.ndarray]:
    """Each chunk's samples in order; a run of chunks at one rate is one pass of the speaker at the narration's speed
    times that rate (within the speeds a voice takes), so an SSML ``<prosody rate>`` is heard as written."""
    for rate, run in itertools.groupby(chunks, key=lambda chunk: chunk.rate):
        speed = min(MAX_SPEED, max(MIN_SPEED, synthesis.speed * rate))
        options = synthesis if speed == synthesis.speed else dataclasses.replace(synthesis, speed=speed)
        yield from speaker.stream_chunks((chunk.spoken for chunk in run), options)
