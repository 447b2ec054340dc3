"""Scan a folder recursively: every supported file becomes a document; one bad file never stops the batch."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from kefu.errors import KefuError, ParseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import DEFAULT_MAX_BYTES
from kefu.kb.parsers.dispatch import SUPPORTED_EXTENSIONS, parse_file

_IGNORED = {"__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class FileError:
    doc_id: str  # the path relative to the folder
    path: str  # the full path
    message: str  # what was wrong and what to do


@dataclass
class FolderScan:
    documents: list[SourceDocument] = field(default_factory=list)  # sorted by doc_id
    errors: list[FileError] = field(default_factory=list)  # files that could not be parsed
    skipped: list[str] = field(default_factory=list)  # doc_ids of files of unsupported types


def scan_folder(root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, exclude: Iterable[str] = ()) -> FolderScan:
    """Parse every file under ``root`` in sorted order of ``doc_id`` (the posix path relative to
    ``root``). Hidden files and folders (``.name``), Office lock files (``~$name``) and paths matching
    an ``exclude`` glob (e.g. ``"README.md"``, ``"drafts/*"``) are left out silently."""
    if not root.is_dir():
        raise ParseError(f"{root} is not a folder; give the folder that holds the documents")
    patterns = list(exclude)
    scan = FolderScan()
    for path in _files(root):
        doc_id = path.relative_to(root).as_posix()
        if any(fnmatch(doc_id, pattern) for pattern in patterns):
            continue
        if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            scan.skipped.append(doc_id)
            continue
        try:
            scan.documents.append(parse_file(path, root=root, max_bytes=max_bytes))
        except KefuError as exc:
            scan.errors.append(FileError(doc_id, str(path), exc.message))
    return scan


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not _hidden(d)]
        found.extend(Path(folder) / name for name in files if not _hidden(name))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _hidden(name: str) -> bool:
    return name.startswith((".", "~$")) or name in _IGNORED
