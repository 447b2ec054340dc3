"""``kefu eval sentiment`` on tiny fixtures, the trainer, and end to end on shared/eval when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kefu.errors import InvalidInput
from kefu.evals.sentiment import Sizes, leave_one_domain_out, run_sentiment_eval
from kefu.evals.sentiment_data import (
    Review,
    cs_messages,
    is_held_out,
    load_reviews,
    split_reviews,
    trained_rows,
)
from kefu.evals.sentiment_train import TrainOptions, select_reviews, train
from kefu.safety.sentiment_zh import bundled_model

TINY = TrainOptions(min_df=1, iterations=60, keep=2000, per_domain=None, stable_domains=0)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
_POSITIVE = ["质量很好，很满意", "物流很快，包装完好，好评", "非常喜欢，推荐购买", "客服很耐心，谢谢"]
_NEGATIVE = ["质量太差了，失望", "等了一周还没到，差评", "垃圾产品，用一天就坏", "客服不理人，再也不买了"]


def _write_fixture(root: Path, copies: int = 5, categories: tuple[str, ...] = ("衣服",)) -> None:
    rows = ["cat,label,review"]
    for cat in categories:
        for i in range(copies):
            rows += [f"{cat},1,{t}{cat}{i}" for t in _POSITIVE] + [f"{cat},0,{t}{cat}{i}" for t in _NEGATIVE]
    rows += ["衣服,1,两个标签", "衣服,0,两个标签", "衣服,1,"]  # conflicting and empty rows are dropped
    (root / "chinese_sentiment").mkdir(parents=True)
    (root / "chinese_sentiment" / "online_shopping_10_cats.csv").write_text("\n".join(rows), encoding="utf-8")
    (root / "bq_corpus").mkdir()
    questions = "\n".join(f"怎么还款{i}\t利息多少{i}\t0" for i in range(20))
    (root / "bq_corpus" / "dev_half.tsv").write_text(questions, encoding="utf-8")


def test_loader_deduplicates_and_drops_conflicts(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    reviews = load_reviews(tmp_path)
    assert len(reviews) == 40
    assert [r.row for r in reviews] == list(range(40))  # ids: the csv data rows
    assert all(r.text != "两个标签" for r in reviews)
    train_set, held = split_reviews(reviews)
    assert len(train_set) + len(held) == 40
    assert all(is_held_out(r.text) for r in held) and not any(is_held_out(r.text) for r in train_set)


def test_eval_on_a_tiny_fixture(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    report = run_sentiment_eval(tmp_path, shop_faq=lambda: {"x": ["发票怎么开"]})
    assert report.product.n == len(split_reviews(load_reviews(tmp_path))[1])
    assert report.product.accuracy >= 0.75
    assert [s.name for s in report.neutral_sets] == ["BQ bank questions", "demo-shop FAQ questions (zh)"]
    table = report.format_table()
    assert "macro-F1" in table and "plain questions" in table and "Provenance:" in table


def test_eval_without_data_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_sentiment_eval(tmp_path)


def test_trainer_separates_a_tiny_set() -> None:
    reviews = [Review("x", True, t) for t in _POSITIVE] + [Review("x", False, t) for t in _NEGATIVE]
    model = train(reviews, ["怎么开发票"], TINY)
    p = np.array([model.probability(r.text) for r in reviews])
    assert (p[:4] > 0.5).all() and (p[4:] < 0.5).all()


def test_leave_one_domain_out_never_tests_on_training_rows(tmp_path: Path) -> None:
    _write_fixture(tmp_path, copies=10, categories=("衣服", "酒店", "水果"))
    reviews = load_reviews(tmp_path)
    folds = leave_one_domain_out(reviews, ["怎么开发票"], TINY, test_per_domain=1000)
    assert [f.domain for f in folds] == ["水果", "衣服", "酒店"]
    held = split_reviews(reviews)[1]
    for fold in folds:
        # recomputed here from the ids, independently of the fold's own bookkeeping
        trained = {r.row for r in select_reviews(reviews, TINY, exclude=fold.domain)}
        tested = {r.row for r in held if r.category == fold.domain}
        assert tested and not trained & tested
        assert not {r.row for r in reviews if r.category == fold.domain} & trained
        assert fold.overlap == 0 and fold.domain_rows_in_training == 0
        assert fold.product.n == len(tested) and fold.trained_rows == len(trained)


def test_selection_caps_and_balances_per_domain() -> None:
    reviews = [Review("a", i % 2 == 0, f"好评{i}", i) for i in range(200)] + [
        Review("b", i % 2 == 0, f"差评{i}", 200 + i) for i in range(30)
    ]
    chosen = select_reviews(reviews, TrainOptions(per_domain=50))
    by = {c: [r for r in chosen if r.category == c] for c in ("a", "b")}
    assert len(by["a"]) == 50 and len(by["b"]) == len(split_reviews(reviews[200:])[0])
    assert not any(is_held_out(r.text) for r in chosen)
    assert chosen == select_reviews(reviews, TrainOptions(per_domain=50))  # seeded


def _write_dialogue(root: Path) -> dict[str, int]:
    rows = [
        {"intent": "smalltalk.agent.bad", "text": "你真没用"},
        {"intent": "smalltalk.user.angry", "text": "我很生气"},
        {"intent": "smalltalk.appraisal.thank_you", "text": "谢谢你"},
        {"intent": "smalltalk.user.sad", "text": "我很难过"},  # the customer's own mood: not scored
        {"intent": "smalltalk.greetings.hello", "text": "你好"},  # not scored
    ]
    support = [{"intent": "support.contacts.phone", "text": "你们的电话是多少"}]
    support += [{"intent": "support.problem", "text": "我遇到了问题"}]  # a complaint: not a plain question
    for part, examples in (("small-talk", rows), ("support", support)):
        (root / "dialogflow_zh" / part).mkdir(parents=True)
        data = {"rasa_nlu_data": {"common_examples": examples}}
        (root / "dialogflow_zh" / part / "data.json").write_text(
            json.dumps(data, ensure_ascii=False), "utf-8"
        )
    return {"negative": 2, "positive": 1, "neutral": 1}


def test_report_prints_provenance_and_json(tmp_path: Path) -> None:
    _write_fixture(tmp_path, copies=6, categories=("衣服", "酒店"))
    counts = _write_dialogue(tmp_path)
    report = run_sentiment_eval(
        tmp_path,
        shop_faq=lambda: {"x": ["发票怎么开"]},
        sizes=Sizes(domain_test=50),
        options=TINY,
    )
    table = report.format_table()
    assert "Provenance:" in table and "leave one domain out" in table and "sentiment_cs.yaml" in table
    assert "no test row in any fold's training rows" in table
    data = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert [f["domain"] for f in data["leave_one_domain_out"]] == ["衣服", "酒店"]
    assert set(data["customer_service"]) == {"dev", "test"}
    assert data["customer_service"]["dev"]["n"] == sum(m.split == "dev" for m in cs_messages())
    # the fixture is not the file the shipped model was built from: no row of it was trained on
    assert data["in_domain_seen"]["rows_trained_on"] == 0
    # the dialogue set: the intents mapped by name, the others left out
    assert data["dialogue"]["polar"]["n"] == counts["negative"] + counts["positive"]
    assert data["dialogue"]["neutral_n"] == counts["neutral"]
    assert "dialogue (dialogflow_zh, unseen)" in table and "dialogflow_zh/small-talk" in table
    # the folds trained the head too (the shipped model has one) and print the n-grams alone beside it
    assert all(f["ngram"] is not None for f in data["leave_one_domain_out"])


@pytest.mark.skipif(
    not (SHARED / "chinese_sentiment").is_dir(), reason="shared/eval/chinese_sentiment absent"
)
def test_eval_end_to_end_on_shared_data() -> None:
    report = run_sentiment_eval(SHARED, limit=600, sizes=Sizes(held_out=600, leave_one_out=False, plain=300))
    assert report.product.n == 600
    assert report.product.macro_f1 > 0.85
    assert report.classifier.accuracy > 0.85
    bank = report.neutral_sets[0]
    assert bank.negative / bank.n < 0.1 and bank.trained_on == 0
    assert report.held_out_trained_on == 0


@pytest.mark.skipif(
    not (SHARED / "chinese_sentiment").is_dir(), reason="shared/eval/chinese_sentiment absent"
)
def test_shipped_model_records_its_training_rows_and_none_is_held_out() -> None:
    model = bundled_model()
    reviews, bq, note = trained_rows(model, SHARED)
    assert "recorded in the model file" in note and "differs" not in note
    assert len(reviews) == model.provenance["reviews"]["rows_trained"]  # type: ignore[index]
    by_row = {r.row: r for r in load_reviews(SHARED)}
    assert reviews <= by_row.keys()
    assert not any(is_held_out(by_row[row].text) for row in reviews)
    assert {by_row[row].category for row in reviews} == set(model.provenance["reviews"]["categories"])  # type: ignore[index]
    assert bq
