"""The streaming speech encoders: every format round-trips through PyAV, arrives early, keeps its rate and tone."""

from __future__ import annotations

import io
import itertools
import struct

import av
import numpy as np
import pytest

from ttsq.encoding import OPUS_RATE, PCM_RATE, SPEECH_FORMATS, WAV_UNKNOWN_SIZE, StreamEncoder

VOICE_RATE = 22_050  # Hz, a Piper "medium" voice
TONE_HZ = 440.0
DURATION_S = 3.0
# Uneven pieces, as sentences come: the first over a second, then a tiny one, then the rest.
CUTS = (0, 30_000, 30_100, 40_000, 52_000, 60_000, int(DURATION_S * VOICE_RATE))
# mp3 and ADTS cannot say how much priming and padding to trim, so they decode up to two frames long
# (lame 1152 samples, aac 1024); the other formats are sample-exact (Ogg Opus trims by its granules).
EXTRA_S = {"mp3": 2 * 1152 / VOICE_RATE, "aac": 2 * 1024 / VOICE_RATE}
EXACT_S = 0.002


def tone(seconds: float = DURATION_S, rate: int = VOICE_RATE, hz: float = TONE_HZ) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def encode_in_pieces(fmt: str, samples: np.ndarray, rate: int = VOICE_RATE) -> tuple[StreamEncoder, list[bytes]]:
    encoder = StreamEncoder(fmt, rate)
    outputs = [encoder.encode(samples[start:end]) for start, end in itertools.pairwise(CUTS)]
    outputs.append(encoder.finish())
    return encoder, outputs


def decode(fmt: str, data: bytes) -> tuple[np.ndarray, int]:
    """Mono samples (int16 or float) and their rate, decoded the way a client would."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2"), PCM_RATE
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(frames), stream.rate


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("fmt", list(SPEECH_FORMATS))
def test_round_trip_keeps_duration_rate_and_tone(fmt: str) -> None:
    encoder, outputs = encode_in_pieces(fmt, tone())
    decoded, rate = decode(fmt, b"".join(outputs))

    assert rate == encoder.output_rate == {"opus": OPUS_RATE, "pcm": PCM_RATE}.get(fmt, VOICE_RATE)
    excess_s = decoded.size / rate - DURATION_S
    assert -EXACT_S <= excess_s <= EXTRA_S.get(fmt, EXACT_S), f"{fmt} decodes {excess_s:+.4f} s off"
    assert dominant_hz(decoded, rate) == pytest.approx(TONE_HZ, abs=2.0)


@pytest.mark.parametrize("fmt", list(SPEECH_FORMATS))
def test_first_piece_is_playable_before_the_end(fmt: str) -> None:
    """The first sentence's audio comes out of its own encode() call, not at finish()."""
    first_piece_s = (CUTS[1] - CUTS[0]) / VOICE_RATE
    _, outputs = encode_in_pieces(fmt, tone())
    decoded, rate = decode(fmt, outputs[0])
    # Held back at most: a partial codec frame, soxr's delay, two Ogg pages (2 x 100 ms).
    assert decoded.size / rate >= first_piece_s - 0.3


def test_wav_header_streams_with_unknown_sizes() -> None:
    _, outputs = encode_in_pieces("wav", tone())
    header = outputs[0][:44]
    riff, riff_size, wave, fmt_id, fmt_size = struct.unpack("<4sI4s4sI", header[:20])
    codec, channels, rate, byte_rate, block_align, bits = struct.unpack("<HHIIHH", header[20:36])
    data_id, data_size = struct.unpack("<4sI", header[36:44])
    assert (riff, wave, fmt_id, data_id) == (b"RIFF", b"WAVE", b"fmt ", b"data")
    assert riff_size == data_size == WAV_UNKNOWN_SIZE == 0xFFFFFFFF
    assert (fmt_size, codec, channels, rate, byte_rate, block_align, bits) == (16, 1, 1, VOICE_RATE, 44_100, 2, 16)
    assert np.array_equal(np.frombuffer(b"".join(outputs)[44:], dtype="<i2"), tone())


def test_pcm_is_resampled_to_24k_without_loss_or_clipping() -> None:
    loud = (tone().astype(np.int32) * 2 - 1).clip(-32768, 32767).astype(np.int16)  # near full scale
    _, outputs = encode_in_pieces("pcm", loud)
    decoded, rate = decode("pcm", b"".join(outputs))
    assert rate == PCM_RATE
    assert decoded.size == int(DURATION_S * PCM_RATE)
    assert dominant_hz(decoded, rate) == pytest.approx(TONE_HZ, abs=1.0)
    rms = [float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) for x in (loud, decoded)]
    assert rms[1] == pytest.approx(rms[0], rel=0.01)
    assert np.count_nonzero(np.abs(decoded.astype(np.int32)) >= 32767) < 0.001 * decoded.size


def test_content_types() -> None:
    assert SPEECH_FORMATS == {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    assert StreamEncoder("opus", VOICE_RATE).content_type == "audio/ogg"


def test_unknown_format_is_named_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"'ogg'.*mp3, opus, aac, flac, wav, pcm"):
        StreamEncoder("ogg", VOICE_RATE)


def test_samples_must_be_1d_int16() -> None:
    encoder = StreamEncoder("wav", VOICE_RATE)
    with pytest.raises(ValueError, match="float32"):
        encoder.encode(np.zeros(100, dtype=np.float32))


def test_no_encode_after_finish() -> None:
    encoder = StreamEncoder("flac", VOICE_RATE)
    encoder.finish()
    with pytest.raises(ValueError, match="after finish"):
        encoder.encode(tone(0.1))


def test_rate_the_encoder_refuses_is_resampled_up() -> None:
    """mp3 has no 22000 Hz: the stream goes out at the next rate it has, 22050, still the right length."""
    encoder, outputs = encode_in_pieces("mp3", tone(rate=22_000), rate=22_000)
    decoded, rate = decode("mp3", b"".join(outputs))
    assert encoder.output_rate == rate == 22_050
    assert 0 <= decoded.size / rate - DURATION_S <= EXTRA_S["mp3"]
