"""Piper voices (ONNX) to VitsModel directories for the torch backend: weights renamed, architecture read off the graph.

Piper exports VITS as its authors wrote it (``enc_p.*``, ``dp.*``, ``flow.*``, ``dec.*``). Most weights map onto
transformers' VitsModel by renaming. The exceptions: weight-normed convs and the phoneme embedding lose their names
in the export (they are found through the node that uses them, whose name keeps the module path); the duration
predictor's first flow keeps its ``logs`` only as a folded ``exp(-logs)`` constant; and medium voices decode with
ResBlock2 (see engine.torch.decoder). Conversion runs once per voice file and is cached, never per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EngineError

logger = logging.getLogger(__name__)

PIPER_CONFIG_NAME = "piper.json"
"""The Piper voice config kept beside a converted model: its phoneme map drives the espeak front end."""
CONVERTED_MARKER = "model.safetensors"
LOGS_CONSTANT = "/dp/flows.0/Exp_output_0"
"""The folded ``exp(-logs)`` of the duration predictor's ElementwiseAffine flow."""

Rename = tuple[str, str | Callable[[re.Match[str]], str]]

# Piper (VITS) name -> VitsModel name, applied in order; every key must match one of them.
RENAMES: list[Rename] = [
    (r"^enc_p\.emb\.weight$", "text_encoder.embed_tokens.weight"),
    (r"^enc_p\.encoder\.attn_layers\.(\d+)\.conv_o\.", r"text_encoder.encoder.layers.\1.attention.out_proj."),
    (r"^enc_p\.encoder\.attn_layers\.(\d+)\.conv_([qkv])\.", r"text_encoder.encoder.layers.\1.attention.\2_proj."),
    (r"^enc_p\.encoder\.attn_layers\.(\d+)\.(emb_rel_[kv])$", r"text_encoder.encoder.layers.\1.attention.\2"),
    (r"^enc_p\.encoder\.norm_layers_1\.(\d+)\.gamma$", r"text_encoder.encoder.layers.\1.layer_norm.weight"),
    (r"^enc_p\.encoder\.norm_layers_1\.(\d+)\.beta$", r"text_encoder.encoder.layers.\1.layer_norm.bias"),
    (r"^enc_p\.encoder\.norm_layers_2\.(\d+)\.gamma$", r"text_encoder.encoder.layers.\1.final_layer_norm.weight"),
    (r"^enc_p\.encoder\.norm_layers_2\.(\d+)\.beta$", r"text_encoder.encoder.layers.\1.final_layer_norm.bias"),
    (r"^enc_p\.encoder\.ffn_layers\.(\d+)\.", r"text_encoder.encoder.layers.\1.feed_forward."),
    (r"^enc_p\.proj\.", "text_encoder.project."),
    (r"^dp\.flows\.0\.m$", "duration_predictor.flows.0.translate"),
    (r"^dp\.flows\.0\.logs$", "duration_predictor.flows.0.log_scale"),
    # VITS keeps a Flip between flows (odd indices hold the ConvFlows); VitsModel flips implicitly.
    (r"^dp\.flows\.(\d+)\.(.*)$", lambda m: f"duration_predictor.flows.{(int(m[1]) + 1) // 2}.{_dds(m[2])}"),
    (r"^dp\.(pre|proj)\.", r"duration_predictor.conv_\1."),
    (r"^dp\.convs\.(.*)$", lambda m: f"duration_predictor.conv_dds.{_dds_layer(m[1])}"),
    (r"^dp\.cond\.", "duration_predictor.cond."),
    (r"^flow\.flows\.(\d+)\.(.*)$", lambda m: f"flow.flows.{int(m[1]) // 2}.{_coupling(m[2])}"),
    (r"^dec\.ups\.", "decoder.upsampler."),
    (r"^dec\.", "decoder."),
    (r"^emb_g\.", "embed_speaker."),
]


def _dds_layer(name: str) -> str:
    name = re.sub(r"^convs_sep\.", "convs_dilated.", name)
    name = re.sub(r"^convs_1x1\.", "convs_pointwise.", name)
    return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))


def _dds(name: str) -> str:
    """Inside a ConvFlow: ``pre``/``proj`` are ``conv_pre``/``conv_proj``, ``convs`` the depth-separable block."""
    if name.startswith("convs."):
        return "conv_dds." + _dds_layer(name.removeprefix("convs."))
    return re.sub(r"^(pre|proj)\.", r"conv_\1.", name)


def _coupling(name: str) -> str:
    name = re.sub(r"^(pre|post)\.", r"conv_\1.", name)
    return re.sub(r"^enc\.", "wavenet.", name)


def rename(piper_name: str) -> str:
    """The VitsModel parameter a Piper weight becomes; EngineError for one no rule knows."""
    for pattern, replacement in RENAMES:
        renamed, count = re.subn(pattern, replacement, piper_name)
        if count:
            return renamed
    raise EngineError(f"no VitsModel parameter for Piper weight {piper_name!r}")


# --- reading the ONNX graph ----------------------------------------------------------------------------------------


def read_onnx_weights(model_path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, list[int]]]]:
    """Piper's weights by their VITS names, and each conv's attributes (dilations, strides) by module path."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise EngineError("converting Piper voices needs onnx: pip install 'ttsq[gpu]'") from error
    graph = onnx.load(str(model_path)).graph
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    weights: dict[str, np.ndarray] = {}
    attributes: dict[str, dict[str, list[int]]] = {}
    for node in graph.node:
        path = node.name.strip("/").rpartition("/")[0].replace("/", ".")
        if node.op_type in ("Conv", "ConvTranspose") and node.input[1] in initializers:
            weights[f"{path}.weight"] = initializers[node.input[1]]
            if len(node.input) > 2 and node.input[2] in initializers:
                weights[f"{path}.bias"] = initializers[node.input[2]]
            attributes[path] = {a.name: list(onnx.helper.get_attribute_value(a)) for a in node.attribute if a.ints}
        elif node.op_type == "Gather" and node.input[0] in initializers and path.endswith(("emb", "emb_g")):
            weights[f"{path}.weight"] = initializers[node.input[0]]
    for name, value in initializers.items():
        if re.match(r"^(enc_p|dp|flow|dec|emb_g)\.", name) and name not in weights:
            weights[name] = value
    if LOGS_CONSTANT in initializers:
        weights["dp.flows.0.logs"] = -np.log(initializers[LOGS_CONSTANT]).reshape(-1, 1)
    return weights, attributes


def _count(weights: dict[str, np.ndarray], pattern: str) -> int:
    return sum(1 for name in weights if re.fullmatch(pattern, name))


def _flow_bins(weights: dict[str, np.ndarray]) -> int:
    """A ConvFlow's projection holds widths, heights (bins each) and the inner derivatives (bins - 1)."""
    projections = sorted(name for name in weights if re.fullmatch(r"dp\.flows\.\d+\.proj\.weight", name))
    return int((weights[projections[0]].shape[0] + 1) // 3) if projections else 10


def vits_config_kwargs(
    weights: dict[str, np.ndarray], attributes: dict[str, dict[str, list[int]]], piper: dict[str, Any]
) -> dict[str, Any]:
    """VitsConfig arguments for a Piper voice, read off its weights' shapes and its convs' attributes."""
    vocab_size, hidden_size = weights["enc_p.emb.weight"].shape
    rel = weights["enc_p.encoder.attn_layers.0.emb_rel_k"]
    ffn = weights["enc_p.encoder.ffn_layers.0.conv_1.weight"]
    ups = _count(weights, r"dec\.ups\.\d+\.weight")
    per_stage = _count(weights, r"dec\.resblocks\.\d+\.convs1?\.0\.weight") // ups
    resblock = "2" if "dec.resblocks.0.convs.0.weight" in weights else "1"
    convs = "convs" if resblock == "2" else "convs1"
    steps = _count(weights, rf"dec\.resblocks\.0\.{convs}\.\d+\.weight")
    wavenet_dilation = attributes.get("flow.flows.0.enc.in_layers.1", {}).get("dilations", [1])[0]
    conv_flows = _count(weights, r"dp\.flows\.\d+\.pre\.weight")
    inference = piper.get("inference") or {}
    if weights["dp.pre.weight"].shape[0] != hidden_size:
        raise EngineError("this Piper voice's duration predictor is wider than its encoder; VitsModel cannot hold it")
    return {
        "vocab_size": int(vocab_size),
        "hidden_size": int(hidden_size),
        "num_hidden_layers": _count(weights, r"enc_p\.encoder\.attn_layers\.\d+\.conv_q\.weight"),
        "num_attention_heads": int(hidden_size // rel.shape[-1]),
        "window_size": int((rel.shape[1] - 1) // 2),
        "ffn_dim": int(ffn.shape[0]),
        "ffn_kernel_size": int(ffn.shape[2]),
        "flow_size": int(weights["enc_p.proj.weight"].shape[0] // 2),
        "use_stochastic_duration_prediction": "dp.flows.0.m" in weights,
        # VITS' duration predictor has one more ConvFlow than inference uses; the export drops it.
        "duration_predictor_num_flows": conv_flows + 1,
        "duration_predictor_flow_bins": _flow_bins(weights),
        "duration_predictor_kernel_size": int(weights["dp.convs.convs_sep.0.weight"].shape[2]),
        "depth_separable_num_layers": _count(weights, r"dp\.convs\.convs_sep\.\d+\.weight"),
        "prior_encoder_num_flows": _count(weights, r"flow\.flows\.\d+\.pre\.weight"),
        "prior_encoder_num_wavenet_layers": _count(weights, r"flow\.flows\.0\.enc\.in_layers\.\d+\.weight"),
        "wavenet_kernel_size": int(weights["flow.flows.0.enc.in_layers.0.weight"].shape[2]),
        "wavenet_dilation_rate": int(wavenet_dilation),
        "upsample_initial_channel": int(weights["dec.conv_pre.weight"].shape[0]),
        "upsample_rates": [attributes[f"dec.ups.{i}"]["strides"][0] for i in range(ups)],
        "upsample_kernel_sizes": [int(weights[f"dec.ups.{i}.weight"].shape[2]) for i in range(ups)],
        "resblock_kernel_sizes": [
            int(weights[f"dec.resblocks.{j}.{convs}.0.weight"].shape[2]) for j in range(per_stage)
        ],
        "resblock_dilation_sizes": [
            [attributes[f"dec.resblocks.{j}.{convs}.{k}"]["dilations"][0] for k in range(steps)]
            for j in range(per_stage)
        ],
        "resblock": resblock,
        "num_speakers": int(piper.get("num_speakers", 1)),
        "speaker_embedding_size": int(weights["emb_g.weight"].shape[1]) if "emb_g.weight" in weights else 0,
        "sampling_rate": int(piper["audio"]["sample_rate"]),
        "noise_scale": float(inference.get("noise_scale", 0.667)),
        "noise_scale_duration": float(inference.get("noise_w", 0.8)),
        "speaking_rate": 1.0 / float(inference.get("length_scale", 1.0)),
        "spectrogram_bins": 1,  # only the posterior encoder (training) reads spectrograms
    }


# --- conversion ----------------------------------------------------------------------------------------------------


def convert_piper(model_path: Path, config_path: Path, out_dir: Path) -> Path:
    """Write a VitsModel directory (config.json, model.safetensors, piper.json) for one Piper voice."""
    import torch
    from transformers import VitsConfig

    from .vits import BatchedVits, quiet_transformers

    quiet_transformers()
    piper = json.loads(config_path.read_text(encoding="utf-8"))
    weights, attributes = read_onnx_weights(model_path)
    model = BatchedVits(VitsConfig(**vits_config_kwargs(weights, attributes, piper)))
    targets = dict(model.named_modules())
    expected = set(model.state_dict())
    written: set[str] = set()
    with torch.no_grad():
        for piper_name, value in weights.items():
            name = rename(piper_name)
            module_name, _, attribute = name.rpartition(".")
            module = targets[module_name]
            tensor = torch.from_numpy(np.array(value, dtype=np.float32))
            if tensor.ndim == 3 and getattr(module, attribute).ndim == 2:
                tensor = tensor.squeeze(-1)  # VITS' 1x1 attention convs are VitsModel's linear projections
            # A weight-normed conv takes its plain weight through the parametrization's right inverse.
            if _parametrized(module, attribute):
                setattr(module, attribute, tensor)
            else:
                getattr(module, attribute).copy_(tensor)
            written.update(k for k in expected if k == name or k.startswith(f"{name}.") or _weight_norm_key(k, name))
    missing = sorted(k for k in expected - written if not _unused_at_inference(k))
    if missing:
        raise EngineError(f"{model_path.name}: no Piper weights for {len(missing)} parameters, e.g. {missing[:3]}")
    model.save_pretrained(out_dir)
    shutil.copyfile(config_path, out_dir / PIPER_CONFIG_NAME)
    return out_dir


def _parametrized(module: object, attribute: str) -> bool:
    from torch.nn.utils import parametrize

    return parametrize.is_parametrized(module, attribute)  # type: ignore[arg-type]


def _weight_norm_key(key: str, name: str) -> bool:
    module, _, attribute = name.rpartition(".")
    return key.startswith(f"{module}.parametrizations.{attribute}.")


def _unused_at_inference(key: str) -> bool:
    """The duration predictor's training-only parts, and the ConvFlow that reverse inference skips."""
    return bool(re.match(r"duration_predictor\.(post_|flows\.1\.)", key))


CONVERTER_VERSION = 1
"""Part of the cache key: raise it whenever a change here changes the converted weights or config."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_voice(model_path: Path, config_path: Path, cache_root: Path) -> Path:
    """The converted directory for a Piper voice under ``cache_root/torch``, converting once (keyed by content)."""
    inputs = f"{CONVERTER_VERSION}:{file_digest(model_path)}:{file_digest(config_path)}"
    key = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    target = cache_root / "torch" / f"{model_path.stem}-{key}"
    if (target / CONVERTED_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Converted beside the target, then renamed into place: a second process sees the whole directory or none.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        convert_piper(model_path, config_path, staging)
        os.replace(staging, target)
    except OSError:
        if not (target / CONVERTED_MARKER).is_file():
            raise
        logger.info("%s was converted by another process meanwhile", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("converted %s for the torch backend into %s", model_path.name, target)
    return target
