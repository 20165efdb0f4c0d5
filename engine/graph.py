"""A Piper model's 1-D convolutions rewritten as 2-D ones, so onnxruntime's blocked CPU kernels run them.

Piper's decoder (HiFi-GAN) and flows are 1-D convolutions over time, about two thirds of a sentence's CPU time.
onnxruntime's CPU provider runs a 1-D Conv as im2col and a matrix product, but a 2-D one on its blocked (NCHWc)
direct kernels. The same convolution as a 1 x k kernel over a [batch, channels, 1, time] tensor is the same sums in
another order: the audio differs from the model's own by float rounding (under 1e-4, within an int16 step), and a
sentence takes ~20% less CPU (bench/engine.py, issue 12). The elementwise ops between two such convolutions run on
the 2-D tensors too (``elementwise_in_2d``), so that onnxruntime's blocked layout can go on from one convolution to the
next (engine/blocked.py); everything else in the graph is left as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

CONV_OPS = ("Conv", "ConvTranspose")
HEIGHT_AXIS = "ttsq_height_axis"
"""The initializer both inserted Unsqueeze (before each convolution) and Squeeze (after it) take as their axes."""
REWRITE_VERSION = "conv2d-v2"
"""Part of the cached file's name: a change to the rewrite makes a new file rather than reusing an old one."""
UNCHANGED_EXIT = 3
"""A rewriting child's exit status for a model with nothing to rewrite (engine/cpu_cache.py)."""
_PER_AXIS = ("kernel_shape", "strides", "dilations", "output_padding", "output_shape")
ELEMENTWISE = frozenset((op, "") for op in ("Add", "Sub", "Mul", "Div", "LeakyRelu", "Relu", "Tanh", "Sigmoid"))
"""Ops (type, domain) that do the same to each value whatever the layout, given same-shaped operands or scalars."""


def conv1d_as_2d(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every Conv and ConvTranspose whose weight is a 3-D initializer that only convolutions use
    (as their weight); the number rewritten."""
    from onnx import numpy_helper

    graph = model.graph
    weights = {initializer.name: initializer for initializer in graph.initializer if len(initializer.dims) == 3}
    for node in graph.node:  # a weight something else reads keeps its shape, and so do its convolutions
        for position, name in enumerate(node.input):
            if name in weights and (node.op_type not in CONV_OPS or position != 1 or _has_auto_pad(node)):
                del weights[name]
    widened: set[str] = set()
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type not in CONV_OPS or len(node.input) < 2 or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = weights[node.input[1]]
        if weight.name not in widened:  # [out, in, k] -> [out, in, 1, k], once for a weight convolutions share
            widened.add(weight.name)
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, np.newaxis, :], weight.name))
        nodes.extend(_as_2d(node, f"{node.name or node.output[0]}/ttsq_2d"))
    rewritten = len(nodes) - len(graph.node)
    if rewritten:
        graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), HEIGHT_AXIS))
        set_nodes(graph, nodes)
    return rewritten // 2


def elementwise_in_2d(model: onnx.ModelProto) -> int:
    """Run, in place, the elementwise ops between rewritten convolutions on their 2-D tensors too, so that one
    convolution's output reaches the next without a Squeeze and an Unsqueeze between (where onnxruntime's blocked
    layout could not go on, engine/blocked.py); the number of ops moved. An op moves when every operand is such a
    tensor or a scalar; what else reads its 1-D output still can, and what nothing reads is pruned."""
    graph = model.graph
    scalars = scalar_initializers(model)
    wide: dict[str, str] = {}  # a tensor -> the same values with the height axis
    renamed: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    moved = 0
    for node in graph.node:
        follow_renames(node, renamed)
        height_axis = len(node.input) == 2 and node.input[1] == HEIGHT_AXIS
        if node.op_type == "Squeeze" and height_axis:
            wide[node.output[0]] = node.input[0]
        elif node.op_type == "Unsqueeze" and height_axis and node.input[0] in wide:
            renamed[node.output[0]] = wide[node.input[0]]
            continue
        elif (
            (node.op_type, node.domain) in ELEMENTWISE
            and any(name in wide for name in node.input)
            and all(name in wide or name in scalars for name in node.input)
        ):
            nodes.append(twin(node, [wide.get(name, name) for name in node.input], "ttsq_2d"))
            wide[node.output[0]] = nodes[-1].output[0]
            moved += 1
        nodes.append(node)
    set_nodes(graph, nodes)
    prune(model)
    return moved


def follow_renames(node: onnx.NodeProto, renamed: dict[str, str]) -> None:
    """Point, in place, the node's inputs at the tensors ``renamed`` maps them to (those of ops an edit dropped)."""
    for position, name in enumerate(node.input):
        node.input[position] = renamed.get(name, name)


def set_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """The graph's nodes, in place, as ``nodes`` in their order (an edit builds the new list while it walks)."""
    del graph.node[:]
    graph.node.extend(nodes)


def twin(node: onnx.NodeProto, inputs: list[str], suffix: str) -> onnx.NodeProto:
    """The same op (type, domain, attributes) on ``inputs``, its name and its one output ``suffix``-ed: a copy of
    ``node`` on other tensors, the original left to whatever reads its output."""
    from onnx import helper

    name = node.name or node.output[0]
    copy = helper.make_node(
        node.op_type, inputs, [f"{node.output[0]}/{suffix}"], name=f"{name}/{suffix}", domain=node.domain or None
    )
    copy.attribute.extend(node.attribute)
    return copy


def scalar_initializers(model: onnx.ModelProto) -> set[str]:
    """The initializers of one value and at most one axis: an operand that changes neither shape nor layout."""
    return {i.name for i in model.graph.initializer if len(i.dims) <= 1 and int(np.prod(i.dims)) == 1}


def prune(model: onnx.ModelProto) -> int:
    """Drop, in place, the nodes nothing reads (graph outputs aside); the number dropped. A graph with subgraphs
    (If, Loop, Scan: what their bodies read is not counted here) is left whole."""
    from onnx import AttributeProto

    graph = model.graph
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for node in graph.node for a in node.attribute):
        return 0
    needed = {output.name for output in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
    dropped = len(graph.node) - len(kept)
    set_nodes(graph, list(reversed(kept)))
    return dropped


def rewrite_file(source: Path, target: Path) -> int:
    """Write ``source`` with its 1-D convolutions as 2-D ones to ``target``; the number rewritten (0: nothing
    written)."""
    import onnx  # only the child process that rewrites needs it

    model = onnx.load(str(source))
    rewritten = conv1d_as_2d(model)
    if rewritten:
        elementwise_in_2d(model)
        onnx.save(model, str(target))
    return rewritten


def _as_2d(node: onnx.NodeProto, prefix: str) -> list[onnx.NodeProto]:
    """Unsqueeze the input to [N, C, 1, T], convolve with a 1 x k kernel, squeeze the height back out."""
    from onnx import helper

    attributes: dict[str, Any] = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if attribute.name in _PER_AXIS:
            value = [1, *value]
        elif attribute.name == "pads":  # [begin, end] -> [top, begin, bottom, end]
            value = [0, value[0], 0, value[1]]
        attributes[attribute.name] = value
    wide_in, wide_out = f"{prefix}/input", f"{prefix}/output"
    return [
        helper.make_node("Unsqueeze", [node.input[0], HEIGHT_AXIS], [wide_in], name=f"{prefix}/unsqueeze"),
        helper.make_node(node.op_type, [wide_in, *node.input[1:]], [wide_out], name=node.name, **attributes),
        helper.make_node("Squeeze", [wide_out, HEIGHT_AXIS], [node.output[0]], name=f"{prefix}/squeeze"),
    ]


def _has_auto_pad(node: onnx.NodeProto) -> bool:
    """SAME_* padding would pad the new height axis too; such a convolution is left as it is."""
    from onnx import helper

    padding = [helper.get_attribute_value(a) for a in node.attribute if a.name == "auto_pad"]
    return any(value not in (b"NOTSET", b"VALID") for value in padding)


def main(argv: list[str]) -> int:
    """``python -m engine.graph SOURCE TARGET``: a child process of ``engine.cpu_cache.cpu_model``."""
    source, target = (Path(a) for a in argv)
    if rewrite_file(source, target):
        return 0
    print("it has no 1-D convolution to rewrite")  # the reason engine.cpu_cache remembers
    return UNCHANGED_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
