"""All configuration, read from TTSQ_* environment variables in one place and validated at start."""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.constants import DEFAULT_SOURCE

from .keys import DEFAULT_PREFIX, Keys
from .parsing import OPENAI_VOICES, celery_redis_url, parse_api_keys, parse_speakers, parse_voice_aliases
from .webhooks.policy import parse_allow

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "ttsq"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ttsq"
DEFAULT_SPEAKER = "joe"
"""The bundled voice; also the speaker a job gets when it names none, if the deployment serves it."""
DEFAULT_SPEAKERS = f"{DEFAULT_SPEAKER}={DEFAULT_SOURCE}"
REDIS_SCHEMES = ("redis", "rediss", "unix")
REDIS_DATABASES = 16
"""Redis's default ``databases``: a URL naming a higher one is refused at start."""
MIN_SECRET_CHARS = 16
EMBEDDED_SOCKET = "redis.sock"

# Environment variable -> field name. One documented place for every knob.
ENV_VARS: dict[str, str] = {
    "TTSQ_REDIS_URL": "redis_url",
    "TTSQ_DATA_DIR": "data_dir",
    "TTSQ_STORAGE": "storage",
    "TTSQ_SECRET_KEY": "secret_key",
    "TTSQ_SPEAKERS": "speakers",
    "TTSQ_DEVICE": "device",
    "TTSQ_PUBLIC_URL": "public_url",
    "TTSQ_MAX_TEXT_CHARS": "max_text_chars",
    "TTSQ_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "TTSQ_MAX_AUDIO_S": "max_audio_s",
    "TTSQ_SEGMENT_CHARS": "segment_chars",
    "TTSQ_SENTENCE_SILENCE_S": "sentence_silence_s",
    "TTSQ_PARAGRAPH_SILENCE_S": "paragraph_silence_s",
    "TTSQ_CACHE": "cache_dir",
    "TTSQ_URL_TTL_S": "url_ttl_s",
    "TTSQ_KEY_PREFIX": "key_prefix",
    "TTSQ_VISIBILITY_TIMEOUT_S": "visibility_timeout_s",
    "TTSQ_TASK_TIME_LIMIT_S": "task_time_limit_s",
    "TTSQ_LOCK_TTL_S": "lock_ttl_s",
    "TTSQ_MAX_ATTEMPTS": "max_attempts",
    "TTSQ_WORKER_NAME": "worker_name",
    "TTSQ_S3_PART_SIZE": "s3_part_size",
    "TTSQ_THREADS": "threads",
    "TTSQ_PARALLEL_SENTENCES": "parallel_sentences",
    "TTSQ_ALLOCATOR": "allocator",
    "TTSQ_LOG_LEVEL": "log_level",
    "TTSQ_LOG_FORMAT": "log_format",
    "TTSQ_API_KEYS": "api_keys",
    "TTSQ_RATE_LIMIT_PER_MIN": "rate_limit_per_min",
    "TTSQ_MAX_ACTIVE_JOBS": "max_active_jobs",
    "TTSQ_RETENTION_S": "retention_s",
    "TTSQ_CLEANUP_INTERVAL_S": "cleanup_interval_s",
    "TTSQ_WEBHOOK_SECRET": "webhook_secret",
    "TTSQ_WEBHOOK_ALLOW": "webhook_allow",
    "TTSQ_WEBHOOK_MAX_ATTEMPTS": "webhook_max_attempts",
    "TTSQ_WEBHOOK_BACKOFF_S": "webhook_backoff_s",
    "TTSQ_WEBHOOK_TIMEOUT_S": "webhook_timeout_s",
    "TTSQ_BACKEND": "backend",
    "TTSQ_BATCH_SIZE": "batch_size",
    "TTSQ_PRECISION": "precision",
    "TTSQ_COMPILE": "compile",
    "TTSQ_TRUSTED_PROXIES": "trusted_proxies",
    "TTSQ_SPEECH_MAX_CHARS": "speech_max_chars",
    "TTSQ_VOICE_ALIASES": "voice_aliases",
    "TTSQ_SPEECH_THREADS": "speech_threads",
    "TTSQ_SPEECH_START_TIMEOUT_S": "speech_start_timeout_s",
    "TTSQ_SPEECH_IDLE_TIMEOUT_S": "speech_idle_timeout_s",
    "TTSQ_API_THREADS": "api_threads",
}

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
COMMAND_LINE_VARS: dict[str, str] = {
    "TTSQ_HOST": DEFAULT_HOST,
    "TTSQ_PORT": str(DEFAULT_PORT),
    "TTSQ_API_URL": f"http://{DEFAULT_HOST}:{DEFAULT_PORT}",
    "TTSQ_API_KEY": "",
}
"""The ``ttsq`` command's own variables (where to listen, which server to call, with which key) -> default; each
is also a flag, which wins. Not part of Config: a client needs none of the server's settings to be valid."""


def command_line_default(var: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, or its default when unset or empty."""
    return (os.environ if environ is None else environ).get(var) or COMMAND_LINE_VARS[var]


class ConfigError(Exception):
    """A configuration value that stops start-up; its message is one line naming the variable."""


class Config(BaseModel):
    """Validated settings. Build with ``load_config()``; tests may construct it directly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str | None = None
    """None runs on the embedded Redis under data_dir (``ttsq serve``)."""
    data_dir: Path = DEFAULT_DATA_DIR
    storage: str = "local"
    """``local`` (audio under data_dir/audio) or ``file:///abs/dir``."""
    secret_key: str | None = None
    speakers: dict[str, str] = Field(default_factory=lambda: parse_speakers(DEFAULT_SPEAKERS))
    device: str = "cpu"
    public_url: str | None = None
    max_text_chars: int = Field(1_000_000, ge=1, le=10_000_000)
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024, le=1024**3)
    """A document uploaded to POST /v1/jobs (multipart) may be this large; its text is held to max_text_chars."""
    max_audio_s: float = Field(24 * 3600, gt=0)
    """A job whose audio would run longer fails with audio_too_long (at once when its text is sure to). The default
    takes a full-size text of prose (1,000,000 characters at ~18 a second: ~15 h)."""
    segment_chars: int = Field(4000, ge=100, le=100_000)
    """A long job is synthesized this many characters per task (a few minutes of audio, seconds of work)."""
    sentence_silence_s: float = Field(0.35, ge=0, le=10)
    paragraph_silence_s: float = Field(0.9, ge=0, le=10)
    cache_dir: Path = DEFAULT_CACHE_DIR
    url_ttl_s: int = Field(3600, ge=10, le=7 * 24 * 3600)
    key_prefix: str = DEFAULT_PREFIX
    visibility_timeout_s: int = Field(3600, ge=10)
    """A job still queued this long after it was queued or last sent, with no message left in its queue, lost its
    message (a worker killed holding it, an API killed before queueing it): a worker's upkeep sends it again."""
    task_time_limit_s: int = Field(900, ge=1)
    """A job that synthesizes longer than this fails with a clear reason."""
    lock_ttl_s: int = Field(30, ge=3)
    """A running job's lock expires this long after its worker stops refreshing it (death is noticed then)."""
    max_attempts: int = Field(3, ge=1, le=20)
    worker_name: str | None = None
    s3_part_size: int = Field(8 * 1024 * 1024, ge=64 * 1024, le=5 * 1024**3)
    """Bytes per multipart part. S3 and MinIO need at least 5 MiB; smaller is for test servers."""
    threads: int | None = Field(None, ge=1, le=256)
    parallel_sentences: bool = True
    """On CPUs, a sentence per thread, as many at once as threads (the most throughput); false: up to two at once on
    all threads (a lone sentence on every core). See engine.TTS."""
    allocator: str = Field("auto", pattern="^(auto|system|jemalloc)$")
    """The worker's malloc: ``jemalloc`` (Debian's libjemalloc2, preloaded; fails without it), ``system``, or
    ``auto``: jemalloc where installed (the images), else the system's. See ttsq/cli/allocator.py."""
    log_level: str = "INFO"
    log_format: str = "plain"
    """``plain`` lines for people, ``json`` lines for log collectors (each with the job id when there is one)."""
    api_keys: dict[str, str] = Field(default_factory=dict)
    """SHA-256 hex of each API key -> the key's name (its jobs' owner). Empty: no auth, loopback only."""
    rate_limit_per_min: int = Field(600, ge=0)
    """Requests per minute per API key on /v1 (0: no limit)."""
    max_active_jobs: int = Field(100, ge=0)
    """Queued or running jobs per API key at once (0: no limit)."""
    retention_s: int = Field(7 * 24 * 3600, ge=60)
    """A finished job's record and audio are removed this long after it ended."""
    cleanup_interval_s: int = Field(300, ge=1)
    webhook_secret: str | None = None
    """Signs webhook events; defaults to one derived from the secret key."""
    webhook_allow: list[str] = Field(default_factory=list)
    """Hosts or CIDR networks a webhook may reach even though they are private or loopback."""
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_s: float = Field(2.0, ge=0, le=3600)
    """First retry delay; doubled per attempt, with full jitter."""
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    backend: str | None = Field(None, pattern=r"^(onnx|torch)$")
    """Engine backend; unset: onnx on cpu, torch on cuda (torch needs ``pip install 'ttsq[gpu]'``)."""
    batch_size: int | None = Field(None, ge=1, le=256)
    """Torch backend: sentences of one job synthesized in one padded batch; unset: 16 on cuda, 1 on cpu."""
    precision: str = Field("fp32", pattern=r"^(fp32|bf16|fp16)$")
    """Torch backend: fp32, or autocast to bf16 / fp16 (fp16 on CUDA only)."""
    compile: bool | None = None
    """Torch backend: torch.compile the model at start; unset: on CUDA only."""
    trusted_proxies: int = Field(0, ge=0, le=10)
    """Reverse proxies in front of the API whose X-Forwarded-* headers are believed (werkzeug's ProxyFix). 0: none,
    and without API keys a request that carries forwarding headers is refused (a proxy on this host would make
    every client look local)."""
    speech_max_chars: int = Field(4096, ge=1, le=100_000)
    """Longest ``input`` of /v1/audio/speech (OpenAI's limit); longer texts are jobs."""
    voice_aliases: dict[str, str] = Field(default_factory=dict)
    """OpenAI voice name (or any alias) -> speaker; an OpenAI voice not listed means the default speaker."""
    speech_threads: int = Field(4, ge=1, le=256)
    """Speech requests one worker synthesizes at once, on threads of their own (never behind narration tasks)."""
    speech_start_timeout_s: float = Field(10.0, gt=0, le=300)
    """A speech request no worker has taken by then is answered 503."""
    speech_idle_timeout_s: float = Field(30.0, gt=0, le=3600)
    """A speech stream whose client reads nothing (or whose worker sends nothing) for this long is ended."""
    api_threads: int = Field(256, ge=1, le=4096)
    """Threads of one API process: each open speech stream, WebSocket or long poll holds one."""

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        return parse_api_keys(value) if isinstance(value, str) else value

    @field_validator("voice_aliases", mode="before")
    @classmethod
    def _parse_aliases(cls, value: object) -> object:
        return parse_voice_aliases(value) if isinstance(value, str) else value

    @field_validator("webhook_allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: object) -> object:
        entries = [e.strip() for e in value.split(",") if e.strip()] if isinstance(value, str) else value
        if isinstance(entries, list):
            parse_allow(entries)  # a bad entry stops start-up, naming it
        return entries

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in ("plain", "json"):
            raise ValueError(f"got {value!r}; expected plain or json")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme not in REDIS_SCHEMES:
            raise ValueError(f"got {value!r}; expected a URL with scheme one of: {', '.join(REDIS_SCHEMES)}")
        try:
            parsed.port  # noqa: B018  (raises on a port that is no number)
        except ValueError:
            raise ValueError(f"got {value!r}; the port must be a number from 1 to 65535") from None
        if parsed.scheme == "unix":
            if not parsed.path:
                raise ValueError(f"got {value!r}; expected unix:///path/to/redis.sock[?db=N]")
            db = parse_qs(parsed.query).get("db", ["0"])[0]
        else:
            db = parsed.path.removeprefix("/") or "0"
        # redis-py would read "/abc" as db 0 and Celery retry "/99" a hundred times: say so now, in one line.
        if not (db.isascii() and db.isdigit() and int(db) < REDIS_DATABASES):
            raise ValueError(
                f"got {value!r}; the database (the /N at the end, or ?db=N) must be a number from 0 to "
                f"{REDIS_DATABASES - 1}"
            )
        return value

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if value == "local" or value.startswith("file:///"):
            return value
        if value.startswith("s3://") and urlparse(value).netloc:
            return value
        raise ValueError(f"got {value!r}; expected 'local', file:///abs/dir or s3://bucket[/prefix]")

    @field_validator("secret_key", "webhook_secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_SECRET_CHARS:
            raise ValueError(
                "must be at least 16 characters (try: python -c 'import secrets;print(secrets.token_hex(32))')"
            )
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value == "cpu" or value == "cuda" or re.fullmatch(r"cuda:\d+", value):
            return value
        raise ValueError(f"got {value!r}; expected one of: cpu, cuda, cuda:N")

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if urlparse(value).scheme not in ("http", "https") or not urlparse(value).netloc:
            raise ValueError(f"got {value!r}; expected an http:// or https:// base URL")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        levels = ("DEBUG", "INFO", "WARNING", "ERROR")
        if value.upper() not in levels:
            raise ValueError(f"got {value!r}; expected one of: {', '.join(levels)}")
        return value.upper()

    @model_validator(mode="after")
    def _check_together(self) -> Config:
        if not self.speakers:
            raise ValueError("TTSQ_SPEAKERS: at least one speaker is needed")
        if self.redis_url is not None and self.secret_key is None:
            raise ValueError(
                "TTSQ_SECRET_KEY must be set when TTSQ_REDIS_URL is set (signed URLs need a shared secret)"
            )
        return self

    @property
    def s3_location(self) -> tuple[str, str] | None:
        """(bucket, prefix) when audio goes to S3."""
        if not self.storage.startswith("s3://"):
            return None
        parsed = urlparse(self.storage)
        return parsed.netloc, parsed.path.strip("/")

    @property
    def audio_dir(self) -> Path:
        if self.storage == "local":
            return self.data_dir / "audio"
        return Path(urlparse(self.storage).path)

    @property
    def embedded_socket(self) -> Path:
        return self.data_dir / EMBEDDED_SOCKET

    @property
    def effective_redis_url(self) -> str:
        """The Redis that redis-py talks to: the configured one, or the embedded server's socket."""
        return self.redis_url or f"unix://{self.embedded_socket}"

    @property
    def broker_url(self) -> str:
        return celery_redis_url(self.effective_redis_url)

    @property
    def keys(self) -> Keys:
        """Every Redis key and queue name of this deployment."""
        return Keys(self.key_prefix)

    def speaker_for_voice(self, voice: str) -> str:
        """The speaker an OpenAI voice name (or alias) means; any other name is taken as a speaker's own."""
        if voice in self.voice_aliases:
            return self.voice_aliases[voice]
        if voice in OPENAI_VOICES:
            return DEFAULT_SPEAKER if DEFAULT_SPEAKER in self.speakers else sorted(self.speakers)[0]
        return voice

    @property
    def worker_id(self) -> str:
        """This process's worker name: configured, or one per device and host."""
        return self.worker_name or f"ttsq-{self.device.replace(':', '')}@{socket.gethostname()}"


REMOVED_VARS = {
    "TTSQ_RESTORE_INTERVAL_S": "kombu's ack emulation is off, so there is no sweep of unacknowledged tasks (issue 12)",
}
"""Settings ttsq no longer reads, and why: one set is warned about, not silently ignored."""


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read TTSQ_* variables; raise ConfigError with one clear line on the first bad value."""
    environ = os.environ if environ is None else environ
    for var, why in REMOVED_VARS.items():
        if environ.get(var):
            logger.warning("%s is no longer read: %s", var, why)
    values: dict[str, object] = {}
    for var, field in ENV_VARS.items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        if field == "api_keys":
            try:
                values[field] = parse_api_keys(raw)
            except ValueError as error:
                raise ConfigError(f"TTSQ_API_KEYS: {error}") from None
            if not values[field]:  # set but empty (say ","): never silently mean "no auth"
                raise ConfigError("TTSQ_API_KEYS: set but holds no key; unset it to run without keys (loopback only)")
        elif field == "speakers":
            try:
                values[field] = parse_speakers(raw)
            except ValueError as error:
                raise ConfigError(f"TTSQ_SPEAKERS: {error}") from None
        else:
            values[field] = raw
    try:
        return Config.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        bad_field = str(first["loc"][0]) if first["loc"] else ""
        bad_var = next((v for v, f in ENV_VARS.items() if f == bad_field), None)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{bad_var}: {message}" if bad_var else message) from None
