"""After warm-up, no request compiles anything: checked on the CPU with Dynamo's eager backend (it traces and
guards exactly as a CUDA run does, without inductor's minutes of code generation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import TTS
from engine.options import Batching, SynthesisOptions, TorchOptions

torch = pytest.importorskip("torch", reason="the torch backend is the optional 'gpu' extra")


@pytest.mark.slow
def test_nothing_compiles_after_warmup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.utils import counters

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compile_(module, **{**kw, "backend": "eager"}))
    torch._dynamo.reset()
    options = TorchOptions(batching=Batching(batch_size=4, length_buckets=(64, 128, 256)), compile=True)
    tts = TTS(backend="torch", cache_dir=tmp_path, torch_options=options).load("joe").prepare(warmup=True)
    speaker = tts.speakers["joe"]
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0, "warm-up compiled nothing"
    texts = [
        "Hi",  # one short sentence: batch 1, smallest bucket
        "The morning train to Edinburgh left the station at a quarter past seven and nobody noticed it go.",
        "Hi. The train left at seven. Do you think we will be on time?",  # a batch of three, filled to four
        "One. Two three. Four five six. Seven. Eight nine. Ten, eleven, twelve, and thirteen.",
    ]
    for text in texts:
        assert np.abs(speaker.generate(text).samples).max() > 0
    speaker.generate("Slowly now.", SynthesisOptions(speed=0.5))
    speaker.generate("With some noise.", SynthesisOptions(noise_scale=0.5))
    assert counters["stats"]["unique_graphs"] == graphs, "a request compiled a new graph after warm-up"
    # Filling a batch with copies changes nothing for the real sentences.
    voice = speaker.voice
    ids = voice.sentence_ids("Hi. The train left at seven.")
    quiet = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    together = voice.infer_batch(ids, quiet)
    alone = [voice.infer_batch([one], quiet)[0] for one in ids]
    assert len(together) == len(ids)
    for a, b in zip(together, alone, strict=True):
        assert len(a) == len(b) and np.abs(a - b).max() < 1e-3
    torch._dynamo.reset()
