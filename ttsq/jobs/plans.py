"""A long job's plan in Redis: its chunks, their grouping into segments, and the record of each finished segment."""

from __future__ import annotations

import json
from typing import Any

import redis
from pydantic import BaseModel

from ttsq import scripts
from ttsq.keys import DEFAULT_PREFIX, Keys
from ttsq.models import encode_fields


class SegmentRecord(BaseModel):
    """What one finished segment left behind (its audio is in storage under its segment key)."""

    samples: int
    key: str | None = None
    """Its storage key (named after the run that made it); None in records of versions before runs were named."""
    end_s: float
    """Audio seconds from the start of the job to the end of this segment."""
    marks: list[dict[str, Any]] = []
    last_chunk: dict[str, Any] | None
    """The last chunk spoken so far (this segment's, or an earlier one's): the next segment's first pause
    depends on it, exactly as if the narration had not been cut into segments."""


class PlanStore:
    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = client
        self.keys = Keys(prefix)

    def _keys(self, job_id: str) -> tuple[str, str, str]:
        return self.keys.chunks(job_id), self.keys.segments(job_id), self.keys.segments_done(job_id)

    def save(
        self,
        job_id: str,
        token: str,
        chunks: list[dict[str, Any]],
        segments: list[tuple[int, int]],
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Store the plan, and ``fields`` of the job's record with it, in one step, only for the lock holder of a
        running job (fenced in Lua)."""
        keys = (self.keys.lock(job_id), self.keys.job(job_id), *self._keys(job_id)[:2], self.keys.events(job_id))
        encoded = [json.dumps(c) for c in chunks] + [json.dumps(list(s)) for s in segments]
        args: list[str | int] = [token, len(chunks), len(segments), *encoded, *_pairs(fields)]
        return bool(self.redis.eval(scripts.SAVE_PLAN, 5, *keys, *args))

    def has_plan(self, job_id: str) -> bool:
        return bool(self.redis.exists(self._keys(job_id)[1]))

    def segment_count(self, job_id: str) -> int:
        return int(self.redis.llen(self._keys(job_id)[1]))

    def segment_chunks(self, job_id: str, index: int) -> tuple[int, list[dict[str, Any]]]:
        """The index of the segment's first chunk, and its chunks."""
        chunk_key, segment_key, _ = self._keys(job_id)
        first, end = json.loads(self.redis.lindex(segment_key, index))  # type: ignore[arg-type]
        return first, [json.loads(raw) for raw in self.redis.lrange(chunk_key, first, end - 1)]

    def done_count(self, job_id: str) -> int:
        return int(self.redis.llen(self._keys(job_id)[2]))

    def record(self, job_id: str, index: int) -> SegmentRecord | None:
        raw = self.redis.lindex(self._keys(job_id)[2], index) if index >= 0 else None
        return None if raw is None else SegmentRecord.model_validate_json(raw)

    def records(self, job_id: str) -> list[SegmentRecord]:
        return [SegmentRecord.model_validate_json(raw) for raw in self.redis.lrange(self._keys(job_id)[2], 0, -1)]

    def finish_segment(
        self, job_id: str, token: str, index: int, record: SegmentRecord, fields: dict[str, Any] | None = None
    ) -> bool:
        """Append the record only as segment ``index``, and only while holding the job's lock: never twice. The job's
        ``fields`` (its progress, say) are written in the same step."""
        job = self.keys.job(job_id)
        keys = (self.keys.lock(job_id), self.keys.segments_done(job_id), job, self.keys.events(job_id))
        args: list[str | int] = [token, index, record.model_dump_json(), *_pairs(fields)]
        return bool(self.redis.eval(scripts.FINISH_SEGMENT, 4, *keys, *args))

    def delete(self, job_id: str) -> None:
        self.redis.delete(*self._keys(job_id))


def _pairs(fields: dict[str, Any] | None) -> list[str]:
    return [item for pair in encode_fields(fields or {}).items() for item in pair]
