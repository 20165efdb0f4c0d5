"""Errors the engine raises; adapters turn them into HTTP codes or job failures."""


class EngineError(Exception):
    """Base class for engine errors."""


class VoiceNotFoundError(EngineError):
    """A source holds no usable Piper voice (``*.onnx`` + ``*.onnx.json``)."""


class SourceError(EngineError):
    """A voice source URI is malformed or could not be fetched."""


class NotPreparedError(EngineError):
    """A speaker was used before ``TTS.prepare()``."""


class UnknownSpeakerError(EngineError, KeyError):
    """A speaker name that was never loaded."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown speaker {name!r}; expected one of: {', '.join(known) or '(none)'}")

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidInputError(EngineError, ValueError):
    """Text or synthesis options that cannot be synthesized."""
