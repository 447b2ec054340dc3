"""Multi-turn memory: the last N turns verbatim plus a rolling summary of older turns.

The summary is extractive (the customer's earlier questions, newest last, capped in length) rather than
model-written: it costs nothing, cannot hallucinate, and a small local model reads it reliably.
"""

from __future__ import annotations

import re
import time

from kefu.storage.base import SessionState, Turn

SUMMARY_MAX_CHARS = 600
SENTIMENT_TURNS = 3  # what the escalation rule looks at (kefu.safety.sentiment.SentimentTracker)
_QUESTION_MAX_CHARS = 80

# A follow-up that only makes sense with the previous question: 「那新疆呢？」, "what about Tibet?"
_ELLIPTICAL = re.compile(
    r"^\s*(那|那么|那如果|还有|另外|如果是|换成|呢)|呢[?？]?\s*$|^\s*(and|what about|how about|what if)\b",
    re.IGNORECASE,
)


def remember(
    state: SessionState, user: str, assistant: str, window: int, sentiment: float | None = None
) -> SessionState:
    """Append a turn; turns that fall out of the window are folded into the summary."""
    turns = [*state.turns, Turn(user=user, assistant=assistant)]
    summary = state.summary
    while len(turns) > window:
        summary = _fold(summary, turns.pop(0))
    return SessionState(
        session_id=state.session_id,
        conversation_id=state.conversation_id,
        turns=turns,
        summary=summary,
        sentiment=[*state.sentiment, sentiment][-SENTIMENT_TURNS:]
        if sentiment is not None
        else state.sentiment,
        flow=state.flow,
        updated_at=time.time(),
    )


def _fold(summary: str, turn: Turn) -> str:
    question = turn.user.strip().replace("\n", " ")[:_QUESTION_MAX_CHARS]
    lines = [*summary.splitlines(), f"- {question}"] if summary else [f"- {question}"]
    while len("\n".join(lines)) > SUMMARY_MAX_CHARS and len(lines) > 1:
        lines.pop(0)
    return "\n".join(lines)


def is_follow_up(text: str) -> bool:
    """Elliptical messages (「那新疆呢？」) lean on the previous question for retrieval."""
    return bool(_ELLIPTICAL.search(text.strip()))


def with_previous_question(state: SessionState, text: str) -> str | None:
    """The message joined to the last question, or None at the start of a conversation."""
    return f"{state.turns[-1].user} {text}" if state.turns else None


def retrieval_query(state: SessionState, text: str) -> str:
    """The first text to search the knowledge base with: follow-ups carry the last question along."""
    joined = with_previous_question(state, text)
    return joined if joined and is_follow_up(text) else text
