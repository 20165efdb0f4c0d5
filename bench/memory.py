"""Does the worker's memory stay flat over long jobs, and what does each added speaker cost at start (issue 12)?

Run from anywhere: ``python bench/memory.py [--quick] [--jobs 3] [--chars 40000] [--worker-env NAME=VALUE ...]``.
Jobs: a fresh worker process (embedded Redis, the API, local storage, the worker's default settings) narrates
``--jobs`` texts of ``--chars`` characters one after another; its VmRSS after each job and its peak (VmHWM, reset
before each job) during each, and the target: RSS after the last job at most 1.25x RSS after the first. Start-up:
a worker with one speaker against a worker with two (the same voice under a second name, ``file://`` its package
directory), RSS at start and the ``+N MB RAM`` its start-up log gives each speaker; the target: at most 100 MB per
added speaker. ``--worker-env`` sets a variable for the worker processes only (``MALLOC_ARENA_MAX=2``,
``TTSQ_ALLOCATOR=system``), to compare cures. Prints a table and writes JSON (default
``bench/results/memory.json``).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as `python bench/memory.py`, Python puts bench/ first on sys.path, where bench/engine.py shadows the engine
# package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root: `engine` and `bench.stack`

import requests

from bench import stack as kit
from bench.narration import WARMUP_TEXT, WARMUP_TIMEOUT_S, Work, build_text, run_job, stack_env, stored_audio_s
from bench.rss import MB, RssSampler, proc_status_bytes, reset_peak_rss
from engine.sources import parse_source
from ttsq.client import wait_ready
from ttsq.config import DEFAULT_SPEAKER, load_config

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "memory.json"

JOBS = 3
CHARS = 40_000
QUICK_CHARS = 4_000
"""Characters per job; --quick is a smoke run."""
GROWTH_TARGET = 1.25
"""The worker's RSS after the last job may be at most this many times its RSS after the first."""
SPEAKER_TARGET_MB = 100.0
"""Each speaker added to a worker may cost at most this many MB of RSS at start."""
SECOND_SPEAKER = "joe2"
"""The default voice again under a second name, loaded from its package directory: two speakers, still offline."""

READY_TIMEOUT_S = 180.0
SETTLE_S = 2.0
"""Pause after a job (or start-up) before reading VmRSS: the worker's upkeep and announcement threads settle."""
JOB_TIMEOUT_BASE_S = 300.0
JOB_TIMEOUT_PER_CHAR_S = 0.03
"""A job may take JOB_TIMEOUT_BASE_S + this per character (40k: 25 minutes, on a busy 2-core host)."""
SPEAKER_LOG = re.compile(r"speaker (?P<name>[a-z0-9_-]+): .*?, \+(?P<mb>-?\d+) MB RAM")
"""worker/main.py's start-up line for each speaker."""


@dataclass(frozen=True)
class JobMemory:
    job: int
    chars: int
    audio_s: float
    wall_s: float
    rss_before_mb: float
    rss_after_mb: float
    """VmRSS SETTLE_S after the job succeeded."""
    peak_mb: float | None
    """VmHWM reset before the job and read after it (None where Linux cannot reset it)."""
    sampled_max_mb: float


@dataclass(frozen=True)
class StartMemory:
    speakers: list[str]
    rss_mb: float
    """VmRSS of the started worker, SETTLE_S after it announced itself, before any job."""
    start_peak_mb: float
    logged_mb: dict[str, float]
    """The ``+N MB RAM`` of each speaker in the worker's start-up log."""


def worker_env(env: dict[str, str], extra: dict[str, str], speakers: dict[str, str]) -> dict[str, str]:
    """The stack's settings plus --worker-env, INFO logs (they carry the per-speaker figures) and the speakers."""
    spec = ",".join(f"{name}={source}" for name, source in speakers.items())
    return env | {"TTSQ_LOG_LEVEL": "INFO", "TTSQ_SPEAKERS": spec} | extra


def settled_rss(pid: int) -> int:
    time.sleep(SETTLE_S)
    return proc_status_bytes(pid, "VmRSS")


def logged_speakers(log: Path) -> dict[str, float]:
    return {m["name"]: float(m["mb"]) for m in SPEAKER_LOG.finditer(log.read_text(errors="replace"))}


def bench_jobs(
    base_url: str, env: dict[str, str], data_dir: Path, jobs: int, chars: int
) -> tuple[StartMemory, list[JobMemory]]:
    """One fresh worker narrates ``jobs`` texts of ``chars`` characters back to back."""
    config = load_config(env)
    log = data_dir / "worker-jobs.log"
    text = build_text(chars)
    results: list[JobMemory] = []
    with kit.worker_process(env, log) as worker, requests.Session() as session:
        wait_ready(base_url, timeout_s=READY_TIMEOUT_S, alive=lambda: worker.poll() is None)
        warmup, _, _ = run_job(session, base_url, Work("warm-up", WARMUP_TEXT), WARMUP_TIMEOUT_S)
        stored_audio_s(config.audio_dir, warmup["id"])
        start = StartMemory(
            sorted(config.speakers),
            settled_rss(worker.pid) / MB,
            proc_status_bytes(worker.pid, "VmHWM") / MB,
            logged_speakers(log),
        )
        for index in range(1, jobs + 1):
            before = proc_status_bytes(worker.pid, "VmRSS")
            reset = reset_peak_rss(worker.pid)
            print(f"  job {index}/{jobs}: {len(text)} chars", file=sys.stderr, flush=True)
            with RssSampler(worker.pid) as sampler:
                job, wall_s, _ = run_job(
                    session, base_url, Work("text", text), JOB_TIMEOUT_BASE_S + JOB_TIMEOUT_PER_CHAR_S * len(text)
                )
                peak = proc_status_bytes(worker.pid, "VmHWM")
            stored_audio_s(config.audio_dir, job["id"])
            after = settled_rss(worker.pid)
            results.append(
                JobMemory(
                    index,
                    len(text),
                    float(job["result"]["duration_s"]),
                    wall_s,
                    before / MB,
                    after / MB,
                    peak / MB if reset else None,
                    max((rss for _, rss in sampler.samples), default=0) / MB,
                )
            )
            print(
                f"    done in {wall_s:.0f} s: RSS {after / MB:.0f} MB after, peak {peak / MB:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        if worker.poll() is not None:
            raise kit.BenchError(f"the worker exited (code {worker.returncode}) during the jobs")
    return start, results


def bench_startup(base_url: str, env: dict[str, str], data_dir: Path, speakers: dict[str, str]) -> StartMemory:
    """A fresh worker with ``speakers``, measured once it has announced itself."""
    log = data_dir / f"worker-start-{len(speakers)}.log"
    with kit.worker_process(env, log) as worker:
        wait_ready(base_url, timeout_s=READY_TIMEOUT_S, alive=lambda: worker.poll() is None)
        rss = settled_rss(worker.pid)
        return StartMemory(
            sorted(speakers), rss / MB, proc_status_bytes(worker.pid, "VmHWM") / MB, logged_speakers(log)
        )


def voice_directory(cache_dir: Path) -> str:
    """The default voice's files as a ``file://`` source, so a second name for it loads from a path of its own."""
    return f"file://{parse_source(load_config({}).speakers[DEFAULT_SPEAKER]).fetch(cache_dir)}"


def run(jobs: int, chars: int, extra: dict[str, str], startup: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ttsq-bench-") as tmp, ExitStack() as stack:
        data_dir = Path(tmp)
        redis_url = stack.enter_context(kit.embedded_redis(data_dir))
        env = stack_env(redis_url, data_dir, len(build_text(chars)))
        base_url = stack.enter_context(kit.api_server(env))
        one = {DEFAULT_SPEAKER: load_config({}).speakers[DEFAULT_SPEAKER]}
        starts: list[StartMemory] = []
        if startup:
            two = one | {SECOND_SPEAKER: voice_directory(load_config(env).cache_dir)}
            for speakers in (one, two):
                print(f"  start-up: {', '.join(speakers)}", file=sys.stderr, flush=True)
                starts.append(bench_startup(base_url, worker_env(env, extra, speakers), data_dir, speakers))
        runs: list[JobMemory] = []
        job_start = None
        if jobs:
            job_start, runs = bench_jobs(base_url, worker_env(env, extra, one), data_dir, jobs, chars)
    return {"startup": starts, "job_start": job_start, "jobs": runs}


# --- report --------------------------------------------------------------------------------------------------------


def targets(starts: Sequence[StartMemory], runs: Sequence[JobMemory]) -> dict[str, Any]:
    found: dict[str, Any] = {"growth_target": GROWTH_TARGET, "speaker_target_mb": SPEAKER_TARGET_MB}
    if len(runs) >= 2:
        ratio = runs[-1].rss_after_mb / runs[0].rss_after_mb
        found |= {"rss_growth_ratio": ratio, "growth_met": ratio <= GROWTH_TARGET}
        peaks = [r.peak_mb for r in runs]
        if peaks[0] and peaks[-1]:
            found["peak_growth_ratio"] = peaks[-1] / peaks[0]
    if len(starts) == 2:
        one, two = starts
        added = len(two.speakers) - len(one.speakers)
        per_speaker = (two.rss_mb - one.rss_mb) / added
        logged = two.logged_mb.get(SECOND_SPEAKER)
        found |= {
            "per_added_speaker_mb": per_speaker,
            "per_added_speaker_logged_mb": logged,
            "speaker_met": per_speaker <= SPEAKER_TARGET_MB and (logged is None or logged <= SPEAKER_TARGET_MB),
        }
    return found


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def report(result: dict[str, Any], extra: dict[str, str]) -> str:
    starts: list[StartMemory] = result["startup"]
    runs: list[JobMemory] = result["jobs"]
    t = targets(starts, runs)
    settings = ", ".join(f"{k}={v}" for k, v in extra.items()) or "the worker's defaults"
    lines = [f"Worker memory (issue 12), {settings}", ""]
    if result["job_start"] is not None:
        start = result["job_start"]
        lines += [
            f"Jobs: one fresh worker ({', '.join(start.speakers)}), warmed, then {len(runs)} jobs back to back",
            f"  at start: RSS {start.rss_mb:.0f} MB, start-up peak {start.start_peak_mb:.0f} MB",
        ]
        headers = [
            "job",
            "chars",
            "audio s",
            "wall s",
            "RSS before MB",
            "RSS after MB",
            "job peak MB",
            "sampled max MB",
        ]
        rows = [
            [
                str(r.job),
                str(r.chars),
                f"{r.audio_s:.0f}",
                f"{r.wall_s:.0f}",
                _mb(r.rss_before_mb),
                _mb(r.rss_after_mb),
                _mb(r.peak_mb),
                _mb(r.sampled_max_mb),
            ]
            for r in runs
        ]
        lines += [
            kit.format_table(headers, rows),
            "RSS after: VmRSS 2 s after the job; job peak: VmHWM reset before it.",
        ]
        if "rss_growth_ratio" in t:
            verdict = "met" if t["growth_met"] else "NOT MET"
            lines.append(
                f"  RSS after job {len(runs)} / after job 1: {t['rss_growth_ratio']:.3f} "
                f"(target <= {GROWTH_TARGET}): {verdict}"
            )
        if "peak_growth_ratio" in t:
            lines.append(f"  peak of job {len(runs)} / peak of job 1: {t['peak_growth_ratio']:.3f}")
        lines.append("")
    if starts:
        headers = ["speakers", "RSS at start MB", "start-up peak MB", "start-up log, per speaker"]
        rows = [
            [
                ", ".join(s.speakers),
                _mb(s.rss_mb),
                _mb(s.start_peak_mb),
                ", ".join(f"{name} +{mb:.0f} MB" for name, mb in s.logged_mb.items()) or "-",
            ]
            for s in starts
        ]
        lines += ["Start-up: a fresh worker per row, idle after it announced itself", kit.format_table(headers, rows)]
        if "per_added_speaker_mb" in t:
            verdict = "met" if t["speaker_met"] else "NOT MET"
            lines.append(
                f"  per added speaker: {t['per_added_speaker_mb']:+.0f} MB RSS, "
                f"{_mb(t['per_added_speaker_logged_mb'])} MB in the log (target <= {SPEAKER_TARGET_MB:.0f}): {verdict}"
            )
    return "\n".join(lines)


def parse_env(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise argparse.ArgumentTypeError(f"got {raw!r}; expected NAME=VALUE")
    return name, value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs in a row on one worker ({JOBS}; 0: none)")
    parser.add_argument("--chars", type=int, default=None, help=f"characters per job ({CHARS}; --quick {QUICK_CHARS})")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: jobs of {QUICK_CHARS} characters")
    parser.add_argument("--no-startup", action="store_true", help="skip the one-against-two-speakers start-up")
    parser.add_argument(
        "--worker-env",
        type=parse_env,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable for the worker processes (repeatable)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the figures ({DEFAULT_JSON})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the long polls would flood the terminal
    chars = args.chars or (QUICK_CHARS if args.quick else CHARS)
    extra = dict(args.worker_env)
    load_before = os.getloadavg()
    result = run(args.jobs, chars, extra, not args.no_startup)
    print()
    print(report(result, extra))
    env = kit.environment(load_before)
    print(
        f"\nHost: {env['cpu_count']} CPUs; 1-minute load average {load_before[0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after."
    )
    kit.write_json(
        args.json,
        {
            "quick": args.quick,
            "worker_env": extra,
            "environment": env,
            "startup": [asdict(s) for s in result["startup"]],
            "job_start": asdict(result["job_start"]) if result["job_start"] else None,
            "jobs": [asdict(r) for r in result["jobs"]],
            "targets": targets(result["startup"], result["jobs"]),
        },
    )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
