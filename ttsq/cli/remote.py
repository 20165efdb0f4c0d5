"""The commands that talk to a running stack: submit, speakers, and the container healthcheck."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .. import presence
from .common import _config


def cmd_submit(args: argparse.Namespace) -> int:
    import requests

    from .. import client

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"ttsq: cannot read {args.file}: {error}", file=sys.stderr)
        return 2
    try:
        options, output = _job_options(args)
    except ValueError as error:
        print(f"ttsq submit: {error}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        job = client.submit(args.url, text, args.speaker, args.speed, api_key=args.api_key, options=options)
        print(f"job {job['id']} queued", file=sys.stderr)
        if not args.wait:
            print(job["id"])
            return 0
        job = _follow(args.url, job["id"], args.api_key)
        if job["status"] == "canceled":
            print("job canceled", file=sys.stderr)
            return 1
        if job["status"] != "succeeded":
            print(f"job failed: {job['error']['code']}: {job['error']['message']}", file=sys.stderr)
            return 1
        out = client.download(job["result"]["url"], output)
    except client.ClientError as error:
        print(f"ttsq: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"ttsq: cannot reach the server at {args.url}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"ttsq: cannot write {output}: {error}", file=sys.stderr)
        return 1
    result = job["result"]
    print(
        f"wrote {out.resolve()}: {result['duration_s']:.1f} s of audio, {result['size_bytes']} bytes, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


def _job_options(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The job's options from the flags, and where its audio goes: the format is --format, else the output's
    extension (``-o book.mp3`` asks for mp3), else wav; the two must not disagree."""
    from ..storage.base import OUTPUT_FORMATS

    output = Path(args.output) if args.output else None
    suffix = output.suffix.lower().lstrip(".") if output else ""
    fmt = args.format or (suffix if suffix in OUTPUT_FORMATS else "wav")
    if output is not None and suffix in OUTPUT_FORMATS and suffix != fmt:
        raise ValueError(f"--format {fmt} but the output {output} says {suffix}; drop one or make them agree")
    options: dict[str, Any] = {"format": fmt}
    if args.marks:
        options["marks"] = True
    if args.webhook_url:
        options["webhook_url"] = args.webhook_url
    if args.metadata is not None:
        try:
            options["metadata"] = json.loads(args.metadata)
        except ValueError as error:
            raise ValueError(f"--metadata is not JSON: {error}") from None
    return options, output or Path(f"out.{fmt}")


def _follow(base_url: str, job_id: str, api_key: str | None) -> dict[str, Any]:
    from tqdm import tqdm

    from .. import client

    # No total until the plan gives one: a bar that starts at "0/1" says the wrong thing about a book.
    with tqdm(total=None, unit="sentence", desc="synthesizing", file=sys.stderr) as bar:

        def update(job: dict[str, Any]) -> None:
            progress = job["progress"]
            if progress["chunks_total"]:
                bar.total = progress["chunks_total"]
                bar.n = progress["chunks_done"]
            bar.set_postfix_str(f"{job['status']}, {progress['audio_s']:.1f} s audio")
            bar.refresh()

        return client.wait(base_url, job_id, update, api_key=api_key)


def cmd_speakers(args: argparse.Namespace) -> int:
    import requests

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        response = requests.get(f"{args.url}/v1/speakers", headers=headers, timeout=5)
    except requests.RequestException:
        config = _config()
        speakers = [{"name": n, "source": s, "available": None} for n, s in sorted(config.speakers.items())]
        print(f"(no server at {args.url}; showing configured speakers)", file=sys.stderr)
        return _print_speakers(speakers)
    if response.status_code == 401:
        print(f"ttsq: {args.url} wants an API key: give it with --api-key or TTSQ_API_KEY", file=sys.stderr)
        return 1
    try:
        return _print_speakers(response.json()["speakers"])
    except (ValueError, KeyError, TypeError):
        print(f"ttsq: {args.url} answered HTTP {response.status_code} without a list of speakers", file=sys.stderr)
        return 1


def _print_speakers(speakers: list[dict[str, Any]]) -> int:
    for speaker in speakers:
        state = {True: "available", False: "no worker", None: ""}[speaker["available"]]
        print(f"{speaker['name']}\t{speaker['source']}\t{state}".rstrip())
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    """Who is alive (from the announcements in Redis), which speakers each serves, and what each runs now."""
    import redis

    from ..jobs.store import JobStore
    from ..models import JobStatus

    config = _config()
    client = redis.Redis.from_url(config.effective_redis_url, socket_connect_timeout=3, socket_timeout=5)
    try:
        workers = presence.live_workers(client, config.keys)
        store = JobStore(client, config.key_prefix)
        running = [job for job_id in store.active_ids() if (job := store.get(job_id)) is not None]
    except redis.RedisError as error:
        print(f"ttsq: cannot read Redis at {config.effective_redis_url}: {error}", file=sys.stderr)
        return 1
    if not workers:
        print("no live workers", file=sys.stderr)
        return 1
    for worker in sorted(workers, key=lambda w: w.name):
        jobs = [j.id for j in running if j.status == JobStatus.running and j.in_task and j.worker == worker.name]
        print(f"{worker.name}\t{worker.device or '-'}\t{','.join(worker.speakers) or '-'}\t{','.join(jobs) or 'idle'}")
    return 0


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """For container HEALTHCHECKs: the API answers /healthz, or this host's worker is announced in Redis."""
    import requests

    if args.component == "api":
        try:
            ok = requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            ok = False
    else:
        import redis

        config = _config()
        try:
            client = redis.Redis.from_url(config.effective_redis_url, socket_timeout=3)
            ok = presence.is_alive(client, config.keys, config.worker_id)
        except redis.RedisError:
            ok = False
    print("healthy" if ok else "unhealthy")
    return 0 if ok else 1
