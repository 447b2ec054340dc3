"""HTML pages (BeautifulSoup, stdlib ``html.parser``): the main content as Markdown-ish text.

The content is ``<main>`` (or ``role="main"``, or the page's only ``<article>``), else ``<body>``.
Scripts, styles, navigation, asides, forms, hidden elements, comments and the page-level header and
footer are dropped; ``h1``–``h3`` become ``#`` headings, list items ``- `` lines, table rows cells
joined with `` | ``.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, NavigableString, Tag

from kefu.errors import ParseError
from kefu.kb.documents import SourceDocument
from kefu.kb.parsers.common import Origin, decode, tidy_line, with_title_heading

_DROP = {
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed",
    "nav", "aside", "form", "button", "select", "input", "textarea", "dialog", "head",
}  # fmt: skip
_PAGE_CHROME = {"header", "footer"}  # dropped unless inside an article, main or section
_BLOCKS = {
    "p", "div", "section", "article", "main", "blockquote", "pre", "ul", "ol", "dl", "dt", "dd",
    "table", "thead", "tbody", "tfoot", "figure", "figcaption", "address", "details", "summary",
    "header", "footer", "hr", "center", "fieldset", "caption",
}  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 0, "h5": 0, "h6": 0}  # h4–h6: plain lines
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-]+)""", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def parse_html(data: bytes, origin: Origin) -> SourceDocument:
    text, encoding = decode(data, origin.name, origin.charset or _meta_charset(data))
    soup = BeautifulSoup(text, "html.parser")
    page_title = _tidy(soup.title.get_text()) if soup.title else ""
    blocks = _blocks_of(_main_content(soup))
    body = "\n\n".join(blocks)
    if not body:
        raise ParseError(
            f"{origin.name} has no text in its HTML (is the page built by JavaScript?); give the address "
            "of a page that contains the text, or save the page as PDF and upload that"
        )
    first_h1 = next((b[2:] for b in blocks if b.startswith("# ")), "")
    title = page_title or first_h1 or origin.stem
    return origin.document(
        "doc", title, "text/html", text=with_title_heading(body, title), meta={"encoding": encoding}
    )


def _meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def _main_content(soup: BeautifulSoup) -> Tag:
    found = soup.find("main") or soup.find(True, attrs={"role": "main"})
    if isinstance(found, Tag):
        return found
    articles = soup.find_all("article")
    if len(articles) == 1 and isinstance(articles[0], Tag):
        return articles[0]
    body = soup.body
    return body if body is not None else soup


def _render(node: Tag, blocks: list[str], inline: list[str]) -> None:
    """Append ``node``'s content to ``blocks``; ``inline`` collects the text of the open paragraph."""
    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # not a Comment, CData, Doctype …
                inline.append(re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag) or _dropped(child):
            continue
        name = child.name
        if name == "br":
            inline.append("\n")
        elif name in _HEADINGS:
            _flush(inline, blocks)
            heading = _tidy(child.get_text(" "))
            level = _HEADINGS[name]
            if heading:
                blocks.append(f"{'#' * level} {heading}" if level else heading)
        elif name == "li":
            _flush(inline, blocks)
            item = _blocks_of(child)
            if item:
                blocks.append("- " + "\n".join(item))
        elif name == "tr":
            _flush(inline, blocks)
            cells = [_tidy(c.get_text(" ")) for c in child.find_all(["td", "th"], recursive=False)]
            row = " | ".join(c for c in cells if c)
            if row:
                blocks.append(row)
        elif name in _BLOCKS:
            _flush(inline, blocks)
            _render(child, blocks, inline)
            _flush(inline, blocks)
        else:
            _render(child, blocks, inline)


def _blocks_of(node: Tag) -> list[str]:
    blocks: list[str] = []
    inline: list[str] = []
    _render(node, blocks, inline)
    _flush(inline, blocks)
    return blocks


def _dropped(tag: Tag) -> bool:
    if tag.name in _DROP or tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    if _HIDDEN_STYLE.search(str(tag.get("style") or "")):
        return True
    return tag.name in _PAGE_CHROME and tag.find_parent(["article", "main", "section"]) is None


def _flush(inline: list[str], blocks: list[str]) -> None:
    lines = [_tidy(line) for line in "".join(inline).split("\n")]
    text = "\n".join(line for line in lines if line)
    if text:
        blocks.append(text)
    inline.clear()


def _tidy(text: str) -> str:
    return tidy_line(text, cjk=True)
