"""``kefu eval pii``: the runner on a small fixture, and end to end on the shared data when present."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from kefu.errors import InvalidInput
from kefu.evals import pii_zh_data
from kefu.evals.pii import case_records, cases_set, run_pii_eval

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

    # (gold, predicted, gold found, predictions correct, exact boundaries); the fixture has no
    # template ids, so each text falls in the half its own hash says
    presidio = [s for s in report.sets if s.name.startswith("presidio")]
    assert [s.name for s in presidio] == ["presidio synth_dev, dev half", "presidio synth_dev, test half"]
    assert sum(s.texts for s in presidio) == 2
    counts: dict[str, tuple[int, ...]] = {}
    for entity_set in presidio:
        for s in entity_set.entities:
            old = counts.get(s.label, (0, 0, 0, 0, 0))
            counts[s.label] = tuple(
                a + b for a, b in zip(old, (s.gold, s.predicted, s.found, s.correct, s.exact), strict=True)
            )
    assert counts["EMAIL_ADDRESS"] == (1, 1, 1, 1, 1)
    assert counts["CREDIT_CARD"] == (1, 1, 1, 1, 1)
    assert counts["PHONE_NUMBER"] == (0, 1, 0, 0, 0)  # a real phone the fixture did not label
    assert counts["PERSON"] == (1, 1, 1, 1, 1)  # a census first name, no ordinary word: found without a cue
    assert counts["STREET_ADDRESS"] == (0, 0, 0, 0, 0)  # "from Paris": a city alone is no address
    unsupported = sum((Counter(s.unsupported) for s in presidio), Counter())
    assert unsupported == {"GPE": 1}

    table = report.format_table()
    assert "N/A (no validator)" in table
    assert "not covered (gold spans, not scored): GPE 1" in table
    assert table.count("provenance: ") == 6  # vectors, two presidio halves, two generated splits, the cases
    assert "OVERLAP" in table  # the generated set says it shares an author with the gazetteer


def test_generated_chinese_set_is_seeded_and_splits_its_lists() -> None:
    dev, test = pii_zh_data.generate("dev"), pii_zh_data.generate("test")
    assert dev == pii_zh_data.generate("dev") and dev != test
    for record in dev + test:
        for span in record["spans"]:
            assert record["full_text"][span["start_position"] : span["end_position"]] == span["entity_value"]
    surnames = {pii_zh_data.split_of(s) for s in pii_zh_data.SURNAMES}
    assert surnames == {"dev", "test"}
    test_names = {s["entity_value"] for r in test for s in r["spans"] if s["entity_type"] == "PERSON"}
    dev_surnames = {s for s in pii_zh_data.SURNAMES if pii_zh_data.split_of(s) == "dev" and len(s) == 1}
    assert not any(name[0] in dev_surnames for name in test_names if not name.isascii())


def test_report_as_json(tmp_path: Path) -> None:
    _write_fixture(tmp_path)
    data = json.loads(json.dumps(run_pii_eval(tmp_path).to_dict()))
    assert data["eval"] == "pii"
    names = [s["name"] for s in data["sets"]]
    assert names[-3:] == [
        "generated zh set, dev entries",
        "generated zh set, test entries",
        "hand-written zh cases",
    ]
    zh_test = data["sets"][-2]
    assert set(zh_test["labels"]) >= {"PERSON", "ADDRESS", "PHONE_NUMBER", "micro (covered labels)"}
    assert 0.0 <= zh_test["labels"]["PERSON"]["recall"] <= 1.0
    assert "OVERLAP" in zh_test["provenance"] and "outside gazetteer" in next(
        iter(zh_test["outside_gazetteer"])
    )


def test_runner_names_the_fix_when_data_is_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--data"):
        run_pii_eval(tmp_path)


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="no shared eval data at /work/shared/eval")
def test_runner_end_to_end_on_shared_data() -> None:
    report = run_pii_eval(SHARED_EVAL)
    assert all(s.total > 0 for s in report.validators)
    for half in ("dev", "test"):
        presidio = report.set(f"presidio synth_dev, {half} half")
        assert presidio.texts > 0 and presidio.micro.gold > 0 and presidio.micro.found > 0
    assert "presidio synth_dev, test half" in report.format_table()


def test_hand_written_cases_load_with_their_spans() -> None:
    records = case_records()
    assert len(records) >= 30
    for record in records:
        for span in record["spans"]:
            assert span["end_position"] > span["start_position"]
    no_pii = [r["full_text"] for r in records if not r["spans"]]
    assert "李宁的跑鞋尺码偏大吗" in no_pii and "8001" in no_pii
    scored = cases_set()
    assert "development data now" in scored.provenance and scored.micro.gold == sum(
        len(r["spans"]) for r in records
    )
