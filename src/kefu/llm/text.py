"""Text helpers shared by the backends and the test doubles.

* ``estimate_tokens`` — an approximate token count, used when a server sends no usage and by the
  scripted model: one token per CJK character (Qwen-, GPT- and DeepSeek-style tokenizers spend about
  0.6–1.2 tokens on one), one per four other characters, at least one for non-empty text.
* ``pieces`` — a reply split into token-sized pieces (one CJK character, or one word with its
  trailing space), which the scripted model and the fake server stream one by one.
* ``scripted_reply`` — the deterministic reply of the test doubles when nothing was enqueued.
"""

from __future__ import annotations

import math
import re

from kefu.llm.base import Message

_CJK_CLASS = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK = re.compile(f"[{_CJK_CLASS}]")
_PIECE = re.compile(f"[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+\\s*|\\s+")
_SOURCE_LINE = re.compile(r"^\[(\d+)\]\s*(.*)$")


def estimate_tokens(text: str) -> int:
    if not text:
        return 0
    cjk = len(_CJK.findall(text))
    return max(1, cjk + math.ceil((len(text) - cjk) / 4))


def estimate_prompt_tokens(messages: list[Message]) -> int:
    """Message contents plus about four tokens of chat-template framing per message."""
    return sum(estimate_tokens(m.content) + 4 for m in messages)


def pieces(text: str) -> list[str]:
    """Split ``text`` into token-sized pieces; ``"".join(pieces(t)) == t``."""
    return _PIECE.findall(text)


def scripted_reply(messages: list[Message]) -> str:
    """The deterministic reply of ``ScriptedModel`` and the fake server when nothing was enqueued.

    If any message (the system prompt first) holds a numbered source — a line ``[n] heading``
    as written by ``kefu.dialog.prompts.source_block`` — the reply is that source's first text
    line followed by its citation: ``"<first line> [n]"`` (the heading when the source has no
    text). Otherwise it is ``"收到：<last user message>"``. Useful to prove that retrieved sources
    reached the model and that citations survive the pipeline.
    """
    for message in messages:
        cited = _first_source(message.content)
        if cited:
            return cited
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return f"收到：{last_user.strip()}"


def _first_source(content: str) -> str | None:
    lines = content.splitlines()
    for index, line in enumerate(lines):
        match = _SOURCE_LINE.match(line.strip())
        if not match:
            continue
        number, heading = match.groups()
        body = next((ln.strip() for ln in lines[index + 1 :] if ln.strip()), "")
        if _SOURCE_LINE.match(body):
            body = ""
        return f"{body or heading.strip()} [{number}]"
    return None
