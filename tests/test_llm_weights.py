"""Joining and verifying GGUF weights, on small files with their own digests (no model needed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kefu.errors import ModelUnavailable
from kefu.llm.weights import check_user_gguf, ensure_joined, join_parts

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 17]
WHOLE = b"".join(PARTS)
SHA = hashlib.sha256(WHOLE).hexdigest()


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    paths = []
    for number, data in enumerate(PARTS, start=1):
        path = tmp_path / f"part{number:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_joins_parts_in_order_and_leaves_a_marker(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "models" / "m.gguf"
    assert join_parts(parts, dest, size=len(WHOLE), sha256=SHA) == dest
    assert dest.read_bytes() == WHOLE
    assert SHA in (tmp_path / "models" / "m.gguf.verified").read_text()
    assert {p.name for p in dest.parent.iterdir()} == {"m.gguf", "m.gguf.verified"}  # no temp file left


def test_refuses_a_digest_mismatch_and_leaves_nothing(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ModelUnavailable, match=r"corrupt.*refusing to load"):
        join_parts(parts, dest, size=len(WHOLE), sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []


def test_refuses_truncated_parts(parts: list[Path], tmp_path: Path) -> None:
    parts[1].write_bytes(b"b" * 2999)
    with pytest.raises(ModelUnavailable, match="corrupt"):
        join_parts(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)


def test_a_verified_file_is_reused_without_the_parts(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    ensure_joined(dest, lambda: parts, size=len(WHOLE), sha256=SHA)

    def no_parts() -> list[Path]:
        raise AssertionError("the cached file should have been trusted")

    assert ensure_joined(dest, no_parts, size=len(WHOLE), sha256=SHA) == dest


def test_a_tampered_cached_file_is_rehashed_and_rejoined(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    ensure_joined(dest, lambda: parts, size=len(WHOLE), sha256=SHA)
    dest.write_bytes(WHOLE[:-1] + b"x")  # same size, different bytes, new mtime
    os.utime(dest, ns=(1, 1))
    assert ensure_joined(dest, lambda: parts, size=len(WHOLE), sha256=SHA) == dest
    assert dest.read_bytes() == WHOLE


def test_a_truncated_cached_file_is_never_trusted(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    ensure_joined(dest, lambda: parts, size=len(WHOLE), sha256=SHA)
    dest.write_bytes(WHOLE[:100])
    with pytest.raises(ModelUnavailable, match="corrupt"):
        ensure_joined(dest, lambda: [parts[0]], size=len(WHOLE), sha256=SHA)


def test_a_cached_file_without_marker_is_hashed_once(parts: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "m.gguf"
    dest.write_bytes(WHOLE)
    assert ensure_joined(dest, list, size=len(WHOLE), sha256=SHA) == dest
    assert (tmp_path / "m.gguf.verified").is_file()


def test_user_gguf_must_exist_and_be_gguf(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"KEFU_LOCAL_MODEL_PATH=.*does not exist"):
        check_user_gguf(tmp_path / "missing.gguf")
    other = tmp_path / "model.bin"
    other.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelUnavailable, match="not a GGUF file"):
        check_user_gguf(other)
    good = tmp_path / "ok.gguf"
    good.write_bytes(WHOLE)
    assert check_user_gguf(good) == good
