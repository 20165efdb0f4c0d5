"""The CPU rewrite of a model's 1-D convolutions as 2-D ones (engine/graph.py, issue 12): same outputs, cached once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.cpu_cache import cpu_model
from engine.errors import EngineError
from engine.graph import conv1d_as_2d, elementwise_in_2d

RNG = np.random.default_rng(12)


def conv_model() -> onnx.ModelProto:
    """Conv1d (padded, dilated, grouped) -> LeakyRelu -> ConvTranspose1d (strided) + a residual Conv1d sharing the
    first convolution's weight: the shapes Piper's decoder has, small."""
    weight = numpy_helper.from_array(RNG.standard_normal((8, 2, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(RNG.standard_normal(8).astype(np.float32), "b")
    up = numpy_helper.from_array(RNG.standard_normal((8, 4, 4)).astype(np.float32), "up")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], group=2, pads=[2, 2], dilations=[2], kernel_shape=[3]),
        helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
        helper.make_node("ConvTranspose", ["a1", "up"], ["y"], strides=[2], pads=[1, 1], kernel_shape=[4]),
        helper.make_node("Conv", ["x", "w"], ["z"], group=2, pads=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "time"])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "t"]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", "c", "t"]),
        ],
        [weight, bias, up],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto | Path, x: np.ndarray) -> list[np.ndarray]:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})  # type: ignore[return-value]


def test_the_rewrite_computes_what_the_model_computes() -> None:
    model = conv_model()
    x = RNG.standard_normal((1, 4, 37)).astype(np.float32)
    expected = run(model, x)
    assert conv1d_as_2d(model) == 3
    assert [n.op_type for n in model.graph.node].count("Unsqueeze") == 3
    onnx.checker.check_model(model)
    for ours, theirs in zip(run(model, x), expected, strict=True):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def residual_model() -> onnx.ModelProto:
    """Piper's resblock, small: Conv -> Add(residual) -> LeakyRelu -> Div(scalar) -> Conv, and a mask Mul ([1, 1, T]
    against [1, C, T]: a broadcast) beside it."""
    weight = numpy_helper.from_array(RNG.standard_normal((4, 4, 3)).astype(np.float32), "w")
    three = numpy_helper.from_array(np.array(3.0, dtype=np.float32), "three")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c1"], pads=[1, 1]),
        helper.make_node("Add", ["c1", "x"], ["r1"]),  # x is plain 1-D: the Add stays 1-D
        helper.make_node("Conv", ["r1", "w"], ["c2"], pads=[1, 1]),
        helper.make_node("LeakyRelu", ["c2"], ["a2"], alpha=0.1),
        helper.make_node("Div", ["a2", "three"], ["d2"]),
        helper.make_node("Conv", ["d2", "w"], ["c3"], pads=[1, 1]),
        helper.make_node("Mul", ["c3", "mask"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "time"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, "time"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, "time"])],
        [weight, three],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_elementwise_ops_between_convolutions_run_in_2d() -> None:
    model = residual_model()
    x = RNG.standard_normal((1, 4, 29)).astype(np.float32)
    mask = (RNG.random((1, 1, 29)) > 0.3).astype(np.float32)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x, "mask": mask})[0]
    assert conv1d_as_2d(model) == 3
    assert elementwise_in_2d(model) == 2  # the LeakyRelu and the Div; not the Add (x) nor the Mul (the mask)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Squeeze") == 2 and ops.count("Unsqueeze") == 2  # was 3 of each: c2 -> c3 stays 2-D
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x, "mask": mask})[0], expected, rtol=1e-5, atol=1e-5)


def test_a_weight_something_else_reads_keeps_its_convolutions_as_they_are() -> None:
    model = conv_model()
    model.graph.node.append(helper.make_node("Identity", ["w"], ["w_out"]))
    model.graph.output.append(helper.make_tensor_value_info("w_out", TensorProto.FLOAT, [8, 2, 3]))
    assert conv1d_as_2d(model) == 1  # the ConvTranspose alone
    assert numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "w")).shape == (8, 2, 3)


def test_cpu_model_rewrites_once_and_reuses_the_file(tmp_path: Path) -> None:
    source = tmp_path / "voice.onnx"
    onnx.save(conv_model(), str(source))
    first = cpu_model(source, tmp_path / "cache")
    assert first.parent == tmp_path / "cache" / "onnx" and first != source
    modified = first.stat().st_mtime_ns
    assert cpu_model(source, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == modified  # not written again
    x = RNG.standard_normal((1, 4, 20)).astype(np.float32)
    for ours, theirs in zip(run(first, x), run(source, x), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_a_model_without_1d_convolutions_runs_as_it_is(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    source = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph), str(source))
    assert cpu_model(source, tmp_path / "cache") == source
    assert cpu_model(source, tmp_path / "cache") == source  # remembered, not tried again
    assert not list((tmp_path / "cache" / "onnx").glob("*.onnx"))


def test_a_file_that_is_no_model_fails_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "broken.onnx"
    source.write_bytes(b"not a model")
    with pytest.raises(EngineError, match=r"could not rewrite .*broken\.onnx"):
        cpu_model(source, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "onnx").iterdir())  # no partial file left behind


def test_an_unwritable_cache_runs_the_model_as_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = tmp_path / "voice.onnx"
    onnx.save(conv_model(), str(source))
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache directory should be")
    assert cpu_model(source, blocked) == source
    assert "without the CPU rewrite" in caplog.text
