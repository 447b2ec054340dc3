"""The answer cache's parts: normalising, the number rule, the LRU with its TTL, entries as JSON, keys,
what may be kept, and Redis being unreachable (in process, one warning)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from kefu.config import Settings
from kefu.dialog.answer import Answer
from kefu.dialog.cache import AnswerCache, CacheKey, cacheable_answer, model_fingerprint
from kefu.dialog.cache_store import CachedAnswer, MemoryEntries, RedisEntries
from kefu.dialog.cache_text import has_placeholder, normalise, same_numbers
from kefu.kb.embeddings import shared_embedder
from kefu.kb.types import Chunk, Hit
from kefu.storage.base import SessionState, Turn

CHUNK = Chunk(
    "docs/shipping.md#3",
    "docs/shipping.md",
    "doc",
    "配送说明",
    "偏远地区",
    "运费 20 元。",
    "docs/shipping.md",
)
HIT = Hit(CHUNK, 0.8123, 0.91, 3.2)


def entry(text: str = "偏远地区运费 20 元。[1]") -> CachedAnswer:
    return CachedAnswer("", "grounded", text, [HIT], "v3", mode="generate", route="faq")


def key(version: str = "v3", lang: str = "zh") -> CacheKey:
    return CacheKey(version, "scripted#abc", "auto", lang)


def test_normalising_keeps_the_question_and_drops_what_does_not_change_it() -> None:
    assert normalise("  偏远地区  运费多少？？ ") == normalise("偏远地区 运费多少")
    assert normalise("ＣＡＮ I pay by Card?") == "can i pay by card"
    assert normalise("运费多少") != normalise("退货运费多少")


def test_numbers_must_agree_and_placeholders_are_seen() -> None:
    assert same_numbers("收到１０天还能退吗", "收到10天了能退吗")
    assert not same_numbers("收到10天还能退吗", "收到20天还能退吗")
    assert not same_numbers("满199包邮吗", "包邮吗")
    assert same_numbers("帮我查一下运费", "运费多少")  # 「一下」 is not a count
    assert has_placeholder("[手机号_1] 的订单到哪了") and not has_placeholder("[1] 运费")


def test_the_memory_tier_drops_the_least_recently_used_and_the_expired() -> None:
    now = [0.0]
    entries = MemoryEntries(2, ttl_seconds=10, clock=lambda: now[0])
    entries.keep("a", entry("A"))
    entries.keep("b", entry("B"))
    assert entries.take("a") is not None  # a is now the most recently used
    entries.keep("c", entry("C"))
    assert entries.take("b") is None and entries.take("a") is not None
    now[0] = 10.0
    assert entries.take("a") is None and entries.take("c") is None


def test_an_entry_survives_json_with_its_citations_and_vector() -> None:
    original = entry()
    original.vector = np.arange(4, dtype=np.float32)
    original.policy = {"days": 10, "action": "return"}
    copy = CachedAnswer.from_json(original.to_json())
    assert copy.hits == [HIT] and copy.text == original.text and copy.policy == original.policy
    assert copy.vector is not None and copy.vector.tolist() == [0.0, 1.0, 2.0, 3.0]


async def test_another_kb_version_or_language_is_another_key() -> None:
    cache = AnswerCache(MemoryEntries(10, 60), shared_embedder(), threshold=0.95, semantic_size=10)
    await cache.store("偏远地区运费多少？", key("v3"), entry())
    assert (await cache.lookup("偏远地区运费多少", key("v3"))) is not None
    assert await cache.lookup("偏远地区运费多少", key("v4")) is None
    assert await cache.lookup("偏远地区运费多少", key("v3", "en")) is None
    found = await cache.lookup("偏远地区的运费是多少", key("v3"))
    assert found is not None and found[1] == "semantic"
    assert await cache.lookup("江浙沪几天能到", key("v3")) is None  # unrelated: cosine ≈ 0.85
    assert cache.counts() == {"exact": 1, "semantic": 1, "miss": 3, "stored": 1}


async def test_a_paraphrase_naming_other_numbers_is_never_a_semantic_hit() -> None:
    cache = AnswerCache(MemoryEntries(10, 60), shared_embedder(), threshold=0.95, semantic_size=10)
    await cache.store("订单满199元发什么快递？", key(), entry())
    assert await cache.lookup("订单满99元发什么快递？", key()) is None  # cosine 0.97: close, not the same
    found = await cache.lookup("订单满199元用什么快递？", key())
    assert found is not None and found[1] == "semantic"


def test_the_key_changes_with_every_part() -> None:
    base = key()
    assert len({base.digest, key("v4").digest, key(lang="en").digest}) == 3
    assert CacheKey("v3", "scripted#abc", "extractive", "zh").digest != base.digest
    assert CacheKey("v3", "scripted#abc", "auto", "zh", prompts="2").digest != base.digest
    assert CacheKey("v3", "other#abc", "auto", "zh").digest != base.digest


def test_the_model_fingerprint_follows_the_model_settings(make_settings: Callable[..., Settings]) -> None:
    a = model_fingerprint(make_settings(), None)
    assert model_fingerprint(make_settings(), None) == a
    assert model_fingerprint(make_settings(llm_max_tokens=77), None) != a
    assert model_fingerprint(make_settings(answer_mode="extractive"), None) != a
    assert model_fingerprint(make_settings(session_window_turns=9), None) == a  # not how it words


@pytest.mark.parametrize(
    "change",
    [
        {"status": "replaced"},
        {"status": "fallback"},
        {"kind": "no_answer"},
        {"kind": "refused"},
        {"kind": "smalltalk"},
        {"handoff": {"id": "h1"}},
        {"route": "over_budget"},
        {"route": "cheap"},
        {"flow_state": "{}"},
        {"reminder": "\n\n请提供订单号"},
        {"cache": "exact"},
        {"kb_version": ""},
    ],
)
def test_only_answers_sent_as_planned_are_kept(change: dict[str, object]) -> None:
    state = SessionState("c1", "c1")
    plan = Answer("grounded", hits=[HIT], text="运费 20 元。[1]", kb_version="v3", mode="generate")
    assert cacheable_answer(state, "偏远地区运费多少？", plan)
    for name, value in change.items():
        setattr(plan, name, value)
    assert not cacheable_answer(state, "偏远地区运费多少？", plan)


def test_earlier_turns_keep_all_but_policy_answers_out() -> None:
    state = SessionState("c1", "c1", turns=[Turn("你好", "您好")])
    plan = Answer("grounded", hits=[HIT], text="运费 20 元。[1]", kb_version="v3", mode="extractive")
    assert not cacheable_answer(state, "偏远地区运费多少？", plan)
    plan.kind, plan.mode = "policy", "policy"
    assert cacheable_answer(state, "收到10天了还能退吗", plan)
    assert not cacheable_answer(SessionState("c1", "c1", flow="{}"), "收到10天了还能退吗", plan)


async def test_redis_unreachable_caches_in_process_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    entries = RedisEntries("redis://127.0.0.1:1/0", size=10, ttl_seconds=60, timeout=0.2)
    cache = AnswerCache(entries, shared_embedder(), threshold=0.95, semantic_size=10)
    with caplog.at_level(logging.WARNING, logger="kefu.dialog"):
        assert await cache.lookup("偏远地区运费多少？", key()) is None
        await cache.store("偏远地区运费多少？", key(), entry())
        found = await cache.lookup("偏远地区运费多少", key())
    assert found is not None and found[1] == "exact"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "KEFU_REDIS_URL" in warnings[0], warnings
    await cache.aclose()
