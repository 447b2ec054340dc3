"""Word documents (.docx, python-docx): Heading 1/2/3 styles become ``#``/``##``/``###`` lines, list
paragraphs ``- `` items, and each table row one line of cells joined with `` | ``."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

from kefu.errors import ParseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import Origin, tidy_line, with_title_heading

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*([1-9])$", re.IGNORECASE)
_TITLE_STYLES = {"title", "标题"}


def parse_docx(data: bytes, origin: Origin) -> SourceDocument:
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_blocks(document))
        core_title = document.core_properties.title or ""
    except Exception as exc:  # a damaged or non-docx zip raises from zipfile, lxml or python-docx
        raise ParseError(
            f"{origin.name} is not a readable .docx document ({type(exc).__name__}); open it in Word or "
            "WPS and save it again as .docx (the old .doc format is not supported)"
        ) from None
    text = "\n\n".join(blocks)
    first_h1 = next((b[2:] for b in blocks if b.startswith("# ")), "")
    title = core_title.strip() or first_h1 or origin.stem
    return origin.document("doc", title, DOCX_MIME, text=with_title_heading(text, title))


def _blocks(document: Any) -> Iterator[str]:
    from docx.text.paragraph import Paragraph

    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            line = _paragraph(item)
            if line:
                yield line
        else:
            rows = list(_table_rows(item))
            if rows:
                yield "\n".join(rows)


def _paragraph(paragraph: Any) -> str:
    lines = [tidy_line(line) for line in paragraph.text.splitlines()]
    text = "\n".join(line for line in lines if line)
    if not text:
        return ""
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    level = _heading_level(style)
    if level:
        return f"{'#' * level} {' '.join(text.split())}"
    if style.lower().startswith("list"):
        return f"- {text}"
    return text


def _heading_level(style: str) -> int:
    if style.strip().lower() in _TITLE_STYLES:
        return 1
    match = _HEADING_STYLE.match(style.strip())
    return min(int(match.group(1)), 6) if match else 0


def _table_rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        cells: list[str] = []
        seen: list[Any] = []  # the cells' XML elements, held so that identity means something
        for cell in row.cells:
            if any(cell._tc is tc for tc in seen):  # a merged cell comes once per grid column it spans
                continue
            seen.append(cell._tc)
            text = " ".join(tidy_line(line) for line in cell.text.splitlines() if line.strip())
            if text:
                cells.append(text)
        if cells:
            yield " | ".join(cells)
