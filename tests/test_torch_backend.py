"""The torch backend against onnxruntime on the real joe voice: same audio, batched or not, at reduced precision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest

from engine import TTS, EngineError
from engine.options import Batching, SynthesisOptions, TorchOptions
from engine.speaker import plan_batches
from engine.tts import default_backend

if TYPE_CHECKING:
    from engine.torch.voice import TorchVoice

torch = pytest.importorskip("torch", reason="the torch backend is the optional 'gpu' extra")

TOLERANCE = 1e-3
"""Max abs difference allowed between two float waveforms in [-1, 1] (the issue's bar)."""
DETERMINISTIC = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
TEXT = (
    "The morning train to Edinburgh left the station at a quarter past seven. Most passengers had settled in. "
    "A boy beside the window counted the sheep in the passing fields, losing track somewhere after forty! "
    "Do you think we'll be on time?"
)


def _voice(tts: TTS, name: str) -> TorchVoice:
    return cast("TorchVoice", tts.speakers[name].voice)


@pytest.fixture(scope="module")
def torch_tts(tmp_path_factory: pytest.TempPathFactory) -> TTS:
    options = TorchOptions(batching=Batching(batch_size=4))
    cache = tmp_path_factory.mktemp("torch-cache")
    return TTS(backend="torch", cache_dir=cache, torch_options=options).load("joe").prepare(warmup=False)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert len(a) == len(b), f"lengths differ: {len(a)} against {len(b)} samples"
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


def test_joe_on_torch_equals_onnxruntime(torch_tts: TTS, tts: TTS) -> None:
    """With zero noise the converted Piper voice on torch gives onnxruntime's audio, sentence by sentence."""
    onnx_voice, torch_voice = tts.speakers["joe"].voice, _voice(torch_tts, "joe")
    sentences = torch_voice.sentence_ids(TEXT)
    assert len(sentences) == 4
    diffs = [
        _max_diff(torch_voice.infer(ids, DETERMINISTIC), onnx_voice.infer(ids, DETERMINISTIC)) for ids in sentences
    ]
    print(f"max abs diff torch vs onnxruntime per sentence: {diffs}")
    assert max(diffs) < TOLERANCE


def test_batch_equals_one_by_one(torch_tts: TTS) -> None:
    """A padded batch is trimmed by each item's predicted duration and sounds like the items run alone."""
    voice = _voice(torch_tts, "joe")
    sentences = voice.sentence_ids(TEXT)
    batched = voice.infer_batch(sentences, DETERMINISTIC)
    alone = [voice.infer(ids, DETERMINISTIC) for ids in sentences]
    assert max(_max_diff(b, a) for b, a in zip(batched, alone, strict=True)) < TOLERANCE


def test_narration_in_batches_matches_onnx_narration(torch_tts: TTS, tts: TTS) -> None:
    """stream_chunks on torch (batches of 4, bucketed) gives the onnx path's samples, texts without speech included."""
    texts = [TEXT, "Chapter two.", "Three.", "", "It rained. It stopped; then it rained again, harder than before."]
    batched = list(torch_tts.speakers["joe"].stream_chunks(texts, DETERMINISTIC))
    reference = list(tts.speakers["joe"].stream_chunks(texts, DETERMINISTIC))
    assert [len(b) for b in batched] == [len(r) for r in reference]
    assert len(batched[3]) == 0
    # int16 steps: the float tolerance times full scale, plus the truncation step.
    assert max(_max_diff(b, r) for b, r in zip(batched, reference, strict=True)) <= TOLERANCE * 32767 + 1


def test_plan_batches_groups_lengths_and_keeps_the_first_sentence_first() -> None:
    batching = Batching(batch_size=2, length_buckets=(10, 100))
    lengths = [50, 5, 60, 7, 300, 8]
    batches = plan_batches(lengths, batching)
    assert sorted(p for batch in batches for p in batch) == list(range(len(lengths)))
    assert all(len(batch) <= 2 for batch in batches)
    assert all(len({batching.bucket(lengths[p]) for p in batch}) == 1 for batch in batches)
    assert batches[0] == [0, 2]  # the batch holding sentence 0 runs first
    assert batching.bucket(250) == 300 and batching.bucket(100) == 100


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"window_batches": 0}, {"length_buckets": ()}, {"length_buckets": (64, 32)}],
)
def test_batching_options_are_checked(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Batching(**kwargs)  # type: ignore[arg-type]


def test_backend_default_per_device_and_bad_names() -> None:
    assert default_backend("cpu") == "onnx"
    assert default_backend("cuda") == default_backend("cuda:1") == "torch"
    with pytest.raises(EngineError, match="unknown backend 'tf'; expected one of: onnx, torch"):
        TTS(backend="tf")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16; got 'int8'"):
        TorchOptions(precision="int8")
    # Batches pay on GPUs; on a CPU they only add padding (see bench/engine.py), so one sentence at a time.
    assert TorchOptions().batching_for("cpu").batch_size == 1
    assert TorchOptions().batching_for("cuda").batch_size == 16
    assert TorchOptions(Batching(batch_size=4)).batching_for("cpu").batch_size == 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is missing")
def test_cuda_without_a_gpu_fails_with_a_clear_error(tmp_path: Path) -> None:
    tts = TTS(device="cuda:0", cache_dir=tmp_path).load("joe")
    with pytest.raises(EngineError, match="torch sees no CUDA device"):
        tts.prepare(warmup=False)


def test_onnx_backend_never_imports_torch() -> None:
    """The CPU install has no torch: the default path must not even try to import it."""
    code = (
        "import sys\n"
        "from engine import TTS\n"
        "TTS(device='cpu').load('joe').prepare(warmup=False).speakers['joe'].generate('Hi.')\n"
        "loaded = sorted(m for m in ('torch', 'transformers', 'onnx', 'safetensors') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent, timeout=120)


def test_padding_frames_for_compiled_shapes_keeps_the_audio(torch_tts: TTS) -> None:
    """Compiled runs pad spectrograms to a multiple of 64 frames; the masked decoder makes that inaudible."""
    voice = _voice(torch_tts, "joe")
    ids = torch.tensor([voice.sentence_ids("Padding should change nothing at all.")[0]])
    plain, padded = (voice.model.synthesize(ids, None, 0.0, 1.0, 0.0, frame_multiple=m) for m in (1, 64))
    assert int(plain.sample_lengths[0]) == int(padded.sample_lengths[0])
    assert padded.waveform.shape[-1] % (64 * voice.model.hop_length) == 0
    samples = int(plain.sample_lengths[0])
    assert float((plain.waveform[0, :samples] - padded.waveform[0, :samples]).abs().max()) < TOLERANCE


def test_batches_need_a_voice_that_batches(tts: TTS) -> None:
    from engine.speaker import Speaker

    with pytest.raises(EngineError, match="OnnxVoice cannot synthesize batches; use batch_size 1"):
        Speaker("x", tts.speakers["joe"].voice, batching=Batching(batch_size=2))
