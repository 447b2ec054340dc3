"""``kefu eval pii``: how well the validators and ``redact_pii`` do on data written elsewhere.

Two sets, both under the evaluation folder (``--data``):

* ``pii_cn_idnumbers/stdnum_test_vectors.csv`` (``kind,value,valid,...``): python-stdnum's
  checksum vectors. Each validator is scored by exact agreement with ``valid``; for the kinds
  that ``redact_pii`` redacts, the value is also put in a sentence and redaction must agree too.
* ``presidio/synth_dev.json``: presidio-research's labelled synthetic English texts. Entity-level
  precision / recall / F1 per presidio label we claim to cover; a predicted span counts when its
  type maps to the gold label and the two spans overlap by at least half their union (IoU >= 0.5).
  Labels we do not cover are listed with their counts, not averaged in as zeros.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kefu.errors import InvalidInput
from kefu.safety.iban import is_valid_iban
from kefu.safety.pii import redact_pii
from kefu.safety.pii_detect import PiiType
from kefu.safety.validators import is_valid_luhn, is_valid_resident_id, is_valid_uscc

VECTORS = Path("pii_cn_idnumbers/stdnum_test_vectors.csv")
PRESIDIO = Path("presidio/synth_dev.json")

_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "cn_resident_id": is_valid_resident_id,
    "iban": is_valid_iban,
    "luhn_number": is_valid_luhn,
    "cn_unified_social_credit_code": is_valid_uscc,
}
_REDACTED_KINDS = {"cn_resident_id": PiiType.RESIDENT_ID, "iban": PiiType.IBAN}
# presidio label -> the types of ours that count as that label.
LABEL_MAP: dict[str, frozenset[PiiType]] = {
    "CREDIT_CARD": frozenset({PiiType.BANK_CARD}),
    "PHONE_NUMBER": frozenset({PiiType.PHONE, PiiType.MOBILE}),
    "EMAIL_ADDRESS": frozenset({PiiType.EMAIL}),
    "IBAN_CODE": frozenset({PiiType.IBAN}),
    "US_SSN": frozenset({PiiType.US_SSN}),
    "IP_ADDRESS": frozenset({PiiType.IP_ADDRESS}),
}
_LABEL_OF = {pii_type: label for label, types in LABEL_MAP.items() for pii_type in types}


@dataclass
class ValidatorScore:
    kind: str
    total: int = 0
    correct: int | None = None  # None: no validator for this kind
    in_text_total: int = 0
    in_text_correct: int = 0


@dataclass
class EntityScore:
    label: str
    gold: int = 0
    predicted: int = 0
    found: int = 0  # gold spans matched by a prediction
    correct: int = 0  # predictions that match a gold span
    exact: int = 0  # predictions with exactly the gold boundaries

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class PiiEvalReport:
    validators: list[ValidatorScore] = field(default_factory=list)
    entities: list[EntityScore] = field(default_factory=list)
    unsupported: dict[str, int] = field(default_factory=dict)  # presidio label -> gold spans
    unlabelled: dict[str, int] = field(default_factory=dict)  # our type -> predictions, no such label
    texts: int = 0

    @property
    def micro(self) -> EntityScore:
        total = EntityScore("micro (covered labels)")
        for s in self.entities:
            total.gold, total.predicted = total.gold + s.gold, total.predicted + s.predicted
            total.found, total.correct, total.exact = (
                total.found + s.found,
                total.correct + s.correct,
                total.exact + s.exact,
            )
        total.predicted += sum(self.unlabelled.values())
        return total

    def format_table(self) -> str:
        """The report as a plain-text table (what ``kefu eval pii`` prints)."""
        return "\n".join([*_validator_lines(self.validators), "", *_entity_lines(self)])


def _validator_lines(scores: list[ValidatorScore]) -> list[str]:
    lines = [f"{'validator (stdnum vectors)':<32}{'rows':>6}{'exact match':>20}{'in a sentence':>16}"]
    for s in scores:
        match = (
            "N/A (no validator)" if s.correct is None else f"{s.correct}/{s.total} {s.correct / s.total:6.1%}"
        )
        in_text = f"{s.in_text_correct}/{s.in_text_total}" if s.in_text_total else "-"
        lines.append(f"{s.kind:<32}{s.total:>6}{match:>20}{in_text:>16}")
    return lines


def _entity_lines(report: PiiEvalReport) -> list[str]:
    head = f"{'presidio label':<24}{'gold':>6}{'pred':>6}{'P':>8}{'R':>8}{'F1':>8}{'exact':>7}"
    lines = [f"presidio synth_dev: {report.texts} texts, match = same type and span IoU >= 0.5", head]
    for s in [*report.entities, report.micro]:
        lines.append(
            f"{s.label:<24}{s.gold:>6}{s.predicted:>6}{s.precision:>8.3f}{s.recall:>8.3f}{s.f1:>8.3f}{s.exact:>7}"
        )
    if report.unlabelled:
        extra = ", ".join(f"{k} {v}" for k, v in report.unlabelled.items())
        lines.append(f"predicted types with no presidio label (counted as false positives): {extra}")
    if report.unsupported:
        skipped = ", ".join(f"{k} {v}" for k, v in report.unsupported.items())
        lines.append(f"not covered (gold spans, not scored): {skipped}")
    return lines


def _score_vectors(path: Path) -> list[ValidatorScore]:
    scores: dict[str, ValidatorScore] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            kind, value, valid = row["kind"], row["value"], row["valid"] == "1"
            score = scores.setdefault(kind, ValidatorScore(kind))
            score.total += 1
            check = _VALIDATORS.get(kind)
            if check is not None:
                score.correct = (score.correct or 0) + (check(value) == valid)
            if kind in _REDACTED_KINDS:
                found = {e.type for e in redact_pii(f"我的号码是{value}，谢谢").entities}
                score.in_text_total += 1
                score.in_text_correct += (_REDACTED_KINDS[kind] in found) == valid
    return list(scores.values())


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0])
    return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter > 0 else 0.0


def _score_presidio(path: Path, report: PiiEvalReport) -> None:
    records = json.loads(path.read_text(encoding="utf-8"))
    scores = {label: EntityScore(label) for label in LABEL_MAP}
    unsupported: Counter[str] = Counter()
    unlabelled: Counter[str] = Counter()
    for record in records:
        gold = [(s["entity_type"], (s["start_position"], s["end_position"])) for s in record["spans"]]
        for label, _ in gold:
            if label in scores:
                scores[label].gold += 1
            else:
                unsupported[label] += 1
        predicted = [
            (_LABEL_OF.get(e.type), (e.start, e.end), e.type)
            for e in redact_pii(record["full_text"]).entities
        ]
        for label, span, pii_type in predicted:
            if label is None:
                unlabelled[pii_type.value] += 1
                continue
            scores[label].predicted += 1
            same = [g for g_label, g in gold if g_label == label]
            scores[label].correct += any(_iou(span, g) >= 0.5 for g in same)
            scores[label].exact += span in same
        for label, span in gold:
            if label in scores:
                scores[label].found += any(
                    p_label == label and _iou(span, p) >= 0.5 for p_label, p, _ in predicted
                )
    report.texts = len(records)
    report.entities = list(scores.values())
    report.unsupported = dict(unsupported.most_common())
    report.unlabelled = dict(unlabelled)


def run_pii_eval(eval_dir: Path) -> PiiEvalReport:
    """Score the PII validators and redaction on the sets under ``eval_dir`` (either may be absent)."""
    vectors, presidio = eval_dir / VECTORS, eval_dir / PRESIDIO
    if not vectors.is_file() and not presidio.is_file():
        raise InvalidInput(
            f"No PII evaluation data under {eval_dir}: expected {VECTORS} and/or {PRESIDIO}. "
            "Pass --data pointing at the shared evaluation folder (e.g. ../shared/eval)."
        )
    report = PiiEvalReport()
    if vectors.is_file():
        report.validators = _score_vectors(vectors)
    if presidio.is_file():
        _score_presidio(presidio, report)
    return report
