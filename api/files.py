"""Signed downloads of finished audio from local storage."""

from __future__ import annotations

import re

from flask import Blueprint, request, send_file
from flask.typing import ResponseReturnValue

from ttsq import signing
from ttsq.storage.base import InvalidKeyError, check_key, mime_type
from ttsq.storage.local import LocalStorage

from .errors import ApiError
from .services import services

CANONICAL_INTEGER = re.compile(r"0|-?[1-9][0-9]*")

bp = Blueprint("files", __name__, url_prefix="/v1")


@bp.get("/files/<key>")
def get_file(key: str) -> ResponseReturnValue:
    s = services()
    try:
        check_key(key)
    except InvalidKeyError:
        raise ApiError(404, "file_not_found", "no such file") from None
    # Links are canonical: one expiry, written as ttsq writes it (the HMAC would cover other spellings too).
    given = request.args.getlist("expires")
    if len(given) != 1 or not CANONICAL_INTEGER.fullmatch(given[0]) or len(request.args.getlist("signature")) > 1:
        raise ApiError(403, "invalid_signature", "the link is missing its expiry or signature, or is not as issued")
    expires = int(given[0])
    if not signing.verify(s.secret, key, expires, request.args.get("signature", "")):
        raise ApiError(
            403, "invalid_signature", "the link is invalid or has expired; fetch the job again for a fresh one"
        )
    if not isinstance(s.storage, LocalStorage):
        raise ApiError(404, "file_not_found", "audio is not served here; fetch the job for its storage URL")
    path = s.storage.path(key)
    if not path.is_file():
        if s.store.gone_owner(key.split(".", 1)[0])[0]:
            raise ApiError(410, "file_expired", "the job ended and its audio was removed after the retention period")
        raise ApiError(404, "file_not_found", "the file no longer exists")
    return send_file(path, mimetype=mime_type(key), download_name=key, max_age=0)
