"""Narrate long texts through the whole stack: does time grow linearly with the text, and the worker's memory stay flat?

Run from anywhere: ``python bench/narration.py [--sizes 20000,100000,400000] [--epub CHARS] [--quick] [--json PATH]``.
Each size is one job, sent through the API to a fresh worker process (embedded Redis, local storage, the worker's
default settings); prints one table and the two targets of issue 3, and writes the figures as JSON (default
``bench/results/narration.json``). ``--epub`` adds issue 14's case: an EPUB of that many characters in ten
chapters, uploaded and narrated to ``m4b``, against the very text it reads as (``read_document``) sent as plain WAV,
each on a fresh worker: throughput within 10% of the WAV's, the worker's memory flat.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Run as `python bench/narration.py`, Python puts bench/ first on sys.path, where bench/engine.py shadows the engine
# package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root: `engine` and `bench.stack`

import redis
import requests
import soundfile

from bench import audiobook
from bench import stack as kit
from bench.rss import MB, RSS_PERIOD_S, RssSampler, proc_status_bytes, reset_peak_rss, rss_curve
from ttsq.client import LONG_POLL_S, wait_ready
from ttsq.config import load_config
from ttsq.jobs.store import JobStore
from ttsq.storage.base import key_for

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "bench" / "results" / "narration.json"
SPEAKER = "joe"
FORMAT = "wav"

SIZES = (20_000, 100_000, 400_000)
QUICK_SIZES = (5_000, 20_000)
"""Characters per text; each size is one job."""
EPUB_CHARS = 200_000
QUICK_EPUB_CHARS = 10_000
"""The EPUB case's book (``--epub``): a few hundred thousand characters, as issue 14 asks; --quick a smoke run."""
EPUB_FORMAT = "m4b"

THROUGHPUT_TARGET = 0.10
"""The largest text's audio seconds per wall second may fall at most this fraction below the smallest text's."""
RSS_TARGET_MB = 50.0
"""The worker's peak RSS on the largest text may exceed its peak on the smallest by at most this many MB."""


PROGRESS_EVERY_S = 60.0
"""How often the job's progress is shown on stderr."""
READY_TIMEOUT_S = 120.0
WARMUP_TIMEOUT_S = 120.0
JOB_TIMEOUT_BASE_S = 300.0
JOB_TIMEOUT_PER_CHAR_S = 0.01
"""A job may take JOB_TIMEOUT_BASE_S + this per character (400k: about 70 minutes, four times the expected)."""

WARMUP_TEXT = "Warming up. This is a short sentence, with a comma!"
PASSAGE = (
    "The house on Marrow Lane had stood empty for eleven winters before the Ashdowns came to look at it. Mr. Ashdown "
    "walked the length of the garden twice, counting his steps under his breath, while his wife stood at the gate "
    "with her hands in her coat pockets and said nothing at all. The roof sagged a little over the kitchen; the "
    "windows on the north side had gone milky with age; and somebody, years ago, had planted a row of pear trees "
    "that no one had pruned since.\n\n"
    '"It\'s too big for us," she said at last. "We\'d rattle around in it like two peas in a drum."\n\n'
    '"Then we\'ll fill it," he answered. "Books, mostly. And the piano, if the stairs will take it."\n\n'
    "The agent, a thin young man named Pryce who had clearly hoped to be somewhere else by half past four, opened "
    "the front door with a key the size of a soup spoon. Inside, the hall smelled of dust and old wax and, faintly, "
    "of lavender, as if someone had left a sachet in a drawer and forgotten it. Light fell through the stained glass "
    "above the door and lay across the floorboards in pools of red and amber.\n\n"
    "They went from room to room without hurrying. In the study, the shelves still held a few forgotten volumes: a "
    "gazetteer of the county from 1911, three novels with their spines gone soft, and a ledger in which a careful "
    "hand had recorded the weather every morning for nearly twenty years. Rain, it said, and rain again; then, in "
    "the margin of one August page, a single word underlined twice: Swallows.\n\n"
    "Mrs. Ashdown turned the pages slowly. She was not a sentimental woman, or so she liked to say, but she stood "
    "there long enough that her husband came back to find her. He read over her shoulder and did not speak. "
    "Outside, the wind moved through the pear trees, and somewhere at the bottom of the garden a gate knocked softly "
    "against its post, once, twice, as if asking to be let in.\n\n"
    '"Well," said Mr. Pryce from the doorway, with the brightness of a man who senses a sale, "shall I tell the '
    "owners you're interested?\"\n\n"
    'She closed the ledger and held it against her chest. "Tell them," she said, "that we\'ll need the key."\n\n'
)


def build_text(min_chars: int) -> str:
    """The passage repeated until it has at least ``min_chars`` characters: paragraphs and all."""
    repeats = -(-min_chars // len(PASSAGE))
    return (PASSAGE * repeats).strip()


# --- the stack: embedded Redis, the API on a real HTTP server, one worker process per size -------------------------


def stack_env(redis_url: str, data_dir: Path, max_text_chars: int) -> dict[str, str]:
    return {
        "TTSQ_REDIS_URL": redis_url,
        "TTSQ_SECRET_KEY": secrets.token_hex(16),
        "TTSQ_DATA_DIR": str(data_dir),
        "TTSQ_LOG_LEVEL": "WARNING",
        "TTSQ_MAX_TEXT_CHARS": str(max_text_chars),
    }


@dataclass(frozen=True)
class Work:
    """One job to narrate: ``text`` sent as JSON, or an EPUB uploaded as a file."""

    case: str
    """``text`` (a size), ``epub-text`` (the EPUB's text as plain WAV) or ``epub``."""
    text: str
    """What is narrated (for an upload, the text the document reads as)."""
    fmt: str = FORMAT
    upload: bytes | None = None

    def post(self, session: requests.Session, base_url: str) -> requests.Response:
        if self.upload is None:
            body = {"text": self.text, "speaker": SPEAKER, "format": self.fmt}
            return session.post(f"{base_url}/v1/jobs", json=body, timeout=60)
        files = {"file": ("book.epub", self.upload, "application/epub+zip")}
        return session.post(
            f"{base_url}/v1/jobs", files=files, data={"speaker": SPEAKER, "format": self.fmt}, timeout=60
        )


@dataclass(frozen=True)
class Narration:
    """One job through the stack on a fresh worker, and that worker's memory."""

    case: str
    format: str
    chars: int
    chunks: int
    segments: int
    """Segment tasks the job ran as (TTSQ_SEGMENT_CHARS characters each)."""
    audio_s: float
    wall_s: float
    """From sending POST /v1/jobs to reading status ``succeeded``."""
    x_realtime: float
    """audio_s / wall_s."""
    queued_s: float
    """created_at to started_at (the job record's timestamps)."""
    worker_s: float
    """started_at to finished_at: planning, every segment, and assembling the output."""
    polls: int
    size_bytes: int
    file_audio_s: float
    """The duration soundfile reads from the stored output: checks that the file is whole."""
    rss_idle_mb: float
    """VmRSS of the worker, loaded and warmed, just before the job."""
    rss_start_peak_mb: float
    """VmHWM just before the job: the peak of loading and warming up."""
    peak_rss_mb: float
    """VmHWM read right after the job succeeded: the worker's peak over its whole life."""
    job_peak_rss_mb: float | None
    """VmHWM reset before the job and read after it: the peak during the job alone (None where Linux can't reset)."""
    rss_sampled_max_mb: float
    rss_samples: int
    rss_curve_mb: list[float | None]
    """The largest sampled VmRSS in each tenth of the job's wall time."""
    rss_floor_mb: list[float | None]
    """The smallest in each tenth: what the worker keeps between segments, not a segment's passing peak."""


def run_job(
    session: requests.Session, base_url: str, work: Work, timeout_s: float
) -> tuple[dict[str, Any], float, int]:
    """Send the job and long-poll it until it succeeds; return its last view, the wall seconds and the polls."""
    started = time.perf_counter()
    response = work.post(session, base_url)
    if response.status_code != 202:
        raise kit.BenchError(f"POST /v1/jobs answered {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]
    polls, shown_at = 0, started
    while True:
        # Long polling: the API answers as soon as the job changes, so no poll period is added to the wall time.
        response = session.get(f"{base_url}/v1/jobs/{job_id}", params={"wait": LONG_POLL_S}, timeout=LONG_POLL_S + 10)
        polls += 1
        if response.status_code != 200:
            raise kit.BenchError(f"GET /v1/jobs/{job_id} answered {response.status_code}: {response.text[:300]}")
        job = response.json()
        now = time.perf_counter()
        if job["status"] == "succeeded":
            return job, now - started, polls
        if job["status"] in ("failed", "canceled"):
            raise kit.BenchError(f"job {job_id} {job['status']}: {job['error']}")
        if now - started > timeout_s:
            last = job["status"]
            raise kit.BenchError(f"job {job_id} did not succeed within {timeout_s:.0f} s (last status {last!r})")
        if now - shown_at >= PROGRESS_EVERY_S:
            progress = job["progress"]
            print(
                f"    {now - started:5.0f} s: {job['status']}, "
                f"chunk {progress['chunks_done']}/{progress['chunks_total']}, "
                f"{progress['audio_s']:.0f} s of audio, eta {progress['eta_s']} s",
                file=sys.stderr,
                flush=True,
            )
            shown_at = now


def stored_audio_s(audio_dir: Path, job_id: str, fmt: str = FORMAT) -> float:
    """The stored output's duration as a reader sees it (soundfile for WAV; ffprobe for the rest, which honours
    MP4's edit list: mutagen counts the AAC encoder's priming, 46 ms); the file is removed after, the next job needs
    the disk."""
    path = audio_dir / key_for(job_id, fmt)
    try:
        if fmt == "wav":
            info = soundfile.info(str(path))
            return float(info.frames / info.samplerate)
        command = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
        try:
            return float(subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as error:
            raise kit.BenchError(f"ffprobe (Debian's ffmpeg) cannot read the stored {fmt} output: {error}") from None
    finally:
        path.unlink(missing_ok=True)


def narrate(base_url: str, env: dict[str, str], work: Work, data_dir: Path) -> Narration:
    """Start a fresh worker, warm it with one short job, then narrate ``work`` while watching the worker's memory."""
    chars = len(work.text)
    config = load_config(env)
    log = data_dir / f"worker-{work.case}-{chars}.log"
    with kit.worker_process(env, log) as worker, requests.Session() as session:
        wait_ready(base_url, timeout_s=READY_TIMEOUT_S, alive=lambda: worker.poll() is None)
        # The warm-up job also waits for the worker to consume (/readyz only says it announced itself), so the
        # measured job's wall time holds no start-up.
        warmup, _, _ = run_job(session, base_url, Work("warm-up", WARMUP_TEXT), WARMUP_TIMEOUT_S)
        stored_audio_s(config.audio_dir, warmup["id"])
        rss_idle = proc_status_bytes(worker.pid, "VmRSS")
        start_peak = proc_status_bytes(worker.pid, "VmHWM")
        reset = reset_peak_rss(worker.pid)
        with RssSampler(worker.pid) as sampler:
            job, wall_s, polls = run_job(session, base_url, work, JOB_TIMEOUT_BASE_S + JOB_TIMEOUT_PER_CHAR_S * chars)
            job_peak = proc_status_bytes(worker.pid, "VmHWM")  # before the worker stops
        if worker.poll() is not None:
            raise kit.BenchError(f"the worker exited (code {worker.returncode}) during the job")
    samples = sampler.samples
    result = job["result"]
    # The API does not show how many segment tasks a job ran as; its record in Redis does.
    with redis.Redis.from_url(config.effective_redis_url) as client:
        record = JobStore(client, config.key_prefix).get(job["id"])
    if record is None or record.segments_total is None:
        raise kit.BenchError(f"job {job['id']} has no segment count in its record")
    audio_s = float(result["duration_s"])
    return Narration(
        case=work.case,
        format=work.fmt,
        chars=chars,
        chunks=int(job["progress"]["chunks_total"]),
        segments=record.segments_total,
        audio_s=audio_s,
        wall_s=wall_s,
        x_realtime=audio_s / wall_s,
        queued_s=kit.timestamp(job["started_at"]) - kit.timestamp(job["created_at"]),
        worker_s=kit.timestamp(job["finished_at"]) - kit.timestamp(job["started_at"]),
        polls=polls,
        size_bytes=int(result["size_bytes"]),
        file_audio_s=stored_audio_s(config.audio_dir, job["id"], work.fmt),
        rss_idle_mb=rss_idle / MB,
        rss_start_peak_mb=start_peak / MB,
        peak_rss_mb=max(start_peak, job_peak) / MB if reset else job_peak / MB,
        job_peak_rss_mb=job_peak / MB if reset else None,
        rss_sampled_max_mb=max((rss for _, rss in samples), default=0) / MB,
        rss_samples=len(samples),
        rss_curve_mb=rss_curve(samples),
        rss_floor_mb=rss_curve(samples, pick=min),
    )


def bench_narration(sizes: Sequence[int], epub_chars: int | None) -> list[Narration]:
    works = [Work("text", build_text(size)) for size in sizes]
    if epub_chars:
        book, text = audiobook.build_book(PASSAGE, epub_chars)
        works += [Work("epub-text", text), Work("epub", text, EPUB_FORMAT, book)]
    results = []
    with tempfile.TemporaryDirectory(prefix="ttsq-bench-") as tmp, ExitStack() as stack:
        data_dir = Path(tmp)
        redis_url = stack.enter_context(kit.embedded_redis(data_dir))
        env = stack_env(redis_url, data_dir, max(len(w.text) for w in works))
        base_url = stack.enter_context(kit.api_server(env))
        for work in works:
            print(f"  {work.case}: {len(work.text)} chars to {work.fmt} on a fresh worker", file=sys.stderr, flush=True)
            results.append(narrate(base_url, env, work, data_dir))
            done = results[-1]
            print(
                f"    done: {done.audio_s:.0f} s of audio in {done.wall_s:.1f} s; peak RSS {done.peak_rss_mb:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    return results


# --- report --------------------------------------------------------------------------------------------------------


def targets(runs: Sequence[Narration]) -> dict[str, Any]:
    """Issue 3's two targets, comparing the largest text with the smallest (the sizes' runs)."""
    runs = [r for r in runs if r.case == "text"]
    small, large = min(runs, key=lambda r: r.chars), max(runs, key=lambda r: r.chars)
    ratio = large.x_realtime / small.x_realtime
    growth = large.peak_rss_mb - small.peak_rss_mb
    job_growth = None
    if large.job_peak_rss_mb is not None and small.job_peak_rss_mb is not None:
        job_growth = large.job_peak_rss_mb - small.job_peak_rss_mb
    return {
        "smallest_chars": small.chars,
        "largest_chars": large.chars,
        "throughput_ratio": ratio,
        "throughput_target": 1 - THROUGHPUT_TARGET,
        "throughput_met": ratio >= 1 - THROUGHPUT_TARGET,
        "peak_rss_growth_mb": growth,
        "job_peak_rss_growth_mb": job_growth,
        "rss_target_mb": RSS_TARGET_MB,
        "rss_met": growth <= RSS_TARGET_MB,
        "job_rss_met": None if job_growth is None else job_growth <= RSS_TARGET_MB,
    }


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def report(runs: Sequence[Narration], segment_chars: int) -> str:
    headers = [
        "case",
        "format",
        "chars",
        "chunks",
        "segments",
        "audio s",
        "wall s",
        "audio s/wall s",
        "worker s",
        "idle RSS MB",
        "job peak MB",
        "peak RSS MB",
    ]
    rows = [
        [
            r.case,
            r.format,
            str(r.chars),
            str(r.chunks),
            str(r.segments),
            f"{r.audio_s:.1f}",
            f"{r.wall_s:.1f}",
            f"{r.x_realtime:.2f}",
            f"{r.worker_s:.1f}",
            _mb(r.rss_idle_mb),
            _mb(r.job_peak_rss_mb),
            _mb(r.peak_rss_mb),
        ]
        for r in runs
    ]
    lines = [
        f"Narration: one job per size through API, Redis, a fresh worker and local storage "
        f"({FORMAT}, segments of {segment_chars} chars, default voice settings)",
        kit.format_table(headers, rows),
        "wall s: POST /v1/jobs to reading succeeded; worker s: the job's started_at to finished_at.",
        "idle RSS: the warmed worker before the job; job peak: VmHWM reset before the job, read after it;",
        "peak RSS: the worker's VmHWM right after the job, start-up included.",
        "",
        f"Worker VmRSS sampled every {RSS_PERIOD_S} s, max and min in each tenth of the job's wall time (MB):",
    ]
    for r in runs:
        curve = " ".join(_mb(v) for v in r.rss_curve_mb)
        floor = " ".join(_mb(v) for v in r.rss_floor_mb)
        lines.append(
            f"  {r.case:>9} {r.chars:>7} chars: max {curve}  (max {r.rss_sampled_max_mb:.0f}, {r.rss_samples} samples)"
        )
        lines.append(f"  {'':>9} {'':>7}        min {floor}")
    mismatched = [r for r in runs if abs(r.file_audio_s - r.audio_s) > 0.01]
    lines.append("")
    if mismatched:
        lines.append(
            "Stored files: DURATION MISMATCH for "
            + ", ".join(
                f"{r.chars} chars ({r.file_audio_s:.3f} s stored, {r.audio_s:.3f} s reported)" for r in mismatched
            )
        )
    else:
        lines.append("Stored files: each output's duration, read back with soundfile, matches the job's result.")
    lines += audiobook.report_lines(runs)
    if len([r for r in runs if r.case == "text"]) < 2:
        return "\n".join([*lines, "Size targets: need at least two sizes."])
    t = targets(runs)
    large, small = t["largest_chars"], t["smallest_chars"]
    lines += [
        "",
        f"Targets ({large} chars against {small} chars):",
        f"  linear time: audio s/wall s at {large} is {t['throughput_ratio']:.3f}x that at {small} "
        f"(target >= {t['throughput_target']:.2f}): {_verdict(t['throughput_met'])}",
        f"  flat memory: worker peak RSS at {large} is {t['peak_rss_growth_mb']:+.1f} MB against {small} "
        f"(target <= +{RSS_TARGET_MB:.0f} MB): {_verdict(t['rss_met'])}",
    ]
    if t["job_peak_rss_growth_mb"] is not None:
        lines.append(
            f"    the job's own peak (start-up excluded): {t['job_peak_rss_growth_mb']:+.1f} MB: "
            f"{_verdict(t['job_rss_met'])}"
        )
    return "\n".join(lines)


def parse_sizes(raw: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {raw!r}; expected comma-separated character counts") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"got {raw!r}; expected positive character counts")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=SIZES,
        help=f"characters per text, comma-separated ({','.join(map(str, SIZES))}; '' for none, with --epub)",
    )
    parser.add_argument(
        "--epub",
        type=int,
        nargs="?",
        const=EPUB_CHARS,
        default=None,
        metavar="CHARS",
        help=f"add the EPUB-to-m4b case, a book of CHARS characters ({EPUB_CHARS} without a number)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run on sizes {','.join(map(str, QUICK_SIZES))} (overrides --sizes)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the figures ({DEFAULT_JSON})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The werkzeug server logs every request; the polling would flood the terminal.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sizes = QUICK_SIZES if args.quick else args.sizes
    epub_chars = QUICK_EPUB_CHARS if args.quick and args.epub else args.epub
    if not sizes and not epub_chars:
        print("narration: nothing to run (no --sizes and no --epub)", file=sys.stderr)
        return 2
    segment_chars = load_config({}).segment_chars
    load_before = os.getloadavg()
    print(f"narration: sizes {', '.join(map(str, sizes))}", file=sys.stderr, flush=True)
    runs = bench_narration(sizes, epub_chars)
    print()
    print(report(runs, segment_chars))
    env = kit.environment(load_before)
    print(
        f"\nHost: {env['cpu_count']} CPUs; 1-minute load average {env['load_average_before'][0]:.2f} before, "
        f"{env['load_average_after'][0]:.2f} after (this benchmark alone keeps about 2 busy)."
    )
    kit.write_json(
        args.json,
        {
            "quick": args.quick,
            "environment": env,
            "passage_chars": len(PASSAGE),
            "segment_chars": segment_chars,
            "rss_period_s": RSS_PERIOD_S,
            "runs": [asdict(r) for r in runs],
            "targets": targets(runs) if len([r for r in runs if r.case == "text"]) >= 2 else None,
            "epub_targets": audiobook.targets(runs),
        },
    )
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
