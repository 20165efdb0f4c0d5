"""/v1/speakers, and which speakers the API takes jobs for: those configured here and those live workers announce."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from ttsq import presence
from ttsq.models import Job, JobStatus

from . import access
from .services import Services, services

bp = Blueprint("speakers", __name__, url_prefix="/v1")
bp.before_request(access.authenticate)


def served(s: Services, speaker: str | None = None, fresh: bool = False) -> dict[str, presence.AnnouncedVoice | None]:
    """The speakers live workers serve, as read within the last second unless ``fresh`` (or ``speaker`` is not
    among them: then read again)."""
    return s.served.get(speaker, fresh)


def known_speakers(s: Services, speaker: str | None = None) -> dict[str, str]:
    """Name -> source of every speaker a job may name: configured for the API (so a deployment that scales workers
    from zero still takes jobs), or announced by a live worker (so a voice added to workers alone is usable).
    ``speaker``: the one the caller asks about, which a stale read must not miss."""
    if speaker in s.config.speakers:
        speaker = None  # known whatever the workers say
    announced = {name: voice.source if voice else "" for name, voice in served(s, speaker).items()}
    return {**announced, **s.config.speakers}


def waiting_for_worker(s: Services, job: Job) -> bool:
    """A queued job whose speaker no live worker serves: it waits until one starts (it is not refused)."""
    return job.status == JobStatus.queued and job.speaker not in served(s, job.speaker)


@bp.get("/speakers")
def list_speakers() -> ResponseReturnValue:
    s = services()
    live = served(s, fresh=True)
    known = known_speakers(s)
    speakers = []
    for name in sorted(known):
        voice = live.get(name)
        entry = {"name": name, "source": known[name], "available": name in live}
        if voice is not None:
            entry |= {"sample_rate": voice.sample_rate, "backend": voice.backend}
        speakers.append(entry)
    return jsonify({"speakers": speakers})
