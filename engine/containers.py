"""Audiobook files: a narration written to a local file with its chapters, title, author and cover.

Every format with something to tag is built in two steps on a local file, then handed on whole (issue 14): the
audio is encoded to the file (``open_book_writer``), then ``tag_file`` writes chapters and tags into it. A local
file because both steps need to seek: MP4 keeps its index (``moov``) after the audio until the muxer finalizes it
(``+faststart`` then moves it to the front, where players and progressive downloads want it), and ID3 or Vorbis
comments go at the start of a file whose length is only known at the end. Memory stays flat: the audio goes to
disk as it comes, and both steps stream the file.

- ``m4b``: AAC-LC in MP4 (FFmpeg's ``ipod`` muxer, brand M4A), chapters written by the muxer as a QuickTime chapter
  track plus Nero ``chpl`` (both what Apple Books, VLC and ffprobe read), tags and cover (``covr``) by mutagen.
  Not fragmented MP4: chapters in ``empty_moov`` files are read by almost no player.
- ``mp3``: LAME through PyAV (with a Xing header: its exact length for players), then ID3v2.4 with ``CTOC`` and
  one ``CHAP`` per chapter (each with its ``TIT2``), ``TIT2``/``TPE1``/``TALB`` and ``APIC``.
- ``opus`` (Ogg Opus at 48 kHz, resampled with soxr), ``ogg`` (Vorbis) and ``flac``: Vorbis comments ``TITLE``,
  ``ARTIST``, ``ALBUM``, ``CHAPTER001=00:00:00.000`` / ``CHAPTER001NAME=...`` and a ``METADATA_BLOCK_PICTURE``.
- ``wav``: no tags (``tag_file`` leaves it as it is).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import av
import numpy as np
import soxr
from av.audio.stream import AudioStream

from .audio import FORMATS, open_audio_writer
from .chapters import Chapter, chapter_timestamp

OPUS_RATE = 48_000
"""Hz: Opus's native rate (Ogg Opus players expect it)."""
AAC_BIT_RATE = 64_000
"""bits/s of a mono m4b: transparent for speech."""
OPUS_BIT_RATE = 32_000
"""bits/s of a mono opus."""
MP3_BIT_RATE = 64_000
"""bits/s of a mono mp3 (as ``ttsq.encoding`` streams it)."""
COVER_TYPES = {"image/jpeg": "jpeg", "image/png": "png"}
"""The cover images an MP4 ``covr`` atom can hold; the other tag formats take any image type."""


@dataclass(frozen=True)
class BookTags:
    """What a narration's file says about itself besides its audio."""

    title: str | None = None
    author: str | None = None
    chapters: Sequence[Chapter] = ()
    cover: bytes | None = field(default=None, repr=False)
    cover_type: str | None = None
    """The cover's media type ("image/jpeg")."""

    def __bool__(self) -> bool:
        return bool(self.title or self.author or self.chapters or self.cover)


class BookWriter(Protocol):
    """What ``open_book_writer`` gives: int16 mono samples in, closed (and finished) on leaving the block."""

    def write(self, data: np.ndarray) -> Any: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> Any: ...


_AV_FORMATS: dict[str, tuple[str, str, int, dict[str, str]]] = {
    "opus": ("ogg", "libopus", OPUS_BIT_RATE, {}),
    "m4b": ("ipod", "aac", AAC_BIT_RATE, {"movflags": "+faststart"}),
    # A Xing/LAME header (FFmpeg's muxer writes it on a seekable file) gives players the exact length, encoder delay
    # and padding: libsndfile's mp3 has none, and reads ~50 ms long. The ID3 tag comes after, from mutagen.
    "mp3": ("mp3", "libmp3lame", MP3_BIT_RATE, {"id3v2_version": "0"}),
}
"""Formats written through PyAV: muxer, encoder, bits/s, muxer options."""
_ENCODER_OPTIONS = {"aac": {"aac_coder": "fast"}}
"""The AAC encoder of PyAV's FFmpeg build uses its twoloop coder unless told: 4.4 s for 629 s of joe's speech at
64 kbit/s mono on 2 loaded cores, which made an m4b job 17% slower than the same text as WAV (bench/narration.py
--epub). FFmpeg made "fast" its default in 2018 (twoloop "needs quite a lot more CPU" and is no better at higher
rates; 64 kbit/s for one channel is a high rate): 1.6 s for the same audio."""


class _AvFileWriter:
    """int16 mono PCM into a file through one PyAV encoder, resampled first where the codec needs another rate."""

    def __init__(self, path: Path, sample_rate: int, fmt: str, tags: BookTags) -> None:
        self._rate = OPUS_RATE if fmt == "opus" else sample_rate
        self._resampler = (
            soxr.ResampleStream(sample_rate, self._rate, 1, dtype="int16") if self._rate != sample_rate else None
        )
        container, codec, bit_rate, options = _AV_FORMATS[fmt]
        self._container = av.open(str(path), mode="w", format=container, options=options)
        stream = self._container.add_stream(codec, rate=self._rate, options=_ENCODER_OPTIONS.get(codec, {}))
        if not isinstance(stream, AudioStream):  # for mypy: add_stream's type depends on the codec name
            raise TypeError(f"{codec!r} is not an audio encoder")
        stream.layout = "mono"
        stream.bit_rate = bit_rate
        self._stream = stream
        if fmt == "m4b" and tags.chapters:
            millis = Fraction(1, 1000)
            self._container.set_chapters(
                [
                    {
                        "id": number,
                        "start": round(c.start_s * 1000),
                        "end": round(c.end_s * 1000),
                        "time_base": millis,
                        "metadata": {"title": c.title},
                    }
                    for number, c in enumerate(tags.chapters, start=1)
                ]
            )
        self._pts = 0

    def write(self, data: np.ndarray) -> None:
        if self._resampler is not None:
            data = self._resampler.resample_chunk(np.ascontiguousarray(data))
        self._encode(data)

    def _encode(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.time_base = Fraction(1, self._rate)
        frame.pts = self._pts
        self._pts += samples.size
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._resampler is not None:
            self._encode(self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True))
        self._container.mux(self._stream.encode(None))  # the partial last frame and the encoder's delay
        self._container.close()  # MP4: the index, moved to the front (+faststart); Ogg: the last page

    def __enter__(self) -> _AvFileWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


BOOK_FORMATS = (*FORMATS, "opus", "m4b")
"""What ``open_book_writer`` writes."""


def open_book_writer(
    path: Path, sample_rate: int, fmt: str, tags: BookTags | None = None, total_frames: int | None = None
) -> BookWriter:
    """A mono writer (``.write(int16 samples)``, a context manager) of ``fmt`` to the local file ``path``; m4b
    chapters go in here (the muxer writes them with the index), every other tag in ``tag_file`` afterwards."""
    if fmt in _AV_FORMATS:
        return _AvFileWriter(path, sample_rate, fmt, tags or BookTags())
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of: {', '.join(BOOK_FORMATS)}")
    return open_audio_writer(path, sample_rate, fmt, total_frames)


def tag_file(path: Path, fmt: str, tags: BookTags) -> None:
    """Write ``tags`` into the finished file ``path`` (rewritten in place by mutagen); a WAV is left as it is."""
    if not tags or fmt == "wav":
        return
    if fmt == "mp3":
        _tag_mp3(path, tags)
    elif fmt == "m4b":
        _tag_mp4(path, tags)
    else:
        _tag_vorbis(path, fmt, tags)


def _tag_mp3(path: Path, tags: BookTags) -> None:
    from mutagen.id3 import APIC, CHAP, CTOC, ID3, TALB, TIT2, TPE1, CTOCFlags

    id3 = ID3()
    if tags.title:
        id3.add(TIT2(encoding=3, text=[tags.title]))
        id3.add(TALB(encoding=3, text=[tags.title]))
    if tags.author:
        id3.add(TPE1(encoding=3, text=[tags.author]))
    if tags.chapters:
        ids = [f"chp{number}" for number in range(1, len(tags.chapters) + 1)]
        id3.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids))
        for element_id, chapter in zip(ids, tags.chapters, strict=True):
            title = TIT2(encoding=3, text=[chapter.title])
            start, end = round(chapter.start_s * 1000), round(chapter.end_s * 1000)
            id3.add(CHAP(element_id=element_id, start_time=start, end_time=end, sub_frames=[title]))
    if tags.cover:
        id3.add(APIC(encoding=3, mime=tags.cover_type or "image/jpeg", type=3, desc="Cover", data=tags.cover))
    id3.save(str(path), v2_version=4)


def _tag_mp4(path: Path, tags: BookTags) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    mp4 = MP4(str(path))
    if mp4.tags is None:
        mp4.add_tags()
    assert mp4.tags is not None  # for mypy: add_tags made them
    if tags.title:
        mp4.tags["\xa9nam"] = [tags.title]
        mp4.tags["\xa9alb"] = [tags.title]
    if tags.author:
        mp4.tags["\xa9ART"] = [tags.author]
    mp4.tags["\xa9gen"] = ["Audiobook"]
    kind = COVER_TYPES.get(tags.cover_type or "")
    if tags.cover and kind:  # MP4 holds JPEG or PNG covers only; another image is left out, not converted
        image = MP4Cover.FORMAT_JPEG if kind == "jpeg" else MP4Cover.FORMAT_PNG
        mp4.tags["covr"] = [MP4Cover(tags.cover, imageformat=image)]
    mp4.save()


def _tag_vorbis(path: Path, fmt: str, tags: BookTags) -> None:
    from mutagen.flac import FLAC, Picture
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    audio = FLAC(str(path)) if fmt == "flac" else OggOpus(str(path)) if fmt == "opus" else OggVorbis(str(path))
    if audio.tags is None:
        audio.add_tags()
    comments = audio.tags
    assert comments is not None  # for mypy: add_tags made them
    if tags.title:
        comments["TITLE"] = [tags.title]
        comments["ALBUM"] = [tags.title]
    if tags.author:
        comments["ARTIST"] = [tags.author]
    for number, chapter in enumerate(tags.chapters, start=1):
        comments[f"CHAPTER{number:03d}"] = [chapter_timestamp(chapter.start_s)]
        comments[f"CHAPTER{number:03d}NAME"] = [chapter.title]
    if tags.cover:
        picture = Picture()
        picture.type = 3  # front cover
        picture.mime = tags.cover_type or "image/jpeg"
        picture.data = tags.cover
        if isinstance(audio, FLAC):
            audio.add_picture(picture)
        else:
            comments["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    audio.save()
