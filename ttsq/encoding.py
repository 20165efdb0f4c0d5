"""Streaming encoders for OpenAI's speech ``response_format``s: int16 mono PCM in, file bytes out as audio arrives."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import soxr
from av.audio.stream import AudioStream
from av.container import OutputContainer

# The one home for which formats exist and what they are served as (OpenAI's names and content types).
SPEECH_FORMATS: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

PCM_RATE = 24_000  # Hz: OpenAI clients play raw `pcm` as 16-bit mono at 24 kHz, whatever the voice's rate
OPUS_RATE = 48_000  # Hz: Opus's native rate; Ogg Opus players expect it
# µs. FFmpeg's Ogg muxer keeps one finished page queued (to mark the last one end-of-stream), so a call
# holds back up to two pages; at its default (1 s) a 1.4 s sentence would return only the headers.
# 100 ms pages cost ~7% of a 32 kb/s stream in page headers.
OGG_PAGE_DURATION_US = 100_000
# 0xFFFFFFFF for "size unknown" in a streamed WAV header, as OpenAI and Kokoro-FastAPI send it.
WAV_UNKNOWN_SIZE = 0xFFFFFFFF
SAMPLE_WIDTH_BYTES = 2  # int16
RESAMPLE_QUALITY = "HQ"  # soxr's default: transparent for speech, cheap next to synthesis


@dataclass(frozen=True)
class _Codec:
    """How one compressed format is made with PyAV: muxer, encoder and their options."""

    container: str  # FFmpeg muxer name
    codec: str  # FFmpeg encoder name
    bit_rate: int | None = None  # bits/s; None = the encoder's default (lossless flac has none)
    rate: int | None = None  # Hz the format is always written at; None = the input rate, if the encoder takes it
    options: dict[str, str] = field(default_factory=dict)  # muxer options


_CODECS: dict[str, _Codec] = {
    # No ID3 tag: the stream is bare MPEG frames, so a client may cut or join it anywhere.
    "mp3": _Codec("mp3", "libmp3lame", bit_rate=64_000, options={"id3v2_version": "0"}),
    "opus": _Codec(
        "ogg", "libopus", bit_rate=32_000, rate=OPUS_RATE, options={"page_duration": str(OGG_PAGE_DURATION_US)}
    ),
    "aac": _Codec("adts", "aac", bit_rate=64_000),
    "flac": _Codec("flac", "flac"),
}


def _rate_for(codec_name: str, input_rate: int) -> int:
    """The input rate where the encoder accepts it, else the nearest rate above it that it does."""
    rates = av.Codec(codec_name, "w").audio_rates
    if not rates or input_rate in rates:
        return input_rate
    higher = [rate for rate in rates if rate > input_rate]
    return min(higher) if higher else max(rates)


def _wav_header(sample_rate: int) -> bytes:
    """A RIFF/WAVE header for 16-bit mono PCM whose length is not known yet (both sizes 0xFFFFFFFF)."""
    block_align = SAMPLE_WIDTH_BYTES  # one channel
    return (
        b"RIFF"
        + struct.pack("<I", WAV_UNKNOWN_SIZE)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * block_align, block_align, 8 * SAMPLE_WIDTH_BYTES)
        + b"data"
        + struct.pack("<I", WAV_UNKNOWN_SIZE)
    )


class _Drain:
    """A write-only file for PyAV that hands back what was written since the last ``take``.

    It has no ``seek`` on purpose: PyAV then tells FFmpeg the output is not seekable, so no muxer
    tries to go back and patch a header (mp3's Xing frame, flac's STREAMINFO), and memory stays at
    what one call produced.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class _AvWriter:
    """One PyAV output container and its audio stream, fed int16 mono at the stream's rate."""

    def __init__(self, spec: _Codec, sample_rate: int) -> None:
        self._rate = sample_rate
        self._samples_in = 0
        self._drain = _Drain()
        # flush_packets: hand each packet to the drain as it is muxed, not when PyAV's 32 KiB I/O buffer
        # fills, so every call returns the audio encoded in it.
        options = {"flush_packets": "1", **spec.options}
        self._container: OutputContainer = av.open(self._drain, mode="w", format=spec.container, options=options)
        stream = self._container.add_stream(spec.codec, rate=sample_rate)
        if not isinstance(stream, AudioStream):  # for mypy: add_stream's type depends on the codec name
            raise TypeError(f"{spec.codec!r} is not an audio encoder")
        stream.layout = "mono"
        if spec.bit_rate is not None:
            stream.bit_rate = spec.bit_rate
        self._stream = stream
        # Header now (it needs the opened encoder's extradata: OpusHead, STREAMINFO): a bad rate fails
        # here rather than mid-stream, and even an empty stream finishes as a valid file.
        self._container.start_encoding()

    def write(self, samples: np.ndarray) -> bytes:
        if samples.size:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = self._rate
            frame.time_base = Fraction(1, self._rate)
            frame.pts = self._samples_in
            self._samples_in += samples.size
            # PyAV's encoder converts s16 to the codec's sample format and cuts fixed-size frames (mp3 1152,
            # aac 1024, opus 960), keeping the remainder for the next call.
            self._container.mux(self._stream.encode(frame))
        return self._drain.take()

    def finish(self) -> bytes:
        self._container.mux(self._stream.encode(None))  # the partial last frame, and the encoder's delay
        self._container.close()  # trailer: the last Ogg page (with the end granule that trims padding)
        return self._drain.take()


class StreamEncoder:
    """Encode int16 mono PCM, piece by piece, into one speech format, returning bytes as they are ready.

    ``encode`` may return ``b""`` for a tiny piece (the encoder waits for a whole frame); ``finish``
    flushes the resampler, the encoder and the container's trailer. One encoder per response.
    """

    def __init__(self, fmt: str, sample_rate: int) -> None:
        if fmt not in SPEECH_FORMATS:
            raise ValueError(f"unknown speech format {fmt!r}; expected one of: {', '.join(SPEECH_FORMATS)}")
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        self.format = fmt
        self.content_type = SPEECH_FORMATS[fmt]
        self.sample_rate = sample_rate
        self._finished = False
        spec = _CODECS.get(fmt)
        if fmt == "pcm":
            self._output_rate = PCM_RATE
        elif spec is None:  # wav: samples as they come
            self._output_rate = sample_rate
        else:
            self._output_rate = spec.rate or _rate_for(spec.codec, sample_rate)
        # soxr's streaming resampler keeps its filter state between pieces, so sentence boundaries are seamless.
        self._resampler: soxr.ResampleStream | None = (
            None
            if self._output_rate == sample_rate
            else soxr.ResampleStream(sample_rate, self._output_rate, 1, dtype="int16", quality=RESAMPLE_QUALITY)
        )
        self._writer = _AvWriter(spec, self._output_rate) if spec is not None else None
        self._header = _wav_header(sample_rate) if fmt == "wav" else b""  # goes out with the first bytes

    @property
    def output_rate(self) -> int:
        """The sample rate of the encoded audio, in Hz (48 kHz for opus, 24 kHz for pcm)."""
        return self._output_rate

    def encode(self, samples: np.ndarray) -> bytes:
        """Take the next piece (1-D int16 at ``sample_rate``); return the bytes that are ready now."""
        if self._finished:
            raise ValueError("encode() after finish(): this encoder's stream is closed")
        if samples.dtype != np.int16 or samples.ndim != 1:
            raise ValueError(f"samples must be a 1-D int16 array, got {samples.ndim}-D {samples.dtype}")
        if self._resampler is not None:
            # soxr clamps (rather than wraps) int16 output, so loud input cannot click.
            samples = self._resampler.resample_chunk(np.ascontiguousarray(samples))
        return self._emit(samples)

    def finish(self) -> bytes:
        """Flush what the resampler and encoder hold, and close the container; the last bytes of the file."""
        if self._finished:
            raise ValueError("finish() called twice")
        tail = np.zeros(0, dtype=np.int16)
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(tail, last=True)
        data = self._emit(tail)
        if self._writer is not None:
            data += self._writer.finish()
        self._finished = True
        return data

    def _emit(self, samples: np.ndarray) -> bytes:
        if self._writer is not None:
            return self._writer.write(samples)
        # pcm, and wav after its header: little-endian int16 as it comes.
        data = self._header + samples.astype("<i2", copy=False).tobytes()
        self._header = b""
        return data
