"""MMS-TTS voices (transformers' VitsModel directories) through a file:// source: characters, not phonemes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pytest

from engine import TTS
from engine.options import Batching, SynthesisOptions, TorchOptions

if TYPE_CHECKING:
    from engine.torch.voice import TorchVoice

torch = pytest.importorskip("torch", reason="the torch backend is the optional 'gpu' extra")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-3
SAMPLE_RATE = 16_000
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz '")


def _voice(tts: TTS, name: str) -> TorchVoice:
    return cast("TorchVoice", tts.speakers[name].voice)


@pytest.fixture(scope="module")
def mms_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random VitsModel with a character tokenizer, saved the way MMS-TTS checkpoints are."""
    directory = tmp_path_factory.mktemp("mms-tiny")
    vocab = {"_": 0, **{ch: i + 1 for i, ch in enumerate(CHARACTERS)}}
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = transformers.VitsTokenizer(
        str(directory / "vocab.json"), pad_token="_", unk_token="_", phonemize=False, add_blank=True
    )
    tokenizer.save_pretrained(str(directory))
    config = transformers.VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=8,
        spectrogram_bins=9,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3], [1, 3]],
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=2,
        sampling_rate=SAMPLE_RATE,
    )
    torch.manual_seed(0)
    transformers.VitsModel(config).eval().save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def mms_tts(mms_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TTS:
    options = TorchOptions(batching=Batching(batch_size=3))
    tts = TTS(backend="torch", cache_dir=tmp_path_factory.mktemp("cache"), torch_options=options)
    return tts.load("mms", mms_dir.as_uri()).prepare(warmup=True)


def test_mms_directory_loads_through_a_file_source(mms_tts: TTS, mms_dir: Path) -> None:
    speaker = mms_tts.speakers["mms"]
    assert speaker.sample_rate == SAMPLE_RATE
    assert _voice(mms_tts, "mms").input_kind == "characters"
    assert mms_tts.info["mms"].model_path == mms_dir
    audio = speaker.generate("Hello world. It's a small voice!", SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0))
    assert audio.sample_rate == SAMPLE_RATE and len(audio.samples) > 0


def test_mms_input_is_the_tokenizers_characters(mms_tts: TTS) -> None:
    """Characters through the voice's own tokenizer (blanks between them), one list per sentence; no espeak."""
    voice = _voice(mms_tts, "mms")
    assert voice.sentence_ids("Ab. Ba!") == [[0, 1, 0, 2, 0], [0, 2, 0, 1, 0]]


def test_mms_batch_equals_one_by_one(mms_tts: TTS) -> None:
    """VitsModel's own ResBlock1 decoder, masked, keeps batches equal to single runs too."""
    voice = _voice(mms_tts, "mms")
    options = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    sentences = voice.sentence_ids("A short one. Then a rather longer sentence follows it. Mid length here.")
    batched = voice.infer_batch(sentences, options)
    for ids, audio in zip(sentences, batched, strict=True):
        alone = voice.infer(ids, options)
        assert len(alone) == len(audio)
        assert float(np.max(np.abs(alone - audio), initial=0.0)) < TOLERANCE


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor on a CPU takes minutes (passes there too)")
def test_compiled_model_matches_eager(mms_dir: Path, tmp_path: Path) -> None:
    """prepare(warmup=True) compiles every bucket once; compiled batches give eager audio."""
    batching = Batching(batch_size=2, length_buckets=(32, 64))
    compile_options = TorchOptions(batching, compile=True)
    compiled = TTS(device="cuda", backend="torch", cache_dir=tmp_path, torch_options=compile_options)
    voice = _voice(compiled.load("mms", mms_dir.as_uri()).prepare(warmup=True), "mms")
    assert voice.compiled
    eager_options = TorchOptions(batching, compile=False)
    eager_tts = TTS(device="cuda", backend="torch", cache_dir=tmp_path, torch_options=eager_options)
    eager = _voice(eager_tts.load("mms", mms_dir.as_uri()).prepare(warmup=False), "mms")
    options = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
    sentences = voice.sentence_ids("A short one. Then a rather longer sentence follows it.")
    for ids, audio in zip(sentences, voice.infer_batch(sentences, options), strict=True):
        reference = eager.infer(ids, options)
        assert len(reference) == len(audio)
        assert float(np.max(np.abs(reference - audio), initial=0.0)) < TOLERANCE
