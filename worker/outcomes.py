"""What a run of a job can come to, and the failures that end a job with a reason (each carries its code)."""

from __future__ import annotations

from enum import Enum

from engine import EngineError, InvalidInputError, UnknownSpeakerError


class Outcome(str, Enum):
    """What one task did with its job, for logs and tests."""

    locked = "locked"
    """Another run holds the job; this delivery was dropped."""
    missing = "missing"
    done_already = "done-already"
    lock_lost = "lock-lost"
    """The lock lapsed under this run, which stopped and recorded nothing."""
    continued = "continued"
    """A piece is done and the next one is queued."""
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class StopRun(Exception):
    """This run must stop between sentences without failing the job."""


class LockLostError(StopRun):
    """The job's lock expired under us: another run may own the job, so this one must stop quietly."""


class JobCanceledError(StopRun):
    """The job was canceled; stop between sentences."""


class JobFailure(Exception):
    """Ends the job as failed; ``code`` is what its status reports (``error.code``), the message says why."""

    code = "internal_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class JobTimeoutError(JobFailure):
    code = "timeout"


class AudioTooLongError(JobFailure):
    code = "audio_too_long"


# First match wins (the engine's errors are EngineErrors, storage errors OSErrors); the lead may name the worker.
_CODES: tuple[tuple[type[Exception], str, str], ...] = (
    (UnknownSpeakerError, "unknown_speaker", "worker {worker} does not serve it: "),
    (InvalidInputError, "invalid_input", ""),
    (EngineError, "engine_error", ""),
    (OSError, "storage_error", "could not store the audio: "),
)


def as_failure(error: Exception, worker: str) -> JobFailure:
    """The job failure an error from the engine or storage stands for; anything else is an internal error."""
    if isinstance(error, JobFailure):
        return error
    for kind, code, lead in _CODES:
        if isinstance(error, kind):
            return JobFailure(f"{lead.format(worker=worker)}{error}", code)
    return JobFailure(f"{type(error).__name__}: {error}")
