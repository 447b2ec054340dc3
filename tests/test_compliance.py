"""Compliance disclaimers: the bundled rules on the demo shop's own chunks, and the YAML's error messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kefu.config import DEMO_SHOP_DIR
from kefu.dialog.orchestrator import citation
from kefu.errors import ConfigError
from kefu.kb.loader import load_pack
from kefu.kb.types import Hit
from kefu.safety.compliance import (
    DEFAULT_RULES,
    CompliancePolicy,
    Disclaimer,
    append_disclaimers,
)

CHUNKS = {chunk.id: chunk for chunk in load_pack(DEMO_SHOP_DIR).chunks}


def cites(*chunk_ids: str) -> list[dict[str, object]]:
    """Citations exactly as the orchestrator builds them, from the demo pack's real chunks."""
    return [citation(n, Hit(CHUNKS[cid], 0.9, 0.9, 1.0)) for n, cid in enumerate(chunk_ids, start=1)]


def chunk_in(source: str, section_part: str) -> str:
    return next(c.id for c in CHUNKS.values() if c.source == source and section_part in c.section)


@pytest.fixture(scope="module")
def shop() -> CompliancePolicy:
    return CompliancePolicy.load()  # the bundled file enables "ecommerce"


@pytest.fixture(scope="module")
def everything() -> CompliancePolicy:
    return CompliancePolicy.load(domains=["ecommerce", "finance"])


def ids(policy: CompliancePolicy, question: str, answer: str = "", citations=(), lang="zh") -> list[str]:
    found = policy.disclaimers(question=question, answer=answer, citations=list(citations), lang=lang)
    return [d.rule_id for d in found]


def test_the_bundled_file_loads_and_enables_the_shop_domain(shop: CompliancePolicy):
    assert shop.domains == ("ecommerce",)
    assert [r.id for r in shop.rules] == [
        "ecommerce.instalment",
        "ecommerce.price_promotion",
        "ecommerce.medical_device",
        "ecommerce.health_food",
    ]
    for rule in CompliancePolicy.load(domains=["finance", "ecommerce"]).rules:
        assert rule.texts["zh"] and rule.texts["en"]


def test_a_citation_of_the_instalment_section_adds_the_credit_notice(shop: CompliancePolicy):
    instalments = cites(chunk_in("docs/payment.md", "花呗分期 > 花呗分期"))
    found = shop.disclaimers(
        question="花呗能用吗", answer="可以使用花呗，3 期和 6 期免息 [1]。", citations=instalments, lang="zh"
    )
    assert [d.rule_id for d in found] == ["ecommerce.instalment"]
    assert "分期付款属于信贷服务" in found[0].text


def test_instalment_words_in_either_language_add_the_notice_in_the_reply_language(shop: CompliancePolicy):
    found = shop.disclaimers(question="Can I pay in installments?", answer="Yes.", citations=[], lang="en")
    assert [d.rule_id for d in found] == ["ecommerce.instalment"]
    assert found[0].text.startswith("Note: paying in instalments")
    assert ids(shop, "信用卡能分期吗") == ["ecommerce.instalment"]


@pytest.mark.parametrize(
    ("question", "rule"),
    [
        ("买完就降价了，能退差价吗？", "ecommerce.price_promotion"),
        ("Is there a discount on this speaker?", "ecommerce.price_promotion"),
        ("这款血压计准不准？", "ecommerce.medical_device"),
        ("Do you sell a blood pressure monitor?", "ecommerce.medical_device"),
        ("你们的鱼油是保健食品吗", "ecommerce.health_food"),
        ("Are these vitamins safe for kids?", "ecommerce.health_food"),
    ],
)
def test_shop_topics_get_their_notice(shop: CompliancePolicy, question: str, rule: str):
    assert ids(shop, question) == [rule]


@pytest.mark.parametrize(
    ("source", "section"),
    [
        ("docs/shipping.md", ""),
        ("docs/returns.md", ""),
        ("docs/invoices.md", ""),
        ("docs/warranty.md", ""),
        ("docs/payment.md", "支付失败"),
    ],
)
def test_ordinary_answers_get_no_disclaimer(everything: CompliancePolicy, source: str, section: str):
    """Every section of these documents, asked by its heading and answered with its own text."""
    chunks = [c for c in CHUNKS.values() if c.source == source and section in c.section]
    assert chunks
    for chunk in chunks:
        question = chunk.section.split(" > ")[-1]
        assert ids(everything, question, chunk.text, cites(chunk.id)) == [], chunk.id


def test_an_ordinary_shipping_answer_gets_nothing(shop: CompliancePolicy):
    answer = "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"
    shipping = cites(chunk_in("docs/shipping.md", "默认快递"))
    assert ids(shop, "你们发什么快递？多久能到？", answer, shipping) == []
    english = "In-stock orders paid before 16:00 ship the same day."
    assert ids(CompliancePolicy.load(domains=["finance"]), "when do you ship", english, lang="en") == []


def test_disabled_domains_never_fire(shop: CompliancePolicy):
    question = "这个理财产品年化收益多少？保险能理赔吗？"
    assert ids(shop, question, "理财有风险，收益不保证。") == []
    assert ids(CompliancePolicy.load(domains=["finance"]), "花呗能分期吗") == ["finance.credit"]
    assert ids(CompliancePolicy.load(domains=["finance"]), question) == [
        "finance.investment_risk",
        "finance.insurance_risk",
    ]


def test_finance_words_in_the_answer_fire_and_ignored_phrases_do_not(everything: CompliancePolicy):
    assert ids(everything, "这个产品怎么样", "该基金近一年收益 5%。") == ["finance.investment_risk"]
    assert ids(everything, "保险丝烧了能保修吗", "为保险起见请先断电，保修期内免费维修。") == []
    assert ids(everything, "Is the speaker out of stock?", "It is back in stock on Friday.", lang="en") == []


def test_only_the_sources_an_answer_marks_count_as_cited(shop: CompliancePolicy):
    related = cites(chunk_in("docs/shipping.md", "默认快递"), chunk_in("docs/payment.md", "信用卡分期"))
    assert ids(shop, "发什么快递", "默认中通快递 [1]。", related) == []
    assert ids(shop, "发什么快递", "默认中通快递。", related) == ["ecommerce.instalment"]  # none marked: all


def test_disclaimers_are_deterministic_in_file_order(everything: CompliancePolicy):
    question = "分期买血压计和维生素有折扣吗？"
    first = ids(everything, question)
    assert first == [
        "ecommerce.instalment",
        "ecommerce.price_promotion",
        "ecommerce.medical_device",
        "ecommerce.health_food",
        "finance.credit",
    ]
    assert all(ids(everything, question) == first for _ in range(5))


def test_append_adds_each_text_once_after_a_blank_line():
    notice = Disclaimer("a", "理财有风险，投资需谨慎。")
    other = Disclaimer("b", "请理性消费。")
    assert append_disclaimers("答复。", [notice, other, notice], "zh") == (
        "答复。\n\n理财有风险，投资需谨慎。\n\n请理性消费。"
    )
    already = "答复。\n\n理财有风险，投资需谨慎。"
    assert append_disclaimers(already, [notice], "zh") == already
    assert append_disclaimers("Answer.", [], "en") == "Answer."


def test_full_width_letters_match_english_phrases(shop: CompliancePolicy):
    assert ids(shop, "ｉｎｓｔａｌｌｍｅｎｔｓ?") == ["ecommerce.instalment"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


RULE = """
enabled: [shop]
rules:
  - id: shop.x
    domain: shop
    when:
      - {when}
    text: {{zh: 提示, en: Note}}
"""


@pytest.mark.parametrize(
    ("when", "named"),
    [
        ("qestion: [分期]", "unknown key `qestion`"),
        ("question: []", "rules[0] (shop.x).when[0].question is empty"),
        ("question: [1, 2]", "rules[0] (shop.x).when[0].question must be a list"),
        ("citation: {sauce: [docs/a.md]}", "rules[0] (shop.x).when[0].citation: unknown key `sauce`"),
    ],
)
def test_a_malformed_rule_names_the_file_and_the_key(tmp_path: Path, when: str, named: str):
    path = write(tmp_path, RULE.format(when=when))
    with pytest.raises(ConfigError) as caught:
        CompliancePolicy.load(path)
    assert str(path) in caught.value.message and named in caught.value.message


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            "rules: [{id: a, domain: d, when: [{text: [x]}], text: {zh: 提示}}]",
            "needs a non-empty `zh` and `en`",
        ),
        ("rules: [{domain: d, when: [{text: [x]}], text: {zh: a, en: b}}]", "rules[0].id is missing"),
        ("rules: [{id: a, domain: d, text: {zh: a, en: b}}]", "rules[0] (a).when must be a non-empty list"),
        ("enabled: [d]\nrulez: []", "`rules:` list"),
        ("rules: [oops", "cannot read the compliance rules"),
    ],
)
def test_a_malformed_file_is_refused(tmp_path: Path, text: str, named: str):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(str(path))) as caught:
        CompliancePolicy.load(path)
    assert named in caught.value.message


def test_an_unknown_domain_and_a_missing_file_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="'banking' has no rules; enable one of ecommerce, finance"):
        CompliancePolicy.load(domains=["banking"])
    with pytest.raises(ConfigError, match="KEFU_COMPLIANCE_RULES"):
        CompliancePolicy.load(tmp_path / "missing.yaml")


def test_an_operator_rule_on_tags_and_sources(tmp_path: Path):
    path = write(
        tmp_path,
        """
rules:
  - id: bank.deposit
    domain: bank
    when:
      - citation: {source: ["faq/*"], tags: [deposit]}
    text: {zh: 存款保险提示, en: Deposit insurance note}
""",
    )
    policy = CompliancePolicy.load(path, domains=["bank"])
    tagged = [{"index": 1, "source": "faq/faq.json", "tags": ["deposit"], "title": "", "section": ""}]
    untagged = [{**tagged[0], "tags": ["cards"]}]
    assert policy.disclaimers(question="q", answer="a", citations=tagged, lang="en") == [
        Disclaimer("bank.deposit", "Deposit insurance note")
    ]
    assert policy.disclaimers(question="q", answer="a", citations=untagged, lang="en") == []
    assert CompliancePolicy.load(path).rules == ()  # the file enables nothing: no rule fires


def test_default_rules_path_is_the_bundled_file():
    assert DEFAULT_RULES.name == "compliance.yaml" and DEFAULT_RULES.is_file()


def test_append_keeps_the_answer_as_a_prefix_for_streaming():
    notice = Disclaimer("a", "请理性消费。")
    for answer in ["答复。 \n", "", "Answer"]:
        assert append_disclaimers(answer, [notice], "zh").startswith(answer)
    assert append_disclaimers("", [notice], "zh") == "请理性消费。"
