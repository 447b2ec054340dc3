"""What changed between two knowledge-base versions: ``KbDiff`` (``KbStore.diff``) and its parts."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from kefu.kb.documents import SourceDocument


@dataclass(frozen=True)
class DocChange:
    doc_id: str
    kind: str  # the kind in the newer version
    diff: str  # unified diff (text for docs, "Q: …/A: …" lines for FAQ files)
    faq_added: list[str] = field(default_factory=list)
    faq_removed: list[str] = field(default_factory=list)
    faq_changed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KbDiff:
    from_version: int
    to_version: int
    added: list[str]
    removed: list[str]
    changed: list[DocChange]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self, lang: str = "zh") -> str:
        """Plain text for the CLI: a summary line, then +/-/~ per document, with each diff."""
        a, b = self.from_version, self.to_version
        counts = (len(self.added), len(self.removed), len(self.changed))
        if not any(counts):
            return f"v{a} 与 v{b} 内容相同" if lang == "zh" else f"v{a} and v{b} have the same content"
        if lang == "zh":
            lines = [f"知识库 v{a} → v{b}：新增 {counts[0]}，删除 {counts[1]}，修改 {counts[2]}"]
        else:
            lines = [f"KB v{a} → v{b}: {counts[0]} added, {counts[1]} removed, {counts[2]} changed"]
        lines += [f"+ {doc_id}" for doc_id in self.added]
        lines += [f"- {doc_id}" for doc_id in self.removed]
        for change in self.changed:
            faq = [f"+{i}" for i in change.faq_added] + [f"-{i}" for i in change.faq_removed]
            faq += [f"~{i}" for i in change.faq_changed]
            lines.append(f"~ {change.doc_id}" + (f"  FAQ {' '.join(faq)}" if faq else ""))
            lines += [f"    {line}" for line in change.diff.splitlines()]
        return "\n".join(lines)


def _doc_change(old: SourceDocument, new: SourceDocument, a: int, b: int) -> DocChange:
    lines = difflib.unified_diff(
        _diff_lines(old),
        _diff_lines(new),
        fromfile=f"v{a}/{old.doc_id}",
        tofile=f"v{b}/{new.doc_id}",
        lineterm="",
    )
    before = {e.id: e for e in old.faqs}
    after = {e.id: e for e in new.faqs}
    return DocChange(
        doc_id=new.doc_id,
        kind=new.kind,
        diff="\n".join(lines),
        faq_added=[i for i in after if i not in before],
        faq_removed=[i for i in before if i not in after],
        faq_changed=[i for i in after if i in before and after[i] != before[i]],
    )


def _diff_lines(doc: SourceDocument) -> list[str]:
    lines = [f"Title: {doc.title}", ""]
    if doc.kind == "doc":
        return lines + doc.text.splitlines()
    for entry in doc.faqs:
        lines += [f"[{entry.id}]", f"Q: {entry.question}"]
        lines += [f"Q~ {s}" for s in entry.similar]
        answer = entry.answer.splitlines() or [""]
        lines += [f"A: {answer[0]}", *(f"   {line}" for line in answer[1:])]
        if entry.tags:
            lines.append(f"Tags: {', '.join(entry.tags)}")
        lines.append("")
    return lines
