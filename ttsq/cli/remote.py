"""The commands that talk to a running stack: submit, speakers, and the container healthcheck."""

from __future__ import annotations

import argparse
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
    started = time.monotonic()
    try:
        job = client.submit(args.url, text, args.speaker, args.speed, api_key=args.api_key)
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
        out = client.download(job["result"]["url"], Path(args.output))
    except client.ClientError as error:
        print(f"ttsq: {error}", file=sys.stderr)
        return 1
    except requests.RequestException as error:
        print(f"ttsq: cannot reach the server at {args.url}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"ttsq: cannot write {args.output}: {error}", file=sys.stderr)
        return 1
    result = job["result"]
    print(
        f"wrote {out.resolve()}: {result['duration_s']:.1f} s of audio, {result['size_bytes']} bytes, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


def _follow(base_url: str, job_id: str, api_key: str | None) -> dict[str, Any]:
    from tqdm import tqdm

    from .. import client

    with tqdm(total=1, unit="sentence", desc="synthesizing", file=sys.stderr) as bar:

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

    try:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        speakers = requests.get(f"{args.url}/v1/speakers", headers=headers, timeout=5).json()["speakers"]
    except (requests.RequestException, ValueError, KeyError):
        config = _config()
        speakers = [{"name": n, "source": s, "available": None} for n, s in sorted(config.speakers.items())]
        print(f"(no server at {args.url}; showing configured speakers)", file=sys.stderr)
    for speaker in speakers:
        state = {True: "available", False: "no worker", None: ""}[speaker["available"]]
        print(f"{speaker['name']}\t{speaker['source']}\t{state}".rstrip())
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
