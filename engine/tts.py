"""The engine's entry point: register voices, fetch them, prepare them, hand out speakers."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .constants import DEFAULT_SOURCE, SPEAKER_NAME
from .errors import EngineError, NotPreparedError, UnknownSpeakerError
from .onnx_voice import OnnxVoice, Provider
from .sources import Source, find_voice_files, parse_source
from .speaker import Speaker

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ttsq"
DEVICES = ("cpu", "cuda", "cuda:N")


@dataclass(frozen=True)
class SpeakerInfo:
    """What was loaded for one speaker, reported at start."""

    name: str
    source: str
    model_path: Path
    sample_rate: int
    load_s: float


def _providers(device: str) -> list[Provider]:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match:
        return [("CUDAExecutionProvider", {"device_id": int(match.group(1) or 0)}), "CPUExecutionProvider"]
    raise EngineError(f"unknown device {device!r}; expected one of: {', '.join(DEVICES)}")


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
        parallel_sentences: bool = False,
    ) -> None:
        """``threads``: CPU threads per speaker (default: all cores). By default one sentence runs on all of them,
        as piper does (bit-identical output, and memory bounded by the longest sentence). With
        ``parallel_sentences`` (CPU only) that many sentences run at once, one thread each: ~15-25% more throughput
        on long texts, output within one int16 step of piper's, but onnxruntime's arena then grows towards two
        long sentences' worth (~1.1 GB against ~0.4 GB for the joe voice); see the notes in bench/."""
        self.device = device
        self.parallel_sentences = parallel_sentences and device == "cpu"
        self._providers = _providers(device)
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.threads = threads
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
            model, _config = find_voice_files(source.fetch(self.cache_dir))
            found[name] = model
            logger.info("speaker %s: %s ready at %s", name, source.uri, model)
        return found

    def prepare(self, warmup: bool = True) -> TTS:
        """Load every registered speaker once and optionally warm it; safe to call again."""
        for name, source in self._sources.items():
            if name in self._prepared:
                continue
            started = time.perf_counter()
            model, config = find_voice_files(source.fetch(self.cache_dir))
            if self.parallel_sentences:
                voice = OnnxVoice(model, config, self._providers, threads=1)
                speaker = Speaker(name, voice, parallel=self.threads or os.cpu_count() or 1)
            else:
                speaker = Speaker(name, OnnxVoice(model, config, self._providers, self.threads))
            if warmup:
                speaker.warmup()
            self._prepared[name] = speaker
            self.info[name] = SpeakerInfo(name, source.uri, model, speaker.sample_rate, time.perf_counter() - started)
            logger.info("speaker %s prepared from %s in %.2fs", name, source.uri, self.info[name].load_s)
        return self

    @property
    def speakers(self) -> Mapping[str, Speaker]:
        return _Speakers(self)
