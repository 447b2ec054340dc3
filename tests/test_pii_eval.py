"""``kefu eval pii``: the runner on a small fixture, and end to end on the shared data when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kefu.errors import InvalidInput
from kefu.evals.pii import run_pii_eval

SHARED_EVAL = Path("/work/shared/eval")

VECTORS = """kind,value,valid,error,source
cn_resident_id,11010519491231002X,1,,fixture
cn_resident_id,110105194912310021,0,InvalidChecksum,fixture
iban,GB82 WEST 1234 5698 7654 32,1,,fixture
iban,GB82 WEST 1234 5698 7654 33,0,InvalidChecksum,fixture
luhn_number,79927398713,1,,fixture
cn_unified_social_credit_code,91110000600037341L,1,,fixture
made_up_kind,123,1,,fixture
"""


def _span(text: str, value: str, label: str) -> dict[str, object]:
    start = text.index(value)
    return {
        "entity_type": label,
        "entity_value": value,
        "start_position": start,
        "end_position": start + len(value),
    }


def _write_fixture(root: Path) -> None:
    (root / "pii_cn_idnumbers").mkdir(parents=True)
    (root / "pii_cn_idnumbers" / "stdnum_test_vectors.csv").write_text(VECTORS, encoding="utf-8")
    first = "Mail jane@example.com or call (212) 555-0123."
    second = "Alice pays with 4111 1111 1111 1111 from Paris."
    records = [
        {"full_text": first, "spans": [_span(first, "jane@example.com", "EMAIL_ADDRESS")]},
        {
            "full_text": second,
            "spans": [
                _span(second, "Alice", "PERSON"),
                _span(second, "4111 1111 1111 1111", "CREDIT_CARD"),
                _span(second, "Paris", "GPE"),
            ],
        },
    ]
    (root / "presidio").mkdir()
    (root / "presidio" / "synth_dev.json").write_text(json.dumps(records), encoding="utf-8")


def test_runner_scores_a_small_fixture(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    report = run_pii_eval(tmp_path)

    by_kind = {s.kind: s for s in report.validators}
    assert (by_kind["cn_resident_id"].correct, by_kind["cn_resident_id"].total) == (2, 2)
    assert (by_kind["iban"].in_text_correct, by_kind["iban"].in_text_total) == (2, 2)
    assert by_kind["cn_unified_social_credit_code"].correct == 1
    assert by_kind["made_up_kind"].correct is None

    # (gold, predicted, gold found, predictions correct, exact boundaries)
    counts = {s.label: (s.gold, s.predicted, s.found, s.correct, s.exact) for s in report.entities}
    assert counts["EMAIL_ADDRESS"] == (1, 1, 1, 1, 1)
    assert counts["CREDIT_CARD"] == (1, 1, 1, 1, 1)
    assert counts["PHONE_NUMBER"] == (0, 1, 0, 0, 0)  # a real phone the fixture did not label
    assert report.unsupported == {"PERSON": 1, "GPE": 1}
    micro = report.micro
    assert (micro.gold, micro.predicted, micro.found, micro.correct) == (2, 3, 2, 2)

    table = report.format_table()
    assert "N/A (no validator)" in table
    assert "not covered (gold spans, not scored): PERSON 1, GPE 1" in table


def test_runner_names_the_fix_when_data_is_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_pii_eval(tmp_path)


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="no shared eval data at /work/shared/eval")
def test_runner_end_to_end_on_shared_data() -> None:
    report = run_pii_eval(SHARED_EVAL)
    assert report.texts > 0
    assert all(s.total > 0 for s in report.validators)
    assert report.micro.gold > 0 and report.micro.found > 0
    assert "presidio synth_dev" in report.format_table()
