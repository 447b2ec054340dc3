"""The data of ``kefu eval injection``: attacks and real customer messages, each with its provenance.

Every set is cut in two halves by a stable hash (``half``): "dev" may be used to tune the patterns and
to train the classifier, "test" never is. Sets:

* the project's own attack suite (``tests/data/injection_attacks.yaml``) — the patterns were
  written against all of it before the split existed, so for the patterns neither half is unseen;
* held-out attacks written here (``injection_heldout.yaml``) — paraphrases the patterns were never
  tuned on, including indirect injection inside knowledge-base documents and OCR'd scans;
* independent public collections (``injection_sources.yaml``), read from a local folder — never
  used for anything but this evaluation;
* real customer messages (BQ, AFQMC, Banking77, CLINC150 in-scope from ``shared/eval``, and the
  demo shop's FAQ) for the false-positive rate.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from kefu.errors import InvalidInput

Split = Literal["dev", "test"]
HERE = Path(__file__).parent
SUITE = HERE.parents[2] / "tests" / "data" / "injection_attacks.yaml"
HELDOUT = HERE / "injection_heldout.yaml"
SOURCES = HERE / "injection_sources.yaml"
DEMO_FAQ = HERE.parent / "demo_shop" / "faq"
DEMO_DOCS = HERE.parent / "demo_shop" / "docs"
MESSAGE_KINDS = ("override", "reveal_prompt", "role_play", "tool_without_identity", "encoding")
# A public template's slot for the attacker's real request, filled with a harmless stand-in.
_SLOT = re.compile(r"\{NEW_INSTRUCTION\}|\[INSERT PROMPT HERE\]|\{?\[?INSERT PROMPT HERE\]?\}?", re.I)
_STAND_IN = "write a poem about the sea"


def half(key: str) -> Split:
    """The half a row belongs to: stable across runs, machines and Python versions."""
    return "dev" if hashlib.sha1(key.encode("utf-8")).digest()[0] % 2 == 0 else "test"


def hash_order(key: str) -> bytes:
    return hashlib.sha1(b"order\0" + key.encode("utf-8")).digest()


@dataclass(frozen=True)
class Attack:
    id: str
    text: str
    family: str
    lang: str
    source: str
    split: Split


@dataclass(frozen=True)
class IndirectDoc:
    id: str
    text: str
    channel: str  # "kb" | "ocr"
    lang: str
    hidden: tuple[str, ...]
    keep: tuple[str, ...]
    source: str
    split: Split


@dataclass(frozen=True)
class MessageSet:
    name: str
    lang: str
    provenance: str
    overlap: str  # what the guard was built from that this set shares, "" when nothing
    dev: tuple[str, ...]
    test: tuple[str, ...]

    def sample(self, split: Split, n: int | None) -> list[str]:
        rows = sorted(self.dev if split == "dev" else self.test, key=hash_order)
        return rows if n is None else rows[:n]


def _yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read {path} ({exc}); restore it from git.") from exc


def suite_attacks(path: Path = SUITE) -> list[Attack]:
    """The message attacks of the project's own suite (empty when the tests folder is not there)."""
    if not path.exists():
        return []
    rows = _yaml(path)["attacks"]
    return [
        Attack(a["id"], a["text"], a["kind"], a["lang"], "own suite", half(a["id"]))
        for a in rows
        if a["kind"] in MESSAGE_KINDS
    ]


def suite_indirect(path: Path = SUITE) -> list[IndirectDoc]:
    if not path.exists():
        return []
    return [_doc(a, "own suite", "kb") for a in _yaml(path)["attacks"] if a["kind"] == "indirect_kb"]


def suite_benign(path: Path = SUITE) -> list[str]:
    return list(_yaml(path)["benign"]) if path.exists() else []


def _doc(raw: dict[str, Any], source: str, channel: str) -> IndirectDoc:
    return IndirectDoc(
        raw["id"],
        raw["text"],
        raw.get("channel", channel),
        raw["lang"],
        tuple(raw["hidden"]),
        tuple(raw["keep"]),
        source,
        half(raw["id"]),
    )


def heldout_attacks(path: Path = HELDOUT) -> list[Attack]:
    rows = _yaml(path)["attacks"]
    return [
        Attack(a["id"], a["text"], a["family"], a["lang"], "held-out (written here)", half(a["id"]))
        for a in rows
    ]


def heldout_indirect(path: Path = HELDOUT) -> list[IndirectDoc]:
    return [_doc(d, "held-out (written here)", "kb") for d in _yaml(path)["indirect"]]


def faq_messages(faq_dir: Path = DEMO_FAQ) -> list[str]:
    messages: list[str] = []
    for path in sorted(faq_dir.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            messages += [entry["question"], *entry.get("similar", [])]
    return messages


def _split(texts: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    unique = list(dict.fromkeys(t.strip() for t in texts if t and t.strip()))
    return tuple(t for t in unique if half(t) == "dev"), tuple(t for t in unique if half(t) == "test")


def _need(path: Path) -> Path:
    if not path.exists():
        raise InvalidInput(f"{path} is missing; point --data at the shared evaluation folder (shared/eval).")
    return path


def _bq(data: Path) -> list[str]:
    rows = _need(data / "bq_corpus" / "dev_half.tsv").read_text(encoding="utf-8").splitlines()
    return [q for line in rows for q in line.split("\t")[:2]]


def _afqmc(data: Path) -> list[str]:
    lines = _need(data / "afqmc" / "dev_half.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [r[k] for r in rows for k in ("sentence1", "sentence2")]


def _banking77(data: Path) -> list[str]:
    with _need(data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def _clinc(data: Path) -> list[str]:
    raw = json.loads(_need(data / "clinc150" / "data_dev.json").read_text(encoding="utf-8"))
    return [text for key in ("train", "val") for text, _intent in raw[key]]


CUSTOMER_SOURCES = {
    "bq_corpus": (
        "zh",
        "Chriszhangmw/LCQMC@2fa3ebd:sourceData/bq_corpus/bq_corpus/dev.tsv (first half), bank CS questions",
        _bq,
    ),
    "afqmc": ("zh", "bigjeager/afqmc@e30c4f7:data/afqmc/dev.json (first half), Alipay CS questions", _afqmc),
    "banking77": (
        "en",
        "PolyAI-LDN/task-specific-datasets@57ec275:banking_data/train.csv, CC-BY-4.0",
        _banking77,
    ),
    "clinc150_in_scope": (
        "en",
        "clinc/oos-eval@828f809:data/data_full.json train+val in-scope, CC-BY-3.0",
        _clinc,
    ),
}
CLASSIFIER_OVERLAP = "the classifier was trained on this set's dev half; figures are on the test half"


def customer_sets(data: Path) -> list[MessageSet]:
    """Real customer messages (one set per source), each cut into dev and test halves."""
    sets = []
    for name, (lang, provenance, read) in CUSTOMER_SOURCES.items():
        dev, test = _split(read(data))
        sets.append(MessageSet(name, lang, provenance, CLASSIFIER_OVERLAP, dev, test))
    dev, test = _split(faq_messages())
    sets.append(
        MessageSet(
            "demo_faq",
            "zh+en",
            "src/kefu/demo_shop/faq (questions + paraphrases, written in this project)",
            "the patterns were checked against every FAQ question (tests/test_injection.py); "
            + CLASSIFIER_OVERLAP,
            dev,
            test,
        )
    )
    dev, test = _split(suite_benign())
    if dev or test:
        sets.append(
            MessageSet(
                "suite_benign",
                "zh+en",
                "tests/data/injection_attacks.yaml benign: tricky messages written in this project",
                "written together with the patterns (all rows); " + CLASSIFIER_OVERLAP,
                dev,
                test,
            )
        )
    return sets


@dataclass(frozen=True)
class SourceStatus:
    name: str
    provenance: str  # repo@commit:path, licence
    rows: int
    note: str


_ESCAPED = re.compile(r"\\u([0-9a-fA-F]{4})|\\([\"'\\])|\\n")


def _unescape(text: str) -> str:
    """A file that stores prompts JSON-escaped (\\" \\n \\u201c): the text the attacker typed."""

    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        return match.group(2) or "\n"

    joined = _ESCAPED.sub(one, text)  # "\\ud83d\\ude00" became two halves of one emoji: pair them up
    return joined.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _fill(text: str) -> str:
    return _SLOT.sub(_STAND_IN, text).strip()


def _rows(source: dict[str, Any], root: Path) -> list[tuple[str, str]]:
    """(text, family) for every row of one manifest entry found under ``root``."""
    fmt, family = source["format"], source.get("family", "")
    paths = sorted(root.glob(source["path"]))
    rows: list[tuple[str, str]] = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        if fmt == "lines":
            rows += [(line, family) for line in text.splitlines() if line.strip()]
        elif fmt == "paragraphs":
            rows += [(p, family) for p in re.split(r"\n\s*\n", text) if p.strip()]
        elif fmt == "yaml_prompt":
            prompt = (yaml.safe_load(text) or {}).get("prompt")
            rows += [(prompt, family)] if isinstance(prompt, str) else []
        elif fmt == "safety_prompts":
            raw = json.loads(text)
            for scenario, mapped in source.get("scenarios", {}).items():
                rows += [(r["prompt"], mapped) for r in raw.get(scenario, []) if r.get("prompt")]
        else:
            raise InvalidInput(f"{SOURCES}: unknown format {fmt!r} for {source['name']}; fix the manifest.")
    if source.get("unescape"):
        rows = [(_unescape(t), f) for t, f in rows]
    return [(_fill(t), f) for t, f in rows if _fill(t)]


def independent_attacks(attacks_dir: Path | None) -> tuple[list[Attack], list[SourceStatus]]:
    """Attacks from the public collections of the manifest found under ``attacks_dir``, deduplicated."""
    manifest = _yaml(SOURCES)["sources"]
    attacks: list[Attack] = []
    status: list[SourceStatus] = []
    seen: set[str] = set()
    for source in manifest:
        provenance = f"{source['repo']}@{source['commit'][:7]}:{source['path']} ({source['licence']})"
        root = attacks_dir / source["repo"].replace("/", "+") if attacks_dir else None
        if root is None or not any(root.glob(source["path"])):
            where = "no --attacks folder given" if root is None else f"not found under {root}"
            status.append(SourceStatus(source["name"], provenance, 0, where + ". " + source.get("note", "")))
            continue
        rows, duplicates = _rows(source, root), 0
        for n, (text, family) in enumerate(rows):
            key = re.sub(r"\W+", "", text.lower())[:400]
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            attacks.append(
                Attack(f"{source['name']}-{n}", text, family, source["lang"], source["name"], "test")
            )
        note = (
            f"{duplicates} duplicates (of its own rows or an earlier source's) dropped" if duplicates else ""
        )
        status.append(SourceStatus(source["name"], provenance, len(rows) - duplicates, note))
    return attacks, status


def kb_documents(data: Path, limit: int | None) -> list[tuple[str, str]]:
    """(name, text) of ordinary knowledge-base documents: the demo shop's and tau2's banking knowledge."""
    docs = [
        (f"demo_shop/docs/{p.name}", p.read_text(encoding="utf-8")) for p in sorted(DEMO_DOCS.glob("*.md"))
    ]
    folder = data / "tau2_banking_knowledge" / "documents"
    paths = sorted(folder.glob("*"), key=lambda p: hash_order(p.name)) if folder.exists() else []
    for path in paths[:limit] if limit is not None else paths:
        if path.is_file():
            docs.append((f"tau2_banking_knowledge/{path.name}", _document_text(path)))
    return docs


def _document_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".json":
        return text
    raw = json.loads(text)
    if isinstance(raw, dict):
        return "\n\n".join(str(raw.get(k, "")) for k in ("title", "content", "text") if raw.get(k)) or text
    return text
