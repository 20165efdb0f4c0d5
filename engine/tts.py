"""The engine's entry point: register voices, fetch them, prepare them, hand out speakers."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import DEFAULT_SOURCE, SPEAKER_NAME
from .cores import available_cores
from .cpu_cache import cpu_model
from .errors import EngineError, NotPreparedError, UnknownSpeakerError
from .onnx_voice import OnnxVoice, Provider
from .options import TorchOptions
from .sources import Source, find_voice_files, parse_source
from .speaker import Speaker

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ttsq"
DEVICES = ("cpu", "cuda", "cuda:N")
BACKENDS = ("onnx", "torch")
CPU_STREAMS = 2
"""Sentences a CPU speaker runs at once on its one many-threaded session (``parallel_sentences=False``): a lone
sentence has every core, two overlap. One session either way: no second copy of the weights."""
TORCH_INSTALL_HINT = "the torch backend needs torch and transformers: pip install 'ttsq[gpu]'"


@dataclass(frozen=True)
class SpeakerInfo:
    """What was loaded for one speaker, reported at start."""

    name: str
    source: str
    model_path: Path
    sample_rate: int
    load_s: float
    backend: str = "onnx"
    weights_bytes: int | None = None
    """Size of the voice's weights as loaded (torch backend)."""
    device_memory_bytes: int | None = None
    """Peak CUDA memory after loading and warming (torch backend on CUDA)."""


def default_backend(device: str) -> str:
    """onnxruntime on CPUs (piper's own runtime, no torch needed); torch on CUDA (batches, autocast, compile)."""
    return "onnx" if device == "cpu" else "torch"


def _providers(device: str) -> list[Provider]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match:
        return [("CUDAExecutionProvider", {"device_id": int(match.group(1) or 0)}), "CPUExecutionProvider"]
    raise EngineError(f"unknown device {device!r}; expected one of: {', '.join(DEVICES)}")


def _torch_memory(speaker: Speaker) -> tuple[int | None, int | None]:
    """(weights, peak CUDA memory) of a speaker on the torch backend."""
    voice: Any = speaker.voice
    return voice.memory_bytes(), voice.device_memory_bytes()


class _Speakers(Mapping[str, Speaker]):
    def __init__(self, tts: TTS) -> None:
        self._tts = tts

    def __getitem__(self, name: str) -> Speaker:
        tts = self._tts
        if name not in tts._sources:
            raise UnknownSpeakerError(name, sorted(tts._sources))
        if name not in tts._prepared:
            raise NotPreparedError(f"speaker {name!r} is loaded but not prepared; call TTS.prepare() first")
        return tts._prepared[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tts._prepared)

    def __len__(self) -> int:
        return len(self._tts._prepared)


class TTS:
    """``TTS(device="cpu").load("joe").prepare(warmup=True)``, then ``tts.speakers["joe"].generate(text)``."""

    def __init__(
        self,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        parallel_sentences: bool = True,
        backend: str | None = None,
        torch_options: TorchOptions | None = None,
        rewrite_convolutions: bool = True,
    ) -> None:
        """``threads``: CPU threads per speaker (default: the cores this process may use). By default
        (``parallel_sentences``) a CPU speaker's one session runs each sentence on one thread and ``threads``
        sentences at once (one job's, or several jobs'): the most throughput (issue 12, 2 cores: a long text
        1.17-1.30x piper's ``PiperVoice`` against 1.04-1.14x, one-sentence jobs under load 1.20-1.28x its HTTP
        server's against 1.10-1.17x), but a lone sentence has one core. Without it the session has ``threads``
        threads and runs up to ``CPU_STREAMS`` sentences at once: a lone sentence on all of them (the lowest latency
        for one listener on an idle host). On the CPU the voice's 1-D convolutions run as 2-D ones
        (``rewrite_convolutions``, engine/graph.py: ~20% less CPU with AVX-512; the audio within one int16 step of
        piper's); without it the model runs as it is.

        ``backend``: ``onnx`` or ``torch`` (default: onnx on cpu, torch on cuda). The torch backend loads Piper voices
        (converted once into ``cache_dir/torch``) and MMS-TTS VitsModel directories, and batches the sentences of a
        job (``torch_options``); torch and transformers are imported only when it is chosen."""
        self.device = device
        self.backend = backend or default_backend(device)
        if self.backend not in BACKENDS:
            raise EngineError(f"unknown backend {self.backend!r}; expected one of: {', '.join(BACKENDS)}")
        self.parallel_sentences = parallel_sentences and device == "cpu" and self.backend == "onnx"
        self._providers = _providers(device)
        self.torch_options = torch_options or TorchOptions()
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.threads = threads
        self.rewrite_convolutions = rewrite_convolutions and device == "cpu" and self.backend == "onnx"
        self._sources: dict[str, Source] = {}
        self._prepared: dict[str, Speaker] = {}
        self.info: dict[str, SpeakerInfo] = {}

    def load(self, name: str, source: str = DEFAULT_SOURCE) -> TTS:
        """Register a speaker; nothing is read until ``pre_download`` or ``prepare``."""
        if not SPEAKER_NAME.match(name):
            raise EngineError(f"invalid speaker name {name!r}: use 1-64 of a-z, 0-9, '-' and '_'")
        if name in self._sources and self._sources[name].uri != parse_source(source).uri:
            raise EngineError(f"speaker {name!r} is already loaded from {self._sources[name].uri}")
        self._sources[name] = parse_source(source)
        return self

    @property
    def names(self) -> list[str]:
        return sorted(self._sources)

    def pre_download(self) -> dict[str, Path]:
        """Fill the cache for every registered speaker without building sessions (for image builds)."""
        found: dict[str, Path] = {}
        for name, source in self._sources.items():
            if self.backend == "torch":  # Piper voices are converted here too, so an image carries the result
                found[name] = self._torch().model_directory(source.fetch(self.cache_dir), self.cache_dir)
                logger.info("speaker %s: %s ready at %s", name, source.uri, found[name])
                continue
            model, _config = find_voice_files(source.fetch(self.cache_dir))
            found[name] = model
            self._run_model(model)  # the CPU rewrite too, so an image carries it
            logger.info("speaker %s: %s ready at %s", name, source.uri, model)
        return found

    def prepare(self, warmup: bool = True) -> TTS:
        """Load every registered speaker once and optionally warm it; safe to call again."""
        for name, source in self._sources.items():
            if name in self._prepared:
                continue
            started = time.perf_counter()
            if self.backend == "torch":
                speaker, model = self._torch_speaker(name, source)
            else:
                speaker, model = self._onnx_speaker(name, source)
            if warmup:
                if self.backend == "torch":
                    voice: Any = speaker.voice
                    voice.warmup()  # compiles every length bucket and batch size before a request can
                speaker.warmup()
            self._prepared[name] = speaker
            self.info[name] = SpeakerInfo(
                name,
                source.uri,
                model,
                speaker.sample_rate,
                time.perf_counter() - started,
                self.backend,
                *(_torch_memory(speaker) if self.backend == "torch" else (None, None)),
            )
            logger.info(
                "speaker %s prepared from %s (%s on %s) in %.2fs",
                name,
                source.uri,
                self.backend,
                self.device,
                self.info[name].load_s,
            )
        return self

    def _onnx_speaker(self, name: str, source: Source) -> tuple[Speaker, Path]:
        batching = self.torch_options.batching if self.torch_options else None
        if batching is not None and batching.batch_size > 1:
            raise EngineError("batching is a torch backend option; the onnx backend runs one sentence at a time")
        model, config = find_voice_files(source.fetch(self.cache_dir))
        run = self._run_model(model)
        if self.parallel_sentences:
            voice = OnnxVoice(run, config, self._providers, threads=1)
            return Speaker(name, voice, parallel=self.threads or available_cores()), model
        streams = CPU_STREAMS if self.device == "cpu" else 1
        return Speaker(name, OnnxVoice(run, config, self._providers, self.threads), parallel=streams), model

    def _run_model(self, model: Path) -> Path:
        """The model file onnxruntime runs: on the CPU, its rewrite (made once, into the cache)."""
        return cpu_model(model, self.cache_dir) if self.rewrite_convolutions else model

    def _torch_speaker(self, name: str, source: Source) -> tuple[Speaker, Path]:
        torch_voice = self._torch()
        if self.threads and self.device == "cpu":
            import torch

            torch.set_num_threads(self.threads)  # torch's pool is per process: the last speaker's setting holds
        directory = torch_voice.model_directory(source.fetch(self.cache_dir), self.cache_dir)
        voice = torch_voice.TorchVoice(directory, self.device, self.torch_options)
        speaker = Speaker(name, voice, batching=voice.batching, frontend=voice.sentence_ids)
        return speaker, directory

    @staticmethod
    def _torch() -> Any:
        """engine.torch.voice, imported on first use: a CPU install has no torch."""
        try:
            from .torch import voice
        except ImportError as error:
            raise EngineError(f"{TORCH_INSTALL_HINT} ({error})") from error
        return voice

    @property
    def speakers(self) -> Mapping[str, Speaker]:
        return _Speakers(self)
