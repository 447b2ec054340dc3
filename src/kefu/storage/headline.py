"""The operator's headline numbers by UTC day (issue #13 part 6): ``kefu stats`` and its ``--json``.

Per day of a conversation's start (the session numbers) or of a rating (the rating numbers):

* **session completion rate** — as ``kefu.storage.stats`` defines it (completed / conversations with a
  customer message); **resolution rate** — resolved by the bot without a human / the same conversations.
* **first response time** — from a conversation's first customer message to the first reply stored
  after it (the bot's or an agent's): mean and median seconds. (The metrics' histogram
  ``kefu_first_response_seconds`` measures the first *text*, which streams before the reply is stored.)
* **CSAT** — the mean of the conversation-level ratings (1-5) and the share of 4 and 5 ("satisfied");
  **stars** — the mean of the per-answer star ratings; **thumbs-up rate** — 👍 / (👍 + 👎).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from statistics import fmean, median
from typing import Any

from sqlalchemy import Engine, func, select

from kefu.storage.models import ConversationRow, ConversationStatsRow, MessageRow, RatingRow

REPLY_ROLES = ("assistant", "agent")


def _day(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive UTC through some paths
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).date().isoformat()


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: list[float]) -> float | None:
    return round(fmean(values), 4) if values else None


def _scores(engine: Engine, since: datetime | None) -> dict[str, dict[str, list[int]]]:
    """Day → kind → the scores given that UTC day."""
    query = select(RatingRow.created_at, RatingRow.kind, RatingRow.score)
    if since is not None:
        query = query.where(RatingRow.created_at >= since)
    scores: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    with engine.connect() as conn:
        for created_at, kind, score in conn.execute(query):
            scores[_day(created_at)][kind].append(int(score))
    return scores


def _rating_numbers(kinds: dict[str, list[int]]) -> dict[str, Any]:
    csat, stars, thumbs = kinds.get("csat", []), kinds.get("stars", []), kinds.get("thumbs", [])
    return {
        "csat_ratings": len(csat),
        "csat_mean": _mean([float(s) for s in csat]),
        "csat_satisfied_share": _rate(sum(s >= 4 for s in csat), len(csat)),
        "star_ratings": len(stars),
        "stars_mean": _mean([float(s) for s in stars]),
        "thumbs": len(thumbs),
        "thumbs_up_rate": _rate(sum(thumbs), len(thumbs)),
    }


def ratings_by_day(engine: Engine, since: datetime | None = None) -> dict[str, dict[str, Any]]:
    return {day: _rating_numbers(kinds) for day, kinds in _scores(engine, since).items()}


def ratings_summary(engine: Engine, since: datetime | None = None) -> dict[str, Any]:
    """The rating numbers over every rating given at or after ``since`` (the metrics' CSAT gauge)."""
    merged: dict[str, list[int]] = defaultdict(list)
    for kinds in _scores(engine, since).values():
        for kind, scores in kinds.items():
            merged[kind].extend(scores)
    return _rating_numbers(merged)


def sessions_by_day(engine: Engine, since: datetime | None = None) -> dict[str, dict[str, Any]]:
    s, c = ConversationStatsRow, ConversationRow
    query = (
        select(c.created_at, s.completed, s.resolved_by)
        .join(s, s.conversation_id == c.id)
        .where(s.user_messages > 0)
    )
    if since is not None:
        query = query.where(c.created_at >= since)
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with engine.connect() as conn:
        for created_at, done, resolved_by in conn.execute(query):
            tally = counts[_day(created_at)]
            tally[0] += 1
            tally[1] += int(bool(done))
            tally[2] += int(resolved_by == "bot")
    waits = first_response_seconds(engine, since)
    days: dict[str, dict[str, Any]] = {}
    for day in sorted(set(counts) | set(waits)):
        conversations, completed, by_bot = counts.get(day, [0, 0, 0])
        seconds = waits.get(day, [])
        days[day] = {
            "conversations": conversations,
            "session_completion_rate": _rate(completed, conversations),
            "resolution_rate": _rate(by_bot, conversations),
            "first_responses": len(seconds),
            "first_response_mean_s": _mean(seconds),
            "first_response_median_s": round(median(seconds), 4) if seconds else None,
        }
    return days


def first_response_seconds(engine: Engine, since: datetime | None = None) -> dict[str, list[float]]:
    """Per day of the conversation's first customer message: seconds to the first reply after it."""
    m = MessageRow
    first_user = select(m.conversation_id, func.min(m.created_at).label("asked")).where(m.role == "user")
    if since is not None:
        first_user = first_user.where(m.created_at >= since)
    asked = first_user.group_by(m.conversation_id).subquery()
    query = (
        select(asked.c.asked, func.min(m.created_at))
        .join(m, m.conversation_id == asked.c.conversation_id)
        .where(m.role.in_(REPLY_ROLES), m.created_at >= asked.c.asked)
        .group_by(asked.c.conversation_id, asked.c.asked)
    )
    days: dict[str, list[float]] = defaultdict(list)
    with engine.connect() as conn:
        for asked_at, replied_at in conn.execute(query):
            start, end = _aware(asked_at), _aware(replied_at)
            days[_day(start)].append(max(0.0, (end - start).total_seconds()))
    return days


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's min() of a datetime column is its stored text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def headline_by_day(engine: Engine, since: datetime | None = None) -> list[dict[str, Any]]:
    """One row per UTC day, oldest first: the session numbers and the rating numbers side by side."""
    sessions, ratings = sessions_by_day(engine, since), ratings_by_day(engine, since)
    no_sessions = dict.fromkeys(_SESSION_KEYS) | {"conversations": 0, "first_responses": 0}
    no_ratings = dict.fromkeys(_RATING_KEYS) | {"csat_ratings": 0, "star_ratings": 0, "thumbs": 0}
    rows = []
    for day in sorted(set(sessions) | set(ratings)):
        rows.append({"day": day} | sessions.get(day, no_sessions) | ratings.get(day, no_ratings))
    return rows


_SESSION_KEYS = (
    "conversations",
    "session_completion_rate",
    "resolution_rate",
    "first_responses",
    "first_response_mean_s",
    "first_response_median_s",
)
_RATING_KEYS = (
    "csat_ratings",
    "csat_mean",
    "csat_satisfied_share",
    "star_ratings",
    "stars_mean",
    "thumbs",
    "thumbs_up_rate",
)


def format_headline(rows: list[dict[str, Any]]) -> str:
    """The days as an aligned table (``kefu stats``)."""

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    def num(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
        return "—" if value is None else format(value, fmt) + unit

    header = (
        f"{'day (UTC)':<11} {'convs':>5} {'complete':>8} {'resolved':>8} {'FRT mean':>8} {'FRT p50':>8} "
        f"{'CSAT':>5} {'CSAT 4-5':>8} {'stars':>5} {'👍 rate':>7}"
    )
    lines = ["headline numbers by day", header]
    for r in rows:
        lines.append(
            f"{r['day']:<11} {r['conversations']:>5} {pct(r['session_completion_rate']):>8} "
            f"{pct(r['resolution_rate']):>8} {num(r['first_response_mean_s'], '.1f', 's'):>8} "
            f"{num(r['first_response_median_s'], '.1f', 's'):>8} {num(r['csat_mean']):>5} "
            f"{pct(r['csat_satisfied_share']):>8} {num(r['stars_mean']):>5} {pct(r['thumbs_up_rate']):>7}"
        )
    if not rows:
        lines.append("(no conversations or ratings yet)")
    return "\n".join(lines)
