"""Outages are quiet: one line when worker upkeep loses Redis, one when it has it again (issue 17, defect 6)."""

from __future__ import annotations

import logging
import threading

import redis

from ttsq.config import load_config
from worker import upkeep


class NoWait(threading.Event):
    """Upkeep's stop event, without the pause between ticks (the ticks are counted, not timed)."""

    def wait(self, timeout: float | None = None) -> bool:
        return self.is_set()


def test_upkeep_logs_one_line_per_outage_and_one_when_it_ends(config_env, tts, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from worker.main import build_runtime

    dead = {**config_env, "TTSQ_REDIS_URL": "redis://127.0.0.1:1/0", "TTSQ_LOCK_TTL_S": "3"}
    runtime = build_runtime(load_config(dead), tts=tts)
    stop = NoWait()
    ticks: list[int] = []
    original = upkeep.announce

    def counting(rt) -> None:  # type: ignore[no-untyped-def]
        ticks.append(1)
        if len(ticks) >= 3:
            stop.set()  # three ticks of the outage are enough
        original(rt)

    monkeypatch.setattr(upkeep, "announce", counting)
    with caplog.at_level(logging.DEBUG, logger="worker.upkeep"):
        upkeep.run_upkeep(runtime, stop)
    lines = [r for r in caplog.records if r.name == "worker.upkeep" and r.levelno >= logging.WARNING]
    assert len(ticks) == 3
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "Redis is unreachable" in lines[0].getMessage() and lines[0].exc_info is None

    outage = upkeep.Outage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="worker.upkeep"):
        outage.failed(redis.ConnectionError("refused"), 1.0)
        outage.failed(redis.ConnectionError("refused"), 1.0)
        outage.ok()
        outage.ok()
    messages = [r.getMessage() for r in caplog.records if r.name == "worker.upkeep"]
    assert len(messages) == 2 and "works again" in messages[1]
