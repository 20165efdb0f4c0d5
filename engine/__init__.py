"""ttsq's speech engine: Piper voices on onnxruntime, loaded once and shared safely."""

from .audio import Audio, AudioChunk
from .errors import (
    EngineError,
    InvalidInputError,
    NotPreparedError,
    SourceError,
    UnknownSpeakerError,
    VoiceNotFoundError,
)
from .sources import Source, parse_source
from .speaker import Speaker
from .tts import DEFAULT_SOURCE, TTS, SpeakerInfo

__all__ = [
    "DEFAULT_SOURCE",
    "TTS",
    "Audio",
    "AudioChunk",
    "EngineError",
    "InvalidInputError",
    "NotPreparedError",
    "Source",
    "SourceError",
    "Speaker",
    "SpeakerInfo",
    "UnknownSpeakerError",
    "VoiceNotFoundError",
    "parse_source",
]
