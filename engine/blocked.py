"""A CPU model kept in onnxruntime's blocked (NCHWc) layout across its elementwise ops, between convolutions.

onnxruntime's CPU provider runs a 2-D convolution on a blocked layout (channels in blocks of the vector width) and
reorders a tensor into it before and out of it after, unless the next op takes the blocked tensor too. Its optimizer
lets Add, Mul, Relu, Sigmoid, Tanh and a few more take it, but not LeakyRelu, and not an Add with an operand from a
ConvTranspose. Piper's HiFi-GAN decoder is convolutions between exactly those, at the audio's rate: a sentence spent
~40 ms of ~380 in reorders (issue 12, the ORT profiler, one thread).

Here onnxruntime writes the model it optimized (its layout, its reorders) and the elementwise ops between reorders
then run on the blocked tensors themselves (an elementwise op does the same to each value in any layout, and the
padding channels are never read back); a residual Add goes into the convolution before it (its ``Sum`` input, the
same additions). The reorders left are the ones that bound the region. The optimized model is specific to the
machine (the block is the vector width: onnxruntime itself warns so), so its file name carries the machine's
``hardware_tag`` and it is only kept if it speaks as the model it came from does, on this machine.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import EngineError
from .graph import ELEMENTWISE, UNCHANGED_EXIT, follow_renames, prune, scalar_initializers, set_nodes, twin

if TYPE_CHECKING:
    import onnx
    import onnxruntime

VERSION = "blocked-v1"
"""Part of the cached file's name: a change to the edit makes a new file rather than reusing an old one."""
NCHWC = "com.microsoft.nchwc"
"""The domain of onnxruntime's blocked-layout ops (ReorderInput, ReorderOutput, Conv)."""
SAME_AUDIO = 1e-5
"""The most a sample of the edited model may differ from the model's own (an int16 step is 3e-5)."""
CHECK_IDS = 40
"""Phoneme ids of the sentence the two models are compared on."""


class NothingToGain(EngineError):
    """The model is better run as it is here; the message says why."""


def hardware_tag() -> str:
    """What the optimized model depends on: onnxruntime's version, the machine and the CPU's instruction sets."""
    import onnxruntime

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpu_flags(cpuinfo.read())
    except OSError:  # not Linux: the processor's name stands for its flags
        flags = platform.processor()
    key = f"{onnxruntime.__version__}|{platform.machine()}|{flags}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def cpu_flags(cpuinfo: str) -> str:
    """The first processor's instruction sets from ``/proc/cpuinfo``: ``flags`` on x86, ``Features`` on ARM."""
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return " ".join(sorted(value.split()))
    return ""


def keep_blocked(model: onnx.ModelProto) -> int:
    """Move, in place, the elementwise ops whose operands leave the blocked layout just for them onto the blocked
    tensors; the number moved. An operand from a ConvTranspose (never blocked) is reordered in once, right where it
    is made, and the reorders no op needs any more are dropped. Two operands of the same channels are taken to be of
    one shape (in Piper's decoder, a convolution's output and its residual): the model onnxruntime writes carries
    no shapes to show it, and a broadcast between them would compute something else, which ``build`` refuses."""
    from onnx import helper

    graph = model.graph
    scalars = scalar_initializers(model)
    producers = {output: node for node in graph.node for output in node.output}
    blocked: dict[str, tuple[str, int]] = {}  # a tensor -> its blocked twin and its channels
    for node in graph.node:
        if (node.op_type, node.domain) == ("ReorderOutput", NCHWC) and not _channels_last(node):
            channels = next(a.i for a in node.attribute if a.name == "channels")
            blocked[node.output[0]] = (node.input[0], channels)
    renamed: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    moved = 0
    for node in graph.node:
        follow_renames(node, renamed)
        reorders_in = (node.op_type, node.domain) == ("ReorderInput", NCHWC) and not _channels_last(node)
        if reorders_in and node.input[0] in blocked:  # the tensor is blocked already
            renamed[node.output[0]] = blocked[node.input[0]][0]
            continue
        operands = [name for name in node.input if name not in scalars]
        channels = {blocked[name][1] for name in operands if name in blocked}
        movable = (node.op_type, node.domain) in ELEMENTWISE and len(channels) == 1
        if not movable or not all(name in blocked or _from_conv_transpose(producers.get(name)) for name in operands):
            nodes.append(node)
            continue
        (count,) = channels
        for name in operands:
            if name not in blocked:  # reordered where it is made, so a convolution after it can add it (fuse_sums)
                at = next(index for index, made in enumerate(nodes) if made is producers[name])
                nodes.insert(at + 1, helper.make_node("ReorderInput", [name], [f"{name}/blocked"], domain=NCHWC))
                blocked[name] = (f"{name}/blocked", count)
        moved_op = twin(node, [blocked[name][0] if name in blocked else name for name in node.input], "blocked")
        # The plain tensor stays available to whatever else reads it; unread, it is pruned.
        plain = helper.make_node("ReorderOutput", [moved_op.output[0]], [node.output[0]], domain=NCHWC, channels=count)
        nodes.extend((moved_op, plain))
        blocked[node.output[0]] = (moved_op.output[0], count)
        moved += 1
    set_nodes(graph, nodes)
    prune(model)
    return moved


def fuse_sums(model: onnx.ModelProto) -> int:
    """Fold, in place, each blocked Add into the blocked convolution that makes one of its operands (onnxruntime's
    ``Sum`` input: the convolution adds it to its output) where that convolution's output is read by the Add alone
    (with no activation, which would come after the sum) and the other operand is blocked and made before it; the
    number folded."""
    graph = model.graph
    blocked = blocked_tensors(model)
    made_at = {output: index for index, node in enumerate(graph.node) for output in node.output}
    producers = {output: node for node in graph.node for output in node.output}
    reads = Counter(name for node in graph.node for name in node.input)
    outputs = {output.name for output in graph.output}
    folded: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type != "Add" or node.domain != "" or len(node.input) != 2:
            continue
        for own, other in (tuple(node.input), tuple(reversed(node.input))):
            conv = producers.get(own)
            if (
                conv is None
                or (conv.op_type, conv.domain) != ("Conv", NCHWC)
                or len(conv.input) > 3
                or any(a.name == "activation" for a in conv.attribute)
                or reads[own] != 1
                or own in outputs
                or other not in blocked
                or made_at.get(other, -1) > made_at[own]
            ):
                continue
            conv.input.extend([""] * (3 - len(conv.input)) + [other])
            conv.output[0] = node.output[0]
            folded.append(node)
            break
    for node in folded:
        graph.node.remove(node)
    return len(folded)


def blocked_tensors(model: onnx.ModelProto) -> set[str]:
    """The tensors in the blocked layout: made by one of onnxruntime's blocked ops (but a ReorderOutput, which
    leaves the layout), or by an op reading one."""
    found: set[str] = set()
    for node in model.graph.node:
        if node.op_type != "ReorderOutput" and (node.domain == NCHWC or any(name in found for name in node.input)):
            found.update(node.output)
    return found


def build(source: Path, target: Path) -> int:
    """Write ``source`` as onnxruntime optimizes it on this machine, kept blocked, to ``target``; the number of ops
    moved or folded. Raises ``NothingToGain`` (and writes nothing) where nothing moves or the audio would differ."""
    import onnx

    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:  # beside target: a rename, not a copy
        optimized = Path(scratch) / "optimized.onnx"
        _session(source, optimized)
        model = onnx.load(str(optimized))
        edited = keep_blocked(model)
        if not edited:
            raise NothingToGain("onnxruntime's blocked layout has nothing to go on across here")
        edited += fuse_sums(model)
        onnx.save(model, str(optimized))
        difference = audio_difference(source, optimized)
        if difference > SAME_AUDIO:
            raise NothingToGain(f"kept blocked it speaks otherwise (by {difference:.2g}, over {SAME_AUDIO:g})")
        optimized.replace(target)
    return edited


def audio_difference(source: Path, edited: Path) -> float:
    """The most a sample of ``edited`` differs from ``source``'s for one sentence with no noise (both Piper
    models); ``NothingToGain`` for a model that does not take a Piper voice's inputs, to check it with."""
    first = _session(source)
    names = {i.name for i in first.get_inputs()}
    if not {"input", "input_lengths", "scales"} <= names:
        raise NothingToGain("not a Piper voice (no phoneme ids to check the edit with)")
    feeds = {
        "input": np.arange(1, CHECK_IDS + 1, dtype=np.int64)[np.newaxis, :],
        "input_lengths": np.array([CHECK_IDS], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),  # no noise: the same input, the same audio
    }
    if "sid" in names:
        feeds["sid"] = np.array([0], dtype=np.int64)
    theirs, ours = first.run(None, feeds)[0], _session(edited).run(None, feeds)[0]
    return float(np.abs(theirs - ours).max()) if theirs.shape == ours.shape else float("inf")


def _channels_last(node: onnx.NodeProto) -> bool:
    """A reorder to or from NHWC rather than the plain NCHW layout: not the blocked twin of a plain tensor."""
    return any(a.name == "channels_last" and a.i for a in node.attribute)


def _from_conv_transpose(node: onnx.NodeProto | None) -> bool:
    """A ConvTranspose's output: onnxruntime never blocks one; reordered in, it can meet a blocked operand."""
    return node is not None and node.op_type == "ConvTranspose"


def _session(model: Path, optimized: Path | None = None) -> onnxruntime.InferenceSession:
    """A one-thread session at onnxruntime's full optimization (the worker's own level), writing what it optimized
    to ``optimized`` if given."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # not its warning that the written model is this machine's: that is the point
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def main(argv: list[str]) -> int:
    """``python -m engine.blocked SOURCE TARGET``: a child process of ``engine.cpu_cache.cpu_model``; where nothing
    is written, the reason is its last line of output."""
    source, target = (Path(a) for a in argv)
    try:
        build(source, target)
    except NothingToGain as reason:
        print(reason)
        return UNCHANGED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
