"""ttsq's speech engine: Piper voices on onnxruntime (CPU) or torch (GPU), loaded once and shared safely.

Names are imported lazily, so that ``engine.constants`` or ``engine.text`` can be used (by the API,
say) without loading onnxruntime and espeak-ng.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Audio": "audio",
    "AudioChunk": "audio",
    "DEFAULT_SOURCE": "constants",
    "EngineError": "errors",
    "InvalidInputError": "errors",
    "NotPreparedError": "errors",
    "SourceError": "errors",
    "UnknownSpeakerError": "errors",
    "VoiceNotFoundError": "errors",
    "Source": "sources",
    "parse_source": "sources",
    "Speaker": "speaker",
    "TTS": "tts",
    "SpeakerInfo": "tts",
    "Batching": "options",
    "SynthesisOptions": "options",
    "TorchOptions": "options",
    "Priority": "turns",
}

__all__ = [
    "DEFAULT_SOURCE",
    "TTS",
    "Audio",
    "AudioChunk",
    "Batching",
    "EngineError",
    "InvalidInputError",
    "NotPreparedError",
    "Priority",
    "Source",
    "SourceError",
    "Speaker",
    "SpeakerInfo",
    "SynthesisOptions",
    "TorchOptions",
    "UnknownSpeakerError",
    "VoiceNotFoundError",
    "parse_source",
]

if TYPE_CHECKING:
    from .audio import Audio, AudioChunk
    from .constants import DEFAULT_SOURCE
    from .errors import (
        EngineError,
        InvalidInputError,
        NotPreparedError,
        SourceError,
        UnknownSpeakerError,
        VoiceNotFoundError,
    )
    from .options import Batching, SynthesisOptions, TorchOptions
    from .sources import Source, parse_source
    from .speaker import Speaker
    from .tts import TTS, SpeakerInfo
    from .turns import Priority


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
