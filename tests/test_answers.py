"""Knowledge answers that cannot state wrong policy: extractive sentences, the flows' own rules for
hypothetical return questions, and the contradiction check a model's wording must pass."""

from __future__ import annotations

import re

import pytest

from kefu.dialog.extractive import extract_answer
from kefu.dialog.grounding import contradictions, payers
from kefu.dialog.policy_answers import ReturnPolicy, days_mentioned, reason_given
from kefu.flows import demo_flows
from kefu.kb.types import Chunk, Hit


def hit(text: str, section: str, *, cid: str, kind: str = "doc", answer: str | None = None) -> Hit:
    chunk = Chunk(
        id=cid,
        doc_id=cid.split("#")[0],
        kind=kind,  # type: ignore[arg-type]
        title=section.split(" > ")[0],
        section=section,
        text=text,
        source=cid,
        question=section if kind == "faq" else None,
        answer=answer,
    )
    return Hit(chunk, score=0.9, dense=0.9, sparse=1.0)


WARRANTY = hit(
    "保修期内，在正常使用情况下出现的非人为性能故障可享受免费维修。保修期内的质量问题维修，来回运费都由小铺优选承担。"
    "付费维修的来回运费由买家承担。",
    "保修与售后 > 保修期内的运费",
    cid="docs/warranty.md#5",
)
EARPHONES = hit(
    "蓝牙耳机、头戴式耳机、有线耳机和蓝牙音箱保修 12 个月，耳机充电盒同样保修 12 个月。耳塞套等易耗配件不在保修范围内。",
    "保修与售后 > 各品类保修期 > 耳机音频",
    cid="docs/warranty.md#1",
)
SHIPPING = hit(
    "中国大陆非偏远地区：订单实付满 69 元包邮（中通快递），实付满 199 元包邮并自动升级顺丰速运。实付不满 69 元的订单收取运费 8 元。",
    "配送说明 > 运费与包邮 > 包邮门槛",
    cid="docs/shipping.md#9",
)


def strip_marks(text: str) -> str:
    return re.sub(r"\[\d+\]", "", text)


def test_every_extracted_sentence_is_a_sentence_of_a_cited_chunk():
    hits = [SHIPPING, WARRANTY, EARPHONES]
    found = extract_answer("耳机保修多久？保修的运费谁出？", hits)
    assert found is not None
    cited = [hits[i] for i in found.cited]
    assert WARRANTY in cited and EARPHONES in cited and SHIPPING not in cited
    for sentence in found.sentences:
        assert sentence.text in hits[sentence.hit_index].chunk.text
    # citations are numbered by first use, one per cited chunk
    assert re.findall(r"\[(\d+)\]", found.text) == [str(n) for n in range(1, len(cited) + 1)]
    assert "12 个月" in found.text and "小铺优选承担" in found.text


def test_the_sentence_that_answers_wins_over_the_first_ranked_chunk():
    found = extract_answer("不满多少要收运费？运费多少钱", [WARRANTY, SHIPPING])
    assert found is not None and found.cited[0] == 1
    assert "8 元" in found.text


def test_an_faq_contributes_its_answer_not_its_question_and_answer_dump():
    faq = hit(
        "问：可以花呗分期吗？\n答：支持花呗分期 3、6、12 期。",
        "可以花呗分期吗？",
        cid="faq:pay-002",
        kind="faq",
        answer="支持花呗分期 3、6、12 期，手续费由买家承担。",
    )
    found = extract_answer("花呗分期手续费谁出", [faq])
    assert found is not None and "问：" not in found.text and "答：" not in found.text
    assert found.text.startswith("支持花呗分期")


def test_nothing_in_common_gives_no_extract():
    assert extract_answer("今天天气怎么样", [SHIPPING]) is None


def test_an_english_question_prefers_english_chunks():
    en = Hit(
        Chunk(
            "faq:en-1",
            "faq/en",
            "faq",
            "Who pays return shipping?",
            "Who pays return shipping?",
            "x",
            "faq/en",
            question="Who pays return shipping?",
            answer="For a quality problem we pay both ways.",
            lang="en",
        ),
        0.8,
        0.8,
        1.0,
    )
    found = extract_answer("who pays for return shipping", [WARRANTY, en], lang="en")
    assert found is not None and found.lang == "en" and found.text.startswith("For a quality problem")


# --- the return flow's rules on hypothetical questions -------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> ReturnPolicy:
    found = ReturnPolicy.from_flows(demo_flows())
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("days", "reason", "verdict"),
    [
        (3, "other", "yes"),
        (7, "other", "yes"),
        (8, "other", "no"),
        (8, "quality", "evidence"),
        (15, "quality", "evidence"),
        (16, "quality", "over"),
        (40, "other", "over"),
    ],
)
def test_the_verdict_is_the_return_flows_own_decision(
    rules: ReturnPolicy, days: int, reason: str, verdict: str
):
    assert rules.verdict(days, reason) == verdict  # type: ignore[arg-type]


def test_a_changed_flow_changes_the_answer():
    """The rules are read from the flow, not copied: a shop with a 10-day window answers day 9 with yes."""
    from dataclasses import replace

    from kefu.flows.expr import parse_condition

    specs = demo_flows()
    spec = specs["return_exchange"]
    policy = spec.steps["policy"]
    first = policy.branches[0]  # type: ignore[union-attr]
    wider = replace(first, when=(parse_condition("facts.days_since_delivery <= 10"),))
    changed = replace(policy, branches=(wider, *policy.branches[1:]))  # type: ignore[union-attr]
    specs["return_exchange"] = replace(spec, steps={**spec.steps, "policy": changed})
    rules = ReturnPolicy.from_flows(specs)
    assert rules is not None and rules.verdict(9, "other") == "yes"


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("收到10天了还能退吗", 10),
        ("签收第八天，想退货", 8),
        ("买了十二天了能换吗", 12),
        ("用了半个月了还能退吗", 15),
        ("Can I return an item after 10 days?", 10),
        ("I got it two weeks ago, can I exchange it?", 14),
        ("过了七天还能退吗，东西有毛病", 8),
        ("7天以后还能换吗", 8),
        ("买了一个多月了", 31),
        ("Can I return it more than 7 days after delivery?", 8),
        ("支持7天无理由退货吗", None),
        ("15天内可以退吗", None),
        ("退款多久到账", None),
    ],
)
def test_days_since_delivery_are_read_from_the_question(text: str, days: int | None):
    assert days_mentioned(text) == days


def test_unknown_reason_gives_both_verdicts_and_quality_only_one(rules: ReturnPolicy):
    both = rules.answer("收到10天了还能退吗？", "zh")
    assert both is not None and both.verdicts == ("evidence", "no") and both.reason is None
    text = both.text()
    assert "质量问题" in text and "照片或视频" in text and "不能再退货" in text
    broken = rules.answer("耳机收到10天了，左耳没声音，还能退吗？", "zh")
    assert broken is not None and broken.verdicts == ("evidence",) and reason_given("左耳没声音") == "quality"


def test_english_hypothetical_is_answered_in_english_with_the_same_verdicts(rules: ReturnPolicy):
    found = rules.answer("Can I return an item after 10 days?", "en")
    assert found is not None and found.verdicts == ("evidence", "no")
    text = found.text(["[1]", "[2]"])
    assert "quality problem" in text and "no longer return it" in text and "[2]" in text
    assert not re.search(r"[\u4e00-\u9fff]", text)


def test_over_15_days_points_to_the_warranty(rules: ReturnPolicy):
    found = rules.answer("收到一个月了，耳机坏了还能退吗", "zh")
    assert found is not None and found.verdicts == ("over",) and "保修" in found.text()


def test_questions_without_days_or_without_a_return_are_not_policy_questions(rules: ReturnPolicy):
    assert rules.answer("退货运费谁出？", "zh") is None
    assert rules.answer("发货后10天还没到怎么办", "zh") is None


# --- the contradiction check ------------------------------------------------------------------------------


def test_a_swapped_payer_is_caught():
    evidence = "保修期内的质量问题维修，来回运费都由小铺优选承担。"
    assert payers(evidence) == {"shop"}
    assert contradictions("能保修，要自己出运费。", evidence)
    assert contradictions("You pay the shipping both ways.", evidence)
    assert not contradictions("可以保修，来回运费由小铺优选承担。", evidence)
    assert not contradictions("Yes — we cover the shipping both ways.", evidence)


def test_a_dropped_or_added_negation_is_caught():
    evidence = "已拆封的贴身衣物不支持 7 天无理由退货。"
    assert contradictions("已拆封的贴身衣物支持 7 天无理由退货。", evidence)
    assert not contradictions("拆封的贴身衣物不支持 7 天无理由退货。", evidence)
    assert contradictions("不支持货到付款。", "目前支持货到付款。")


def test_numbers_are_checked_across_languages():
    evidence = "实付不满 69 元的订单收取运费 8 元。"
    assert not contradictions("Orders under 69 yuan pay 8 yuan shipping.", evidence)
    assert contradictions("Orders under 69 yuan pay 10 yuan shipping.", evidence)
    assert not contradictions("运费 8 元。", evidence, numbers=True)
    assert not contradictions("运费 10 元。", evidence, numbers=False)


def test_a_multi_part_question_gets_each_parts_sentence():
    from kefu.dialog.extractive import extract_parts, part_query, split_parts

    question = "耳机保修多久？要自己出运费吗？"
    parts = split_parts(question)
    assert parts == ["耳机保修多久", "要自己出运费吗"]
    assert part_query(parts[1], question) == "保修 要自己出运费吗"  # the part searched with its topic
    found = extract_parts(parts, [EARPHONES, SHIPPING, WARRANTY])
    assert found is not None
    assert "12 个月" in found.text and "小铺优选承担" in found.text and "8 元" not in found.text
    assert split_parts("你们发什么快递") == ["你们发什么快递"]


def test_an_faq_whose_question_is_the_one_asked_is_answered_whole():
    """「你们发什么快递？多久能到？」: the FAQ's four sentences belong together (couriers and times)."""
    answer = "默认发中通快递。满 199 元升级顺丰。偏远地区发 EMS。江浙沪一般 1–2 天送达，其他省份 2–4 天。"
    faq = hit(answer, "你们发什么快递？", cid="faq:ship-001", kind="faq", answer=answer)
    found = extract_answer("你们发什么快递？多久能到？", [faq, SHIPPING])
    assert found is not None and strip_marks(found.text) == answer and found.cited == (0,)


def test_a_range_is_one_number():
    """ "about 2 days" to Beijing from 「其他省份（含北京）一般 2–4 天送达」 was sent by the local model."""
    evidence = "江浙沪一般 1–2 天送达，其他省份（含北京）一般 2–4 天送达。"
    assert contradictions("Delivery to Beijing takes approximately 2 days.", evidence)
    assert not contradictions("Delivery to Beijing usually takes 2–4 days.", evidence)
    assert not contradictions("Jiangsu, Zhejiang and Shanghai: 1 to 2 days.", evidence)
    assert not contradictions("其他省份一般 2-4 天。", evidence)
    assert contradictions("其他省份一般 3–5 天。", evidence)
    assert not contradictions("满 199 元就升级顺丰", "订单实付满 199 元自动升级顺丰")


def test_counts_in_words_and_english_nouns_after_numbers():
    assert not contradictions("There are 4 membership levels.", "会员分为普通、银卡、金卡、黑钻四个等级。")
    assert contradictions("There are 5 membership levels.", "会员分为普通、银卡、金卡、黑钻四个等级。")
    assert not contradictions(
        "Check in daily for 1 point; 7 days in a row earn 5 more points.",
        "每日签到得 1 积分，连续 7 天额外 5 积分。",
    )
    assert contradictions("Refunds take 3 days.", "退款 3–5 个工作日内原路退回。")
