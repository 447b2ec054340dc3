"""Text PDFs (pypdf): the text of every page, hard-wrapped lines joined, page numbers dropped.

Scanned (image-only) PDFs have no text layer and are refused with the advice to OCR them; encrypted
PDFs are read when they open with an empty password (owner-password-only), refused otherwise.
"""

from __future__ import annotations

import io
import re

from kefu.errors import ParseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import Origin, tidy_line, with_title_heading

_PAGE_NUMBER = re.compile(
    r"^(?:[-–—\s]*\d{1,4}[-–—\s]*|\d{1,4}\s*/\s*\d{1,4}|第\s*\d{1,4}\s*页(?:\s*[，,/]?\s*共\s*\d{1,4}\s*页)?"
    r"|page\s+\d{1,4}(?:\s+of\s+\d{1,4})?)$",
    re.IGNORECASE,
)
_SENTENCE_END = tuple("。！？；：!?;:")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
_WIDE = re.compile(
    r"[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]"
)
_JUNK_TITLES = {"untitled", "unknown", "无标题", "未命名", "document"}
_WRAP_FILL = 0.85  # a line at least this share of the page's full line width probably wraps


def parse_pdf(data: bytes, origin: Origin) -> SourceDocument:
    from pypdf import PasswordType, PdfReader

    damaged = f"{origin.name} is not a readable PDF (damaged or truncated); export or download it again"
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ParseError(
                f"{origin.name} is password-protected; remove the password (e.g. print it to a new PDF) "
                "and upload it again"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
        title = _title(reader.metadata.title if reader.metadata else None)
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many kinds of error on malformed files
        raise ParseError(f"{damaged} ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(t for t in (page_text(p) for p in pages) if t)
    if not text.strip():
        raise ParseError(
            f"{origin.name} has no extractable text: a scanned/image-only PDF; OCR it first "
            "(e.g. ocrmypdf -l chi_sim+eng in.pdf out.pdf) and upload the result"
        )
    title = title or origin.stem
    return origin.document(
        "doc", title, "application/pdf", text=with_title_heading(text, title), meta={"pages": len(pages)}
    )


def page_text(raw: str) -> str:
    """One page's text: lines tidied, page numbers dropped, lines that wrap joined to the next."""
    lines = [tidy_line(line) for line in raw.splitlines()]
    lines = [line for line in lines if line and not _PAGE_NUMBER.match(line)]
    if not lines:
        return ""
    widths = [_width(line) for line in lines]
    full = sorted(widths)[int(0.9 * (len(widths) - 1))]
    out, last = [lines[0]], widths[0]  # ``last``: the width of the last line of ``out`` as it was drawn
    for line, width in zip(lines[1:], widths[1:], strict=True):
        prev = out[-1]
        if full >= 20 and last >= _WRAP_FILL * full and not prev.endswith(_SENTENCE_END):
            out[-1] = prev + ("" if _CJK.match(prev[-1]) or _CJK.match(line[0]) else " ") + line
        else:
            out.append(line)
        last = width
    return "\n".join(out)


def _width(line: str) -> int:
    """Display width: a Chinese character is as wide as two Latin ones."""
    return len(line) + len(_WIDE.findall(line))


def _title(raw: object) -> str:
    title = str(raw or "").strip().removeprefix("Microsoft Word - ")
    title = re.sub(r"\.(docx?|pdf|pptx?|xlsx?)$", "", title, flags=re.IGNORECASE).strip()
    return "" if title.lower() in _JUNK_TITLES else title
