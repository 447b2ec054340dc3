"""``kefu eval shop``: the demo shop's questions through the real chat path, every reply judged strictly.

The runtime is built like ``kefu demo`` builds it — the demo shop's knowledge base, the demo ERP over
HTTP, the configured (or ``--llm``) model — on a fresh temporary data directory and database, so a run
never reads or writes the user's own conversations. Each question gets a new conversation: its
``previous`` messages first, then the question, through ``Assistant.answer``; the reply is what the
customer saw (the text events) and is judged by ``shop_data.judge``. Quality is reported, never gated:
only a failure of the runner itself (or an exception in the chat path) gives a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.config import DEMO_SHOP_DIR, Settings, load_settings
from kefu.dialog.events import Citations, Delta, Done, Meta
from kefu.dialog.orchestrator import Assistant
from kefu.errors import InvalidInput
from kefu.evals.shop_data import OUTCOMES, ShopQuestion, Verdict, judge, load_questions

Progress = Callable[[str], None]


@dataclass
class Reply:
    text: str
    answer_kind: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    first_text_s: float | None = None  # from sending the message to the first text event
    full_s: float = 0.0  # to the end of the reply


@dataclass
class ItemResult:
    question: ShopQuestion
    reply: Reply
    verdict: Verdict | None  # None when the chat path raised (see error)
    previous_replies: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def outcome(self) -> str:
        return self.verdict.outcome if self.verdict is not None else "error"


@dataclass
class ShopReport:
    llm: str
    split: str
    results: list[ItemResult]

    @property
    def errors(self) -> int:
        return sum(r.outcome == "error" for r in self.results)

    def format_table(self, show_all: bool = False) -> str:
        """Every wrong answer in full (every answer with ``show_all``), then the totals and timings."""
        from kefu.evals.shop_report import format_report

        return format_report(self, show_all)


def select(
    questions: list[ShopQuestion], split: str = "all", ids: Iterable[str] = (), limit: int | None = None
) -> list[ShopQuestion]:
    """The questions of ``split`` (dev, test or all), only ``ids`` when given, at most ``limit``."""
    if split not in ("dev", "test", "all"):
        raise InvalidInput(f"--split {split!r} is not a split; use dev, test or all")
    chosen = [q for q in questions if split == "all" or q.split == split]
    wanted = [i for i in ids if i]
    if wanted:
        known = {q.id for q in questions}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise InvalidInput(
                f"--ids: no question with id {', '.join(unknown)}; the ids are in shop_questions.yaml"
            )
        chosen = [q for q in chosen if q.id in set(wanted)]
    return chosen[:limit] if limit is not None else chosen


def eval_settings(data_dir: Path, llm: str | None = None, **overrides: Any) -> Settings:
    """The configured settings, changed to what ``kefu demo`` runs (demo shop, demo ERP) on ``data_dir``:
    its own SQLite database, sessions in it, no external ERP, agents always on duty (a run must not
    depend on the time of day)."""
    configured = load_settings()
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'eval-shop.db'}",
        "redis_url": "",
        "kb_dir": DEMO_SHOP_DIR,
        "kb_index_backend": "faiss",
        "demo_erp": True,
        "erp_url": "",
        "handoff_hours": "",
        "vip_users": [],
        "llm": llm or configured.llm,
        # the throw-away audit log gets a throw-away key (not the development-key warning)
        "audit_keys": configured.audit_keys.get_secret_value()
        or f"eval:{base64.b64encode(os.urandom(32)).decode()}",
    }
    values.update(overrides)
    return load_settings(**values)


def run_shop_eval(
    *,
    llm: str | None = None,
    split: str = "all",
    ids: Iterable[str] = (),
    limit: int | None = None,
    questions: list[ShopQuestion] | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> ShopReport:
    """Run the chosen questions on a throw-away copy of the demo shop and judge every reply."""
    chosen = select(questions if questions is not None else load_questions(), split, ids, limit)
    with tempfile.TemporaryDirectory(prefix="kefu-eval-shop-") as tmp:
        settings = eval_settings(Path(tmp), llm, **overrides)
        results = asyncio.run(_run(settings, chosen, progress))
    return ShopReport(llm=settings.llm, split=split, results=results)


async def _run(
    settings: Settings, questions: list[ShopQuestion], progress: Progress | None
) -> list[ItemResult]:
    from kefu.runtime import build_runtime

    runtime = await build_runtime(settings)
    try:
        results = []
        for n, question in enumerate(questions, start=1):
            result = await run_item(runtime.assistant, question)
            results.append(result)
            if progress is not None:
                took = f"{result.reply.full_s:.2f} s"
                progress(
                    f"[{n}/{len(questions)}] {question.id}: {result.outcome} ({result.reply.answer_kind}, {took})"
                )
        return results
    finally:
        await runtime.aclose()


async def run_item(assistant: Assistant, question: ShopQuestion) -> ItemResult:
    """One question in a new conversation: its earlier messages first, then the question, judged."""
    conversation = await assistant.start_conversation("eval", external_user=f"eval-shop-{question.id}")
    previous: list[str] = []
    try:
        for text in question.previous:
            previous.append((await ask(assistant, conversation.id, text)).text)
        reply = await ask(assistant, conversation.id, question.q)
    except Exception as exc:  # an error in the chat path is reported with the item, and fails the run
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return ItemResult(question, Reply("", "error"), None, previous, error=error)
    return ItemResult(question, reply, judge(question, reply.text, reply.answer_kind), previous)


async def ask(assistant: Assistant, conversation_id: str, text: str) -> Reply:
    """Send one customer message and collect the reply as the customer sees it, with its timings."""
    started = time.perf_counter()
    pieces: list[str] = []
    reply = Reply("", "")
    async for event in assistant.answer(conversation_id, text):
        if isinstance(event, Meta):
            reply.answer_kind = event.answer_kind
        elif isinstance(event, Citations):
            reply.citations = list(event.citations)
        elif isinstance(event, Delta):
            if reply.first_text_s is None and event.text:
                reply.first_text_s = time.perf_counter() - started
            pieces.append(event.text)
        elif isinstance(event, Done) and event.message is not None and event.message.answer_kind:
            reply.answer_kind = event.message.answer_kind  # the final kind (a replaced answer, a fallback)
    reply.full_s = time.perf_counter() - started
    reply.text = "".join(pieces)
    return reply


__all__ = [
    "OUTCOMES",
    "ItemResult",
    "Reply",
    "ShopReport",
    "ask",
    "eval_settings",
    "run_item",
    "run_shop_eval",
]
