"""Masks on real customer messages that hold no personal data: the false-positive side of
``kefu eval pii``.

Banking77 and CLINC150 are English questions people wrote to a bank and to an assistant. Almost
none of them holds a name, an address or a phone number, so the share of messages that get such a
mask is (nearly all) the share of questions whose words a model would receive broken. Each set is
split by ``sha256(text)``: the dev half was read while the English rules were written (every mask
looked at), the test half is only counted. A fixed sample of each half (the messages with the
lowest hashes) keeps the run short; the masked values are printed so a reader can check them.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kefu.safety.pii import redact_pii
from kefu.safety.pii_detect import PiiType

BANKING77 = Path("banking77/train.csv")
CLINC150 = Path("clinc150/data_dev.json")
PROVENANCE = {
    "banking77": "PolyAI-LDN/task-specific-datasets@57ec275 banking_data/train.csv (CC-BY-4.0), via "
    "shared/eval/banking77",
    "clinc150": "clinc/oos-eval@828f809 data_full.json train+val+oos (CC-BY-3.0), via shared/eval/clinc150; "
    "all lower case, so it tests the cue rules more than capitalised names",
}
SPLIT_NOTE = (
    "split by sha256(text): dev (every mask read while writing the English rules), test (only counted)"
)
NAME_OR_ADDRESS = frozenset({PiiType.PERSON, PiiType.ADDRESS})
_EXAMPLES = 5


@dataclass
class RealMessageScore:
    """How many messages of one half of one set got a mask, by type."""

    name: str
    half: str
    messages: int = 0
    name_or_address: int = 0  # messages with a PERSON or ADDRESS mask
    any_mask: int = 0
    by_type: Counter[str] = field(default_factory=Counter)  # type -> messages with that mask
    examples: list[str] = field(default_factory=list)  # "type: value" of the first masked messages

    @property
    def name_or_address_rate(self) -> float:
        return self.name_or_address / self.messages if self.messages else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "half": self.half,
            "provenance": PROVENANCE[self.name],
            "messages": self.messages,
            "name_or_address": self.name_or_address,
            "name_or_address_rate": round(self.name_or_address_rate, 5),
            "any_mask": self.any_mask,
            "by_type": dict(self.by_type),
            "examples": self.examples,
        }


def _half(text: str) -> tuple[str, int]:
    digest = int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)
    return ("dev" if digest % 2 == 0 else "test"), digest


def _banking77(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _clinc150(path: Path) -> list[str]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    return [row[0] for part in ("train", "val", "oos_train", "oos_val") for row in raw.get(part, [])]


_SETS: dict[str, tuple[Path, Callable[[Path], list[str]]]] = {
    "banking77": (BANKING77, _banking77),
    "clinc150": (CLINC150, _clinc150),
}


def score_messages(name: str, half: str, messages: list[str]) -> RealMessageScore:
    score = RealMessageScore(name, half, messages=len(messages))
    for message in messages:
        entities = redact_pii(message).entities
        types = {e.type for e in entities}
        score.by_type.update(t.value for t in types)
        score.any_mask += bool(types)
        if types & NAME_OR_ADDRESS:
            score.name_or_address += 1
            if len(score.examples) < _EXAMPLES:
                score.examples += [
                    f"{e.type.value}: {message[e.start : e.end]!r}"
                    for e in entities
                    if e.type in NAME_OR_ADDRESS
                ]
    return score


def real_message_scores(eval_dir: Path, *, per_half: int = 2000) -> list[RealMessageScore]:
    """Both halves of every set present under ``eval_dir``, ``per_half`` messages each."""
    scores = []
    for name, (relative, load) in _SETS.items():
        path = eval_dir / relative
        if not path.is_file():
            continue
        halves: dict[str, list[tuple[int, str]]] = {"dev": [], "test": []}
        for message in dict.fromkeys(load(path)):
            half, digest = _half(message)
            halves[half].append((digest, message))
        for half, rows in halves.items():
            sample = [message for _, message in sorted(rows)[:per_half]]
            scores.append(score_messages(name, half, sample))
    return scores


def real_message_lines(scores: list[RealMessageScore]) -> list[str]:
    if not scores:
        return []
    lines = [
        "real customer messages (no personal data expected): share masked as a name or address",
        f"split: {SPLIT_NOTE}",
        f"{'set':<12}{'half':<6}{'messages':>9}{'name/addr':>11}{'rate':>8}{'any mask':>10}  by type",
    ]
    for s in scores:
        by_type = ", ".join(f"{k} {v}" for k, v in sorted(s.by_type.items())) or "-"
        lines.append(
            f"{s.name:<12}{s.half:<6}{s.messages:>9}{s.name_or_address:>11}{s.name_or_address_rate:>8.2%}"
            f"{s.any_mask:>10}  {by_type}"
        )
    for s in scores:
        if s.examples:
            lines.append(f"  {s.name} {s.half} masked (check by hand): {'; '.join(s.examples)}")
    lines += [
        f"provenance: {name}: {text}"
        for name, text in PROVENANCE.items()
        if any(s.name == name for s in scores)
    ]
    return lines
