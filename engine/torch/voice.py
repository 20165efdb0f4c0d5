"""A voice on torch: a VitsModel directory (MMS-TTS, or a converted Piper voice) run in padded batches."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from piper.config import PhonemeType, PiperConfig

from ..errors import EngineError, VoiceNotFoundError
from ..options import SynthesisOptions, TorchOptions
from ..phonemize import sentence_ids
from ..sources import find_voice_files
from ..text.split import split_text
from .convert import PIPER_CONFIG_NAME, converted_voice
from .vits import BatchedVits, quiet_transformers

logger = logging.getLogger(__name__)

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
WARMUP_TEXT = "Warming up. This is a short sentence, with a comma!"


def model_directory(location: Path, cache_root: Path) -> Path:
    """The VitsModel directory for a fetched voice: itself (MMS-TTS format) or its cached Piper conversion."""
    if location.is_dir() and (location / HF_CONFIG).is_file() and (location / HF_WEIGHTS).is_file():
        return location
    try:
        model, config = find_voice_files(location)
    except VoiceNotFoundError as error:
        raise VoiceNotFoundError(f"{error}; nor a VitsModel directory ({HF_CONFIG} and {HF_WEIGHTS})") from None
    return converted_voice(model, config, cache_root)


def torch_device(device: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``, checked against what this torch can use."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EngineError(f"device {device!r}: torch sees no CUDA device (torch {torch.__version__})")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise EngineError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device(device)


class TorchVoice:
    """One loaded model; ``infer_batch`` synthesizes several sentences in one padded batch."""

    def __init__(self, model_dir: Path, device: str = "cpu", options: TorchOptions | None = None) -> None:
        self.model_path = model_dir
        self.options = options or TorchOptions()
        self.device = torch_device(device)
        self.batching = self.options.batching_for(self.device.type)
        self._device_base: int | None = None
        if self.device.type == "cuda":
            # Speakers load one after another: measure this one's own, from what is allocated before it.
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._device_base = torch.cuda.memory_allocated(self.device)
        if self.options.precision == "fp16" and self.device.type != "cuda":
            raise EngineError("precision 'fp16' needs a CUDA device; use 'bf16' or 'fp32' on the CPU")
        self.model = _load_model(model_dir)
        self.model.to(self.device)  # type: ignore[arg-type]  # transformers wraps .to() for dtype checks
        piper_config = model_dir / PIPER_CONFIG_NAME
        if piper_config.is_file():
            self.config = PiperConfig.from_dict(json.loads(piper_config.read_text(encoding="utf-8")))
            self.tokenizer = None
        else:  # MMS-TTS: characters through the voice's own tokenizer, not espeak phonemes
            from transformers import VitsTokenizer

            self.config = _text_config(self.model)
            self.tokenizer = VitsTokenizer.from_pretrained(str(model_dir))
        self.compiled = self.options.compile if self.options.compile is not None else self.device.type == "cuda"
        if self.compiled:
            # The heavy, regular parts. Not the duration predictor (its spline indexes by data) nor the flow
            # (transformers' WaveNet reads a tensor as a Python int: a graph break whose pieces recompile per shape,
            # until Dynamo's recompile limit silently leaves them eager).
            model = self.model
            model.text_encoder = torch.compile(model.text_encoder, dynamic=True)  # type: ignore[assignment]
            model.decoder = torch.compile(model.decoder, dynamic=True)  # type: ignore[assignment]

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    @property
    def input_kind(self) -> str:
        """``phonemes`` (espeak-ng, Piper voices) or ``characters`` (MMS-TTS tokenizer)."""
        return "characters" if self.tokenizer is not None else "phonemes"

    def sentence_ids(self, text: str) -> list[list[int]]:
        """Model input ids, one list per sentence, from this voice's own front end."""
        if self.tokenizer is None:
            return sentence_ids(text, self.config)
        sentences = (chunk.spoken for chunk in split_text(text) if chunk.spoken)
        return [ids for ids in (self.tokenizer(s)["input_ids"] for s in sentences) if ids]

    def infer(self, phoneme_ids: list[int], options: SynthesisOptions) -> np.ndarray:
        return self.infer_batch([phoneme_ids], options)[0]

    def infer_batch(self, batch: Sequence[Sequence[int]], options: SynthesisOptions) -> list[np.ndarray]:
        """Float audio in [-1, 1] for each id list, from one padded batch; each trimmed to its own duration."""
        count = len(batch)
        if self.compiled and 1 < count < self.batching.batch_size:
            # Two batch sizes only (1 and the configured one), both compiled in warm-up: fill with copies.
            batch = [*batch, *[batch[0]] * (self.batching.batch_size - count)]
        lengths = [len(ids) for ids in batch]
        # Compiled graphs get ids padded to their length bucket and frames to a multiple: shapes repeat.
        width = self.batching.bucket(max(lengths)) if self.compiled else max(lengths)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = torch.as_tensor(sequence, dtype=torch.long)
        padded = len(batch) > 1 or width != lengths[0]
        config = self.config
        with torch.inference_mode(), self._autocast():
            out = self.model.synthesize(
                ids.to(self.device),
                torch.as_tensor(lengths, device=self.device) if padded else None,
                noise_scale=config.noise_scale if options.noise_scale is None else options.noise_scale,
                length_scale=options.length_scale(config.length_scale),
                noise_scale_duration=config.noise_w_scale if options.noise_w_scale is None else options.noise_w_scale,
                speaker_id=self._speaker_id(options),
                frame_multiple=self.options.frame_multiple if self.compiled else 1,
            )
        waveform = out.waveform[:count].float().cpu().numpy()
        return [waveform[row, :samples] for row, samples in enumerate(out.sample_lengths[:count].tolist())]

    def _speaker_id(self, options: SynthesisOptions) -> int | None:
        if self.config.num_speakers <= 1:
            return None
        return self.config.default_speaker_id if options.speaker_id is None else options.speaker_id

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        precision = self.options.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def warmup(self) -> None:
        """Compile every shape a request can bring (each length bucket, alone and in a full batch) before one does."""
        if not self.compiled:
            return
        seed = self.sentence_ids(WARMUP_TEXT)[0]
        options = SynthesisOptions()
        batching = self.batching
        for bound in batching.length_buckets:
            ids = (seed * (bound // len(seed) + 1))[:bound]
            for size in sorted({1, batching.batch_size}):
                self.infer_batch([ids] * size, options)
        logger.info("torch voice %s compiled and warmed for buckets %s", self.model_path.name, batching.length_buckets)

    def memory_bytes(self) -> int:
        """Bytes of this voice's weights (on its device)."""
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def device_memory_bytes(self) -> int | None:
        """Peak CUDA memory this voice has needed (weights, warm-up activations) above what was allocated before it
        loaded; None off CUDA. Read right after the voice is prepared, before another one loads."""
        if self._device_base is None:
            return None
        return int(torch.cuda.max_memory_allocated(self.device)) - self._device_base


def _load_model(model_dir: Path) -> BatchedVits:
    quiet_transformers()
    try:
        model = BatchedVits.from_pretrained(str(model_dir))
    except (OSError, ValueError) as error:
        raise EngineError(f"cannot load a VitsModel from {model_dir}: {error}") from error
    return model.fold_weight_norm().eval()


def _text_config(model: BatchedVits) -> PiperConfig:
    """A Piper-shaped config for an MMS-TTS voice: its rate and default scales (its symbols are the tokenizer's)."""
    config = model.config
    return PiperConfig(
        num_symbols=config.vocab_size,
        num_speakers=config.num_speakers,
        sample_rate=config.sampling_rate,
        espeak_voice="",
        phoneme_id_map={},
        phoneme_type=PhonemeType.TEXT,
        length_scale=1.0 / config.speaking_rate,
        noise_scale=config.noise_scale,
        noise_w_scale=config.noise_scale_duration,
    )
