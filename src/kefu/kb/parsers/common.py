"""What every parser shares: where a document came from, size and emptiness checks, text decoding."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from charset_normalizer import from_bytes

from kefu.errors import ParseError
from kefu.kb.documents import DocKind, FaqEntry, SourceDocument

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Legacy encodings tried when the bytes are not UTF-8, in order of preference on a tie.
_LEGACY = ("gb18030", "big5", "cp1252")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_H1 = re.compile(r"^#\s+\S", re.MULTILINE)
_CJK_GAP = re.compile(
    r"(?<=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]) +(?=[\u3000-\u303f\u3400-\u9fff\uff00-\uffef])"
)


@dataclass(frozen=True)
class Origin:
    """Where the bytes came from: ``name`` is used in messages, ``doc_id`` is the document's key."""

    name: str
    doc_id: str
    source: str = ""
    updated_at: str | None = None
    charset: str | None = None  # declared by the server (Content-Type), if any
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        """The file name without its extension: the fallback title, as the chunker uses it."""
        return self.doc_id.rsplit("/", 1)[-1].rsplit(".", 1)[0] or self.doc_id

    def document(
        self,
        kind: DocKind,
        title: str,
        mime: str,
        *,
        text: str = "",
        faqs: tuple[FaqEntry, ...] = (),
        meta: dict[str, Any] | None = None,
    ) -> SourceDocument:
        if kind == "doc" and not text.strip():
            raise ParseError(f"{self.name} has no text; add content to it or leave it out")
        return SourceDocument(
            doc_id=self.doc_id,
            kind=kind,
            title=title.strip() or self.stem,
            text=text,
            faqs=faqs,
            source=self.source,
            updated_at=self.updated_at,
            mime=mime,
            meta={**self.meta, **(meta or {})},
        )


def id_prefix(doc_id: str) -> str:
    """``faq/shipping.csv`` → ``faq/shipping``; a URL → its path without the extension (or its host)."""
    path = doc_id
    if "://" in doc_id:
        parts = urlsplit(doc_id)
        path = parts.path.strip("/") or parts.netloc
    return PurePosixPath(path).with_suffix("").as_posix() if "." in path.rsplit("/", 1)[-1] else path


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def check_size(size: int, name: str, max_bytes: int) -> None:
    if size > max_bytes:
        raise ParseError(
            f"{name} is {human_size(size)}, over the {human_size(max_bytes)} limit; "
            "split it into smaller files or raise the size limit"
        )
    if size == 0:
        raise ParseError(f"{name} is empty (0 bytes); add content to it or leave it out")


def iso_utc(moment: datetime | float) -> str:
    """ISO 8601 in UTC to the second, from a datetime or a POSIX timestamp (a file's mtime)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def decode(data: bytes, name: str, declared: str | None = None) -> tuple[str, str]:
    """Text and encoding of ``data``: a declared charset, a BOM, UTF-8, then GB18030 / Big5 (chosen by
    charset-normalizer's score) or another detected encoding. Binary data (NUL bytes) is refused."""
    text = _decode_declared(data, declared)
    if text is not None:
        return text, str(declared)
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _checked(data.decode(codec, errors="replace"), name), codec
    if b"\x00" in data:
        raise ParseError(
            f"{name} is a binary file, not text (it contains NUL bytes); upload the original document "
            "(PDF, DOCX, XLSX …) or save it as UTF-8 text"
        )
    try:
        return _checked(data.decode("utf-8"), name), "utf-8"
    except UnicodeDecodeError:
        pass
    text, codec = _decode_legacy(data, name)
    return _checked(text, name), codec


def _decode_declared(data: bytes, declared: str | None) -> str | None:
    if not declared:
        return None
    try:
        text = data.decode(declared)
    except (LookupError, UnicodeDecodeError):
        return None
    return text.removeprefix("\ufeff")


def _decode_legacy(data: bytes, name: str) -> tuple[str, str]:
    """GB18030 and Big5 both accept most byte pairs: keep the reading with the least "chaos"
    (charset-normalizer's mess score), then the best language coherence, then mainland first."""
    matches = list(from_bytes(data, cp_isolation=list(_LEGACY)))
    if matches:
        best = min(matches, key=lambda m: (round(m.chaos, 3), -m.coherence, _rank(m.encoding)))
        return str(best), best.encoding
    guess = from_bytes(data).best()
    if guess is None:
        raise ParseError(
            f"cannot decode {name}: it is not UTF-8, UTF-16, GB18030/GBK or Big5 text; re-save it as UTF-8"
        )
    return str(guess), guess.encoding


def _rank(encoding: str) -> int:
    return _LEGACY.index(encoding) if encoding in _LEGACY else len(_LEGACY)


def _checked(text: str, name: str) -> str:
    """Refuse "text" that is mostly control characters: a binary file that happened to decode."""
    if len(_CONTROL.findall(text)) > max(8, len(text) // 100):
        raise ParseError(
            f"{name} looks like a binary file, not text; upload the original document or save it as UTF-8"
        )
    return text


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def tidy_line(line: str, *, cjk: bool = False) -> str:
    """One line of extracted text with whitespace collapsed; with ``cjk``, no spaces left between two
    Chinese characters (HTML source wraps Chinese text across lines, and a browser's space is noise)."""
    text = " ".join(line.split())
    return _CJK_GAP.sub("", text) if cjk else text


def with_title_heading(text: str, title: str) -> str:
    """Converted documents start with ``# title`` unless they already have a level-1 heading, so the
    chunker's heading path starts with the document's own title."""
    if _H1.search(text) or not title.strip():
        return text
    return f"# {title.strip()}\n\n{text}"
