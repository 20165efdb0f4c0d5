"""Autocast (bf16, fp16) against fp32 on the joe voice: durations and the waveform's loudness contour stay close."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest

from engine import TTS
from engine.options import SynthesisOptions, TorchOptions

if TYPE_CHECKING:
    from engine.torch.voice import TorchVoice

torch = pytest.importorskip("torch", reason="the torch backend is the optional 'gpu' extra")

DETERMINISTIC = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
TEXT = "The morning train left the station at a quarter past seven. Do you think we'll be on time?"
ENVELOPE_SAMPLES = 512
"""About 23 ms at 22.05 kHz: the loudness contour is compared, since reduced precision shifts phase."""


def _voice(tts: TTS, name: str) -> TorchVoice:
    return cast("TorchVoice", tts.speakers[name].voice)


def envelope_db(audio: np.ndarray) -> np.ndarray:
    frames = audio[: len(audio) // ENVELOPE_SAMPLES * ENVELOPE_SAMPLES].reshape(-1, ENVELOPE_SAMPLES)
    return np.asarray(20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-4))


def compare(device: str, precision: str, cache: Path) -> tuple[float, float]:
    """(largest relative duration change, mean loudness-contour difference in dB) over TEXT's sentences."""
    voices = {
        p: _voice(
            TTS(device=device, backend="torch", cache_dir=cache, torch_options=TorchOptions(precision=p, compile=False))
            .load("joe")
            .prepare(warmup=False),
            "joe",
        )
        for p in ("fp32", precision)
    }
    duration_change, contour_db = 0.0, []
    for ids in voices["fp32"].sentence_ids(TEXT):
        full, reduced = (voices[p].infer(ids, DETERMINISTIC) for p in ("fp32", precision))
        duration_change = max(duration_change, abs(len(reduced) - len(full)) / len(full))
        n = min(len(full), len(reduced))
        contour_db.append(float(np.mean(np.abs(envelope_db(full[:n]) - envelope_db(reduced[:n])))))
    return duration_change, max(contour_db)


def _cpu_bf16() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.functional.conv1d(torch.ones(1, 1, 4), torch.ones(1, 1, 2))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _cpu_bf16(), reason="this torch has no bf16 autocast on the CPU")
def test_bf16_autocast_on_cpu_stays_close_to_fp32(tmp_path: Path) -> None:
    """bf16 keeps 8 bits of mantissa, so the bound is loose: same durations within 2 %, contour within 3 dB."""
    duration_change, contour_db = compare("cpu", "bf16", tmp_path)
    print(f"cpu bf16: duration change {duration_change:.4f}, contour {contour_db:.2f} dB")
    assert duration_change <= 0.02
    assert contour_db <= 3.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_on_cuda_stays_close_to_fp32(tmp_path: Path, precision: str) -> None:
    duration_change, contour_db = compare("cuda", precision, tmp_path)
    print(f"cuda {precision}: duration change {duration_change:.4f}, contour {contour_db:.2f} dB")
    assert duration_change <= 0.01
    assert contour_db <= (1.5 if precision == "fp16" else 3.0)
