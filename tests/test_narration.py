"""Long texts: segments that join seamlessly, pauses, formats, marks, cancellation, limits."""

from __future__ import annotations

import io
import itertools
import json

import numpy as np
import pytest
import soundfile
from conftest import run_to_end

from engine.audio import open_audio_writer
from engine.narration import NarrationChunk, PauseOptions, narrate, trim_silence
from engine.options import SynthesisOptions
from engine.text.split import split_text

DETERMINISTIC = SynthesisOptions(noise_scale=0.0, noise_w_scale=0.0)

BOOK = """Chapter One

The rain had not stopped for three days. Mrs. Alder watched it from the kitchen window, counting the drops.

"It will clear by Tuesday," her husband said. He was wrong, as he often was about the weather.

Chapter Two

On the fourth day the river rose. By noon it had reached the garden wall, and by evening the road was gone.
"""


def narration_of(tts, text: str, pauses: PauseOptions) -> np.ndarray:  # type: ignore[no-untyped-def]
    chunks = [NarrationChunk(c.spoken, c.paragraph, c.heading) for c in split_text(text)]
    pieces = narrate(tts.speakers["joe"], chunks, options=pauses, synthesis=DETERMINISTIC)
    return np.concatenate([p.samples for p in pieces])


def test_trim_silence_keeps_a_margin() -> None:
    samples = np.concatenate([np.zeros(1000), np.full(500, 5000), np.zeros(2000)]).astype(np.int16)
    trimmed = trim_silence(samples, 1000, keep_s=0.01)
    assert len(trimmed) == 500 + 2 * 10
    assert len(trim_silence(np.zeros(100, dtype=np.int16), 1000, 0.01)) == 0


def test_pauses_between_sentences_and_paragraphs(tts) -> None:  # type: ignore[no-untyped-def]
    chunks = [
        NarrationChunk("One sentence.", 0),
        NarrationChunk("Another one.", 0),
        NarrationChunk("New paragraph.", 1),
    ]
    options = PauseOptions(sentence_silence_s=0.5, paragraph_silence_s=1.5)
    pieces = list(narrate(tts.speakers["joe"], chunks, options=options, synthesis=DETERMINISTIC))
    rate = tts.speakers["joe"].sample_rate
    leading = [int(np.argmax(np.abs(p.samples.astype(np.int32)) > 300)) / rate for p in pieces]
    assert leading[0] < 0.1
    assert 0.5 <= leading[1] < 0.6
    assert 1.5 <= leading[2] < 1.6
    assert [p.mark.paragraph if p.mark else None for p in pieces] == [0, None, 1]
    assert pieces[2].mark and pieces[2].mark.start_s == pytest.approx(
        (len(pieces[0].samples) + len(pieces[1].samples)) / rate + 1.5
    )


def test_rf64_past_4_gb() -> None:
    assert open_audio_writer(io.BytesIO(), 22050, "wav", total_frames=3_000_000_000).format == "RF64"
    assert open_audio_writer(io.BytesIO(), 22050, "wav", total_frames=1_000).format == "WAV"


def job_env(config_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**config_env, "TTSQ_SEGMENT_CHARS": "120", "TTSQ_MAX_TEXT_CHARS": "100000", **extra}


def make_stack(env: dict[str, str], tts):  # type: ignore[no-untyped-def]
    from api import create_app
    from ttsq.config import load_config
    from worker.main import build_runtime

    config = load_config(env)
    return create_app(config).test_client(), build_runtime(config, tts=tts)


def test_segmented_job_equals_one_uninterrupted_narration(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    body = {"text": BOOK, "noise_scale": 0, "noise_w_scale": 0, "marks": True}
    job_id = client.post("/v1/jobs", json=body).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["progress"]["chunks_done"] == job["progress"]["chunks_total"] == len(split_text(BOOK))
    data, _ = soundfile.read(io.BytesIO(client.get(job["result"]["url"]).data), dtype="int16")
    expected = narration_of(
        tts, BOOK, PauseOptions(runtime.config.sentence_silence_s, runtime.config.paragraph_silence_s)
    )
    np.testing.assert_array_equal(data, expected)  # no segment missing, none twice, pauses where they belong
    marks = job["result"]["marks"]
    assert [m["paragraph"] for m in marks] == sorted({c.paragraph for c in split_text(BOOK)})
    assert [m["heading"] for m in marks][:2] == [True, False]
    assert all(b["start_s"] > a["start_s"] for a, b in itertools.pairwise(marks))
    assert not runtime.plans.has_plan(job_id)  # segments and plan are gone
    assert sorted(p.name for p in runtime.storage.root.iterdir()) == [f"{job_id}.{e}" for e in ("srt", "vtt", "wav")]


@pytest.mark.parametrize("fmt", ["flac", "ogg", "mp3"])
def test_formats(config_env, tts, fmt: str) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK, "format": fmt}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    response = client.get(job["result"]["url"])
    assert response.mimetype == {"flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}[fmt]
    info = soundfile.info(io.BytesIO(response.data))
    assert info.samplerate == 22050
    assert info.duration == pytest.approx(job["result"]["duration_s"], abs=0.2)


def test_progress_reports_an_eta_while_running(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    seen = []
    original = runtime.store.set_progress

    def spy(job: str, token: str, progress) -> bool:  # type: ignore[no-untyped-def]
        seen.append(progress)
        return original(job, token, progress)  # type: ignore[no-any-return]

    monkeypatch.setattr(runtime.store, "set_progress", spy)
    monkeypatch.setattr("worker.segments.PROGRESS_INTERVAL_S", 0.0)  # every sentence, not twice a second
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    run_to_end(runtime, job_id)
    assert seen[0].eta_s is not None and seen[0].eta_s > 0
    done = [p.chunks_done for p in seen]
    assert done == sorted(set(done)) and done[0] == 1  # each segment's last sentence goes with the segment's end
    final = runtime.store.get(job_id).progress
    assert final.eta_s == 0 and final.chunks_done == final.chunks_total


def test_cancel_a_queued_job(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 202 and response.get_json()["status"] == "canceled"
    assert run_to_end(runtime, job_id) == "canceled"
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409


def test_cancel_a_running_job_between_sentences(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    original = runtime.store.set_progress

    canceled_at: list[int] = []

    def cancel_on_third(job: str, token: str, progress) -> bool:  # type: ignore[no-untyped-def]
        written = original(job, token, progress)
        if progress.chunks_done >= 3 and not canceled_at:
            canceled_at.append(progress.chunks_done)
            assert client.post(f"/v1/jobs/{job}/cancel").status_code == 202
        return written

    monkeypatch.setattr(runtime.store, "set_progress", cancel_on_third)
    monkeypatch.setattr("worker.segments.PROGRESS_INTERVAL_S", 0.0)
    assert run_to_end(runtime, job_id) == "canceled"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "canceled" and job["progress"]["chunks_done"] == canceled_at[0]
    assert list(runtime.storage.root.iterdir()) == []  # partial segments removed
    assert not runtime.plans.has_plan(job_id)
    assert runtime.tts.speakers["joe"].syntheses.held == 0  # the speaker is free


def test_cancel_unknown_and_finished_jobs(client, runtime) -> None:  # type: ignore[no-untyped-def]
    assert client.delete("/v1/jobs/" + "0" * 32).get_json()["error"]["code"] == "job_not_found"
    job_id = client.post("/v1/jobs", json={"text": "Hi."}).get_json()["id"]
    run_to_end(runtime, job_id)
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "job_finished"


def test_audio_limit_fails_the_job(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env, TTSQ_MAX_AUDIO_S="5"), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    error = client.get(f"/v1/jobs/{job_id}").get_json()["error"]
    assert error["code"] == "audio_too_long" and "TTSQ_MAX_AUDIO_S" in error["message"]
    assert not runtime.storage.root.exists() or list(runtime.storage.root.iterdir()) == []


def test_a_text_sure_to_pass_the_audio_limit_fails_before_synthesis(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Regression (issue 17): a full-size text failed audio_too_long only after hours of synthesis; the plan knows."""
    client, runtime = make_stack(job_env(config_env, TTSQ_MAX_AUDIO_S="10"), tts)  # BOOK makes ~25 s
    spoken: list[str] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        spoken.append("synthesized")
        return iter(())

    monkeypatch.setattr(runtime.tts.speakers["joe"], "stream_chunks", spy)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["error"]["code"] == "audio_too_long" and "TTSQ_MAX_AUDIO_S" in job["error"]["message"]
    assert job["progress"]["chunks_done"] == 0 and spoken == []  # nothing was synthesized


def test_the_audio_limit_still_holds_when_the_estimate_is_short(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import worker.segments

    monkeypatch.setattr(worker.segments, "FAST_SPOKEN_CHARS_PER_S", 1e9)  # the estimate lets everything through
    monkeypatch.setattr(worker.segments, "PROGRESS_INTERVAL_S", 0.0)
    client, runtime = make_stack(job_env(config_env, TTSQ_MAX_AUDIO_S="5"), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["error"]["code"] == "audio_too_long" and job["progress"]["chunks_done"] > 0
    assert list(runtime.storage.root.iterdir()) == []


def test_no_segment_is_recorded_twice(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    from worker.synthesis import run_job

    assert run_job(runtime, job_id) == "continued"  # the plan and segment 0
    record = runtime.plans.record(job_id, 0)
    runtime.store.acquire_lock(job_id, "me", 30)
    assert not runtime.plans.finish_segment(job_id, "me", 0, record)  # index 0 is taken
    assert runtime.plans.done_count(job_id) == 1
    assert json.loads(runtime.store.redis.lindex(f"{runtime.config.key_prefix}job:{job_id}:done", 0))


def utterances(samples: np.ndarray, rate: int, min_gap_s: float, threshold: int = 300) -> list[np.ndarray]:
    """Cut audio where it stays below ``threshold`` for at least ``min_gap_s``: what a listener hears as pauses."""
    frame = rate // 100  # 10 ms
    loud = np.abs(samples[: len(samples) // frame * frame].astype(np.int32)).reshape(-1, frame).max(axis=1) > threshold
    pieces, start, quiet = [], None, 0
    for index, is_loud in enumerate(loud):
        if is_loud:
            if start is None:
                start = index
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet * 0.01 >= min_gap_s:
                pieces.append(samples[start * frame : (index - quiet + 1) * frame])
                start, quiet = None, 0
    if start is not None:
        pieces.append(samples[start * frame :])
    return pieces


def longest_silence_s(samples: np.ndarray, rate: int, threshold: int = 300) -> float:
    frame = rate // 100
    loud = np.abs(samples[: len(samples) // frame * frame].astype(np.int32)).reshape(-1, frame).max(axis=1) > threshold
    longest = run = 0
    for is_loud in loud:
        run = 0 if is_loud else run + 1
        longest = max(longest, run)
    return longest * 0.01


@pytest.mark.slow
def test_a_long_narration_listened_to_by_a_program(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    """The assembled test passages, narrated and then heard: right length, no silent chunk, no chunk twice."""
    from pathlib import Path

    data_dir = Path(__file__).parent / "data"
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in sorted(data_dir.iterdir()))
    client, runtime = make_stack(job_env(config_env, TTSQ_SEGMENT_CHARS="1500"), tts)
    job_id = client.post("/v1/jobs", json={"text": text}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    audio, rate = soundfile.read(io.BytesIO(client.get(job["result"]["url"]).data), dtype="int16")

    # The parts it should be made of: each chunk spoken alone and trimmed, plus the configured pause before it.
    chunks = split_text(text)
    pauses = PauseOptions(runtime.config.sentence_silence_s, runtime.config.paragraph_silence_s)
    speaker = tts.speakers["joe"]
    alone = [trim_silence(s, rate, pauses.edge_keep_s) for s in speaker.stream_chunks(c.spoken for c in chunks)]
    paragraph_breaks = sum(1 for a, b in itertools.pairwise(chunks) if a.paragraph != b.paragraph)
    sentence_breaks = len(chunks) - 1 - paragraph_breaks
    expected_s = (
        sum(len(s) for s in alone) / rate
        + paragraph_breaks * pauses.paragraph_silence_s
        + sentence_breaks * pauses.sentence_silence_s
    )
    assert len(audio) / rate == pytest.approx(expected_s, rel=0.05)  # noise varies durations a little

    heard = utterances(audio, rate, min_gap_s=pauses.sentence_silence_s)
    spoken = [c for c in chunks if c.spoken.strip()]
    # Every chunk is heard apart from its neighbours (the pauses are there); the voice's own pauses at commas and
    # between the sentences espeak finds inside a chunk can split one chunk into more utterances, so no upper bound.
    assert len(heard) >= len(spoken)
    # A silent chunk would show as a gap of two pauses and more; no gap is longer than the longest pause we set.
    assert longest_silence_s(audio, rate) < pauses.paragraph_silence_s + 2 * pauses.edge_keep_s + 0.1
    assert all(np.sqrt(np.mean(u.astype(np.float64) ** 2)) > 300 for u in heard)  # none silent
    assert not any(len(a) == len(b) and np.array_equal(a, b) for a, b in itertools.pairwise(heard))  # none twice


def test_a_chunk_with_nothing_to_say_adds_no_pause(tts) -> None:  # type: ignore[no-untyped-def]
    """Regression: a scene break ("* * *", spoken as nothing) put two pauses back to back."""
    chunks = [NarrationChunk("One.", 0), NarrationChunk("", 1), NarrationChunk("Two.", 2)]
    options = PauseOptions(sentence_silence_s=0.3, paragraph_silence_s=1.0)
    pieces = list(narrate(tts.speakers["joe"], chunks, options=options, synthesis=DETERMINISTIC))
    assert len(pieces) == 3 and len(pieces[1].samples) == 0 and pieces[1].mark is None
    rate = tts.speakers["joe"].sample_rate
    assert longest_silence_s(np.concatenate([p.samples for p in pieces]), rate) < 1.0 + 0.1


def test_segment_boundaries_do_not_change_pauses_or_marks(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    """Regression: a segment ending on a chunk with nothing to say made the next segment start with the wrong pause."""
    text = "A" + " quiet" * 15 + " morning.\n\n[1]. Then he left."
    chunks = split_text(text)
    assert [c.spoken == "" for c in chunks] == [False, True, False]
    client, runtime = make_stack(job_env(config_env, TTSQ_SEGMENT_CHARS="100"), tts)
    job_id = client.post(
        "/v1/jobs", json={"text": text, "noise_scale": 0, "noise_w_scale": 0, "marks": True}
    ).get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    assert runtime.store.get(job_id).segments_total == 2
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    data, _ = soundfile.read(io.BytesIO(client.get(job["result"]["url"]).data), dtype="int16")
    pauses = PauseOptions(runtime.config.sentence_silence_s, runtime.config.paragraph_silence_s)
    np.testing.assert_array_equal(data, narration_of(tts, text, pauses))
    assert [m["paragraph"] for m in job["result"]["marks"]] == [0, 1]


def test_text_with_nothing_to_say_fails_clearly(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": "[1]"}).get_json()["id"]
    assert run_to_end(runtime, job_id) == "failed"
    assert client.get(f"/v1/jobs/{job_id}").get_json()["error"]["code"] == "invalid_input"


def test_cancel_while_the_output_is_assembled_removes_everything(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    original = runtime.store.mark_succeeded

    def cancel_first(*args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 202
        return original(*args, **kwargs)

    monkeypatch.setattr(runtime.store, "mark_succeeded", cancel_first)
    assert run_to_end(runtime, job_id) == "canceled"
    assert client.get(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
    assert list(runtime.storage.root.iterdir()) == []
    assert not runtime.plans.has_plan(job_id)


def test_a_job_whose_workers_keep_dying_leaves_no_segments(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    from worker.synthesis import run_job

    client, runtime = make_stack(job_env(config_env), tts)
    job_id = client.post("/v1/jobs", json={"text": BOOK}).get_json()["id"]
    assert run_job(runtime, job_id) == "continued"
    assert run_job(runtime, job_id) == "continued"  # one segment stored
    assert any(runtime.storage.root.iterdir())
    runtime.store.update(job_id, attempts=runtime.config.max_attempts)
    assert run_job(runtime, job_id) == "failed"
    assert client.get(f"/v1/jobs/{job_id}").get_json()["error"]["code"] == "worker_lost"
    assert list(runtime.storage.root.iterdir()) == []
