"""A long job's plan in Redis: its chunks, their grouping into segments, and the record of each finished segment."""

from __future__ import annotations

import json
from typing import Any

import redis
from pydantic import BaseModel


class SegmentRecord(BaseModel):
    """What one finished segment left behind (its audio is in storage under its segment key)."""

    samples: int
    end_s: float
    """Audio seconds from the start of the job to the end of this segment."""
    marks: list[dict[str, Any]] = []
    last_chunk: dict[str, Any] | None
    """The last chunk spoken so far (this segment's, or an earlier one's): the next segment's first pause
    depends on it, exactly as if the narration had not been cut into segments."""


class PlanStore:
    def __init__(self, client: redis.Redis, prefix: str = "ttsq:") -> None:
        self.redis = client
        self.prefix = prefix

    def _keys(self, job_id: str) -> tuple[str, str, str]:
        base = f"{self.prefix}job:{job_id}"
        return f"{base}:chunks", f"{base}:segments", f"{base}:done"

    def save(self, job_id: str, chunks: list[dict[str, Any]], segments: list[tuple[int, int]]) -> None:
        chunk_key, segment_key, _ = self._keys(job_id)
        with self.redis.pipeline() as pipe:
            pipe.delete(chunk_key, segment_key)
            for start in range(0, len(chunks), 1000):  # bounded commands for book-length texts
                pipe.rpush(chunk_key, *(json.dumps(c) for c in chunks[start : start + 1000]))
            pipe.rpush(segment_key, *(json.dumps(list(s)) for s in segments))
            pipe.execute()

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

    def finish_segment(self, job_id: str, lock_key: str, token: str, index: int, record: SegmentRecord) -> bool:
        """Append the record only as segment ``index``, and only while holding the job's lock: never twice."""
        done_key = self._keys(job_id)[2]
        return bool(self.redis.eval(_FINISH, 2, lock_key, done_key, token, index, record.model_dump_json()))

    def delete(self, job_id: str) -> None:
        self.redis.delete(*self._keys(job_id))


_FINISH = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('llen', KEYS[2]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('rpush', KEYS[2], ARGV[3])
return 1
"""
