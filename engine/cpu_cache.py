"""The model file onnxruntime runs on the CPU, made once per model file (by content) into the cache.

Each step that makes it (engine/graph.py, then engine/blocked.py) runs as ``python -m MODULE SOURCE TARGET`` in a
child process, so a worker never holds a model's protobuf (several times the model's size) in its own memory; a
step that changes nothing is remembered as such, and another worker sharing the cache sees a whole file or none.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .blocked import VERSION, hardware_tag
from .errors import EngineError
from .graph import REWRITE_VERSION, UNCHANGED_EXIT

logger = logging.getLogger(__name__)

_ROOT = Path(__file__).resolve().parent.parent
"""Where ``engine`` is importable from, for the child processes."""
MADE_MODE = 0o644
"""A made model's permissions: as the downloads beside it (a voice's weights are read by every worker's user)."""
CHILD_TIMEOUT_S = 600
"""The most a step may take (the 2-D rewrite of a voice takes ~3 s, the blocked one ~2): a hung one fails the start
rather than holding it for ever."""


def cpu_model(model_path: Path, cache_dir: Path) -> Path:
    """The model to run on the CPU, made once per model file (by content) into ``cache_dir/onnx``: its 1-D
    convolutions as 2-D ones, then (engine/blocked.py, once per machine) kept in onnxruntime's blocked layout across
    its elementwise ops; each step left out where it changes nothing."""
    stem = f"{model_path.stem}.{_digest(model_path)}"
    wide = _made_once(model_path, cache_dir / "onnx" / f"{stem}.{REWRITE_VERSION}.onnx", "engine.graph")
    # Named after the file it is made from, so a new 2-D rewrite makes a new one too.
    base = wide.stem if wide != model_path else stem
    try:
        return _made_once(wide, cache_dir / "onnx" / f"{base}.{VERSION}.{hardware_tag()}.onnx", "engine.blocked")
    except EngineError as error:  # the 2-D model runs; this step only saves a few percent
        logger.warning("%s: runs without the blocked layout: %s", model_path, error)
        return wide


def _made_once(source: Path, target: Path, module: str) -> Path:
    """``target``, made from ``source`` by ``python -m module SOURCE TARGET`` unless it exists; ``source`` when that
    child finds nothing to change (remembered beside ``target``, with the child's reason) or the cache cannot be
    written (a read-only cache the image did not bake this into: slower, not broken)."""
    unchanged = target.with_suffix(".unchanged")
    if target.is_file():
        return target
    if unchanged.is_file():
        logger.info("%s: runs as it is: %s", source, unchanged.read_text(encoding="utf-8").strip())
        return source
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        writable = os.access(target.parent, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        logger.warning("%s: runs as it is, without the CPU rewrite: cannot write %s", source, target.parent)
        return source
    descriptor, name = tempfile.mkstemp(prefix=f"{target.name}.", suffix=".partial", dir=target.parent)
    os.close(descriptor)
    partial = Path(name)  # a name of its own: workers sharing the cache (in containers, often one pid) never mix
    try:
        command = [sys.executable, "-m", module, str(source), str(partial)]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=_ROOT, timeout=CHILD_TIMEOUT_S)
        if done.returncode == UNCHANGED_EXIT:
            reason = (done.stdout.strip().splitlines() or ["nothing to change"])[-1]
            logger.info("%s: runs as it is: %s", source, reason)
            unchanged.write_text(reason + "\n", encoding="utf-8")
            return source
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise EngineError(f"could not rewrite {source} for the CPU: {reason}")
        # mkstemp's file is its user's alone; a cache baked by root into an image is read by the service user.
        partial.chmod(MADE_MODE)
        partial.replace(target)  # atomic: another worker sharing the cache sees the whole file or none
    except subprocess.TimeoutExpired as error:
        raise EngineError(f"could not rewrite {source} for the CPU: took over {CHILD_TIMEOUT_S} s") from error
    except OSError as error:  # the cache went away or read-only meanwhile
        logger.warning("%s: runs as it is, without the CPU rewrite: cannot write %s (%s)", source, target, error)
        return source
    finally:
        partial.unlink(missing_ok=True)
    logger.info("%s: rewritten for the CPU into %s", source, target)
    return target


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
