"""Split Markdown documents into heading-aware, sentence-aligned chunks.

A document is cut first by headings (the heading path becomes ``Chunk.section``, the ``# `` title
becomes ``Chunk.title``), then each section's sentences are packed greedily into chunks of at most
``max_chars`` characters, each chunk repeating the last ``overlap`` sentences of the previous one.
A sentence is never cut unless it alone is longer than ``max_chars``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kefu.kb.types import Chunk

DEFAULT_MAX_CHARS = 300
DEFAULT_OVERLAP = 1  # sentences repeated at the start of the next chunk
PATH_SEP = " > "

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
# A sentence ends after 。！？；!?; (plus closing quotes/brackets), after ". " in English, or at a newline.
# Its trailing space/newline stays with it so that joining sentences restores the original layout.
_SENTENCE = re.compile(r"[^\n]*?(?:[。！？；!?;…]+[」』”’\"')）】]*[ \t]*\n?|\.(?=\s)[ \t]*\n?|\n|$)")
_CJK = re.compile(r"[\u3400-\u9fff]")


@dataclass
class Section:
    path: list[str]  # heading path, the document title first
    lines: list[str] = field(default_factory=list)


def detect_lang(text: str) -> str:
    return "zh" if _CJK.search(text) else "en"


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each keeping its end punctuation and trailing newline; blanks dropped."""
    pieces = (m.group(0).lstrip(" \t") for m in _SENTENCE.finditer(text))
    return [p for p in pieces if p.strip()]


def split_sections(markdown: str, fallback_title: str) -> tuple[str, list[Section]]:
    """The document title and its sections (heading path + body lines); code fences are not headings."""
    title = ""
    sections = [Section(path=[])]
    stack: list[tuple[int, str]] = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            sections[-1].lines.append(line)
            continue
        level, text = len(heading.group(1)), heading.group(2).strip()
        if level == 1 and not title:
            title = text
        stack = [(lvl, t) for lvl, t in stack if lvl < level] + [(level, text)]
        sections.append(Section(path=[t for _, t in stack]))
    title = title or fallback_title
    for sec in sections:
        if not sec.path or sec.path[0] != title:
            sec.path.insert(0, title)
    return title, [s for s in sections if "".join(s.lines).strip()]


def _hard_split(sentence: str, max_chars: int) -> list[str]:
    return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]


def pack_sentences(sentences: list[str], max_chars: int, overlap: int) -> list[list[str]]:
    """Greedy packing of sentences into groups whose joined length is at most ``max_chars``."""
    units = [piece for s in sentences for piece in _hard_split(s, max_chars)]
    groups: list[list[str]] = []
    current: list[str] = []
    fresh = 0  # sentences in ``current`` not carried over from the previous group
    for unit in units:
        if current and fresh and _joined_len([*current, unit]) > max_chars:
            groups.append(current)
            current = current[-overlap:] if overlap > 0 else []
            fresh = 0
            while current and _joined_len([*current, unit]) > max_chars:
                current = current[1:]
        current.append(unit)
        fresh += 1
    if fresh:
        groups.append(current)
    return groups


def _joined_len(sentences: list[str]) -> int:
    return len(join_sentences(sentences))


def join_sentences(sentences: list[str]) -> str:
    """The text of consecutive sentences (they carry their own separators)."""
    return "".join(sentences).strip()


def chunk_markdown(
    markdown: str,
    source: str,
    max_chars: int = DEFAULT_MAX_CHARS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Chunks of one Markdown document; ids are ``<source>#<n>`` counted from 1 in document order."""
    fallback = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    title, sections = split_sections(markdown, fallback)
    chunks: list[Chunk] = []
    for sec in sections:
        sentences = split_sentences("\n".join(sec.lines))
        for group in pack_sentences(sentences, max_chars, overlap):
            text = join_sentences(group)
            chunks.append(
                Chunk(
                    id=f"{source}#{len(chunks) + 1}",
                    doc_id=source,
                    kind="doc",
                    title=title,
                    section=PATH_SEP.join(sec.path),
                    text=text,
                    source=source,
                    lang=detect_lang(text),
                )
            )
    return chunks
