"""Logging set-up for the API and workers: plain lines or JSON lines, each carrying the job id it belongs to.

The job id travels in a context variable: ``with job_context(job_id):`` around a job's work, and a filter on
the handler stamps it (or None) on every record that passes, whichever logger made it (ours, Celery's, the
engine's). A thread started inside the block does not inherit it; start it through ``contextvars.copy_context()``.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from typing import Any, TextIO

LOG_FORMATS = ("plain", "json")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_job_id: ContextVar[str | None] = ContextVar("ttsq_job_id", default=None)


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every log record made inside the block (in this thread or task) carries ``job_id``."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def current_job_id() -> str | None:
    return _job_id.get()


class JobIdFilter(logging.Filter):
    """Sets ``record.job_id`` from the job context, unless the caller passed one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _job_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC, ISO 8601), level, logger, message, job_id, and exc_info when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class PlainFormatter(logging.Formatter):
    """The usual line; ``job=<id>`` is appended when the message does not already start with the id."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        job_id = getattr(record, "job_id", None)
        if job_id and not record.getMessage().startswith(job_id):
            first, newline, rest = text.partition("\n")  # after the message, before any traceback
            text = f"{first} job={job_id}{newline}{rest}"
        return text


def setup_logging(level: str, fmt: str = "plain", stream: TextIO | None = None) -> logging.Handler:
    """Configure the root logger once per process (TTSQ_LOG_LEVEL, TTSQ_LOG_FORMAT); calling it again replaces
    the handler it installed before. Returns that handler."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"got log format {fmt!r}; expected one of: {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name("ttsq")
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    handler.addFilter(JobIdFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "ttsq"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def install_celery_job_context(task_names: Iterable[str]) -> None:
    """Bind the job id (each task's first argument) around every run of the named Celery tasks, so Celery's own
    lines for the task ("succeeded in 0.8s", tracebacks) carry it too. Installing again changes nothing."""
    from celery.signals import task_postrun, task_prerun

    names = frozenset(task_names)
    tokens: dict[str, Token[str | None]] = {}  # by task id; prerun and postrun run in the task's own thread

    def _prerun(task_id: str = "", task: Any = None, args: Any = None, **kwargs: Any) -> None:
        if getattr(task, "name", None) in names and args and isinstance(args[0], str):
            tokens[task_id] = _job_id.set(args[0])

    def _postrun(task_id: str = "", **kwargs: Any) -> None:
        token = tokens.pop(task_id, None)
        if token is not None:
            _job_id.reset(token)  # pool threads are reused: the next task must not inherit this id

    task_prerun.connect(_prerun, weak=False, dispatch_uid="ttsq.logs.job_context.prerun")
    task_postrun.connect(_postrun, weak=False, dispatch_uid="ttsq.logs.job_context.postrun")
