"""Chaos suite (issue 17): each fault against one real stack, every case checked by the same invariants.

The stack runs one host per service: network namespaces on a private bridge where the machine allows them (root,
``ip``, ``ip netns add``), loopback otherwise (the network cut is then skipped). Audio goes to S3 and each host has
a data directory of its own, so nothing passes through a shared file. The cases run in file order on the shared
stack; the last one waits out the retention and checks what is left. Figures go to the run's summary.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from . import invariants
from .figures import FIGURES, record
from .invariants import Ledger, check_jobs, check_metrics, check_retention, unacked_jobs
from .netns import Network, unavailable_reason
from .stack import LOCK_TTL_S, PREFIX, WORKERS, Stack, new_key, wait_for

pytestmark = pytest.mark.slow

NAMESPACES = unavailable_reason()
"""None when this machine can make network namespaces; else why not (the network cut is skipped)."""

PARAGRAPHS = [
    "The lighthouse keeper climbed the tower every evening. He trimmed the wick and polished the lens until it "
    "shone. Ships he would never meet passed safely in the night.",
    "In the morning he wrote the weather in a thick book. Wind from the west, a little rain, the sea calm by noon. "
    "Nobody ever read the book, but he kept it all the same.",
    "Once a year a boat brought flour, oil and letters. He answered every letter slowly, by lamplight, and sent "
    "the answers back with the boat when it came again.",
    "His daughter visited in the summer. She counted the steps of the tower, one hundred and twelve, and swore "
    "that there were more of them going up than coming down.",
]
LONG = "\n\n".join(PARAGRAPHS * 3)
"""About 2,000 characters: a dozen segments of TTSQ_SEGMENT_CHARS, so a fault lands mid-job with work left."""
SHORTS = [
    "A short one, to keep the queue busy.",
    "Another short job: one sentence, one segment.",
    "The third short text says almost nothing at all.",
]
MID_JOB_CHUNKS = 4
"""A fault is injected once the long job has this many sentences done (a segment or two finished)."""
OUTAGE_S = 2.0
"""How long Redis stays down: a chosen length of outage, not a wait for anything."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    network = Network(tmp_path_factory.mktemp("chaos"), isolated=NAMESPACES is None)
    built: Stack | None = None
    try:
        network.start()
        built = Stack(network).build()
        with network.entered(built.hosts["client"]):
            built.start()
            FIGURES["hosts"] = "network namespaces" if network.isolated else f"loopback ({NAMESPACES})"
            FIGURES["stack_start_s"] = built.figures["stack_start_s"]
            yield built
    finally:
        if built is not None:
            built.close()
        network.close()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


def submit(stack: Stack, ledger: Ledger, text: str, case: str, **flags: Any) -> str:
    metadata = flags.pop("metadata", None)
    return ledger.add(stack.submit(text, metadata=metadata), text, case, **flags)


def ensure_references(stack: Stack, ledger: Ledger) -> None:
    """Fault-free runs of every text the cases use (once per stack): what each later run must equal."""
    missing = [text for text in (LONG, *SHORTS) if text not in ledger.references]
    if not missing:
        return
    started = time.monotonic()
    ids = [submit(stack, ledger, text, "fault-free") for text in missing]
    records = invariants.wait_ended(stack, ledger, ids, 120)
    for job_id, text in zip(ids, missing, strict=True):
        assert records[job_id]["status"] == "succeeded", records[job_id]
        ledger.references[text] = stack.audio(records[job_id]["result"]["key"])
    check_jobs(stack, ledger, ids)
    long_job = records[ids[0]] if missing[0] == LONG else None
    record(
        "fault-free",
        jobs=len(ids),
        wall_s=time.monotonic() - started,
        long_job_s=(long_job["finished_at"] - long_job["started_at"]) if long_job else None,
        long_job_segments=long_job["segments_total"] if long_job else None,
    )


def mid_job(stack: Stack, job_id: str, timeout_s: float = 60.0) -> tuple[str, int]:
    """Wait until the job is mid-way on a worker: (that worker, sentences done)."""

    def there() -> tuple[str, int] | None:
        worker, done = stack.running_on(job_id), stack.chunks_done(job_id)
        return (worker, done) if worker and done >= MID_JOB_CHUNKS else None

    return wait_for(there, timeout_s, f"{job_id} to be mid-job on a worker")  # type: ignore[no-any-return]


def finished_boundary(stack: Stack, job_id: str) -> int:
    """Sentences covered by the job's finished segments: where a resumed run must start, not before."""
    done = int(stack.redis.llen(f"{PREFIX}job:{job_id}:done"))
    if not done:
        return 0
    return int(json.loads(stack.redis.lindex(f"{PREFIX}job:{job_id}:segments", done - 1))[1])


def resumed_elsewhere(stack: Stack, job_id: str, victim: str, timeout_s: float = 60.0) -> dict[str, float]:
    """Once another worker's run moves the job: how long that took, and that it went on from the last finished
    segment (its first progress is past every sentence those segments hold: nothing finished is done again)."""
    started = time.monotonic()
    boundary, done = finished_boundary(stack, job_id), stack.chunks_done(job_id)

    def moved() -> int | None:
        # The new run's own progress: its worker in the record, and a count other than the one the victim left.
        job = stack.job(job_id)
        progress = int((job.get("progress") or {}).get("chunks_done", 0))
        ours = job.get("worker") != victim and job.get("status") == "running" and progress != done
        return progress if ours else None

    first = wait_for(moved, timeout_s, f"{job_id} to be resumed by a worker other than {victim}")
    assert first > boundary, f"{job_id}: resumed at sentence {first}, but {boundary} were in finished segments"
    return {
        "resume_s": time.monotonic() - started,
        "at_chunk": done,
        "resumed_from_chunk": boundary,
        "chunks_redone": done - boundary,
    }


def other(worker: str) -> str:
    return next(w for w in WORKERS if w != worker)


def gave_up(stack: Stack, worker: str, job_id: str, mark: int) -> str | None:
    """How the worker's stale run of ``job_id`` ended, once it has (its task's last line: anything but a
    'continued', which a run that lost its lock can never reach); None while it has not."""
    for line in stack.worker_log_since(worker, mark).splitlines():
        if job_id in line and "Task ttsq.synthesize[" in line and "'continued'" not in line:
            if "raised" in line:
                return "raised"
            if "succeeded in" in line:
                return line.rsplit(": ", 1)[-1].split(" job=")[0].strip("'")
    return None


# --- the cases, in order -------------------------------------------------------------------------------------------


def test_fault_free_runs_are_the_reference(stack: Stack, ledger: Ledger) -> None:
    ensure_references(stack, ledger)
    assert set(ledger.references) == {LONG, *SHORTS}
    assert len({len(audio) for audio in ledger.references.values()}) == 4  # four different texts, four lengths


def test_webhook_consumer_killed_mid_delivery(stack: Stack, ledger: Ledger) -> None:
    """SIGKILL while the receiver holds the request: the event is delivered later (outbox), once per event id."""
    ensure_references(stack, ledger)
    job_id = submit(stack, ledger, SHORTS[0], "webhooks-consumer SIGKILL", metadata={"hold_s": 30}, delivery_cut=True)
    wait_for(lambda: any(d["job_id"] == job_id for d in stack.deliveries()), 30, "the first delivery to arrive")
    stack.services["hooks"].kill()
    killed_at = time.time()
    stack.services["hooks"].start()
    check_jobs(stack, ledger, [job_id])  # its redelivery is checked at the end, with the others'
    FIGURES["cut_delivery"] = {"job_id": job_id, "killed_at": killed_at}
    record("webhooks-consumer SIGKILL", faults=1, jobs=1, consumer_restart_s=time.time() - killed_at)


def test_api_killed_mid_request(stack: Stack, ledger: Ledger) -> None:
    """SIGKILL of gunicorn (master and workers) while long polls and status reads are in flight (a POST killed
    mid-way is tests/chaos/test_api_killpoints.py, at exact points); clients retry their submissions, each with its
    Idempotency-Key, until the API is back: one job per key, and each ends."""
    ensure_references(stack, ledger)
    api = stack.services["api"]
    target = submit(stack, ledger, LONG, "API SIGKILL")
    cut: list[str] = []
    killed = threading.Event()

    def reader(wait: str) -> None:
        while not killed.is_set():
            try:
                stack.http.get(f"{stack.api_url}/v1/jobs/{target}{wait}", timeout=30)
            except requests.ConnectionError:
                cut.append(wait or "status read")
                return

    readers = [threading.Thread(target=reader, args=(wait,)) for wait in ("?wait=20", "?wait=20", "")]
    for thread in readers:
        thread.start()
    mid_job(stack, target)
    api.kill()
    killed.set()
    killed_at = time.monotonic()
    for thread in readers:
        thread.join(30)
    assert cut, "no request was cut by the kill"
    api.start(wait=False)
    keys = {new_key(): text for text in SHORTS * 2}
    accepted: dict[str, str] = {}
    retries = 0
    while len(accepted) < len(keys):
        for key, text in keys.items():
            if key not in accepted:
                try:
                    accepted[key] = stack.submit(text, idempotency_key=key, timeout_s=5)
                except (requests.ConnectionError, AssertionError):
                    retries += 1
        assert time.monotonic() - killed_at < 60, "the API did not come back"
        time.sleep(0.2)  # a client's back-off between rounds of retries
    downtime_s = time.monotonic() - killed_at
    for key, job_id in accepted.items():
        ledger.add(job_id, keys[key], "API SIGKILL")
    first = next(iter(keys))
    assert stack.submit(keys[first], idempotency_key=first) == accepted[first]  # a late retry gets the first job
    check_jobs(stack, ledger, [target, *accepted.values()])
    record(
        "API SIGKILL",
        faults=1,
        jobs=1 + len(keys),
        requests_cut=len(cut),
        retried_submissions=retries,
        api_downtime_s=downtime_s,
    )


def frozen_mid_task(stack: Stack, job_id: str) -> tuple[str, int]:
    """Stop (SIGSTOP) the worker whose task is running the job, mid-task: (that worker, its log's length then).
    The record is read again while the worker is frozen, so what is done to it next never lands between two
    segments (a worker with several Celery threads may have taken the next segment's message and not started it:
    a fault then hits no task)."""
    for _ in range(20):
        victim, _ = mid_job(stack, job_id)
        mark = len(stack.services[victim].log_text())
        stack.services[victim].signal(signal.SIGSTOP)
        if stack.running_on(job_id) == victim:
            return victim, mark
        stack.services[victim].signal(signal.SIGCONT)  # caught between two segments: wait for the next one
    raise AssertionError(f"{job_id}: never caught mid-task")


def _worker_fault(stack: Stack, ledger: Ledger, case: str, signum: int) -> tuple[str, str, float, int]:
    job_id = submit(stack, ledger, LONG, case)
    victim, mark = frozen_mid_task(stack, job_id)
    at = time.monotonic()
    if signum != signal.SIGSTOP:
        stack.services[victim].signal(signum)  # a stopped process takes SIGTERM once continued, SIGKILL at once
        stack.services[victim].signal(signal.SIGCONT)
    return job_id, victim, at, mark


def test_worker_sigkill_mid_job(stack: Stack, ledger: Ledger) -> None:
    ensure_references(stack, ledger)
    job_id, victim, _, _ = _worker_fault(stack, ledger, "worker SIGKILL", signal.SIGKILL)
    stack.services[victim].process.wait(10)  # type: ignore[union-attr]
    resumed = resumed_elsewhere(stack, job_id, victim)
    stack.services[victim].start(wait=False)
    check_jobs(stack, ledger, [job_id])
    stack.services[victim].wait_ready()
    job = stack.job(job_id)
    assert job["restarts"] >= 1  # the killed task was started again
    record("worker SIGKILL", faults=1, jobs=1, **resumed, restarts=job["restarts"])


def test_worker_sigterm_hands_off_gracefully(stack: Stack, ledger: Ledger) -> None:
    """SIGTERM: the worker finishes the segment it is on and exits 0; the next one goes to the other worker."""
    ensure_references(stack, ledger)
    job_id, victim, signaled_at, _ = _worker_fault(stack, ledger, "worker SIGTERM", signal.SIGTERM)
    resumed = resumed_elsewhere(stack, job_id, victim)
    assert stack.services[victim].process.wait(30) == 0  # type: ignore[union-attr]
    exit_s = time.monotonic() - signaled_at
    stack.services[victim].start(wait=False)
    check_jobs(stack, ledger, [job_id])
    stack.services[victim].wait_ready()
    job = stack.job(job_id)
    assert job["restarts"] == 0, "a graceful hand-off restarted a task"
    record("worker SIGTERM", faults=1, jobs=1, **resumed, exit_s=exit_s)


def test_worker_sigstop_beyond_the_lock_ttl(stack: Stack, ledger: Ledger) -> None:
    """SIGSTOP for longer than the lock TTL: the other worker resumes; the stopped one, continued while the other
    still runs the job, writes nothing."""
    ensure_references(stack, ledger)
    job_id, victim, stopped_at, mark = _worker_fault(stack, ledger, "worker SIGSTOP", signal.SIGSTOP)
    shorts = [submit(stack, ledger, text, "worker SIGSTOP") for text in SHORTS]
    resumed = resumed_elsewhere(stack, job_id, victim)
    wait_for(lambda: time.monotonic() - stopped_at > LOCK_TTL_S + 1, 10, "the lock TTL to pass")
    # Continued while the other worker's run holds the job (not between two of its tasks).
    wait_for(lambda: stack.running_on(job_id) == other(victim), 10, f"{other(victim)} to hold the job")
    stack.services[victim].signal(signal.SIGCONT)
    stopped_s = time.monotonic() - stopped_at
    stale = wait_for(lambda: gave_up(stack, victim, job_id, mark), 30, f"{victim}'s stale run to stop")
    assert stale == "lock-lost", f"{victim}'s stale run ended {stale}"
    check_jobs(stack, ledger, [job_id, *shorts])  # (the victim, a live worker again, may have taken a later task)
    record(
        "worker SIGSTOP",
        faults=1,
        jobs=4,
        stopped_s=stopped_s,
        **resumed,
        stale_run=stale,
    )


def test_redis_killed_and_restarted_from_its_aof_mid_job(stack: Stack, ledger: Ledger) -> None:
    """SIGKILL of Redis mid-job, restarted from its append-only file: every job ends as it should (a message the
    outage took is sent again by the workers' upkeep), and no copy of a delivered message is kept in Redis (kombu's
    ack emulation is off: its ``unacked`` hash stays empty)."""
    ensure_references(stack, ledger)
    # Their webhooks are checked at the end: a job that ends as Redis dies gets its event from the outbox later.
    job_id = submit(stack, ledger, LONG, "Redis SIGKILL", deferred=True)
    shorts = [submit(stack, ledger, text, "Redis SIGKILL", deferred=True) for text in SHORTS]
    mid_job(stack, job_id)
    done = stack.chunks_done(job_id)
    marks = {name: len(stack.services[name].log_text()) for name in WORKERS}
    stack.services["redis"].kill()
    time.sleep(OUTAGE_S)
    stack.services["redis"].start()
    back_at = time.monotonic()
    check_jobs(stack, ledger, [job_id, *shorts], timeout_s=120)
    ended_s = time.monotonic() - back_at
    assert unacked_jobs(stack) == {}
    check_jobs(stack, ledger, [job_id, *shorts])  # and nothing of theirs changed since they ended
    logs = "".join(stack.worker_log_since(name, marks[name]) for name in WORKERS)
    record(
        "Redis SIGKILL",
        faults=1,
        jobs=4,
        killed_at_chunk=done,
        outage_s=OUTAGE_S,
        all_ended_s_after_restart=ended_s,
        redelivered_to_ended_job=logs.count("nothing to do"),
        redelivered_while_held=logs.count("running elsewhere; skipping"),
    )


@pytest.mark.skipif(NAMESPACES is not None, reason=f"network cut needs network namespaces: {NAMESPACES}")
def test_network_cut_of_the_worker_running_the_long_job(stack: Stack, ledger: Ledger) -> None:
    """The long job's worker loses its link for longer than the lock TTL: the other worker resumes from the last
    segment, the job ends byte-identical, every short job succeeds; back on the network, the cut-off worker writes
    nothing (no record field, no segment, no object)."""
    ensure_references(stack, ledger)
    job_id = submit(stack, ledger, LONG, "network cut")
    mid_job(stack, job_id)
    shorts = [submit(stack, ledger, text, "network cut") for text in SHORTS * 2]
    # Looked up again just before the cut: while the shorts were sent a segment may have ended and the next one
    # gone to the other worker (a CI run saw it), and the victim is whichever runs the job now.
    victim, mark = frozen_mid_task(stack, job_id)
    stack.network.cut(stack.hosts[victim])
    stack.services[victim].signal(signal.SIGCONT)
    cut_at = time.monotonic()
    try:
        # What the record said as the cable was pulled: the victim's run holds the job, mid-way.
        assert stack.running_on(job_id) == victim, "the cut must catch the victim mid-task"
        resumed = resumed_elsewhere(stack, job_id, victim)
        records = invariants.wait_ended(stack, ledger, [job_id, *shorts], 90)
        wait_for(lambda: time.monotonic() - cut_at > 2 * LOCK_TTL_S, 10, "twice the lock TTL")
        check_jobs(stack, ledger, [job_id, *shorts])  # the records as they ended, before the link is back
    finally:
        stack.network.mend(stack.hosts[victim])
    cut_s = time.monotonic() - cut_at
    # It stops at its next fenced write (lock-lost), or earlier, on an error reaching S3 then Redis while still cut
    # off (raised): either way it wrote nothing, which the checks below see.
    stale = wait_for(lambda: gave_up(stack, victim, job_id, mark), 60, f"{victim}'s stale run to stop")
    assert stale in ("lock-lost", "raised"), f"{victim}'s stale run ended {stale}"
    gave_up_s = time.monotonic() - cut_at - cut_s
    check_jobs(stack, ledger, [job_id, *shorts])  # nothing changed, nothing stored since
    assert records[job_id]["worker"] == other(victim)
    stack.services[victim].wait_ready(30)  # announces itself again once its link is back
    record(
        "network cut",
        faults=1,
        jobs=1 + len(shorts),
        cut_s=cut_s,
        **resumed,
        stale_run_seen_stopped_s_after_mend=gave_up_s,
        stale_run=stale,
    )


def test_after_the_faults_every_invariant_holds_and_retention_leaves_nothing(stack: Stack, ledger: Ledger) -> None:
    ensure_references(stack, ledger)
    started = time.monotonic()
    invariants.check_all(stack, ledger)
    cut = FIGURES.get("cut_delivery")
    if cut:
        got = [d for d in stack.deliveries() if d["job_id"] == cut["job_id"]]
        redelivered_s = got[-1]["at"] - cut["killed_at"]
        record("webhooks-consumer SIGKILL", deliveries_seen=len(got), redelivered_s_after_kill=redelivered_s)
    metrics = check_metrics(stack, ledger)
    retention = check_retention(stack, ledger)
    record(
        "final",
        jobs=len(ledger.jobs),
        faults_this_run=sum(c.get("faults", 0) for c in FIGURES["cases"].values()),
        created_total=metrics["ttsq_jobs_created_total"],
        wall_s=time.monotonic() - started,
        **retention,
    )
