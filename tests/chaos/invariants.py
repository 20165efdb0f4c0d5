"""The invariants every fault is checked against, in one place, so each case asserts exactly the same things.

1. Every accepted job ends in exactly one terminal state (and is counted as ended once).
2. Its audio equals a fault-free run of the same text, byte for byte (zero noise), or it failed with a reason.
3. No field of its record changes after its ``finished_at`` (``webhook``, the delivery's own record, aside).
4. Nothing of it is left in storage but its output (no segment, no partial upload).
5. Exactly one webhook event per ended job, delivered and signed; the receiver sees it once (twice only when a
   consumer was killed while the receiver held the request: at-least-once, same event id).
6. ``/metrics`` counts equal what was submitted and how it ended.
7. Once the retention has passed: no job key, no key without a TTL, no object left.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .stack import PREFIX, RETENTION_S, Stack, wait_for

TERMINAL = ("succeeded", "failed", "canceled")
DELIVERY_FIELD = "webhook"
"""Written after the end by design (README: each attempt shows in the job); every other field is frozen."""
LONG_KEYS_WITHOUT_TTL = (f"{PREFIX}metrics:", "_kombu.binding", f"{PREFIX}jobs:finished:backfilled")
"""Deployment-wide keys that live as long as the deployment (metrics, kombu's bindings, a once-only flag)."""


@dataclass
class Expected:
    job_id: str
    text: str
    case: str
    may_fail: bool = False
    """The fault may end it as failed (with a reason) instead of equal audio."""
    delivery_cut: bool = False
    """A webhook consumer was killed while the receiver held this job's first delivery."""
    webhook: bool = True
    deferred: bool = False
    """Its webhook may come from the outbox, a minute after the end (the fault hit as the job ended)."""


@dataclass
class Ledger:
    """What the client submitted on one stack, and what the checks saw."""

    jobs: dict[str, Expected] = field(default_factory=dict)
    references: dict[str, bytes] = field(default_factory=dict)
    frozen: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, job_id: str, text: str, case: str, **flags: Any) -> str:
        assert job_id not in self.jobs, f"{job_id} accepted twice"
        self.jobs[job_id] = Expected(job_id, text, case, **flags)
        return job_id


def wait_ended(stack: Stack, ledger: Ledger, job_ids: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Each job's record as first seen ended (kept in the ledger: what no later write may change)."""
    ended: dict[str, dict[str, Any]] = {}

    def all_ended() -> bool:
        for job_id in job_ids:
            if job_id not in ended and (record := stack.job(job_id)).get("status") in TERMINAL:
                ended[job_id] = record
                ledger.frozen.setdefault(job_id, {k: v for k, v in record.items() if k != DELIVERY_FIELD})
        return len(ended) == len(job_ids)

    try:
        wait_for(all_ended, timeout_s, f"{len(job_ids)} jobs to end", poll_s=0.2)
    except AssertionError:
        left = {j: stack.job(j).get("status") for j in job_ids if j not in ended}
        raise AssertionError(f"jobs still not ended after {timeout_s:.0f} s: {left}") from None
    return ended


def check_jobs(stack: Stack, ledger: Ledger, job_ids: list[str], timeout_s: float = 90.0, final: bool = False) -> None:
    """Invariants 1-5 for ``job_ids``. A cut delivery is waited for only when ``final`` (its redelivery comes
    from the outbox, a minute after the job ended)."""
    wait_ended(stack, ledger, job_ids, timeout_s)
    records = {job_id: stack.job(job_id) for job_id in job_ids}
    active = {m.decode() for m in stack.redis.smembers(f"{PREFIX}jobs:active")}
    for job_id, record in records.items():
        expected = ledger.jobs[job_id]
        where = f"{job_id} ({expected.case})"
        assert record, f"{where}: its record is gone (retention ran before the check?)"
        assert record.get("finished_at"), f"{where}: ended without finished_at: {record}"
        assert job_id not in active, f"{where}: ended but still in the active set"
        score = stack.redis.zscore(f"{PREFIX}jobs:finished", job_id)
        if score is None and final and time.time() >= float(record["finished_at"]) + RETENTION_S:
            continue  # retention has claimed it (out of the set) and is removing it; its record was checked as it ended
        assert score == record["finished_at"], f"{where}: retention set has {score}, record {record['finished_at']}"
        _check_frozen(ledger, job_id, record, where)
        if record["status"] == "succeeded":
            key = record["result"]["key"]
            audio = stack.audio(key)
            assert audio == ledger.references[expected.text], f"{where}: audio differs from the fault-free run"
            assert record["result"]["size_bytes"] == len(audio)
            output = sorted(f"jobs/{name}" for name in _stored_names(record["result"], job_id))
            # The run's clean-up follows its recorded end, one step after another (objects, open uploads, plan):
            # each is awaited, not read once.
            wait_for(lambda: stack.objects(job_id) == output, 15, f"{where}: only its outputs in S3")  # noqa: B023
            wait_for(lambda: stack.uploads(job_id) == [], 15, f"{where}: a multipart upload left open")  # noqa: B023
            if not expected.deferred:  # its plan went with the success (a Redis outage may leave it to retention)
                plan = [f"{PREFIX}job:{job_id}:{name}" for name in ("chunks", "segments", "done")]
                wait_for(lambda: not stack.redis.exists(*plan), 15, f"{where}: its plan outlived the success")  # noqa: B023
        else:
            error = record.get("error") or {}
            assert expected.may_fail and record["status"] == "failed", f"{where}: ended {record['status']}: {error}"
            assert error.get("code") and error.get("message"), f"{where}: failed without a reason"
    for job_id in job_ids:
        expected = ledger.jobs[job_id]
        if expected.webhook and (final or not (expected.delivery_cut or expected.deferred)):
            _check_webhook(stack, ledger, job_id, timeout_s=90.0 if final else 20.0)


def _stored_names(value: Any, job_id: str) -> set[str]:
    """Every storage key a result names (the audio, and any side files such as captions)."""
    if isinstance(value, str):
        return {value} if value.startswith(f"{job_id}.") else set()
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return set().union(*(_stored_names(v, job_id) for v in value)) if value else set()
    return set()


def _check_frozen(ledger: Ledger, job_id: str, record: dict[str, Any], where: str) -> None:
    fields = {k: v for k, v in record.items() if k != DELIVERY_FIELD}
    seen = ledger.frozen.setdefault(job_id, fields)
    changed = {k: (seen.get(k), fields.get(k)) for k in seen.keys() | fields.keys() if seen.get(k) != fields.get(k)}
    assert not changed, f"{where}: fields changed after finished_at (before, after): {changed}"


def _check_webhook(stack: Stack, ledger: Ledger, job_id: str, timeout_s: float) -> None:
    expected = ledger.jobs[job_id]
    where = f"{job_id} ({expected.case})"
    status = ledger.frozen[job_id]["status"]

    def delivered() -> bool:
        record = stack.job(job_id)
        if not record:  # removed by retention since: the receiver's side is what is left to check
            return any(d["job_id"] == job_id and d["answered"] for d in stack.deliveries())
        state = record.get(DELIVERY_FIELD) or {}
        assert not state.get("failed"), f"{where}: its webhook was given up: {state}"
        return bool(state.get("delivered_at"))

    wait_for(delivered, timeout_s, f"{where}: its webhook to be delivered", poll_s=0.2)
    got = [d for d in stack.deliveries() if d["job_id"] == job_id]
    assert {d["event_id"] for d in got} == {f"{job_id}.{status}"}, f"{where}: events {got}"
    assert all(d["valid"] for d in got), f"{where}: a delivery's signature did not verify"
    if expected.delivery_cut:
        assert 1 <= len(got) <= 2, f"{where}: {len(got)} deliveries of one event"
    else:
        assert len(got) == 1, f"{where}: {len(got)} deliveries of one event: {got}"


def check_all(stack: Stack, ledger: Ledger) -> None:
    """Invariants 1-5 for every job of the ledger, late webhooks included; a job retention removed already is
    checked for having been removed on time (its record was checked as it ended)."""
    now = time.time()
    removed = [j for j in ledger.jobs if not stack.redis.exists(f"{PREFIX}job:{j}")]
    for job_id in removed:
        assert job_id in ledger.frozen, f"{job_id} ({ledger.jobs[job_id].case}): gone, never seen to end"
        ended_at = float(ledger.frozen[job_id]["finished_at"])
        assert now >= ended_at + RETENTION_S, f"{job_id}: removed {ended_at + RETENTION_S - now:.0f} s early"
    check_jobs(stack, ledger, [j for j in ledger.jobs if j not in removed], final=True)
    for job_id in removed:
        if ledger.jobs[job_id].webhook:
            _check_webhook(stack, ledger, job_id, timeout_s=1)


def check_metrics(stack: Stack, ledger: Ledger) -> dict[str, float]:
    """Invariant 6, once nothing is queued or running: the counters equal the ledger."""
    metrics = stack.metrics()
    statuses = Counter(str(stack.job(j).get("status") or ledger.frozen[j]["status"]) for j in ledger.jobs)
    created = metrics["ttsq_jobs_created_total"]
    assert created == len(ledger.jobs), f"/metrics says {created} jobs were created; {len(ledger.jobs)} were accepted"
    for status in TERMINAL:
        counted = metrics[f'ttsq_jobs_finished_total{{status="{status}"}}']
        assert counted == statuses[status], f"finished {status}: /metrics says {counted}, the jobs {statuses[status]}"
    for status in ("queued", "running"):
        assert metrics[f'ttsq_jobs{{status="{status}"}}'] == 0, f"{status} jobs left: {metrics}"
    hooks = sum(1 for e in ledger.jobs.values() if e.webhook)
    assert metrics['ttsq_webhook_deliveries_total{outcome="delivered"}'] == hooks
    for outcome in ("failed", "refused"):
        assert metrics[f'ttsq_webhook_deliveries_total{{outcome="{outcome}"}}'] == 0
    return metrics


def unacked_jobs(stack: Stack) -> dict[str, str]:
    """kombu's unacknowledged messages: delivery tag -> the job id its task names (``?`` for anything else)."""
    found = {}
    for tag, raw in stack.redis.hgetall("unacked").items():
        message = json.loads(raw)[0]
        body = message.get("body", "")
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        try:
            args = json.loads(body)[0]  # Celery's protocol 2: [args, kwargs, embed]
            found[tag.decode()] = str(args[0])
        except (ValueError, IndexError, KeyError, TypeError):
            found[tag.decode()] = "?"
    return found


def check_retention(stack: Stack, ledger: Ledger, timeout_s: float = 120.0) -> dict[str, Any]:
    """Invariant 7: once the retention has passed for every job, the sweep leaves nothing of them."""
    last_end = max(float(f["finished_at"]) for f in ledger.frozen.values())
    wait_for(lambda: time.time() > last_end + RETENTION_S, RETENTION_S + 5, "the retention period to pass", 0.5)
    job_keys = lambda: [k for k in stack.redis.scan_iter(match=f"{PREFIX}job:*") if not k.endswith(b":gone")]  # noqa: E731
    wait_for(lambda: not job_keys(), timeout_s, "retention to remove every job's keys", poll_s=0.5)
    without_ttl = sorted(
        key.decode()
        for key in stack.redis.scan_iter(count=1000)
        if stack.redis.ttl(key) == -1 and not key.decode().startswith(LONG_KEYS_WITHOUT_TTL)
    )
    assert without_ttl == [], f"keys without a TTL left after retention: {without_ttl}"
    wait_for(lambda: stack.objects() == [] and stack.uploads() == [], 15, "S3 to be empty after retention")
    # Told as removed (410) for one more retention period after the removal: the job that ended last still is.
    gone = stack.api_job(max(ledger.frozen, key=lambda j: float(ledger.frozen[j]["finished_at"])))
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "job_expired", gone.text
    return {"swept_s_after_retention": round(time.time() - last_end - RETENTION_S, 1)}
