"""Issue 14: documents in POST /v1/jobs (multipart uploads and inline input_format), their chapters, SSML breaks as
exact silence, and every malformed upload answered with a JSON 4xx that names the problem."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import soundfile
from conftest import run_to_end
from test_api import assert_error
from test_audiobooks import upload
from test_documents import hand_epub
from test_narration import job_env, make_stack

from engine.documents import format_for, read_document

MARKDOWN = b"""# Arrival

The train came in late. Nobody was waiting.

### On the platform

A porter whistled.

# Departure

She left the next morning.
"""
HTML = b"""<html><head><title>Two Days</title></head><body>
<h1>Arrival</h1><p>The train came in late. Nobody was waiting.</p>
<h3>On the platform</h3><p>A porter whistled.</p>
<h1>Departure</h1><p>She left the next morning.</p></body></html>"""
PLAIN = MARKDOWN.decode().replace("### ", "## ")  # plain text: "#" a chapter, "##" a section
CHAPTERS = ["Arrival", "Departure"]
DETERMINISTIC = {"noise_scale": 0, "noise_w_scale": 0}


def finished(client, runtime, response) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert run_to_end(runtime, job_id) == "succeeded"
    return client.get(f"/v1/jobs/{job_id}").get_json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [(MARKDOWN, "notes.md", "text/markdown"), (HTML, "notes.html", "text/html"), (MARKDOWN, "notes.md", None)],
)
def test_markdown_and_html_uploads_have_their_headings_as_chapters(config_env, tts, data, name, content_type) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job = finished(client, runtime, upload(client, data, name, content_type or "application/octet-stream"))
    chapters = job["result"]["chapters"]
    # h1 and h2 are chapters (engine.documents), "### On the platform" a section inside the first.
    assert [c["title"] for c in chapters] == CHAPTERS == read_document(data, format_for(content_type, name)).chapters
    assert chapters[0]["start_s"] == 0.0 and chapters[0]["end_s"] == chapters[1]["start_s"]
    assert chapters[-1]["end_s"] == job["result"]["duration_s"]
    if data is HTML:
        assert job["title"] == "Two Days"


@pytest.mark.parametrize(("body"), [{"text": PLAIN}, {"text": HTML.decode(), "input_format": "html"}])
def test_inline_text_with_headings_has_the_same_chapters(config_env, tts, body) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    job = finished(client, runtime, client.post("/v1/jobs", json={**body, "format": "flac"}))
    assert [c["title"] for c in job["result"]["chapters"]] == CHAPTERS


def test_a_text_without_headings_has_no_chapters(client, runtime) -> None:  # type: ignore[no-untyped-def]
    job = finished(client, runtime, client.post("/v1/jobs", json={"text": "Just one sentence.", "format": "m4b"}))
    assert job["result"]["chapters"] == []


def ssml(pause: str) -> str:
    return f'<speak><p>Hello there.<break time="{pause}"/>And welcome home.</p></speak>'


def test_an_ssml_break_is_that_much_exact_silence(client, runtime) -> None:  # type: ignore[no-untyped-def]
    def audio(pause: str) -> tuple[np.ndarray, dict]:  # type: ignore[type-arg]
        body = {"text": ssml(pause), "input_format": "ssml", "marks": True, **DETERMINISTIC}
        job = finished(client, runtime, client.post("/v1/jobs", json=body))
        data, rate = soundfile.read(io.BytesIO(client.get(job["result"]["url"]).data), dtype="int16")
        assert rate == job["result"]["sample_rate"]
        return data, job

    without, _ = audio("0s")
    with_break, job = audio("1.5s")
    rate = job["result"]["sample_rate"]
    assert (len(with_break) - len(without)) / rate == pytest.approx(1.5, abs=0.03)
    second = job["result"]["marks"][1]["start_s"]  # where "And welcome home." starts
    gap = with_break[round((second - 1.5) * rate) : round(second * rate)]
    assert len(gap) / rate == pytest.approx(1.5, abs=0.001) and not gap.any()  # digital silence, all of it
    assert job["input_format"] == "ssml" and job["text_chars"] < len(ssml("1.5s"))


def test_an_ssml_prosody_rate_is_heard(client, runtime) -> None:  # type: ignore[no-untyped-def]
    def seconds(rate: str) -> float:
        words = f'<prosody rate="{rate}">And welcome home, all of you.</prosody>'
        body = {"text": f"<speak><p>Hello there.</p><p>{words}</p></speak>", "input_format": "ssml", "marks": True}
        job = finished(client, runtime, client.post("/v1/jobs", json={**body, **DETERMINISTIC}))
        marks = job["result"]["marks"]
        return job["result"]["duration_s"] - marks[1]["start_s"]  # the second paragraph: the prosody's words

    normal, slow, fast = seconds("100%"), seconds("50%"), seconds("x-fast")
    # Piper's length scale stretches the phonemes, not the trimmed edges: close to 2x and 1/1.5x, not exactly.
    assert slow / normal == pytest.approx(2.0, rel=0.15)
    assert fast / normal == pytest.approx(1 / 1.5, rel=0.15)


def zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        archive.writestr("OEBPS/huge.xhtml", b"\0" * (210 * 1024 * 1024))
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "content_type", "status", "code", "says"),
    [
        (b"plain words", "book.epub", "application/epub+zip", 400, "invalid_document", "not a valid zip"),
        (None, "book.epub", "application/epub+zip", 400, "invalid_document", "ghost"),
        (b"<p>Hi.</p><script>alert(1)</script>", "a.html", "text/html", 400, "invalid_document", "script"),
        (b"<speak><audio src='x.wav'/>Hi.</speak>", "a.ssml", "application/ssml+xml", 400, "invalid_document", "audio"),
        (b"\xff\xfe\xff", "a.txt", "text/plain", 400, "invalid_document", "UTF"),
        (b"Hello.", "a.pdf", "application/pdf", 415, "unsupported_document_type", "application/pdf"),
    ],
)
def test_malformed_uploads_are_a_json_4xx_naming_the_problem(
    client, redis_client, data, name, content_type, status, code, says
) -> None:  # type: ignore[no-untyped-def]
    data = hand_epub({"a": "<p>Text.</p>"}, ["a", "ghost"]) if data is None else data
    response = upload(client, data, name, content_type)
    assert_error(response, status, code)
    assert says in response.get_json()["error"]["message"]


def test_a_zip_bomb_is_refused_unread(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    response = upload(client, zip_bomb(), "book.epub", "application/epub+zip")
    assert response.status_code in (400, 413) and response.get_json()["error"]["code"].startswith(("invalid", "doc"))


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        ({"speed": "fast"}, "invalid_request", "speed"),
        ({"speed": "9"}, "invalid_speed", "speed"),
        ({"marks": "yes"}, "invalid_request", "marks"),
        ({"metadata": "[1]"}, "invalid_metadata", "object"),
        ({"metadata": "{"}, "invalid_metadata", "object"),
        ({"text": "Hi."}, "invalid_request", "text"),
        ({"format": "aiff"}, "invalid_format", "aiff"),
        ({"input_format": "pdf"}, "invalid_input_format", "pdf"),
    ],
)
def test_bad_form_fields_are_400(client, redis_client, fields, code, says) -> None:  # type: ignore[no-untyped-def]
    response = upload(client, b"Hello.", "a.txt", "text/plain", **fields)
    assert_error(response, 400, code)
    assert says in response.get_json()["error"]["message"]


def test_an_upload_without_its_file_is_400(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    assert_error(
        client.post("/v1/jobs", data={"format": "mp3"}, content_type="multipart/form-data"), 400, "invalid_request"
    )


def test_form_fields_are_the_json_options(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    client, runtime = make_stack(job_env(config_env), tts)
    fields = {"format": "opus", "speed": "1.25", "marks": "true", "metadata": '{"shelf": 3}'}
    job = finished(client, runtime, upload(client, b"Hello there.", "a.txt", "text/plain", **fields))
    assert (job["format"], job["speed"], job["marks"], job["metadata"]) == ("opus", 1.25, True, {"shelf": 3})
    assert job["result"]["url"] and job["result"]["marks"]


def test_limits_apply_to_the_upload_and_to_its_text(config_env, tts) -> None:  # type: ignore[no-untyped-def]
    env = job_env(config_env, TTSQ_MAX_TEXT_CHARS="40", TTSQ_MAX_UPLOAD_BYTES="2048")
    client, _ = make_stack(env, tts)
    for size in (1000, 20_000):  # over the limit; over it and the form's slack too (refused before it is read)
        too_big = upload(client, b"Hello. " * size, "a.txt", "text/plain")
        assert_error(too_big, 413, "upload_too_large")
        assert "TTSQ_MAX_UPLOAD_BYTES" in too_big.get_json()["error"]["message"]
    # Under 2 KiB of HTML, but its text is over 40 characters.
    long_text = upload(client, b"<p>" + b"Words and more words. " * 5 + b"</p>", "a.html", "text/html")
    assert_error(long_text, 413, "document_too_large")
    inline = client.post("/v1/jobs", json={"text": "<p>" + "Words. " * 10 + "</p>", "input_format": "html"})
    assert_error(inline, 413, "text_too_long")  # inline, the text as sent is held to the limit (its markup too)


def test_an_upload_retried_with_its_idempotency_key_is_the_same_job(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    headers = {"Idempotency-Key": "book-1"}

    def send(data: bytes):  # type: ignore[no-untyped-def]
        form = {"file": (io.BytesIO(data), "a.txt", "text/plain")}
        return client.post("/v1/jobs", data=form, content_type="multipart/form-data", headers=headers)

    first = send(b"Hello there.").get_json()["id"]
    assert send(b"Hello there.").get_json()["id"] == first
    assert_error(send(b"Another text."), 409, "idempotency_conflict")


def test_an_ssml_upload_in_another_encoding_is_narrated(client, runtime) -> None:  # type: ignore[no-untyped-def]
    """Regression (review): a Latin-1 SSML upload was a 500, a UTF-16 one failed at planning after its 202."""
    for encoding in ("ISO-8859-1", "UTF-16"):
        document = f'<?xml version="1.0" encoding="{encoding}"?><speak>Café au lait.</speak>'.encode(encoding)
        answer = upload(client, document, "a.ssml", "application/ssml+xml")
        assert answer.status_code == 202, answer.get_data(as_text=True)
        assert run_to_end(runtime, answer.get_json()["id"]) == "succeeded", encoding


def test_breaks_in_a_row_add_up_to_one_longest_break() -> None:
    """Regression (review): 5,000 breaks in a row made one 50,000 s pause, allocated at once."""
    from engine.documents.breaks import ssml_chunks
    from engine.documents.ssml import MAX_BREAK_S

    timed = ssml_chunks(("<speak>Hello." + '<break time="10s"/>' * 50 + "World.</speak>").encode())
    assert [t.pause_s for t in timed] == [None, MAX_BREAK_S]
