"""``kefu eval pii``'s false-positive line: masks on real customer messages, per set and half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kefu.evals.pii import run_pii_eval
from kefu.evals.pii_real import real_message_scores

SHARED_EVAL = Path("/work/shared/eval")
BANKING = [
    "May I top up with Apple Pay?",
    "Will my card arrive this week?",
    "Hi, I'm Sarah Johnson and my card is lost",  # a real name: counted, shown for checking
    "Send the card to 12 Oak Street, Apt 4, Springfield IL 62704",
    "Why was I charged a fee?",
]
CLINC = {"train": [["my name is jason", "change_user_name"], ["what is the weather", "weather"]], "val": []}


def _write(root: Path) -> None:
    (root / "banking77").mkdir(parents=True)
    rows = "text,category\n" + "".join(f'"{m}",x\n' for m in BANKING)
    (root / "banking77" / "train.csv").write_text(rows, encoding="utf-8")
    (root / "clinc150").mkdir()
    (root / "clinc150" / "data_dev.json").write_text(json.dumps(CLINC), encoding="utf-8")


def test_counts_the_messages_masked_as_a_name_or_address(tmp_path: Path) -> None:
    _write(tmp_path)
    scores = real_message_scores(tmp_path)
    assert sorted({(s.name, s.half) for s in scores}) == [
        ("banking77", "dev"),
        ("banking77", "test"),
        ("clinc150", "dev"),
        ("clinc150", "test"),
    ]
    banking = [s for s in scores if s.name == "banking77"]
    assert sum(s.messages for s in banking) == len(BANKING)
    assert sum(s.name_or_address for s in banking) == 2  # Sarah Johnson; the Oak Street address
    assert sum(s.by_type["person"] for s in banking) == 1 and sum(s.by_type["address"] for s in banking) == 1
    examples = [e for s in banking for e in s.examples]
    assert sorted(examples) == [
        "address: '12 Oak Street, Apt 4, Springfield IL 62704'",
        "person: 'Sarah Johnson'",
    ]
    clinc = [s for s in scores if s.name == "clinc150"]
    assert sum(s.name_or_address for s in clinc) == 1


def test_the_report_prints_and_serialises_the_line(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "presidio").mkdir()
    (tmp_path / "presidio" / "synth_dev.json").write_text("[]", encoding="utf-8")
    report = run_pii_eval(tmp_path)
    table = report.format_table()
    assert "real customer messages (no personal data expected)" in table
    assert "provenance: banking77: PolyAI-LDN/task-specific-datasets@57ec275" in table
    data = report.to_dict()["real_messages"]
    assert {(d["set"], d["half"]) for d in data} == {
        ("banking77", "dev"),
        ("banking77", "test"),
        ("clinc150", "dev"),
        ("clinc150", "test"),
    }
    assert sum(d["name_or_address"] for d in data) == 3


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="no shared eval data at /work/shared/eval")
def test_on_the_shared_data_a_sample_of_each_half_is_scored() -> None:
    scores = real_message_scores(SHARED_EVAL, per_half=200)
    assert [(s.name, s.half, s.messages) for s in scores] == [
        ("banking77", "dev", 200),
        ("banking77", "test", 200),
        ("clinc150", "dev", 200),
        ("clinc150", "test", 200),
    ]


def test_a_whole_address_mask_hides_gold_labelled_line_by_line() -> None:
    from kefu.evals.pii import LABEL_MAP, EntitySet, score_records

    text = "Send it to 14 Crown Street\nSuite 321\nLONDON please"
    lines = ["14 Crown Street", "Suite 321", "LONDON"]
    spans = [
        {
            "entity_type": "STREET_ADDRESS",
            "start_position": text.index(v),
            "end_position": text.index(v) + len(v),
        }
        for v in lines
    ]
    scored = score_records([{"full_text": text, "spans": spans}], LABEL_MAP, EntitySet("fixture", "fixture"))
    address = next(s for s in scored.entities if s.label == "STREET_ADDRESS")
    # one mask over all three lines: IoU < 0.5 with each line, yet every line is hidden from the model
    assert (address.gold, address.predicted, address.found, address.hidden) == (3, 1, 0, 3)
    assert address.recall == 0.0 and address.hidden_recall == 1.0
