"""Choose the parser by file extension or content type; read files with their size checked first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath

from kefu.errors import ParseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import DEFAULT_MAX_BYTES, Origin, check_size, iso_utc
from kefu.kb.parsers.faq import XLSX_MIME, parse_faq_csv, parse_faq_json, parse_faq_xlsx
from kefu.kb.parsers.pdf import parse_pdf
from kefu.kb.parsers.text import parse_markdown, parse_plain_text
from kefu.kb.parsers.webpage import parse_html
from kefu.kb.parsers.word import DOCX_MIME, parse_docx

Parser = Callable[[bytes, Origin], SourceDocument]
PARSERS: dict[str, Parser] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_plain_text,
    ".json": parse_faq_json,
    ".csv": parse_faq_csv,
    ".xlsx": parse_faq_xlsx,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
    ".html": parse_html,
    ".htm": parse_html,
}
SUPPORTED_EXTENSIONS = frozenset(PARSERS)
# A specific content type wins over the name's extension (a URL ending in .pdf that answers with an
# HTML login page is HTML); text/plain and octet-stream say nothing, so the extension decides.
_MIME_EXTENSIONS = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "application/pdf": ".pdf",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    XLSX_MIME: ".xlsx",
    DOCX_MIME: ".docx",
}
_ADVICE = {
    ".doc": "open it in Word or WPS and save it as .docx",
    ".xls": "open it in Excel or WPS and save it as .xlsx",
    ".ppt": "export it as PDF",
    ".pptx": "export it as PDF",
    ".rtf": "save it as .docx",
    ".jpg": "OCR it into a text PDF first",
    ".jpeg": "OCR it into a text PDF first",
    ".png": "OCR it into a text PDF first",
}


def parse_bytes(
    data: bytes,
    name: str,
    *,
    doc_id: str | None = None,
    mime: str | None = None,
    updated_at: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> SourceDocument:
    """Parse ``data``; ``name`` (a file name or path) picks the parser by extension unless ``mime`` names
    a specific type, and is the name used in errors. ``doc_id`` defaults to ``name``."""
    origin = Origin(name=name, doc_id=doc_id or name, updated_at=updated_at)
    return parse_origin(data, origin, name, mime, max_bytes)


def parse_file(path: Path, *, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> SourceDocument:
    """Parse one file; its ``doc_id`` is its path relative to ``root`` (posix form) or its name, its
    ``updated_at`` its modification time. The size is checked before the file is read."""
    doc_id = path.relative_to(root).as_posix() if root is not None else path.name
    name = doc_id if root is not None else str(path)
    parser = parser_for(name, None)
    try:
        if not path.exists():
            raise ParseError(f"{name} does not exist; check the path")
        if not path.is_file():
            raise ParseError(f"{name} is not a file; give the path of a document")
        stat = path.stat()
        check_size(stat.st_size, name, max_bytes)
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(
            f"cannot read {name}: {exc.strerror or exc}; check the path and permissions"
        ) from None
    origin = Origin(name=name, doc_id=doc_id, updated_at=iso_utc(stat.st_mtime), meta={"path": str(path)})
    return _run(parser, data, origin, max_bytes)


def parse_origin(
    data: bytes, origin: Origin, filename: str, mime: str | None, max_bytes: int
) -> SourceDocument:
    """Parse bytes whose provenance is already known (files, URLs): ``filename`` and ``mime`` choose
    the parser, a ``charset`` parameter of ``mime`` is tried first for text."""
    parser = parser_for(filename, mime, origin.name)
    charset = _charset(mime)
    if charset and not origin.charset:
        origin = replace(origin, charset=charset)
    return _run(parser, data, origin, max_bytes)


def parser_for(filename: str, mime: str | None, name: str | None = None) -> Parser:
    media = (mime or "").split(";")[0].strip().lower()
    extension = PurePosixPath(filename).suffix.lower()
    if media in _MIME_EXTENSIONS:
        return PARSERS[_MIME_EXTENSIONS[media]]
    if extension in PARSERS:
        return PARSERS[extension]
    if media == "text/plain":
        return parse_plain_text
    what = f"content type {media}" if media else f"{extension or 'extension-less'} files"
    advice = _ADVICE.get(extension, f"convert it to one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}")
    raise ParseError(f"{name or filename}: {what} cannot be read; {advice}")


def _run(parser: Parser, data: bytes, origin: Origin, max_bytes: int) -> SourceDocument:
    check_size(len(data), origin.name, max_bytes)
    try:
        return parser(data, origin)
    except RecursionError:
        raise ParseError(f"{origin.name} is nested too deeply to read; simplify or re-export it") from None


def _charset(mime: str | None) -> str | None:
    for param in (mime or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None
