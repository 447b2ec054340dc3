"""What a budget check costs: ``kefu.storage.costs.spent`` (today's sum + this conversation's sum) on a
database holding many days of messages, with ``ix_messages_created_at`` and, as the baseline measured in
the same run, without it.

    python benchmarks/budget_spend.py                         # SQLite in a temporary folder
    python benchmarks/budget_spend.py --url postgresql://postgres@127.0.0.1:5432/test --messages 200000

Prints the median and p95 of one check; every routed turn with KEFU_BUDGET_* set pays it once.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, text

from kefu.storage.costs import spent
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.models import ConversationRow, MessageRow


def fill(engine: Engine, messages: int, days: int, per_conversation: int) -> list[str]:
    rng = random.Random(0)
    now = datetime.now(UTC)
    conversations = [f"c{i:07d}" for i in range(messages // per_conversation)]
    with engine.begin() as conn:
        conn.execute(
            insert(ConversationRow),
            [
                {"id": c, "channel": "web", "status": "open", "created_at": now, "updated_at": now}
                for c in conversations
            ],
        )
        rows = []
        for n in range(messages):
            conversation = conversations[n // per_conversation]
            at = now - timedelta(seconds=rng.uniform(0, days * 86400))
            rows.append(
                {
                    "id": f"m{n:08d}",
                    "conversation_id": conversation,
                    "seq": n % per_conversation + 1,
                    "role": "assistant",
                    "content": "x",
                    "status": "ok",
                    "citations": [],
                    "prompt_tokens": 500,
                    "completion_tokens": 80,
                    "cost": rng.uniform(0, 0.02),
                    "created_at": at,
                }
            )
            if len(rows) == 10_000:
                conn.execute(insert(MessageRow), rows)
                rows = []
        if rows:
            conn.execute(insert(MessageRow), rows)
    return conversations


def measure(engine: Engine, conversations: list[str], calls: int) -> tuple[float, float]:
    rng = random.Random(1)
    times = []
    for _ in range(calls):
        conversation = rng.choice(conversations)
        started = time.perf_counter()
        spent(engine, conversation)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def analyze(engine: Engine) -> None:
    """Statistics (and, on PostgreSQL, the visibility map autovacuum keeps: index-only scans)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'kefu.db'}"
        schema_cm = None
        if url.startswith("postgres"):
            from kefu.storage.testing import temporary_postgres_schema

            schema_cm = temporary_postgres_schema(url)
            url = schema_cm.__enter__()
        try:
            engine = make_engine(url)
            migrate(engine)
            conversations = fill(engine, args.messages, args.days, per_conversation=10)
            analyze(engine)
            indexed = measure(engine, conversations, args.calls)
            with engine.begin() as conn:
                conn.execute(text("DROP INDEX ix_messages_created_at"))
            analyze(engine)
            bare = measure(engine, conversations, args.calls)
            engine.dispose()
        finally:
            if schema_cm is not None:
                schema_cm.__exit__(None, None, None)
    print(
        f"{engine.dialect.name}: {args.messages} messages over {args.days} days, {args.calls} budget checks"
    )
    print(f"  with ix_messages_created_at     median {indexed[0]:7.2f} ms   p95 {indexed[1]:7.2f} ms")
    print(f"  without it (baseline)           median {bare[0]:7.2f} ms   p95 {bare[1]:7.2f} ms")
    print(f"  ratio (baseline / indexed)      {bare[0] / indexed[0]:.1f}x")


if __name__ == "__main__":
    main()
