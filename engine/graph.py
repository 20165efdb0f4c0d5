"""A Piper model's 1-D convolutions rewritten as 2-D ones, so onnxruntime's blocked CPU kernels run them.

Piper's decoder (HiFi-GAN) and flows are 1-D convolutions over time, about two thirds of a sentence's CPU time.
onnxruntime's CPU provider runs a 1-D Conv as im2col and a matrix product, but a 2-D one on its blocked (NCHWc)
direct kernels. The same convolution as a 1 x k kernel over a [batch, channels, 1, time] tensor is the same sums in
another order: the audio differs from the model's own by float rounding (under 1e-4, within an int16 step), and a
sentence takes ~20% less CPU (bench/engine.py, issue 12). Everything else in the graph is left as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import EngineError

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

CONV_OPS = ("Conv", "ConvTranspose")
HEIGHT_AXIS = "ttsq_height_axis"
"""The initializer both inserted Unsqueeze (before each convolution) and Squeeze (after it) take as their axes."""
REWRITE_VERSION = "conv2d-v1"
"""Part of the cached file's name: a change to the rewrite makes a new file rather than reusing an old one."""
UNCHANGED_EXIT = 3
"""The child's exit status for a model with nothing to rewrite."""
_ROOT = Path(__file__).resolve().parent.parent
"""Where ``engine`` is importable from, for the child process."""
_PER_AXIS = ("kernel_shape", "strides", "dilations", "output_padding", "output_shape")


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
        del graph.node[:]
        graph.node.extend(nodes)
    return rewritten // 2


def cpu_model(model_path: Path, cache_dir: Path) -> Path:
    """The model to run on the CPU: its rewrite in ``cache_dir/onnx``, made once per model file (by content), or the
    model itself when it has no 1-D convolution to rewrite. The rewrite runs in a child process, so a worker never
    holds the model's protobuf (several times the model's size) in its own memory."""
    target = cache_dir / "onnx" / f"{model_path.stem}.{_digest(model_path)}.{REWRITE_VERSION}.onnx"
    unchanged = target.with_suffix(".unchanged")
    if target.is_file():
        return target
    if unchanged.is_file():
        return model_path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only cache the image did not bake the rewrite into: slower, not broken
        logger.warning("%s: runs as it is, without the CPU rewrite: cannot write %s (%s)", model_path, target, error)
        return model_path
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    command = [sys.executable, "-m", "engine.graph", str(model_path), str(partial)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=_ROOT)
    if done.returncode not in (0, UNCHANGED_EXIT):
        partial.unlink(missing_ok=True)
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EngineError(f"could not rewrite {model_path} for the CPU: {reason}")
    if done.returncode == UNCHANGED_EXIT:
        unchanged.touch()
        return model_path
    partial.replace(target)  # atomic: another worker sharing the cache sees the whole file or none
    logger.info("%s: 1-D convolutions rewritten as 2-D into %s", model_path, target)
    return target


def rewrite_file(source: Path, target: Path) -> int:
    """Write ``source`` with its 1-D convolutions as 2-D ones to ``target``; the number rewritten (0: nothing
    written)."""
    import onnx  # only the child process that rewrites needs it

    model = onnx.load(str(source))
    rewritten = conv1d_as_2d(model)
    if rewritten:
        onnx.save(model, str(target))
    return rewritten


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


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
    """``python -m engine.graph SOURCE TARGET``: the child process of ``cpu_model``."""
    source, target = (Path(a) for a in argv)
    return 0 if rewrite_file(source, target) else UNCHANGED_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
