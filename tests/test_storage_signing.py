"""Local storage keys no request can steer, and signed URLs that expire."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttsq import signing
from ttsq.storage.base import InvalidKeyError, key_for
from ttsq.storage.local import LocalStorage

JOB = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("key", ["../etc/passwd", f"{JOB}.exe", "a.wav", f"../{JOB}.wav", f"{JOB}.wav/..", ""])
def test_keys_ttsq_did_not_make_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        LocalStorage(tmp_path).path(key)


def test_writer_publishes_only_on_success(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "audio")
    key = key_for(JOB, "wav")
    with pytest.raises(RuntimeError), storage.writer(key) as sink:
        sink.write(b"half")
        raise RuntimeError("boom")
    assert storage.size(key) is None
    assert list((tmp_path / "audio").iterdir()) == []
    with storage.writer(key) as sink:
        sink.write(b"whole")
    assert storage.size(key) == 5
    storage.delete(key)
    assert storage.size(key) is None


def test_writer_makes_its_directory_when_it_is_missing_and_leaves_only_the_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "audio")
    key = key_for(JOB, "wav")
    with storage.writer(key, tag="run") as sink:  # the directory is made on the first file, not asked for at each
        sink.write(b"first")
    (tmp_path / "audio" / key).unlink()
    (tmp_path / "audio").rmdir()  # removed while the process runs (a volume remounted, a cleanup)
    with storage.writer(key, tag="run") as sink:
        sink.write(b"again")
    assert [p.name for p in (tmp_path / "audio").iterdir()] == [key]
    assert storage.size(key) == 5


def test_signature_verifies_until_expiry() -> None:
    expires, sig = signing.sign("secret", "k.wav", ttl_s=60, now=1000)
    assert expires == 1060
    assert signing.verify("secret", "k.wav", expires, sig, now=1059)
    assert not signing.verify("secret", "k.wav", expires, sig, now=1061)


@pytest.mark.parametrize("change", ["key", "expires", "signature", "secret"])
def test_tampered_links_fail(change: str) -> None:
    expires, sig = signing.sign("secret", "k.wav", ttl_s=60, now=1000)
    key, secret = "k.wav", "secret"
    if change == "key":
        key = "other.wav"
    elif change == "expires":
        expires += 3600
    elif change == "signature":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    else:
        secret = "other"
    assert not signing.verify(secret, key, expires, sig, now=1000)


def test_retention_removes_a_batch_of_jobs_with_everything_their_runs_left(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    gone, kept = ["a" * 32, "b" * 32], "c" * 32
    names = [
        *(f"{job}.{end}" for job in gone for end in ("wav", "vtt", "s000000.dddddddddddd.pcm", "cover")),
        f".{gone[0]}.wav.eeeeeeeeeeee.part",
        f"{kept}.wav",
        f".{kept}.mp3.ffffffffffff.part",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert storage.remove_jobs(gone) == set()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{kept}.wav", f".{kept}.mp3.ffffffffffff.part"])
    with pytest.raises(InvalidKeyError):
        storage.remove_jobs(["*"])  # a job id, not a pattern
