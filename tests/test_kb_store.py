"""``KbStore``: versions, diffs, rollback, JSON export/import and FAQ consistency, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from kefu.errors import Conflict, InvalidInput, NotFound
from kefu.kb.documents import FaqEntry, SourceDocument
from kefu.kb.loader import build_pack
from kefu.kb.store import ApplyResult, KbStore, find_faq_conflicts, kb_document_versions, kb_documents
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.testing import temporary_postgres_schema

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")


@pytest.fixture
def fresh_engine(database_url: str, tmp_path: Path) -> Iterator[Callable[[], Engine]]:
    """Makes migrated, empty databases of the ``database_url`` kind (the first is at that URL)."""
    with ExitStack() as stack:
        made: list[Engine] = []

        def make() -> Engine:
            url = database_url
            if made and database_url.startswith("sqlite"):
                url = f"sqlite:///{tmp_path / f'extra-{len(made)}.db'}"
            elif made:
                url = stack.enter_context(temporary_postgres_schema(str(POSTGRES_URL)))
            engine = make_engine(url)
            stack.callback(engine.dispose)
            migrate(engine)
            made.append(engine)
            return engine

        yield make


@pytest.fixture
def engine(fresh_engine: Callable[[], Engine]) -> Engine:
    return fresh_engine()


@pytest.fixture
def store(engine: Engine) -> KbStore:
    return KbStore(engine)


def doc(doc_id: str, text: str, title: str = "", **extra: Any) -> SourceDocument:
    return SourceDocument(
        doc_id=doc_id, kind="doc", title=title or doc_id.rsplit("/", 1)[-1], text=text, **extra
    )


def faq(doc_id: str, *entries: tuple[str, str, str] | FaqEntry) -> SourceDocument:
    faqs = tuple(e if isinstance(e, FaqEntry) else FaqEntry(*e) for e in entries)
    return SourceDocument(doc_id=doc_id, kind="faq", title=doc_id, faqs=faqs)


def snapshot(store: KbStore, version: int | None = None) -> dict[str, dict[str, Any]]:
    return {d.doc_id: d.to_dict() for d in store.documents(version)}


def test_apply_makes_a_version_and_skips_what_did_not_change(store: KbStore) -> None:
    assert store.head() is None and store.documents() == []
    shipping = doc("docs/shipping.md", "# 配送\n\n48小时内发货。\n", updated_at="2026-01-01T00:00:00+00:00")
    returns = doc("docs/returns.md", "# 退货\n\n7天无理由退货。\n", meta={"etag": "x1"})
    first = store.apply([shipping, returns], message="initial sync", author="alice")

    assert first.version is not None and first.version.number == 1
    assert (first.added, first.updated, first.unchanged) == (["docs/returns.md", "docs/shipping.md"], [], [])
    assert first.version.stats.documents == 2 and first.version.parent is None
    assert snapshot(store) == {d.doc_id: d.to_dict() for d in (shipping, returns)}

    moved = replace(shipping, source="/new/place.md", updated_at="2026-02-01")
    edited = doc("docs/returns.md", "# 退货\n\n15天无理由退货。\n")
    second = store.apply([moved, edited], message="resync")
    assert second.version is not None and second.version.number == 2
    assert (second.updated, second.unchanged) == (["docs/returns.md"], ["docs/shipping.md"])
    assert store.document("docs/returns.md").text == edited.text
    assert store.document("docs/returns.md", version=1).text == returns.text

    third = store.apply([moved, edited], message="resync again")
    assert third.version is None and third.unchanged == ["docs/returns.md", "docs/shipping.md"]
    head = store.head()
    assert head is not None and head.number == 2


def test_the_same_content_under_another_name_is_stored_once(store: KbStore) -> None:
    def twin(doc_id: str) -> SourceDocument:
        return doc(doc_id, "孪生内容", "孪生")

    a = doc("docs/a.md", "# A\n\n同一段内容。\n")
    store.apply([a], message="v1")

    copy = store.apply([a.renamed("docs/a-copy.md")], message="copy")
    assert copy.duplicates == [("docs/a-copy.md", "docs/a.md")] and copy.version is None
    assert list(snapshot(store)) == ["docs/a.md"]

    twins = store.apply(
        [twin("docs/z.md"), twin("docs/y.md"), doc("docs/x.md", "不同内容", "孪生")], message="twins"
    )
    assert twins.added == ["docs/x.md", "docs/y.md"] and twins.duplicates == [("docs/z.md", "docs/y.md")]

    # A folder sync that sees a renamed file: the new name is added, the old one retired, nothing lost.
    renamed = store.apply(
        [a.renamed("docs/b.md"), doc("docs/x.md", "不同内容", "孪生"), twin("docs/y.md")],
        message="rename",
        replace_all=True,
    )
    assert (renamed.added, renamed.deleted, renamed.duplicates) == (["docs/b.md"], ["docs/a.md"], [])

    # An existing document whose new content equals another's is retired, not left with stale content.
    clash = store.apply([twin("docs/x.md")], message="x becomes y")
    assert clash.duplicates == [("docs/x.md", "docs/y.md")] and clash.deleted == ["docs/x.md"]
    assert list(snapshot(store)) == ["docs/b.md", "docs/y.md"]


def test_deletes_and_replace_all_retire_documents(store: KbStore) -> None:
    store.apply([doc("a.md", "甲"), doc("b.md", "乙"), doc("c.md", "丙")], message="three")

    gone = store.apply(deletes=["b.md"], message="drop b")
    assert gone.deleted == ["b.md"] and list(snapshot(store)) == ["a.md", "c.md"]

    with pytest.raises(NotFound, match=r"'nope\.md'.*nothing was applied"):
        store.apply([doc("d.md", "丁")], deletes=["nope.md"], message="bad delete")
    with pytest.raises(InvalidInput, match="both put and deleted"):
        store.apply([doc("a.md", "甲2")], deletes=["a.md"], message="both")
    assert list(snapshot(store)) == ["a.md", "c.md"]

    synced = store.apply([doc("a.md", "甲"), doc("d.md", "丁")], message="sync", replace_all=True)
    assert (synced.added, synced.deleted, synced.unchanged) == (["d.md"], ["c.md"], ["a.md"])
    assert list(snapshot(store)) == ["a.md", "d.md"]
    assert store.documents(1)[1].doc_id == "b.md"  # old versions keep their snapshot


def test_history_is_newest_first_with_stats(store: KbStore) -> None:
    store.apply(
        [doc("a.md", "甲"), faq("f.json", ("q1", "运费？", "10元"), ("q2", "包邮吗？", "满99"))], message="m1"
    )
    store.apply([doc("a.md", "甲改")], deletes=["f.json"], message="m2", author="bob")
    store.apply([doc("b.md", "乙")], message="m3")

    history = store.history()
    assert [(v.number, v.message, v.parent) for v in history] == [(3, "m3", 2), (2, "m2", 1), (1, "m1", None)]
    assert history[1].author == "bob" and history[0].author == "system"
    assert [(v.stats.added, v.stats.updated, v.stats.deleted) for v in history] == [
        (1, 0, 0),
        (0, 1, 1),
        (2, 0, 0),
    ]
    assert [(v.stats.documents, v.stats.faqs) for v in history] == [(2, 0), (1, 0), (2, 2)]
    assert [v.number for v in store.history(limit=2)] == [3, 2]
    assert history[0].created_at >= history[2].created_at and history[0].created_at.tzinfo is not None
    assert json.loads(json.dumps(history[0].to_dict()))["stats"]["added"] == 1


def test_diff_shows_text_lines_and_faq_entries(store: KbStore) -> None:
    store.apply(
        [
            doc("docs/ship.md", "# 配送\n\n48小时内发货。\n偏远地区另计。\n"),
            doc("docs/old.md", "# 旧\n\n过时的政策。\n"),
            faq("faq/faq.json", ("ship-1", "多久发货？", "48小时内。"), ("ship-2", "发什么快递？", "顺丰。")),
        ],
        message="v1",
    )
    store.apply(
        [
            doc("docs/ship.md", "# 配送\n\n72小时内发货。\n偏远地区另计。\n"),
            doc("docs/new.md", "# 新\n\n新的政策。\n"),
            faq(
                "faq/faq.json", ("ship-1", "多久发货？", "72小时内。"), ("ship-3", "能指定快递吗？", "不能。")
            ),
        ],
        deletes=["docs/old.md"],
        message="v2",
    )

    diff = store.diff(1, 2)
    assert (diff.added, diff.removed) == (["docs/new.md"], ["docs/old.md"])
    text_change, faq_change = diff.changed
    assert text_change.doc_id == "docs/ship.md" and text_change.faq_added == []
    assert "-48小时内发货。" in text_change.diff.splitlines()
    assert "+72小时内发货。" in text_change.diff.splitlines()
    assert " 偏远地区另计。" in text_change.diff.splitlines()  # context, unchanged
    assert (faq_change.faq_added, faq_change.faq_removed, faq_change.faq_changed) == (
        ["ship-3"],
        ["ship-2"],
        ["ship-1"],
    )
    faq_lines = faq_change.diff.splitlines()
    assert {"-A: 48小时内。", "+A: 72小时内。", "-Q: 发什么快递？", "+Q: 能指定快递吗？"} <= set(faq_lines)
    assert faq_lines[:2] == ["--- v1/faq/faq.json", "+++ v2/faq/faq.json"]

    data = json.loads(json.dumps(diff.to_dict(), ensure_ascii=False))
    assert data["changed"][1]["faq_changed"] == ["ship-1"] and data["added"] == ["docs/new.md"]
    text = diff.render(lang="en")
    assert text.splitlines()[0] == "KB v1 → v2: 1 added, 1 removed, 2 changed"
    assert "~ faq/faq.json  FAQ +ship-3 -ship-2 ~ship-1" in text and "+ docs/new.md" in text
    assert store.diff(2, 1).added == ["docs/old.md"]
    assert store.diff(2, 2).render() == "v2 与 v2 内容相同"
    with pytest.raises(NotFound, match="v9 does not exist"):
        store.diff(1, 9)


def test_rollback_adds_a_version_and_keeps_history(store: KbStore) -> None:
    store.apply([doc("a.md", "甲"), doc("b.md", "乙")], message="good")
    store.apply([doc("a.md", "甲（错）")], deletes=["b.md"], message="bad")
    good = snapshot(store, 1)

    rolled = store.rollback(1, author="carol")
    assert (rolled.number, rolled.message, rolled.author, rolled.parent) == (3, "rollback to v1", "carol", 2)
    assert (rolled.stats.added, rolled.stats.updated, rolled.stats.deleted) == (1, 1, 0)
    assert snapshot(store) == good and snapshot(store, 2) != good
    assert [v.number for v in store.history()] == [3, 2, 1]
    assert store.diff(2, 3).added == ["b.md"]
    assert [h.kb_versions for h in store.document_history("a.md")] == [[2], [1, 3]]

    with pytest.raises(Conflict, match="already has the content of v1"):
        store.rollback(1, author="carol")
    with pytest.raises(NotFound, match="v7 does not exist"):
        store.rollback(7, author="carol")
    assert len(store.history()) == 3


def test_document_lookups_say_where_a_document_went(store: KbStore) -> None:
    store.apply([doc("a.md", "甲一")], message="1")
    store.apply([doc("a.md", "甲二")], message="2")
    store.apply(deletes=["a.md"], message="3")

    with pytest.raises(NotFound, match="not in version v3; it was last in v2"):
        store.document("a.md")
    assert store.document("a.md", version=1).text == "甲一"
    history = store.document_history("a.md")
    assert [h.content_hash for h in history] == [
        doc("a.md", "甲二").content_hash,
        doc("a.md", "甲一").content_hash,
    ]
    with pytest.raises(NotFound, match="never"):
        store.document("zzz.md")
    with pytest.raises(NotFound, match="never"):
        store.document_history("zzz.md")


def rich_kb() -> list[SourceDocument]:
    return [
        doc("docs/配送 说明.md", "# 配送\n\n48小时内发货。\n", updated_at="2026-03-01T08:00:00+00:00"),
        doc("https://help.example.com/returns?lang=zh#top", "# Returns\n\n7 days.\n", mime="text/html"),
        doc("https://help.example.com/", "# Help\n\n首页。\n", meta={"etag": 'W/"1"', "pages": [1, 2]}),
        doc("../../etc/passwd", "# 不该逃出导出目录\n\n内容。\n"),
        faq(
            "faq/常见问题.json",
            FaqEntry(
                "ship-1", "多久发货？", "48小时内。\n节假日顺延。", similar=("什么时候发货",), tags=("配送",)
            ),
            FaqEntry("ret-1", "怎么退货？", "在订单页申请。"),
        ),
    ]


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_then_import_on_a_fresh_database_gives_the_same_snapshot(
    store: KbStore, fresh_engine: Callable[[], Engine], tmp_path: Path
) -> None:
    store.apply(rich_kb(), message="初始导入", author="alice")
    manifest = store.export_json(tmp_path / "export")
    again = store.export_json(tmp_path / "again", version=1)

    files = read_tree(tmp_path / "export")
    assert files == read_tree(tmp_path / "again") and manifest.name == again.name == "kb.json"
    root = (tmp_path / "export").resolve()
    assert all(
        (root / name).resolve().is_relative_to(root / "documents") for name in files if name != "kb.json"
    )
    assert all(not set(name) & set('?#:*"<>|\\') and "/../" not in name for name in files)
    assert all(data.endswith(b"\n") for data in files.values())
    listed = json.loads(files["kb.json"])
    assert listed["version"] == 1 and listed["message"] == "初始导入"
    assert {d["doc_id"]: d["content_hash"] for d in listed["documents"]} == {
        d.doc_id: d.content_hash for d in rich_kb()
    }
    chinese = next(name for name in files if "常见问题" in name)
    assert chinese == "documents/faq/常见问题.json.json" and "节假日顺延" in files[chinese].decode()
    assert any(name.startswith("documents/urls/help.example.com/") for name in files)

    copy = KbStore(fresh_engine())
    result = copy.import_json(tmp_path / "export", message="导入", author="bob")
    assert result.version is not None and result.added == sorted(d.doc_id for d in rich_kb())
    assert snapshot(copy) == snapshot(store)
    pack = build_pack(copy.documents(), "v1")
    assert {c.id for c in pack.chunks if c.kind == "faq"} == {"faq:ship-1", "faq:ret-1"}
    assert copy.import_json(tmp_path / "export", message="again").version is None


def test_exporting_an_older_version_over_a_newer_removes_its_files(store: KbStore, tmp_path: Path) -> None:
    store.apply([doc("a.md", "甲")], message="1")
    store.apply([doc("nested/deep/b.md", "乙")], message="2")
    out = tmp_path / "kb"
    store.export_json(out)
    assert "documents/nested/deep/b.md.json" in read_tree(out)

    store.export_json(out, version=1)
    assert sorted(read_tree(out)) == ["documents/a.md.json", "kb.json"]
    assert not (out / "documents" / "nested").exists()
    result = store.import_json(out, message="back to 1")
    assert result.deleted == ["nested/deep/b.md"] and snapshot(store) == snapshot(store, 1)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b'{"doc_id": "x", "kind": "doc", "text": "ok"', "is not valid JSON"),
        (b'{"doc_id": "x", "kind": "pdf", "text": "ok"}', "'kind' must be"),
        (b'{"doc_id": "x", "kind": "faq", "faqs": [{"id": "a", "question": "q"}]}', "'answer' must be"),
        (b'{"doc_id": "x", "kind": "doc", "text": "ok", "meta": [1]}', "'meta' must be an object"),
        (b"[1, 2]", "one JSON object"),
        ("\ufeff{}".encode("utf-16"), "not UTF-8"),
    ],
)
def test_a_bad_file_in_an_import_applies_nothing(
    store: KbStore, tmp_path: Path, content: bytes, complaint: str
) -> None:
    store.apply([doc("a.md", "甲"), doc("b.md", "乙")], message="1")
    out = tmp_path / "kb"
    store.export_json(out)
    (out / "documents" / "a.md.json").write_text(
        json.dumps(doc("a.md", "甲改").to_dict(), ensure_ascii=False)
    )
    (out / "documents" / "zz-bad.json").write_bytes(content)

    with pytest.raises(InvalidInput, match=r"documents/zz-bad\.json") as info:
        store.import_json(out, message="broken")
    assert complaint in info.value.message and "Nothing was imported" in info.value.message
    assert [v.number for v in store.history()] == [1] and store.document("a.md").text == "甲"


def test_import_refuses_a_folder_without_documents(store: KbStore, tmp_path: Path) -> None:
    (tmp_path / "documents").mkdir()
    with pytest.raises(InvalidInput, match=r"no \*\.json documents"):
        store.import_json(tmp_path, message="empty")
    with pytest.raises(InvalidInput, match="does not exist"):
        store.import_json(tmp_path / "missing", message="missing")


def test_a_failure_mid_apply_leaves_the_previous_version_intact(store: KbStore, engine: Engine) -> None:
    store.apply([doc("a.md", "甲")], message="1")
    before = snapshot(store)

    def fail_on_snapshot(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO KB_VERSION_ENTRIES"):
            raise RuntimeError("disk full (injected)")

    event.listen(engine, "before_cursor_execute", fail_on_snapshot)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            store.apply([doc("a.md", "甲改"), doc("b.md", "乙")], message="doomed")
    finally:
        event.remove(engine, "before_cursor_execute", fail_on_snapshot)

    assert [v.number for v in store.history()] == [1] and snapshot(store) == before
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(kb_document_versions)) == 1
        assert conn.scalar(select(func.count()).select_from(kb_documents)) == 1
    with pytest.raises(NotFound):
        store.document_history("b.md")

    retry = store.apply([doc("a.md", "甲改"), doc("b.md", "乙")], message="retry")
    assert retry.version is not None and retry.version.number == 2


def test_an_invalid_batch_applies_nothing(store: KbStore) -> None:
    store.apply([faq("f1.json", ("q1", "运费？", "10元"))], message="1")
    with pytest.raises(InvalidInput, match=r"'q1' is in f1\.json and in f2\.json"):
        store.apply([doc("a.md", "甲"), faq("f2.json", ("q1", "包邮吗？", "满99"))], message="clash")
    with pytest.raises(InvalidInput, match="meta cannot be stored as JSON"):
        store.apply([doc("a.md", "甲"), doc("b.md", "乙", meta={"when": object()})], message="bad meta")
    with pytest.raises(InvalidInput, match="put twice"):
        store.apply([doc("a.md", "甲"), doc("a.md", "甲2")], message="twice")
    with pytest.raises(InvalidInput, match="non-empty message"):
        store.apply([doc("a.md", "甲")], message="  ")
    assert [v.number for v in store.history()] == [1] and list(snapshot(store)) == ["f1.json"]


def test_two_appliers_at_once_lose_nothing(store: KbStore) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []
    results: list[ApplyResult] = []

    def run(worker: int) -> None:
        try:
            start.wait()
            for n in range(8):
                results.append(
                    store.apply([doc(f"w{worker}/{n}.md", f"工人{worker}的第{n}篇")], message=f"{worker}")
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(r.version.number for r in results if r.version) == list(range(1, 17))
    history = store.history()
    assert [v.number for v in history] == list(range(16, 0, -1))
    assert [v.stats.documents for v in history] == list(range(16, 0, -1))  # each version kept all before it
    assert len(store.documents()) == 16


CONFLICTING = [
    faq("faq/a.json", ("fee-1", "运费多少钱？", "满99包邮。"), ("ret-1", "怎么退货？", "7天无理由退货。")),
    faq(
        "faq/b.json",
        ("fee-2", "运费 多少钱", "一律10元。"),  # same question after normalisation, another answer
        ("ret-2", "怎么退货?", "7天无理由退货"),  # the same pair again: a duplicate, not a conflict
        FaqEntry("inv-1", "能开发票吗？", "可以。", similar=("可以开发票吗",)),
    ),
    faq("faq/c.json", ("inv-2", "可以开发票吗？", "不开发票。"), ("time-1", "几点上班？", "九点。")),
]


def test_faq_conflicts_find_the_same_question_with_different_answers(store: KbStore) -> None:
    store.apply(CONFLICTING, message="faqs")
    found = store.faq_conflicts()

    pairs = [(c.kind, c.entry_a.faq_id, c.entry_b.faq_id) for c in found]
    assert pairs == [
        ("conflict", "fee-1", "fee-2"),
        ("conflict", "inv-1", "inv-2"),
        ("duplicate", "ret-1", "ret-2"),
    ]
    fee = found[0]
    assert (fee.entry_a.doc_id, fee.entry_b.answer, fee.similarity) == ("faq/a.json", "一律10元。", 1.0)
    assert "different answers" in fee.reason and "'可以开发票吗'" in found[1].reason  # via a paraphrase
    assert store.conflicted_faq_ids() == {"fee-1", "fee-2", "inv-1", "inv-2"}
    assert store.conflicted_faq_ids(1) == store.conflicted_faq_ids()
    assert json.loads(json.dumps(fee.to_dict()))["entry_a"]["faq_id"] == "fee-1"


def test_faq_conflicts_with_the_real_embedder_catch_paraphrases() -> None:
    from kefu.kb.embeddings import shared_embedder

    documents = [
        faq(
            "a.json",
            ("ship-1", "多久能发货？", "48小时内发货。"),
            ("ret-1", "怎么申请退货？", "在订单页申请。"),
        ),
        faq(
            "b.json",
            ("ship-2", "发货要多久？", "72小时内发货。"),
            ("ret-2", "退货怎么办理？", "在订单页申请"),
        ),
        faq("c.json", ("inv-1", "可以开发票吗？", "可以。")),
    ]
    assert find_faq_conflicts(documents) == []

    found = find_faq_conflicts(documents, embedder=shared_embedder(), threshold=0.95)
    pairs = [(c.kind, c.entry_a.faq_id, c.entry_b.faq_id) for c in found]
    assert pairs == [("conflict", "ship-1", "ship-2"), ("duplicate", "ret-1", "ret-2")]
    assert 0.95 <= found[0].similarity < 1.0 and "cosine" in found[0].reason
