"""Documents for POST /v1/jobs: a multipart upload (``file`` and the job's options as form fields), or inline text
in another ``input_format``; both read by ``engine.documents`` under the configured limits (issue 14)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from engine.documents import (
    FORMATS,
    Document,
    DocumentError,
    DocumentLimits,
    DocumentTooLargeError,
    format_for,
    read_document,
)
from ttsq.config import Config

from .errors import ApiError
from .schemas import JSON_NUMBER, loads_json

FORM_SLACK_BYTES = 64 * 1024
"""Room in a multipart body for its form fields and part headers, on top of TTSQ_MAX_UPLOAD_BYTES."""
FORM_FIELDS = (
    "speaker",
    "format",
    "speed",
    "noise_scale",
    "noise_w_scale",
    "marks",
    "webhook_url",
    "metadata",
    "input_format",
)
"""The job options an upload may send as form fields (the JSON body's names; ``file`` replaces ``text``)."""
NUMBER_FIELDS = ("speed", "noise_scale", "noise_w_scale")
INLINE_FORMATS = ("text", "markdown", "html", "ssml")
"""``input_format`` of a JSON body's ``text`` (an EPUB is binary: upload it)."""


@dataclass
class Upload:
    """What an upload or an inline document gives a job."""

    body: dict[str, Any]
    """The job's options as a JSON body would give them, with ``text`` the document's plain text (what is checked
    and counted)."""
    fingerprint: dict[str, Any]
    """What makes a retry the same request (Idempotency-Key): the options and the upload's digest."""
    document: Document
    input_format: str
    stored_text: str
    """What the worker reads: the plain text, or the SSML as written (parsed at planning for its breaks)."""


def document_limits(config: Config) -> DocumentLimits:
    return DocumentLimits(max_bytes=config.max_upload_bytes, max_chars=config.max_text_chars)


def read_upload(config: Config) -> Upload:
    """The multipart body's document and options; every way it can be wrong is a 4xx that names the problem."""
    request.max_content_length = config.max_upload_bytes + FORM_SLACK_BYTES
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        raise ApiError(
            413,
            "upload_too_large",
            f"the upload is over {config.max_upload_bytes:,} bytes (TTSQ_MAX_UPLOAD_BYTES)",
        ) from None
    unknown = sorted({*form.keys(), *files.keys()} - {*FORM_FIELDS, "file"})
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown form field {unknown[0]!r}; expected file and any of: {', '.join(FORM_FIELDS)}",
        )
    if "file" in form or len(files.getlist("file")) != 1:
        raise ApiError(400, "invalid_request", "send the document as exactly one file part named 'file'")
    body: dict[str, Any] = {}
    for name in form:
        values = form.getlist(name)
        if len(values) != 1:
            raise ApiError(400, "invalid_request", f"form field {name!r} is given {len(values)} times")
        body[name] = _form_value(name, values[0])
    upload = files["file"]
    data = upload.read(config.max_upload_bytes + 1)
    fmt = body.pop("input_format", None)
    if fmt is not None and (not isinstance(fmt, str) or fmt not in FORMATS):
        raise ApiError(400, "invalid_input_format", f"input_format must be one of: {', '.join(FORMATS)}, got {fmt!r}")
    if fmt is None:
        try:
            fmt = format_for(upload.mimetype or None, upload.filename)
        except DocumentError as error:
            raise ApiError(415, "unsupported_document_type", str(error)) from None
    document = _read(data, fmt, config)
    fingerprint = {**body, "input_format": fmt, "upload_sha256": hashlib.sha256(data).hexdigest()}
    body["text"] = document.text
    stored = _ssml_text(data) if fmt == "ssml" else document.text
    return Upload(body, fingerprint, document, fmt, stored)


def read_inline(text: str, fmt: str, config: Config) -> Upload | None:
    """A JSON body's text in ``input_format`` ``fmt``, read as a document; None for plain text (read as it is)."""
    if fmt not in INLINE_FORMATS:
        raise ApiError(
            400, "invalid_input_format", f"input_format must be one of: {', '.join(INLINE_FORMATS)}, got {fmt!r}"
        )
    if fmt == "text":
        return None
    document = _read(text.encode("utf-8", "surrogatepass"), fmt, config)
    return Upload({}, {}, document, fmt, text if fmt == "ssml" else document.text)


def _read(data: bytes, fmt: str, config: Config) -> Document:
    try:
        return read_document(data, fmt, document_limits(config))
    except DocumentTooLargeError as error:
        if error.what == "the upload":
            raise ApiError(413, "upload_too_large", f"{error} (TTSQ_MAX_UPLOAD_BYTES)") from None
        raise ApiError(413, "document_too_large", f"{error} (TTSQ_MAX_TEXT_CHARS)") from None
    except DocumentError as error:
        raise ApiError(400, "invalid_document", str(error)) from None


def _form_value(name: str, raw: str) -> Any:
    """A form field as the JSON body would have it: numbers, booleans and metadata parsed, strictly."""
    if name in NUMBER_FIELDS:
        if not JSON_NUMBER.fullmatch(raw):
            raise ApiError(400, "invalid_request", f"{name}: must be a number, got {raw!r}")
        return float(raw)
    if name == "marks":
        if raw not in ("true", "false"):
            raise ApiError(400, "invalid_request", f"marks: must be true or false, got {raw!r}")
        return raw == "true"
    if name == "metadata":
        try:
            value = loads_json(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_metadata", "metadata must be a JSON object") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid_metadata", "metadata must be a JSON object")
        return value
    return raw


def _ssml_text(data: bytes) -> str:
    """The SSML re-serialised as text without its XML declaration: stored as UTF-8, it must not still claim the
    encoding it came in (UTF-16, Latin-1), or the worker could not read it back."""
    from lxml import etree

    from engine.documents.xmlsafe import parse_xml

    try:
        return str(etree.tostring(parse_xml(data, "the SSML document"), encoding="unicode"))
    except DocumentError as error:
        raise ApiError(400, "invalid_document", str(error)) from None
