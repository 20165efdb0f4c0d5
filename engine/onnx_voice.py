"""A Piper voice run on our own onnxruntime session."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime
from piper.config import PiperConfig

from .cores import available_cores
from .errors import EngineError
from .options import SynthesisOptions

logger = logging.getLogger(__name__)

Provider = str | tuple[str, dict[str, object]]
ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"
"""onnxruntime's run option: the listed devices' arenas give free blocks back when the run ends."""
RELEASE_ABOVE_IDS = 256
"""Give the arena back only after a sentence of more phoneme ids than this (about 110 characters at speed 1; fewer
when slower): what shorter
ones grow is small and bounded, while the release run (~12 ms) would be most of a one-sentence job's overhead
(issue 12)."""


SPINNING = "session.intra_op.allow_spinning"
"""onnxruntime's session option: idle pool threads spin for work rather than sleep."""
DYNAMIC_BLOCKS = "session.dynamic_block_base"
"""onnxruntime's session option: a parallel loop hands out shrinking blocks of its iterations as threads come free,
rather than one fixed share per thread."""


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    """Session options set explicitly rather than left to onnxruntime's defaults.

    A speaker runs several sentences at once on one session (two jobs', or two of one job's): by default each on one
    thread (``threads`` 1, where none of this matters); with ``parallel_sentences=False`` two on every thread. So
    pool threads sleep when idle rather than spin (spinning for one run takes the core the other run needs), and a
    parallel loop's blocks are handed out as threads come free (a run whose pool thread is busy with the other run
    does the work itself rather than wait for its fixed share). Issue 12, on 2 cores, 11 sentences two at a time:
    1.77-1.89 s against 2.32 s with onnxruntime's defaults; a lone sentence as fast as piper's."""
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry(SPINNING, "0")
    options.add_session_config_entry(DYNAMIC_BLOCKS, "1")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = 1
    return options


def _provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


class OnnxVoice:
    """One loaded Piper model: config plus an inference session."""

    def __init__(
        self, model_path: Path, config_path: Path, providers: list[Provider] | None = None, threads: int | None = None
    ) -> None:
        self.model_path = model_path
        with open(config_path, encoding="utf-8") as config_file:
            self.config = PiperConfig.from_dict(json.load(config_file))
        self.session = onnxruntime.InferenceSession(
            str(model_path),
            sess_options=session_options(threads),
            providers=providers or ["CPUExecutionProvider"],
        )
        wanted = _provider_name((providers or ["CPUExecutionProvider"])[0])
        if wanted not in self.session.get_providers():
            # onnxruntime silently falls back to the CPU; a GPU worker on the CPU must not go unnoticed.
            raise EngineError(
                f"{wanted} is not available (have: {', '.join(onnxruntime.get_available_providers())}); "
                "for CUDA install onnxruntime-gpu"
            )
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._shrink = onnxruntime.RunOptions()
        self._shrink.add_run_config_entry(ARENA_SHRINKAGE, "cpu:0")
        self._release_inputs = self._smallest_inputs()
        self._longest_ids = 0
        """The most phoneme ids of a sentence run since the arena was last given back, scaled by its speech's
        length scale against the voice's own (a race only misjudges one release)."""

    @property
    def sample_rate(self) -> int:
        return int(self.config.sample_rate)

    def infer(self, phoneme_ids: list[int], options: SynthesisOptions) -> np.ndarray:
        """Float audio in [-1, 1] for one sentence's phoneme ids."""
        config = self.config
        scales = np.array(
            [
                config.noise_scale if options.noise_scale is None else options.noise_scale,
                options.length_scale(config.length_scale),
                config.noise_w_scale if options.noise_w_scale is None else options.noise_w_scale,
            ],
            dtype=np.float32,
        )
        ids = np.array([phoneme_ids], dtype=np.int64)
        # What the arena grows with is the audio's length: slow speech stretches the same ids.
        self._longest_ids = max(self._longest_ids, round(len(phoneme_ids) * scales[1] / (config.length_scale or 1.0)))
        inputs: dict[str, np.ndarray] = {
            "input": ids,
            "input_lengths": np.array([ids.shape[1]], dtype=np.int64),
            "scales": scales,
        }
        if config.num_speakers > 1 and "sid" in self._input_names:
            sid = config.default_speaker_id if options.speaker_id is None else options.speaker_id
            inputs["sid"] = np.array([sid], dtype=np.int64)
        return self.session.run(None, inputs)[0].squeeze()

    def release_memory(self, always: bool = False) -> None:
        """Hand what the session's CPU arena holds beyond its first block back to the system.

        The arena keeps every block it ever grew for the longest sentences seen (a worker's RSS climbed from
        ~0.3 to ~1 GB over long jobs, never to come down); onnxruntime shrinks it only at the end of a run that
        asks, so this is one run of a few ids that does. Per sentence it would cost ~11% of the throughput; once
        per narration it costs a few milliseconds (bench/memory.py), and nothing after short sentences alone.
        ``always``: whatever the sentences run since (after the warmup)."""
        if self._longest_ids <= RELEASE_ABOVE_IDS and not always:
            return
        self._longest_ids = 0
        self.session.run(None, self._release_inputs, self._shrink)

    def _smallest_inputs(self) -> dict[str, np.ndarray]:
        """Begin, pad and end, at zero noise: the smallest input a Piper model takes."""
        id_map = self.config.phoneme_id_map
        ids = [next(iter(id_map.get(symbol, [0]))) for symbol in ("^", "_", "$")]
        inputs: dict[str, np.ndarray] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        }
        if "sid" in self._input_names:
            inputs["sid"] = np.array([self.config.default_speaker_id or 0], dtype=np.int64)
        return inputs
