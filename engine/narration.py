"""Long-form narration: chunks of text to one stream of audio with chosen pauses, and where each paragraph starts."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np

from .options import SynthesisOptions
from .speaker import Speaker

SILENCE_THRESHOLD = 300
"""int16 amplitude below which a chunk's leading and trailing samples count as silence (about -40 dBFS)."""


@dataclass(frozen=True)
class PauseOptions:
    sentence_silence_s: float = 0.35
    """Between chunks of one paragraph."""
    paragraph_silence_s: float = 0.9
    """Before a new paragraph or heading."""
    edge_keep_s: float = 0.03
    """Silence kept at each end of a chunk after trimming, so words are not clipped."""


@dataclass(frozen=True)
class NarrationChunk:
    """What the narrator needs of a text chunk (engine.text.split.Chunk fits)."""

    spoken: str
    paragraph: int
    heading: bool = False


@dataclass(frozen=True)
class Mark:
    """Where a paragraph (or heading) starts in the audio, for players that seek."""

    paragraph: int
    heading: bool
    start_s: float
    text: str


@dataclass(frozen=True)
class NarratedChunk:
    samples: np.ndarray
    """int16: the pause before the chunk, then its trimmed speech."""
    mark: Mark | None
    """Set on the first chunk of each paragraph."""


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
    if previous is None:
        return 0.0
    if chunk.paragraph != previous.paragraph:
        return options.paragraph_silence_s
    return options.sentence_silence_s


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
    audio = speaker.stream_chunks((c.spoken for c in chunks), synthesis)
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
            mark = Mark(chunk.paragraph, chunk.heading, (position + len(pause)) / rate, chunk.spoken[:80])
        position += len(pause) + len(speech)
        previous = chunk
        yield NarratedChunk(np.concatenate([pause, speech]), mark)
