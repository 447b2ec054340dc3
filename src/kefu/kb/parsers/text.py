"""Markdown and plain text."""

from __future__ import annotations

import re

from kefu.kb.chunking import split_sections
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import Origin, decode, normalize_newlines

_BLANKS = re.compile(r"\n{3,}")


def parse_markdown(data: bytes, origin: Origin) -> SourceDocument:
    """Markdown is kept as written (the chunker reads its headings); the title is its first ``# `` line."""
    text, encoding = decode(data, origin.name, origin.charset)
    title, _ = split_sections(text, origin.stem)
    return origin.document("doc", title, "text/markdown", text=text, meta={"encoding": encoding})


def parse_plain_text(data: bytes, origin: Origin) -> SourceDocument:
    """Plain text: line ends normalised, trailing spaces and runs of blank lines removed, paragraphs
    (blank-line separated) kept. The title is the file name."""
    text, encoding = decode(data, origin.name, origin.charset)
    return origin.document(
        "doc", origin.stem, "text/plain", text=plain_paragraphs(text), meta={"encoding": encoding}
    )


def plain_paragraphs(text: str) -> str:
    lines = [line.rstrip() for line in normalize_newlines(text).split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip("\n")
