"""What a synthesis can be asked for (SynthesisOptions) and how the torch backend runs (TorchOptions, Batching).

Importing this loads no onnxruntime and no torch (the CPU install has none).
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import MAX_SPEED, MIN_SPEED
from .errors import InvalidInputError

MAX_NOISE = 2.0
"""Largest noise_scale and noise_w_scale accepted (0 is deterministic)."""
PRECISIONS = ("fp32", "bf16", "fp16")
CUDA_BATCH_SIZE = 16
"""Default sentences per batch on CUDA. On CPUs the default is 1: there a batch only adds padding and memory
traffic (bench/engine.py, 2 cores: 15x realtime at batch 1, 10x at 4, 7-10x at 64)."""
DEFAULT_LENGTH_BUCKETS = (64, 128, 256, 512, 1024)
"""Id-sequence lengths that batches are grouped by (and, when compiled, padded to, so shapes repeat)."""


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-request settings, like piper's SynthesisConfig; a ``None`` means the voice's own default.

    ``Speaker.generate(text, SynthesisOptions(speed=1.5))``; the speaker checks them (``check``) before it starts."""

    speed: float = 1.0
    """Speech rate relative to the voice's own: > 1 is faster (the voice's length_scale is divided by it)."""
    noise_scale: float | None = None
    """Generator noise; 0 makes the output deterministic."""
    noise_w_scale: float | None = None
    """Phoneme width noise; 0 makes durations deterministic."""
    volume: float = 1.0
    """Gain applied to the float audio before it is clipped to int16."""
    speaker_id: int | None = None
    """For multi-speaker voices."""

    def check(self) -> None:
        """Raise InvalidInputError, naming the value, for a speed or noise the voices cannot take."""
        if not MIN_SPEED <= self.speed <= MAX_SPEED:
            raise InvalidInputError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {self.speed!r}")
        for label, value in (("noise_scale", self.noise_scale), ("noise_w_scale", self.noise_w_scale)):
            if value is not None and not 0.0 <= value <= MAX_NOISE:
                raise InvalidInputError(f"{label} must be between 0 and {MAX_NOISE:g}, got {value!r}")

    def length_scale(self, voice_length_scale: float) -> float:
        """The phoneme duration multiplier for a voice whose own is ``voice_length_scale`` (< 1 is faster)."""
        return voice_length_scale / self.speed


@dataclass(frozen=True)
class Batching:
    """How a speaker groups the sentences of one job into padded batches."""

    batch_size: int = 1
    """Sentences per batch; 1 runs them one by one (the onnx path)."""
    length_buckets: tuple[int, ...] = DEFAULT_LENGTH_BUCKETS
    """Sentences whose id counts fall in the same bucket share batches, so little of a batch is padding."""
    window_batches: int = 2
    """Batches' worth of sentences read ahead to sort by length: more groups better, but holds more audio."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size!r}")
        if self.window_batches < 1:
            raise ValueError(f"window_batches must be at least 1, got {self.window_batches!r}")
        if not self.length_buckets or list(self.length_buckets) != sorted(set(self.length_buckets)):
            raise ValueError(f"length_buckets must be increasing and not empty, got {self.length_buckets!r}")

    @property
    def window(self) -> int:
        return self.batch_size * self.window_batches

    def bucket(self, length: int) -> int:
        """The bucket bound a sequence of ``length`` ids is padded to (a multiple of the largest past it)."""
        for bound in self.length_buckets:
            if length <= bound:
                return bound
        largest = self.length_buckets[-1]
        return -(-length // largest) * largest


@dataclass(frozen=True)
class TorchOptions:
    """The torch backend: ``TTS(device="cuda", backend="torch", torch_options=TorchOptions(...))``."""

    batching: Batching | None = None
    """None: batches of CUDA_BATCH_SIZE on CUDA, one sentence at a time on CPUs."""
    precision: str = "fp32"
    """``fp32``, or autocast to ``bf16`` / ``fp16`` (fp16 on CUDA only): faster, within a tolerance of fp32."""
    compile: bool | None = None
    """torch.compile the encoder, flow and decoder once in prepare(); None: on CUDA only (it costs minutes on a CPU)."""
    frame_multiple: int = 64
    """When compiled, spectrograms are padded to a multiple of this many frames (64: 0.74 s at 22.05 kHz) and ids to
    their length bucket, so the graphs see a few shapes again and again. Eager runs pad nothing (it costs ~10%)."""

    def batching_for(self, device_type: str) -> Batching:
        if self.batching is not None:
            return self.batching
        return Batching(batch_size=CUDA_BATCH_SIZE if device_type == "cuda" else 1)

    def __post_init__(self) -> None:
        if self.frame_multiple < 1:
            raise ValueError(f"frame_multiple must be at least 1, got {self.frame_multiple!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
