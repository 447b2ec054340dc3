"""``kefu eval shop``: the question set, the strict fact matcher, and the runner on the real chat path."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kefu.errors import InvalidInput
from kefu.evals.shop import ShopReport, run_shop_eval, select
from kefu.evals.shop_data import ShopQuestion, contains, judge, load_questions, normalise
from kefu.evals.shop_report import percentile


def question(**fields: object) -> ShopQuestion:
    values: dict[str, object] = {"id": "t-1", "split": "dev", "lang": "zh", "q": "?", "expect": "answer"}
    values.update(fields)
    return ShopQuestion(**values)  # type: ignore[arg-type]


# --- the data set ----------------------------------------------------------------------------------


def test_the_shipped_question_set_loads_and_is_big_enough_in_both_languages_and_splits() -> None:
    questions = load_questions()
    assert len(questions) >= 150
    langs = Counter(q.lang for q in questions)
    assert langs["en"] >= 40 and langs["zh"] >= 100
    assert {(q.lang, q.split) for q in questions} == {
        ("zh", "dev"),
        ("zh", "test"),
        ("en", "dev"),
        ("en", "test"),
    }
    splits = Counter(q.split for q in questions)
    assert abs(splits["dev"] - splits["test"]) <= len(questions) // 10  # about half each
    assert len({q.id for q in questions}) == len(questions)
    assert {q.expect for q in questions} == {"answer", "decline", "flow"}


def test_every_question_lists_its_facts_and_the_set_covers_each_kind_of_question() -> None:
    questions = load_questions()
    for q in questions:
        assert q.must or q.must_not, q.id
        if q.expect == "answer":
            assert q.must, q.id
        assert all(group and all(alt.strip() for alt in group) for group in q.must), q.id
    tags = Counter(tag for q in questions for tag in q.tags)
    for kind in ("colloquial", "typo", "multi", "follow-up", "hypothetical", "who-pays", "out-of-scope"):
        assert tags[kind] >= 3, kind
    assert tags["unanswerable"] >= 10
    follow_ups = [q for q in questions if "follow-up" in q.tags]
    assert all(q.previous for q in follow_ups)
    assert sum(q.lang == "en" and q.expect == "decline" for q in questions) >= 5


def shop_texts() -> list[str]:
    """Every FAQ answer and every document section of the demo shop, normalised."""
    from kefu.config import DEMO_SHOP_DIR

    texts = [
        e["answer"] for f in sorted((DEMO_SHOP_DIR / "faq").glob("*.json")) for e in json.loads(f.read_text())
    ]
    for doc in sorted((DEMO_SHOP_DIR / "docs").glob("*.md")):
        texts += re.split(r"^#+ .*$", doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return [normalise(t) for t in texts if t.strip()]


def test_no_sentence_of_the_shop_itself_is_ever_judged_wrong() -> None:
    """must_not entries are wrong claims, not phrases the knowledge base itself uses — except a yes/no
    opening ("re:^…"): an FAQ that opened 「可以，专用发票只开给单位」 was a flipped answer to an individual."""
    texts = shop_texts()
    claims = [(q.id, fact) for q in load_questions() for fact in q.must_not if not fact.startswith("re:^")]
    unfair = [(qid, fact) for qid, fact in claims if any(contains(t, fact) for t in texts)]
    assert unfair == []


def test_every_chinese_fact_a_correct_answer_needs_is_stated_by_the_shop() -> None:
    texts = shop_texts()
    chinese = [q for q in load_questions() if q.lang == "zh" and q.expect == "answer"]
    unsupported = [
        (q.id, group)
        for q in chinese
        for group in q.must
        if not any(contains(t, alt) for t in texts for alt in group)
    ]
    assert unsupported == []


def test_issue_9_wrong_answers_are_caught_by_the_set() -> None:
    """The wrong replies reported in issue #9 are classified wrong by the shipped items."""
    by_id = {q.id: q for q in load_questions()}
    assert judge(by_id["war-01"], "能保修，要自己出运费。", "grounded").outcome == "wrong"
    assert (
        judge(by_id["en-ret-01"], "Yes, you can return an item after 10 days.", "grounded").outcome == "wrong"
    )
    right = "第 8–15 天只有质量问题才能退货，需要上传照片或视频。7 天无理由退货只在签收后 7 天内。"
    assert judge(by_id["ret-02"], right, "grounded").outcome == "right"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- {id: a, split: dev, lang: zh, q: 你好, expect: answer, must_not: [x]}", "needs the facts"),
        ("- {id: a, split: dev, lang: zh, q: 你好, expect: decline}", "must and/or must_not"),
        ("- {id: a, split: train, lang: zh, q: 你好, expect: decline, must_not: [x]}", "split is 'train'"),
        (
            "- {id: a, split: dev, lang: zh, q: 你好, expect: decline, must_not: [x], color: red}",
            "unknown field",
        ),
        ("- {id: a, split: dev, lang: zh, q: 你好, expect: answer, must: [x]}", "non-empty lists"),
        (
            "- {id: a, split: dev, lang: zh, q: x, expect: decline, must_not: [x]}\n"
            "- {id: a, split: dev, lang: zh, q: y, expect: decline, must_not: [y]}",
            "used twice",
        ),
    ],
)
def test_a_bad_question_file_names_the_item_and_the_fix(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "questions.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=problem):
        load_questions(path)


# --- the matcher -----------------------------------------------------------------------------------


def test_normalise_ignores_spaces_case_width_and_dash_style() -> None:
    assert normalise("ＺＴＯ 运费 ８ 元，1–2 天") == normalise("zto运费8元,1-2天")
    assert contains(normalise("满 69 元包邮"), "满69元包邮")
    assert contains(normalise("Free from 69 YUAN"), "69 yuan")
    assert contains(normalise("一般 1～2 天送达"), "1-2天")


def test_any_alternative_of_a_group_suffices_but_every_group_is_needed() -> None:
    q = question(must=[["8元", "8 yuan", "¥8"], ["69"]])
    assert judge(q, "不满 69 元收 ¥8 运费", "faq").outcome == "right"
    assert judge(q, "Below 69 yuan shipping is 8 yuan.", "faq").outcome == "right"
    verdict = judge(q, "运费 8 元", "faq")
    assert verdict.outcome == "incomplete" and verdict.missing == [["69"]]


def test_a_negated_fact_does_not_count() -> None:
    text = normalise("小铺优选不支持货到付款，也不可以到付。")
    assert not contains(text, "支持货到付款")
    assert not contains(text, "可以到付")
    assert contains(text, "不支持货到付款")
    assert not contains(normalise("Cash on delivery is not available."), "available")
    assert contains(normalise("Cash on delivery is available."), "is available")


def test_a_number_only_matches_whole() -> None:
    assert not contains(normalise("满 120 元"), "20元")
    assert not contains(normalise("保修 12 个月"), "2个月")
    assert contains(normalise("运费 20 元"), "20元")


def test_regex_entries_match_the_normalised_reply() -> None:
    assert contains(normalise("质量问题退货，运费由您 承担"), "re:质量问题[^。]{0,15}(您|买家)承担")
    assert not contains(normalise("质量问题退货，运费由小铺优选承担"), "re:质量问题[^。]{0,15}(您|买家)承担")


def test_a_question_in_the_reply_states_nothing() -> None:
    q = question(must=[["微信", "支付宝"]], must_not=["能用visa"])
    assert judge(q, "问：能用 Visa 或 Mastercard 付款吗？ [1]", "grounded").outcome == "incomplete"
    assert judge(q, "您问能用 Visa 吗？能用Visa，也能用微信。", "grounded").outcome == "wrong"
    assert judge(q, "Yes, Visa works. 能用visa. Anything else?", "grounded").forbidden == ["能用visa"]


def test_must_not_wins_over_present_facts() -> None:
    q = question(must=[["保修"]], must_not=["要自己出运费"])
    verdict = judge(q, "能保修，要自己出运费。", "grounded")
    assert verdict.outcome == "wrong" and verdict.forbidden == ["要自己出运费"] and not verdict.missing


def test_an_honest_decline_is_right_for_a_decline_question_and_decline_for_an_answer_question() -> None:
    decline = question(expect="decline", must_not=["re:\\d+元"])
    no_answer = "抱歉，这个问题我在知识库里没有找到可靠的答案。需要的话我可以为您转接人工客服。"
    assert judge(decline, no_answer, "no_answer").outcome == "right"
    assert judge(decline, "这款耳机 299 元。", "grounded").outcome == "wrong"
    assert judge(decline, "我们的耳机音质很好。", "grounded").outcome == "incomplete"
    answer = question(must=[["400-886-5200"]])
    assert judge(answer, no_answer, "no_answer").outcome == "decline"
    generic = question(must=[["可以", "don't"]])  # a fixed "not found" reply is never a right answer
    assert judge(generic, no_answer, "no_answer").outcome == "decline"
    assert judge(generic, "I don't want to guess.", "no_answer").outcome == "decline"
    assert judge(answer, "请稍后再试。", "grounded").outcome == "incomplete"


def test_a_flow_question_is_right_only_when_the_flow_started() -> None:
    q = question(expect="flow", must=[["订单号"]])
    asked = judge(q, "请提供要退换货的订单号（XP 开头）。", "flow")
    assert asked.outcome == "right" and asked.flow_started is True
    assert judge(q, "请问您的订单号是多少？", "flow").outcome == "right"  # the ask is a question
    refused = question(expect="flow", must=[["质量问题"]], previous=["我要退货"])
    ended = judge(refused, "第 8–15 天仅支持质量问题。已为您转接人工客服。", "handoff")
    assert ended.outcome == "right" and ended.flow_started is True
    assert judge(q, "好的。已为您转接人工客服。", "handoff").flow_started is False
    not_started = judge(q, "退货请提供订单号。", "grounded")
    assert not_started.outcome == "incomplete" and not_started.flow_started is False


def test_select_by_split_ids_and_limit() -> None:
    questions = load_questions()
    assert {q.split for q in select(questions, "test")} == {"test"}
    assert [q.id for q in select(questions, "all", ["war-01", "ship-01"])] == ["ship-01", "war-01"]
    assert len(select(questions, "dev", limit=3)) == 3
    with pytest.raises(InvalidInput, match="no question with id nope"):
        select(questions, "all", ["nope"])


def test_percentile_is_nearest_rank() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90) == 9.0
    assert percentile([7.0], 90) == 7.0


# --- the runner, end to end on the real chat path (KEFU_LLM=none: no model is loaded) ---------------

E2E = [
    # An FAQ asked in its own words: answered verbatim, and the FAQ's text holds the facts.
    question(id="e-faq", q="客服电话是多少？", must=[["400-886-5200"]], must_not=["400-800"]),
    # The same reply judged against a claim it does make: the runner must call it wrong.
    question(id="e-wrong", q="客服电话是多少？", must=[["400-886-5200"]], must_not=["400-886-5200"]),
    # Nothing in the knowledge base: an honest "not found" with the offer of a human.
    question(id="e-none", q="量子纠缠是什么原理？", expect="decline", must_not=["re:\\d+"]),
    # A task flow: asks for the order number.
    question(id="e-flow", q="我要退货", expect="flow", must=[["订单号"]]),
    # A follow-up inside the flow: the previous message is sent first, in the same conversation.
    question(id="e-next", q="XP1002", previous=["我要退货"], expect="flow", must=[["后4位", "后四位"]]),
]


@pytest.fixture(scope="module")
def e2e_report(shared_cache_dir: Path) -> ShopReport:
    return run_shop_eval(llm="none", questions=E2E, cache_dir=shared_cache_dir, environment="test")


def test_the_runner_classifies_the_replies_it_got(e2e_report: ShopReport) -> None:
    results = {r.question.id: r for r in e2e_report.results}
    assert e2e_report.llm == "none" and e2e_report.errors == 0
    faq = results["e-faq"]
    assert faq.reply.answer_kind == "faq" and faq.outcome == "right"
    assert "400-886-5200" in faq.reply.text and faq.reply.citations
    assert results["e-wrong"].outcome == "wrong"
    assert results["e-wrong"].verdict is not None and results["e-wrong"].verdict.forbidden == ["400-886-5200"]
    none = results["e-none"]
    assert none.reply.answer_kind == "no_answer" and none.outcome == "right", none.reply.text
    assert results["e-flow"].reply.answer_kind == "flow" and results["e-flow"].outcome == "right"
    follow = results["e-next"]
    assert len(follow.previous_replies) == 1 and "订单号" in follow.previous_replies[0]
    assert follow.outcome == "right", follow.reply.text


def test_the_runner_times_each_reply_and_reports_every_wrong_answer(e2e_report: ShopReport) -> None:
    for result in e2e_report.results:
        assert result.reply.first_text_s is not None
        assert 0 < result.reply.first_text_s <= result.reply.full_s
    text = e2e_report.format_table()
    assert "WRONG  e-wrong" in text and "must_not matched: 400-886-5200" in text
    assert "RIGHT  e-faq" not in text  # only wrong answers in full by default
    assert "RIGHT  e-faq" in e2e_report.format_table(show_all=True)
    assert "outcome by language and split" in text and "first text" in text and "full answer" in text
    assert "flows started: 2/2" in text


def test_the_cli_runs_the_shipped_questions(monkeypatch: pytest.MonkeyPatch, shared_cache_dir: Path) -> None:
    from kefu.cli import app

    monkeypatch.setenv("KEFU_CACHE_DIR", str(shared_cache_dir))
    monkeypatch.setenv("KEFU_ENVIRONMENT", "test")
    result = CliRunner().invoke(app, ["eval", "shop", "--llm", "none", "--ids", "con-02,flow-02"])
    assert result.exit_code == 0, result.output
    assert "2 questions" in result.output and "outcome by expectation" in result.output
    bad = CliRunner().invoke(app, ["eval", "shop", "--llm", "none", "--ids", "no-such-id"])
    assert bad.exit_code == 2 and "no question with id no-such-id" in bad.output
