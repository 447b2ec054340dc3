"""``kefu eval sentiment`` on tiny fixtures, the trainer, and end to end on shared/eval when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kefu.errors import InvalidInput
from kefu.evals.sentiment import run_sentiment_eval
from kefu.evals.sentiment_data import Review, is_held_out, load_reviews, split_reviews
from kefu.evals.sentiment_train import TrainOptions, train

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
_POSITIVE = ["质量很好，很满意", "物流很快，包装完好，好评", "非常喜欢，推荐购买", "客服很耐心，谢谢"]
_NEGATIVE = ["质量太差了，失望", "等了一周还没到，差评", "垃圾产品，用一天就坏", "客服不理人，再也不买了"]


def _write_fixture(root: Path, copies: int = 5) -> None:
    rows = ["cat,label,review"]
    for i in range(copies):
        rows += [f"衣服,1,{t}{i}" for t in _POSITIVE] + [f"衣服,0,{t}{i}" for t in _NEGATIVE]
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
    assert "macro-F1" in table and "held-out neutral questions" in table


def test_eval_without_data_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_sentiment_eval(tmp_path)


def test_trainer_separates_a_tiny_set() -> None:
    reviews = [Review("x", True, t) for t in _POSITIVE] + [Review("x", False, t) for t in _NEGATIVE]
    model = train(reviews, ["怎么开发票"], TrainOptions(min_df=1, steps=150, learning_rate=0.1, keep=500))
    p = np.array([model.probability(r.text) for r in reviews])
    assert (p[:4] > 0.5).all() and (p[4:] < 0.5).all()


@pytest.mark.skipif(
    not (SHARED / "chinese_sentiment").is_dir(), reason="shared/eval/chinese_sentiment absent"
)
def test_eval_end_to_end_on_shared_data() -> None:
    report = run_sentiment_eval(SHARED, limit=1500)
    assert report.product.n == 1500
    assert report.product.macro_f1 > 0.85
    assert report.classifier.accuracy > 0.88
    bank = report.neutral_sets[0]
    assert bank.negative / bank.n < 0.1
