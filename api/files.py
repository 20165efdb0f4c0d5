"""Signed downloads of finished audio from local storage."""

from __future__ import annotations

from flask import Blueprint, request, send_file
from flask.typing import ResponseReturnValue

from ttsq import signing
from ttsq.storage import InvalidKeyError, LocalStorage, check_key, mime_type

from .errors import ApiError
from .services import services

bp = Blueprint("files", __name__, url_prefix="/v1")


@bp.get("/files/<key>")
def get_file(key: str) -> ResponseReturnValue:
    s = services()
    try:
        check_key(key)
    except InvalidKeyError:
        raise ApiError(404, "file_not_found", "no such file") from None
    try:
        expires = int(request.args.get("expires", ""))
    except ValueError:
        raise ApiError(403, "invalid_signature", "the link is missing its expiry or signature") from None
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
