"""``kefu export finetune`` (issue #13 part 5) on SQLite and PostgreSQL: which answers become examples,
the system prompt the bot sees with its sources, redaction, dedup, and the split by conversation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kefu.audit import Keyring
from kefu.dialog import prompts
from kefu.dialog.orchestrator import citation
from kefu.kb.types import Chunk, Hit
from kefu.learning.finetune import collect, in_validation
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.ratings import SqlRatingStore
from kefu.storage.sql import SqlConversationStore

SHOP = "测试小铺"
SHIP = Chunk(
    "docs/shipping.md#1",
    "docs/shipping.md",
    "doc",
    "配送说明",
    "发货时间",
    "付款后 48 小时内发货。",
    "docs/shipping.md",
)
RETURN = Chunk(
    "faq:ret-1", "faq/faq.json", "faq", "可以退货吗", "", "签收后 7 天内可无理由退货。", "faq/faq.json"
)
RAW_PHONE = re.compile(r"1[3-9]\d{9}")


@pytest.fixture
def engine(database_url: str, keyring: Keyring) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine, keyring=keyring)
    yield engine
    engine.dispose()


def cites(*chunks: Chunk) -> list[dict[str, object]]:
    return [citation(n, Hit(c, 0.9, 0.9, 1.0), "v3") for n, c in enumerate(chunks, start=1)]


def turn(store: SqlConversationStore, cid: str, question: str, answer: str, **meta: object) -> str:
    store.add_message(cid, "user", question)
    meta.setdefault("answer_kind", "grounded")
    return store.add_message(cid, "assistant", answer, **meta).id


def test_export_keeps_good_and_agent_corrected_answers(
    engine: Engine, keyring: Keyring, tmp_path: Path
) -> None:
    store, ratings = SqlConversationStore(engine, keyring), SqlRatingStore(engine)

    good = store.create_conversation(channel="web").id
    ship = turn(store, good, "多久发货？", "付款后 48 小时内发货 [1]。", citations=cites(SHIP))
    ratings.add(good, ship, "thumbs", 1)
    again = turn(store, good, "多久发货?", "付款后 48 小时内发货 [1]。", citations=cites(SHIP))
    ratings.add(good, again, "stars", 5)  # the same pair normalised: a duplicate

    happy = store.create_conversation(channel="web").id  # CSAT 5, one answer unrated, one 👎
    ret = turn(
        store,
        happy,
        "可以退货吗？我电话 13912345678",
        "签收后 7 天内可无理由退货 [1]。",
        answer_kind="faq",
        citations=cites(RETURN),
    )
    bad = turn(store, happy, "运费谁出", "运费由我们承担 [1]。", citations=cites(RETURN))
    ratings.add(happy, bad, "thumbs", 0)
    hello = turn(store, happy, "你好", "您好！", answer_kind="smalltalk")
    ratings.add(happy, hello, "thumbs", 1)  # rated, but smalltalk is not a knowledge answer
    ratings.add(happy, None, "csat", 5)

    poor = store.create_conversation(channel="web").id  # everything here is rated low or broken
    low = turn(store, poor, "发票怎么开", "请联系客服 [1]。", citations=cites(SHIP))
    ratings.add(poor, low, "stars", 2)
    fell = turn(store, poor, "积分怎么用", prompts.FALLBACK["zh"], answer_kind="fallback", status="fallback")
    ratings.add(poor, fell, "thumbs", 1)
    leaked = turn(
        store, poor, "我的手机号是 [手机号_1]", "好的，您的手机号 [手机号_1] 已登记。", citations=cites(SHIP)
    )
    ratings.add(poor, leaked, "thumbs", 1)

    handed = store.create_conversation(channel="web").id  # the bot could not answer; an agent did
    turn(
        store,
        handed,
        "新疆能发货吗？",
        prompts.RELATED_ONLY["zh"],
        answer_kind="no_answer",
        citations=cites(SHIP),
    )
    store.add_message(handed, "user", "转人工")
    store.add_message(handed, "assistant", "好的，正在为您转接。", answer_kind="handoff")
    store.add_message(handed, "agent", "好的，稍等")  # a holding reply: not the correction
    store.add_message(handed, "agent", "新疆可以发货，约 5-7 天送达，请放心。")
    store.add_message(handed, "agent", "还有别的问题吗？")  # only the first agent reply is the correction

    untouched = store.create_conversation(channel="web").id  # unrated, no agent: nothing
    turn(store, untouched, "支持花呗吗", "支持 [1]。", citations=cites(SHIP))

    result = collect(engine, shop=SHOP, validation=0.5)
    pairs = {(e.messages[1]["content"], e.messages[2]["content"]) for e in result.examples}
    assert pairs == {
        ("多久发货？", "付款后 48 小时内发货 [1]。"),
        ("可以退货吗？我电话 [手机号_1]", "签收后 7 天内可无理由退货 [1]。"),  # redacted again on the way out
        (
            "新疆能发货吗？",
            "新疆可以发货，约 5-7 天送达，请放心。",
        ),  # the agent's answer to the bot's question
    }
    assert {e.message_id for e in result.examples} == {
        ship,
        ret,
        next(e.message_id for e in result.examples if e.source == "agent"),
    }
    assert result.skipped == {
        "agent_reply_too_short": 1,
        "duplicate": 1,
        "low_rated": 2,
        "kind_smalltalk": 1,
        "status_fallback": 1,
        "pii_placeholder_in_answer": 1,
    }
    by_question = {e.messages[1]["content"]: e for e in result.examples}
    system = by_question["多久发货？"].messages[0]
    # the prompt the bot is given, built by the bot's own builder, with the cited source numbered
    assert system == {
        "role": "system",
        "content": prompts.system_prompt(SHOP, "zh", [Hit(SHIP, 0, 0, 0)], ""),
    }
    assert "【资料】\n[1] 发货时间\n付款后 48 小时内发货。" in system["content"]
    assert (
        "[1] 可以退货吗\n签收后 7 天内可无理由退货。"
        in by_question["可以退货吗？我电话 [手机号_1]"].messages[0]["content"]
    )
    assert "新疆" not in by_question["新疆能发货吗？"].messages[0]["content"]  # sources, not the question

    train, valid = result.write(tmp_path / "out")
    written = {
        path.name: [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        for path in (train, valid)
    }
    assert sum(len(v) for v in written.values()) == 3
    assert all(
        [m["role"] for m in ex["messages"]] == ["system", "user", "assistant"]
        for v in written.values()
        for ex in v
    )
    assert not RAW_PHONE.search(train.read_text("utf-8") + valid.read_text("utf-8"))
    train_convs = {e.conversation_id for e in result.train}
    valid_convs = {e.conversation_id for e in result.validation}
    assert not train_convs & valid_convs
    assert all(in_validation(c, 0.5) for c in valid_convs) and not any(
        in_validation(c, 0.5) for c in train_convs
    )
