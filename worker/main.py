"""Start a worker: build and warm the engine once, then consume the speakers' queues on threads."""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready

from engine import TTS
from ttsq import presence
from ttsq.config import Config
from ttsq.connections import redis_client
from ttsq.jobs.plans import PlanStore
from ttsq.jobs.store import JobStore
from ttsq.logs import install_celery_job_context
from ttsq.procinfo import rss_bytes
from ttsq.queue import SYNTHESIZE_TASK, create_celery
from ttsq.storage import open_storage

from .consumer import CONSUMER
from .runtime import Runtime, held
from .speech import start_speech
from .upkeep import start_upkeep

logger = logging.getLogger(__name__)


def new_tts(config: Config) -> TTS:
    """The engine as configured (device, backend, threads, batching), with no speaker loaded yet."""
    from engine.options import Batching, TorchOptions

    return TTS(
        config.device,
        config.cache_dir,
        config.threads,
        parallel_sentences=config.parallel_sentences,
        backend=config.backend,
        torch_options=TorchOptions(
            Batching(config.batch_size) if config.batch_size else None, config.precision, config.compile
        ),
    )


def build_engine(config: Config) -> TTS:
    """Load, prepare and warm every configured speaker; log the memory each one takes (RAM, and VRAM on CUDA)."""
    tts = new_tts(config)
    for name, source in sorted(config.speakers.items()):
        before = rss_bytes()
        # prepare() only builds speakers not yet prepared, so each delta is this speaker's own.
        tts.load(name, source).prepare(warmup=True)
        info = tts.info[name]
        vram = "" if info.device_memory_bytes is None else f", {info.device_memory_bytes / 1e6:.0f} MB VRAM peak"
        if info.weights_bytes is not None:  # the torch backend; its first speaker's RAM also holds torch itself
            vram = f", weights {info.weights_bytes / 1e6:.0f} MB{vram}"
        logger.info(
            "speaker %s: %s, %d Hz, %s on %s, +%.0f MB RAM%s, ready in %.2f s",
            name,
            info.source,
            info.sample_rate,
            info.backend,
            tts.device,
            (rss_bytes() - before) / 1e6,
            vram,
            info.load_s,
        )
    return tts


def build_runtime(config: Config, tts: TTS | None = None) -> Runtime:
    engine = tts or build_engine(config)
    # Celery's threads (celery_threads), the speech threads, and a lock keeper beside each running task.
    client = redis_client(config.effective_redis_url, 2 * celery_threads(engine) + config.speech_threads)
    celery = create_celery(config, include=["worker.tasks"])
    celery.conf.worker_consumer = CONSUMER
    return Runtime(
        config=config,
        tts=engine,
        store=JobStore(client, config.key_prefix),
        plans=PlanStore(client, config.key_prefix),
        storage=open_storage(config),
        celery=celery,
        name=config.worker_id,
    )


def celery_threads(tts: TTS) -> int:
    """A Celery thread per inference stream of each speaker, and one more per speaker: while a job's synthesis
    runs on each stream, the next job reads its record and waits for a stream, and takes it the moment one ends
    (the ending job's storage and Redis work then overlaps it)."""
    return sum(tts.speakers[name].parallel + 1 for name in tts.names)


def run_worker(config: Config) -> None:
    """Blocks until the worker is stopped."""
    runtime = build_runtime(config)
    held.install(runtime)
    install_celery_job_context([SYNTHESIZE_TASK])  # Celery's own task lines name the job too
    upkeep: list[threading.Event] = []

    # Announce the worker (and so /readyz) only once Celery is consuming, not while it still connects.
    @worker_ready.connect(weak=False)
    def _ready(**kwargs: object) -> None:
        upkeep.append(start_upkeep(runtime))
        upkeep.append(start_speech(runtime))

    queues = ",".join(config.keys.speaker_queue(name) for name in runtime.tts.names)
    logger.info("worker %s consuming %s", runtime.name, queues)
    try:
        quiet = ["--quiet"] if config.log_level in ("WARNING", "ERROR") else []  # no banner either
        runtime.celery.worker_main(
            [
                *quiet,
                "worker",
                "--pool=threads",
                # A thread per inference stream of each speaker and one more: a speaker with two streams runs two jobs
                # at once (its synthesis slots hold back a third, ready to go), so control planes overlap inference.
                f"--concurrency={celery_threads(runtime.tts)}",
                f"--queues={queues}",
                f"--hostname={runtime.name}",
                f"--loglevel={config.log_level}",
                "--without-gossip",
                "--without-mingle",
            ]
        )
    finally:
        for stop in upkeep:
            stop.set()
        presence.withdraw(runtime.store.redis, config.keys, runtime.name)
