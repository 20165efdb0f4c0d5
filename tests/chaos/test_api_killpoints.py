"""The API killed mid-POST at an exact point (issue 17): before the answer. The client retries with its
Idempotency-Key. (The count in /metrics, the key's lifetime and, since issue 12, the job's message used to be steps
of their own after the record, and a kill between them lost them; they are now written with the job's record.)

Its own small stack on loopback (Redis, S3, gunicorn with ``killpoints.py``'s hooks, one worker), so the counts
these cases leave wrong never reach the main chaos stack's checks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from .figures import record
from .invariants import Ledger, check_jobs, wait_ended
from .killpoints import KILL_HEADER, POINTS
from .netns import Network
from .stack import PREFIX, Stack, new_key, wait_for

pytestmark = pytest.mark.slow

TEXT = "A job whose request was cut short."
VISIBILITY_TIMEOUT_S = 10
"""The least config allows (twice a task limit of 5 s: these jobs are one short sentence each)."""
CLAIM_TTL_S = 60
"""api.idempotency.CLAIM_TTL_S: how long a key is held before its job is recorded."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    network = Network(tmp_path_factory.mktemp("killpoints"), isolated=False)
    overrides = {
        "TTSQ_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "TTSQ_TASK_TIME_LIMIT_S": str(VISIBILITY_TIMEOUT_S // 2),
        "TTSQ_RETENTION_S": "3600",
    }
    hooks = ("-c", str(Path(__file__).with_name("killpoints.py")))
    built = Stack(network, names=("redis", "s3", "api", "w1"), overrides=overrides, api_args=hooks).build()
    try:
        yield built.start()
    finally:
        built.close()
        network.close()


@pytest.fixture(scope="module")
def ledger(stack: Stack) -> Ledger:
    ledger = Ledger()
    job_id = ledger.add(stack.submit(TEXT, webhook=False), TEXT, "fault-free", webhook=False)
    ended = wait_ended(stack, ledger, [job_id], 60)
    ledger.references[TEXT] = stack.audio(ended[job_id]["result"]["key"])
    return ledger


KEYS: dict[str, str] = {}


@pytest.mark.parametrize("point", POINTS)
def test_a_post_killed_mid_way_leaves_one_job_and_it_ends(stack: Stack, ledger: Ledger, point: str) -> None:
    key = KEYS.setdefault(point, new_key())
    with pytest.raises(requests.ConnectionError):
        stack.submit(TEXT, idempotency_key=key, webhook=False, headers={KILL_HEADER: point})
    killed_at = time.monotonic()

    def retried() -> str | None:
        try:
            return stack.submit(TEXT, idempotency_key=key, webhook=False)
        except (requests.ConnectionError, AssertionError):
            return None  # the API worker is being replaced, or the key is still held

    job_id = wait_for(retried, 30, "the retry to be answered", poll_s=0.2)
    ledger.add(job_id, TEXT, f"API killed {point}", webhook=False)
    assert stack.submit(TEXT, idempotency_key=key, webhook=False) == job_id  # one job per key, however often asked
    check_jobs(stack, ledger, [job_id], timeout_s=VISIBILITY_TIMEOUT_S + 30)
    record(f"API killed {point}", faults=1, jobs=1, ended_s_after_kill=time.monotonic() - killed_at)


def test_every_job_a_killed_post_left_is_counted_once(stack: Stack, ledger: Ledger) -> None:
    created = stack.metrics()["ttsq_jobs_created_total"]
    assert created == len(ledger.jobs), f"/metrics: {created} created; jobs accepted: {len(ledger.jobs)}"


def test_the_key_of_a_post_killed_before_its_answer_lasts_as_long_as_its_job(stack: Stack) -> None:
    key = KEYS.get("before-answer")
    if key is None:
        pytest.skip("needs the before-answer case to have run")
    digest = hashlib.sha256(key.encode()).hexdigest()
    ttl = stack.redis.ttl(f"{PREFIX}idem:chaos:{digest}")
    assert ttl > CLAIM_TTL_S, f"the key expires in {ttl} s; its job is kept for the retention (3600 s)"
