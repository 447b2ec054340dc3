"""FAQ pairs: the pack's JSON list, and CSV / XLSX sheets with a header row (Chinese or English names)."""

from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from kefu.errors import KnowledgeBaseError, ParseError
from kefu.kb.documents import FaqEntry, SourceDocument
from kefu.kb.parsers.common import Origin, decode, id_prefix

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS: dict[str, tuple[str, ...]] = {
    "question": ("问题", "question", "q", "标准问题", "标准问", "问", "常见问题", "questions"),
    "answer": ("答案", "answer", "a", "回答", "答", "回复", "answers"),
    "similar": ("相似问题", "similar", "相似问", "相似问法", "相似问句", "similarquestions", "paraphrases"),
    "tags": ("标签", "tags", "tag", "分类", "类别", "category"),
    "id": ("id", "编号", "faqid", "问题编号"),
}
_HEADER_SEARCH = 5  # rows searched for the header
_SIMILAR_SPLIT = re.compile(r"[|｜;；\n]")
_TAG_SPLIT = re.compile(r"[|｜;；,，、\n]")
Row = Sequence[object]


def parse_faq_json(data: bytes, origin: Origin) -> SourceDocument:
    """The pack's own format: a JSON list of ``{"id", "question", "answer", "similar", "tags"}``."""
    text, _ = decode(data, origin.name, origin.charset)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{origin.name} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(items, list) or not all(isinstance(e, dict) for e in items):
        raise ParseError(
            f'{origin.name} must be a JSON list of {{"id", "question", "answer", "similar", "tags"}} objects'
        )
    try:
        faqs = tuple(FaqEntry.from_dict(e, f"{origin.name} entry {n}") for n, e in enumerate(items))
    except KnowledgeBaseError as exc:
        raise ParseError(exc.message) from None
    return _faq_document(faqs, origin, "application/json")


def parse_faq_csv(data: bytes, origin: Origin) -> SourceDocument:
    """A CSV (comma, tab or semicolon separated) whose first row names the columns."""
    text, _ = decode(data, origin.name, origin.charset)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    except csv.Error as exc:
        raise ParseError(f"{origin.name} is not a readable CSV file ({exc}); re-export it as CSV") from None
    faqs = faq_rows(rows, origin.name, id_prefix(origin.doc_id))
    return _faq_document(faqs, origin, "text/csv")


def parse_faq_xlsx(data: bytes, origin: Origin) -> SourceDocument:
    """Every sheet of an Excel workbook whose first row names a question and an answer column.
    Generated ids: ``<file>-<row>`` on the first sheet, ``<file>-<sheet>-<row>`` on the others."""
    from openpyxl import load_workbook  # imported late: openpyxl is slow to import

    try:
        with warnings.catch_warnings():  # openpyxl warns about styles and extensions it ignores
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise ParseError(
            f"{origin.name} is not a readable .xlsx workbook ({type(exc).__name__}); open it in Excel or "
            "WPS and save it again as .xlsx (the old .xls format is not supported)"
        ) from None
    prefix = id_prefix(origin.doc_id)
    faqs: list[FaqEntry] = []
    problems: list[str] = []
    try:
        for n, sheet in enumerate(book.worksheets):
            rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
            where = origin.name if n == 0 else f"{origin.name} sheet {sheet.title!r}"
            try:
                faqs.extend(faq_rows(rows, where, prefix if n == 0 else f"{prefix}-{sheet.title}"))
            except ParseError as exc:
                problems.append(exc.message)
    finally:
        book.close()
    if not faqs:
        raise ParseError("; ".join(problems) or f"{origin.name} has no sheets")
    return _faq_document(tuple(faqs), origin, XLSX_MIME)


def faq_rows(rows: Sequence[Row], where: str, prefix: str) -> tuple[FaqEntry, ...]:
    """FAQ entries of a table whose first non-empty row is the header. Row numbers in ids and
    messages are the spreadsheet's (the header is usually row 1)."""
    numbered = [(n, [cell_text(c) for c in row]) for n, row in enumerate(rows, start=1)]
    numbered = [(n, cells) for n, cells in numbered if any(cells)]
    if not numbered:
        raise ParseError(f"{where} is empty; add a header row (问题, 答案, …) and questions")
    at, columns = _header(numbered, where)
    header_row = numbered[at][0]
    entries: list[FaqEntry] = []
    problems: list[str] = []
    for n, cells in numbered[at + 1 :]:
        values = {field: cells[i] if i < len(cells) else "" for field, i in columns.items()}
        if not values["question"] or not values["answer"]:
            missing = "answer" if values["question"] else "question"
            problems.append(f"row {n} has no {missing}")
            continue
        entries.append(
            FaqEntry(
                id=values.get("id") or f"{prefix}-{n}",
                question=values["question"],
                answer=values["answer"],
                similar=_split(values.get("similar", ""), _SIMILAR_SPLIT),
                tags=_split(values.get("tags", ""), _TAG_SPLIT),
            )
        )
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ParseError(f"{where}: {shown}; fill in both the question and the answer, or delete the row")
    if not entries:
        raise ParseError(f"{where} has a header (row {header_row}) but no questions below it")
    return tuple(entries)


def _delimiter(text: str) -> str:
    """Comma, tab or semicolon: whichever the first non-blank line (the header) uses most."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return max(",\t;", key=first.count) if any(d in first for d in ",\t;") else ","


def cell_text(value: object) -> str:
    """A cell as text: whole numbers without ".0", dates as ISO 8601, blanks as ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def _header(numbered: list[tuple[int, list[str]]], where: str) -> tuple[int, dict[str, int]]:
    """The header: the first of the first few rows that names a question and an answer column
    (a title row above it is allowed)."""
    for at, (_, cells) in enumerate(numbered[:_HEADER_SEARCH]):
        columns = _columns(cells)
        if "question" in columns and "answer" in columns:
            return at, columns
    header = numbered[0][1]
    missing = [f for f in ("question", "answer") if f not in _columns(header)]
    accepted = "; ".join(f"{f}: {', '.join(COLUMNS[f])}" for f in missing)
    found = ", ".join(h for h in header if h)
    raise ParseError(
        f"{where}: the header row has no {' and no '.join(missing)} column (found: {found}); "
        f"name the columns ({accepted})"
    )


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        field = _ALIASES.get(_normal(name))
        if field and field not in columns:
            columns[field] = i
    return columns


def _normal(name: str) -> str:
    return re.sub(r"[\s_\-:：]", "", name.lower().lstrip("\ufeff"))


def _split(value: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in pattern.split(value) if p.strip()))


def _faq_document(faqs: Iterable[FaqEntry], origin: Origin, mime: str) -> SourceDocument:
    entries = tuple(faqs)
    if not entries:
        raise ParseError(f"{origin.name} has no question/answer pairs; add some or leave it out")
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise ParseError(f"{origin.name}: the id {entry.id!r} is used twice; ids must be unique")
        seen.add(entry.id)
    return origin.document("faq", origin.doc_id, mime, faqs=entries)


_ALIASES = {_normal(alias): field for field, names in COLUMNS.items() for alias in names}
