"""onnxruntime, piper's own PiperVoice and the torch backend at several batch sizes, on one text in one run.

Used by ``bench/engine.py``; the torch rows need the optional extra (``pip install 'ttsq[gpu]'``).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from bench.stack import EngineRun, Synthesize, format_table
from engine import TTS, Batching, Speaker, SynthesisOptions

BATCH_SIZES = (1, 4, 16, 64)
"""Sentences per padded batch on the torch backend."""
NOISE_SCALE = 0.0
NOISE_W_SCALE = 0.0


def torch_speakers(device: str, batch_sizes: Sequence[int] = BATCH_SIZES) -> dict[str, Speaker]:
    """One loaded torch voice shared by a speaker per batch size (the model is loaded and converted once)."""
    tts = TTS(device=device, backend="torch").load("joe").prepare(warmup=True)
    voice: Any = tts.speakers["joe"].voice
    return {
        f"torch-b{size}": Speaker(
            f"joe-b{size}", voice, batching=Batching(batch_size=size), frontend=voice.sentence_ids
        )
        for size in batch_sizes
    }


def speaker_synthesizer(speaker: Speaker) -> Synthesize:
    def synthesize(text: str) -> np.ndarray:
        return speaker.generate(text, SynthesisOptions(noise_scale=NOISE_SCALE, noise_w_scale=NOISE_W_SCALE)).samples

    return synthesize


def bench_backends(
    engines: dict[str, Synthesize], sample_rate: int, text: str, rounds: int, timer: Callable[[], float]
) -> dict[str, Any]:
    """Each engine once per round, in turn, so a slow spell of the host falls on all of them alike."""
    for name, synthesize in engines.items():
        synthesize("Warming up. This is a short sentence, with a comma!")  # shapes, allocators, compiled kernels
        print(f"  warmed {name}", file=sys.stderr, flush=True)
    runs: list[EngineRun] = []
    samples: dict[str, np.ndarray] = {}
    for round_ in range(1, rounds + 1):
        for name, synthesize in engines.items():
            started = timer()
            samples[name] = synthesize(text)
            wall_s = timer() - started
            audio_s = len(samples[name]) / sample_rate
            runs.append(EngineRun(name, round_, audio_s, wall_s, audio_s / wall_s))
        print(f"  round {round_}/{rounds} done", file=sys.stderr, flush=True)
    return {
        "text_chars": len(text),
        "rounds": rounds,
        "engines": list(engines),
        "runs": [asdict(r) for r in runs],
        "x_realtime_median": {
            name: statistics.median(r.x_realtime for r in runs if r.engine == name) for name in engines
        },
        "x_realtime_best": {name: max(r.x_realtime for r in runs if r.engine == name) for name in engines},
        "max_sample_diff_vs_onnx": {name: _max_diff(samples[name], samples["onnx"]) for name in engines},
    }


def _max_diff(a: np.ndarray, b: np.ndarray) -> int | None:
    if len(a) != len(b):
        return None
    return int(np.max(np.abs(a.astype(np.int32) - b.astype(np.int32)), initial=0))


def backends_report(result: dict[str, Any], device: str) -> str:
    medians, best = result["x_realtime_median"], result["x_realtime_best"]
    onnx = medians["onnx"]
    rows = [
        [
            name,
            f"{medians[name]:.1f}",
            f"{best[name]:.1f}",
            f"{medians[name] / onnx:.2f}",
            "-" if (diff := result["max_sample_diff_vs_onnx"][name]) is None else str(diff),
        ]
        for name in result["engines"]
    ]
    headers = ["engine", "x realtime (median)", "best", "vs onnx", "max int16 diff vs onnx"]
    return "\n".join(
        [
            f"Backends: {result['text_chars']} chars, {result['rounds']} round(s), torch on {device}, "
            f"noise_scale={NOISE_SCALE} noise_w_scale={NOISE_W_SCALE}",
            format_table(headers, rows),
            "torch-bN: the torch backend with N sentences per padded batch (length-bucketed); onnx: ttsq's "
            "onnxruntime path; piper: piper's own PiperVoice.",
        ]
    )
