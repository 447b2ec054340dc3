"""Model cost from the messages themselves (``messages.route / model / cost / cache``, migration 0006):
what the budgets have spent, and the cost summary of ``kefu stats`` and GET /v1/stats/costs.

Every bot reply carries the route that chose its model, the model, its tokens and its cost; these are
sums over those rows, so nothing can drift from what was actually stored. Days are UTC days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Engine, case, func, select

from kefu.storage.models import MessageRow

_BOT = MessageRow.role == "assistant"


def start_of_day(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s UTC day."""
    return datetime.combine(now.astimezone(UTC).date(), time(), UTC)


def spent(engine: Engine, conversation_id: str, now: datetime | None = None) -> tuple[float, float]:
    """(cost of today's UTC day, cost of this conversation) — the budgets' spend (one query each, by
    ``ix_messages_created_at`` and the conversation's own rows)."""
    today = start_of_day(now or datetime.now(UTC))
    m = MessageRow
    with engine.connect() as conn:
        day = conn.scalar(select(func.coalesce(func.sum(m.cost), 0.0)).where(m.created_at >= today))
        mine = conn.scalar(
            select(func.coalesce(func.sum(m.cost), 0.0)).where(m.conversation_id == conversation_id)
        )
    return float(day or 0.0), float(mine or 0.0)


def spend_of(engine: Engine) -> Callable[[str], tuple[float, float]]:
    """``spent`` bound to ``engine``: the ``Spend`` a ``kefu.llm.routing.Budget`` asks."""
    return lambda conversation_id: spent(engine, conversation_id)


def cost_summary(engine: Engine, since: datetime | None = None, top: int = 10) -> dict[str, Any]:
    """Bot replies since ``since`` (all when None): per UTC day by route and model (replies, tokens,
    cost), the ``top`` conversations by cost, totals, and the answer-cache hit rate."""
    m = MessageRow
    day = _utc_day(engine)
    where = [_BOT] + ([m.created_at >= since] if since is not None else [])
    by_route = (
        select(
            day.label("day"),
            func.coalesce(m.route, "—"),
            func.coalesce(m.model, "—"),
            func.count(),
            func.coalesce(func.sum(m.prompt_tokens), 0),
            func.coalesce(func.sum(m.completion_tokens), 0),
            func.coalesce(func.sum(m.cost), 0.0),
        )
        .where(*where)
        .group_by(day, m.route, m.model)
        .order_by(day, m.route, m.model)
    )
    cost = func.coalesce(func.sum(m.cost), 0.0)
    by_conversation = (
        select(m.conversation_id, func.count(), cost, func.min(m.created_at))
        .where(*where)
        .group_by(m.conversation_id)
        .order_by(cost.desc(), m.conversation_id)
        .limit(top)
    )
    totals = select(
        func.count(),
        func.coalesce(func.sum(m.cost), 0.0),
        func.sum(case((m.cache.is_not(None), 1), else_=0)),
        func.count(func.distinct(m.conversation_id)),
    ).where(*where)
    with engine.connect() as conn:
        routes = conn.execute(by_route).all()
        conversations = conn.execute(by_conversation).all()
        replies, total, cached, n_conversations = conn.execute(totals).one()
    days: dict[str, float] = {}
    for row in routes:
        days[str(row[0])] = days.get(str(row[0]), 0.0) + float(row[6])
    replies, cached = int(replies or 0), int(cached or 0)
    return {
        "since": since.isoformat() if since else None,
        "bot_replies": replies,
        "conversations": int(n_conversations or 0),
        "cost": round(float(total or 0.0), 6),
        "cost_per_conversation": round(float(total or 0.0) / n_conversations, 6) if n_conversations else None,
        "cache_hits": cached,
        "cache_hit_rate": round(cached / replies, 4) if replies else None,
        "per_day": [{"day": d, "cost": round(c, 6)} for d, c in days.items()],
        "by_route": [
            {
                "day": str(r[0]),
                "route": r[1],
                "model": r[2],
                "replies": int(r[3]),
                "prompt_tokens": int(r[4]),
                "completion_tokens": int(r[5]),
                "cost": round(float(r[6]), 6),
            }
            for r in routes
        ],
        "top_conversations": [
            {"conversation_id": c[0], "replies": int(c[1]), "cost": round(float(c[2] or 0.0), 6)}
            for c in conversations
        ],
    }


def format_costs(summary: dict[str, Any], currency: str = "") -> str:
    """The cost summary as aligned text lines (``kefu stats``); ``currency``: the model matrix's."""
    rate = summary["cache_hit_rate"]
    per = summary["cost_per_conversation"]
    unit = f" {currency}" if currency else ""
    lines = [
        f"model cost               {summary['cost']:.4f}{unit}  ({summary['conversations']} conversations, "
        f"{'—' if per is None else f'{per:.4f}'} per conversation)",
        f"answer cache hit rate    {'—' if rate is None else f'{rate:.1%}'}  "
        f"({summary['cache_hits']} of {summary['bot_replies']} bot replies)",
    ]
    if summary["by_route"]:
        lines.append("")
        lines.append(
            f"{'day (UTC)':<11} {'route':<13} {'model':<24} {'replies':>7} {'tokens in':>9} "
            f"{'out':>7} {'cost':>10}"
        )
        for r in summary["by_route"]:
            lines.append(
                f"{r['day']:<11} {r['route']:<13} {r['model'][:24]:<24} {r['replies']:>7} "
                f"{r['prompt_tokens']:>9} {r['completion_tokens']:>7} {r['cost']:>10.4f}"
            )
        for d in summary["per_day"]:
            lines.append(
                f"{d['day']:<11} {'(day total)':<13} {'':<24} {'':>7} {'':>9} {'':>7} {d['cost']:>10.4f}"
            )
    if summary["top_conversations"]:
        lines.append("")
        lines.append(f"{'conversation':<34} {'replies':>7} {'cost':>10}")
        for c in summary["top_conversations"]:
            lines.append(f"{c['conversation_id']:<34} {c['replies']:>7} {c['cost']:>10.4f}")
    return "\n".join(lines)


def _utc_day(engine: Engine) -> Any:
    """The UTC day of ``messages.created_at`` as "2026-12-04" (SQLite stores naive UTC text)."""
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", MessageRow.created_at), "YYYY-MM-DD")
    return func.substr(MessageRow.created_at, 1, 10)
