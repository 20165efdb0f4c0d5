"""PCM audio returned by the engine, and how to write it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile

MAX_WAV_VALUE = 32767.0


def float_to_int16(audio: np.ndarray, volume: float = 1.0) -> np.ndarray:
    """Scale float audio in [-1, 1] to int16 the way piper does (clip, then truncate)."""
    if volume != 1.0:
        audio = audio * volume
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return np.clip(audio * MAX_WAV_VALUE, -MAX_WAV_VALUE, MAX_WAV_VALUE).astype(np.int16)


def open_wav_writer(target: str | Path | BinaryIO, sample_rate: int) -> soundfile.SoundFile:
    """A mono 16-bit WAV opened for writing chunk by chunk (``.write(int16 samples)``), so no job is held whole.

    ``target`` is a path or a seekable binary file (the header's sizes are filled in on close)."""
    return soundfile.SoundFile(
        str(target) if isinstance(target, (str, Path)) else target, "w", sample_rate, 1, subtype="PCM_16", format="WAV"
    )


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit PCM audio."""

    samples: np.ndarray
    """int16 samples, one channel."""

    sample_rate: int
    """Samples per second."""

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def to_wav_bytes(self) -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, self.samples, self.sample_rate, format="WAV", subtype="PCM_16")
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        soundfile.write(str(path), self.samples, self.sample_rate, format="WAV", subtype="PCM_16")
        return path

    @staticmethod
    def concatenate(parts: list[Audio], sample_rate: int) -> Audio:
        if not parts:
            return Audio(np.zeros(0, dtype=np.int16), sample_rate)
        return Audio(np.concatenate([p.samples for p in parts]), sample_rate)


@dataclass(frozen=True)
class AudioChunk:
    """One sentence of a stream, with its place in the whole."""

    audio: Audio
    index: int
    """0-based position of this sentence."""
    total: int
    """Number of sentences in the text."""


# Output formats: (libsndfile format, subtype). Opus needs 48 kHz; Piper voices are 22.05 kHz, so Ogg is Vorbis.
FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
WAV_LIMIT_BYTES = 4 * 1024**3 - 1024
"""A RIFF WAV's sizes are 32-bit; past this the file is written as RF64."""


def open_audio_writer(
    target: str | Path | BinaryIO, sample_rate: int, fmt: str, total_frames: int | None = None
) -> soundfile.SoundFile:
    """A mono writer for ``fmt``; a WAV whose ``total_frames`` would pass 4 GB becomes RF64."""
    container, subtype = FORMATS[fmt]
    if fmt == "wav" and total_frames is not None and total_frames * 2 > WAV_LIMIT_BYTES:
        container = "RF64"
    return soundfile.SoundFile(
        str(target) if isinstance(target, (str, Path)) else target,
        "w",
        sample_rate,
        1,
        subtype=subtype,
        format=container,
    )
