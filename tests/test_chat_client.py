"""``kefu chat`` against the real app in a uvicorn thread, with scripted stdin and a captured stdout."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from conftest import free_port, live_server
from kefu.api.app import create_app
from kefu.chat_client import iter_sse, run_chat
from kefu.config import Settings
from kefu.errors import InvalidInput
from kefu.llm.testing import ScriptedModel

# The lead's small knowledge pack: these two questions are answered by the model from cited docs.
MINI_KB = Path(__file__).parent / "data" / "mini_kb"
Q1 = "你们发什么快递？多久能到？"
Q2 = "那新疆呢？"


@pytest.fixture
def served(make_settings: Callable[..., Settings]) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(make_settings(llm="scripted", kb_dir=MINI_KB))
    with live_server(app) as url:
        yield url, app


def scripted(app: FastAPI) -> ScriptedModel:
    """The app's scripted model, under the single-flight wrapper."""
    model = app.state.model
    while not isinstance(model, ScriptedModel) and "inner" in vars(model):
        model = model.inner
    assert isinstance(model, ScriptedModel)
    return model


def chat(url: str, lines: list[str], lang: str = "zh") -> tuple[int, str]:
    out = io.StringIO()
    code = run_chat(url, lang, stdin=io.StringIO("".join(f"{line}\n" for line in lines)), stdout=out)
    return code, out.getvalue()


def test_streams_the_reply_then_lists_its_sources_and_keeps_the_session(served: tuple[str, FastAPI]):
    url, app = served
    model = scripted(app)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    model.enqueue("新疆属于偏远地区，使用 EMS，一般 5–8 天送达 [1]。")

    code, out = chat(url, [Q1, Q2, "/quit"])

    assert code == 0
    assert "客服> 我们默认使用中通快递，江浙沪 1–2 天送达 [1]。" in out
    assert "客服> 新疆属于偏远地区，使用 EMS，一般 5–8 天送达 [1]。" in out
    assert out.count("来源：") == 2
    assert "(docs/shipping.md)" in out
    second_sources = out.split("新疆属于偏远地区")[1]
    assert "偏远地区" in second_sources.split("来源：")[1]
    received = [(m.role, m.content) for m in model.history[-1].messages if m.role != "system"]
    assert received == [
        ("user", Q1),
        ("assistant", "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"),
        ("user", f"{Q2}（接着问：{Q1}）"),
    ]


def test_new_starts_a_fresh_conversation_and_end_of_input_quits(served: tuple[str, FastAPI]):
    url, app = served
    fresh = "新疆、西藏这些偏远地区多久能送到？"
    code, out = chat(url, [Q1, "/new", fresh], lang="en")
    assert code == 0
    assert "(new conversation)" in out
    assert out.rstrip().endswith("Bye!")
    received = [(m.role, m.content) for m in scripted(app).history[-1].messages if m.role != "system"]
    assert received == [("user", fresh)]  # the new conversation carries none of the old turns


def test_a_rejected_message_prints_the_servers_reason_and_the_chat_goes_on(
    make_settings: Callable[..., Settings],
):
    app = create_app(make_settings(llm="scripted", kb_dir=MINI_KB, max_message_chars=10))
    with live_server(app) as url:
        code, out = chat(url, ["这是一条超过十个字的很长的消息", Q2, "/quit"])
    assert code == 0
    assert "more than the limit of 10" in out
    assert out.count("客服> ") == 2


def test_an_unreachable_server_is_named_with_the_fix():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out = chat(url, [Q1], lang="en")
    assert code == 1
    assert out.strip() == f"cannot reach kefu at {url} — start it with `kefu serve`"
    code, out = chat(url, [Q1])
    assert code == 1
    assert "kefu serve" in out and url in out


def test_unknown_language_is_refused():
    with pytest.raises(InvalidInput, match="zh, en"):
        run_chat("http://127.0.0.1:1", "fr")


def test_sse_parser_skips_comments_and_joins_multiline_data():
    lines = [
        ": ping",
        "event: delta",
        'data: {"text":',
        'data: "好"}',
        "",
        "event: done",
        'data: {"message": {}}',
    ]
    assert list(iter_sse(lines)) == [("delta", {"text": "好"}), ("done", {"message": {}})]
