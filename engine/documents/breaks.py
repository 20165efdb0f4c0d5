"""SSML as narration chunks: its text pieces split into sentences, each ``<break>`` an exact pause before the next."""

from __future__ import annotations

import dataclasses

from ..text.split import Chunk, split_text
from .ssml import MAX_BREAK_S, SsmlBreak, parse_ssml


@dataclasses.dataclass(frozen=True)
class TimedChunk:
    """A chunk of the SSML's text, the exact silence before it (None: the narrator's usual pause), and its
    ``<prosody rate>`` (a multiplier on the job's speed)."""

    chunk: Chunk
    pause_s: float | None = None
    rate: float = 1.0


def ssml_chunks(data: bytes) -> list[TimedChunk]:
    """The chunks of an SSML document in order. Breaks in a row add up (to at most MAX_BREAK_S) and go before the
    next chunk with something to say (a break at the very end has nothing to precede and is left out). Each text
    piece starts a paragraph of its own, numbered on from the pieces before it, and keeps its ``prosody rate``."""
    timed: list[TimedChunk] = []
    paragraphs = 0
    pending: float | None = None
    for piece in parse_ssml(data):
        if isinstance(piece, SsmlBreak):
            # Breaks in a row add up, to at most one break's longest: a run of them is one pause, not hours of silence.
            pending = min(MAX_BREAK_S, (pending or 0.0) + piece.seconds)
            continue
        chunks = split_text(piece.text)
        for chunk in chunks:
            pause = None
            if pending is not None and chunk.spoken.strip():
                pause, pending = pending, None
            numbered = dataclasses.replace(chunk, paragraph=chunk.paragraph + paragraphs)
            timed.append(TimedChunk(numbered, pause, piece.rate))
        paragraphs += 1 + max((c.paragraph for c in chunks), default=-1)
    return timed
