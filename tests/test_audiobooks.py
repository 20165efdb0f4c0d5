"""Issue 14: an EPUB uploaded, narrated to m4b and mp3 with its chapters, read back by independent readers
(ffprobe, mutagen, libsndfile, webvtt-py); captions; a book whose worker is killed mid-way still gets them all."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import soundfile
import webvtt
from conftest import run_to_end
from mutagen.id3 import ID3
from mutagen.mp4 import MP4
from test_documents import CHAPTERS, COVER, make_epub
from test_narration import job_env, make_stack

from engine.documents import read_document
from engine.text.clean import display_text
from engine.text.split import split_text

START_TOLERANCE_S = 0.05
CUE_END_TOLERANCE_S = 0.1
DETERMINISTIC = {"noise_scale": "0", "noise_w_scale": "0"}


def upload(client, data: bytes, name: str, content_type: str, **fields: str) -> Any:  # type: ignore[no-untyped-def]
    form = {"file": (io.BytesIO(data), name, content_type), **fields}
    return client.post("/v1/jobs", data=form, content_type="multipart/form-data")


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_chapters", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def narrate_book(client, runtime, fmt: str) -> tuple[dict[str, Any], Path]:  # type: ignore[no-untyped-def]
    response = upload(client, make_epub(), "book.epub", "application/epub+zip", format=fmt, **DETERMINISTIC)
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    return job, runtime.storage.root / f"{job_id}.{fmt}"


def assert_chapters(chapters: list[dict[str, Any]], duration_s: float) -> None:
    assert [c["title"] for c in chapters] == CHAPTERS
    assert all(b["start_s"] > a["start_s"] for a, b in itertools.pairwise(chapters))
    assert all(a["end_s"] == b["start_s"] for a, b in itertools.pairwise(chapters))
    assert chapters[-1]["end_s"] == pytest.approx(duration_s, abs=0.001)


def test_an_epub_becomes_an_m4b_with_its_chapters_tags_and_cover(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job, path = narrate_book(client, runtime, "m4b")
    assert (job["title"], job["author"], job["input_format"]) == ("Harbour Lights", "Ann Example", "epub")
    result = job["result"]
    assert_chapters(result["chapters"], result["duration_s"])
    probe = ffprobe(path)
    duration_s = float(probe["format"]["duration"])
    assert duration_s == pytest.approx(result["duration_s"], abs=START_TOLERANCE_S)
    found = probe["chapters"]
    assert [c["tags"]["title"] for c in found] == CHAPTERS
    for mine, theirs in zip(result["chapters"], found, strict=True):
        assert float(theirs["start_time"]) == pytest.approx(mine["start_s"], abs=START_TOLERANCE_S)
    assert all(float(b["start_time"]) > float(a["start_time"]) for a, b in itertools.pairwise(found))
    assert float(found[-1]["end_time"]) == pytest.approx(duration_s, abs=START_TOLERANCE_S)
    assert probe["format"]["tags"]["title"] == "Harbour Lights"
    assert probe["format"]["tags"]["artist"] == "Ann Example"
    assert [s["codec_name"] for s in probe["streams"] if s["codec_type"] == "audio"] == ["aac"]
    tags = MP4(str(path)).tags
    assert tags is not None and bytes(tags["covr"][0]) == COVER
    assert client.get(result["url"]).headers["Content-Type"] == "audio/mp4"
    assert result["size_bytes"] == path.stat().st_size  # counted as it was written (built, tagged, then copied)


def test_an_epub_becomes_an_mp3_with_id3_chapters(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job, path = narrate_book(client, runtime, "mp3")
    result = job["result"]
    assert_chapters(result["chapters"], result["duration_s"])
    id3 = ID3(str(path))
    toc = id3.getall("CTOC")[0]
    frames = {frame.element_id: frame for frame in id3.getall("CHAP")}
    ordered = [frames[element_id] for element_id in toc.child_element_ids]
    assert [str(frame.sub_frames["TIT2"]) for frame in ordered] == CHAPTERS
    for mine, frame in zip(result["chapters"], ordered, strict=True):
        assert frame.start_time / 1000 == pytest.approx(mine["start_s"], abs=START_TOLERANCE_S)
    assert all(b.start_time > a.start_time for a, b in itertools.pairwise(ordered))
    # The decoded length (libsndfile's mpg123 reads the LAME header's delay and padding, as players do).
    duration_s = soundfile.info(str(path)).duration
    assert duration_s == pytest.approx(result["duration_s"], abs=START_TOLERANCE_S)
    assert ordered[-1].end_time / 1000 == pytest.approx(duration_s, abs=START_TOLERANCE_S)
    assert (str(id3["TIT2"]), str(id3["TPE1"])) == ("Harbour Lights", "Ann Example")
    assert id3.getall("APIC")[0].data == COVER
    # FFmpeg reads them too, in the tag's frame order (mutagen orders frames by size), so by their starts here.
    found = sorted(ffprobe(path)["chapters"], key=lambda c: float(c["start_time"]))
    assert [c["tags"]["title"] for c in found] == CHAPTERS


@pytest.mark.parametrize("fmt", ["opus", "flac", "ogg"])
def test_chapters_as_vorbis_comments(config_env, tts, fmt: str) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job, path = narrate_book(client, runtime, fmt)
    assert job["result"]["size_bytes"] == path.stat().st_size
    probe = ffprobe(path)
    assert [c["tags"]["title"] for c in probe["chapters"]] == CHAPTERS
    for mine, theirs in zip(job["result"]["chapters"], probe["chapters"], strict=True):
        assert float(theirs["start_time"]) == pytest.approx(mine["start_s"], abs=0.001)
    if fmt == "opus":
        stream = probe["streams"][0]
        assert (stream["codec_name"], stream["sample_rate"]) == ("opus", "48000")


def sentences(text: str) -> list[str]:
    """What a caption shows for each chunk of the split text that has something to say."""
    return [display_text(c.source) for c in split_text(text) if c.spoken.strip()]


def read_vtt(data: bytes) -> list[Any]:
    return list(webvtt.from_buffer(io.StringIO(data.decode("utf-8"))))


def seconds(timestamp: str) -> float:
    """webvtt-py's "HH:MM:SS.mmm" (its start_in_seconds is whole seconds)."""
    hours, minutes, rest = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def assert_captions(captions: list[Any], text: str, duration_s: float) -> None:
    assert [cue.text for cue in captions] == sentences(text)
    times = [(seconds(cue.start), seconds(cue.end)) for cue in captions]
    assert all(start < end for start, end in times)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(times))  # in order, no overlaps
    assert times[-1][1] == pytest.approx(duration_s, abs=CUE_END_TOLERANCE_S)


def test_captions_have_one_cue_per_sentence_timed_from_the_audio(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job, _ = narrate_book(client, runtime, "wav")
    text = read_document(make_epub(), "epub").text
    vtt = client.get(f"/v1/jobs/{job['id']}/captions")
    assert vtt.status_code == 200 and vtt.mimetype == "text/vtt"
    assert_captions(read_vtt(vtt.data), text, job["result"]["duration_s"])
    assert client.get(job["result"]["captions"]["vtt"]).data == vtt.data  # the signed link serves the same
    srt = client.get(f"/v1/jobs/{job['id']}/captions?format=srt")
    assert srt.mimetype == "application/x-subrip"
    assert srt.data.decode().count(" --> ") == len(sentences(text))
    assert client.get(f"/v1/jobs/{job['id']}/captions?format=txt").status_code == 400


def test_a_book_whose_worker_is_killed_mid_way_keeps_all_chapters_and_captions(config_env, tts, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from worker import segments
    from worker.synthesis import run_job

    client, runtime = make_stack(job_env(config_env), tts)
    reference, _ = narrate_book(client, runtime, "m4b")  # the same book, never interrupted
    job_id = upload(client, make_epub(), "book.epub", "application/epub+zip", format="m4b", **DETERMINISTIC)
    job_id = job_id.get_json()["id"]
    assert run_job(runtime, job_id) == "continued"  # planned, segment 0 recorded
    assert run_job(runtime, job_id) == "continued"  # segment 1
    reports = 0
    real_report = segments._report

    def killed_after_two_chunks(*args: Any) -> None:
        nonlocal reports
        reports += 1
        if reports > 2:
            raise SystemExit("killed")  # not an Exception: nothing in the run handles it, as with a kill
        real_report(*args)

    monkeypatch.setattr(segments, "_report", killed_after_two_chunks)
    monkeypatch.setattr(segments, "PROGRESS_INTERVAL_S", 0.0)  # a report per sentence: killed mid-segment
    with pytest.raises(SystemExit):
        run_job(runtime, job_id)
    monkeypatch.setattr(segments, "_report", real_report)
    assert runtime.plans.done_count(job_id) == 2  # the killed segment left no record
    assert run_to_end(runtime, job_id) == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert job["attempts"] >= 2
    assert job["result"]["chapters"] == reference["result"]["chapters"]
    assert_chapters(job["result"]["chapters"], job["result"]["duration_s"])
    probe = ffprobe(runtime.storage.root / f"{job_id}.m4b")
    assert [c["tags"]["title"] for c in probe["chapters"]] == CHAPTERS
    text = read_document(make_epub(), "epub").text
    captions = read_vtt(client.get(f"/v1/jobs/{job_id}/captions").data)
    assert_captions(captions, text, job["result"]["duration_s"])
    before = read_vtt(client.get(f"/v1/jobs/{reference['id']}/captions").data)
    assert [(c.start, c.end) for c in captions] == [(c.start, c.end) for c in before]
