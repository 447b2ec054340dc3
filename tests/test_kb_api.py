"""The knowledge-base admin API (/v1/kb) on the real app: uploads of real PDF/DOCX/Markdown/CSV files,
edits, diff, rollback, conflicts, export/import and sources — and the chat answering from each version."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
from fastapi.testclient import TestClient
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

TOKEN = "kb-admin-token-for-tests"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
LIMIT = 64 * 1024  # KEFU_KB_MAX_FILE_BYTES in these tests
TRADE_IN = "# 以旧换新\n\n旧手机可以抵扣新机货款，最高抵扣 800 元。下单时选择以旧换新，快递员上门回收旧机。\n"
RETURNS_PDF = [
    "退货运费说明",
    "七天无理由退货的寄回运费由买家承担。",
    "商品有质量问题时，退货运费由我们承担，签收后四十八小时内退款。",
]
FAQ_CSV = "问题,答案,相似问题\n会员积分可以抵现吗？,每 100 积分抵 1 元，结算时自动抵扣。,积分能当钱用吗\n"


def make_pdf(lines: list[str]) -> bytes:
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setFont("STSong-Light", 11)
    for row, line in enumerate(lines):
        pdf.drawString(60, 790 - 18 * row, line)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading("保修手册", level=1)
    document.add_paragraph("耳机和音箱提供一年免费保修，人为损坏除外。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def admin_app(settings: Settings, model: ScriptedModel) -> TestClient:
    client = TestClient(create_app(settings, model=model))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def admin(make_settings: Callable[..., Settings], model: ScriptedModel) -> Iterator[TestClient]:
    """The real app on the mini pack with the admin API on, a 64 KB file limit and short intervals."""
    settings = make_settings(kb_dir=MINI_KB, admin_token=TOKEN, kb_max_file_bytes=LIMIT)
    with admin_app(settings, model) as client:
        yield client


def upload(client: TestClient, *files: tuple[str, bytes, str], **form: str) -> Any:
    return client.post("/v1/kb/documents", files=[("files", f) for f in files], data=form)


def head(client: TestClient) -> int:
    return int(client.get("/v1/kb").json()["head"]["number"])


def documents(client: TestClient, version: int | None = None) -> dict[str, dict[str, Any]]:
    params = {"version": version} if version else {}
    response = client.get("/v1/kb/documents", params=params)
    assert response.status_code == 200, response.text
    return {d["doc_id"]: d for d in response.json()["data"]}


# ---------------------------------------------------------------------------------------- auth


def test_the_admin_api_is_off_until_a_token_is_set(client: TestClient) -> None:
    response = client.get("/v1/kb", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 403
    assert "set KEFU_ADMIN_TOKEN" in response.json()["error"]["message"]


def test_every_kb_endpoint_refuses_a_missing_or_wrong_token(admin: TestClient) -> None:
    paths = admin.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = [(method, path) for path, ops in paths.items() if path.startswith("/v1/kb") for method in ops]
    assert len(routes) == 24  # 18 + the knowledge-gap loop's suggestions and hits (api/routes/gaps.py)
    for method, path in routes:
        url = path.replace("{doc_id}", "docs/shipping.md").replace("{number}", "1")
        url = url.replace("{source_id}", "x").replace("{suggestion_id}", "x")
        for value in ("", "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
            response = admin.request(method, url, headers={"Authorization": value})
            assert response.status_code == 401, (method, url, value, response.text)
            assert "KEFU_ADMIN_TOKEN" in response.json()["error"]["message"]
    assert admin.get("/v1/kb").status_code == 200


# ---------------------------------------------------------------------------------------- uploads


def test_a_mixed_upload_stores_the_good_files_as_one_version_and_the_chat_cites_them(
    admin: TestClient, model: ScriptedModel
) -> None:
    before = head(admin)
    response = upload(
        admin,
        ("退货运费.pdf", make_pdf(RETURNS_PDF), "application/pdf"),
        ("保修手册.docx", make_docx(), DOCX_MIME),
        ("以旧换新.md", TRADE_IN.encode(), "text/markdown"),
        ("会员积分.csv", FAQ_CSV.encode("gbk"), "text/csv"),  # as Excel saves it in China
        ("损坏.pdf", make_pdf(RETURNS_PDF)[:300], "application/pdf"),
        ("大文件.txt", ("很长的说明文字。" * 4000).encode(), "text/plain"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    files = {f["filename"]: f for f in body["files"]}
    assert files["损坏.pdf"]["status"] == 422
    assert "损坏.pdf" in files["损坏.pdf"]["error"]["message"]
    assert files["大文件.txt"]["status"] == 413
    assert "over the 64.0 KB limit (KEFU_KB_MAX_FILE_BYTES)" in files["大文件.txt"]["error"]["message"]
    good = ["uploads/以旧换新.md", "uploads/会员积分.csv", "uploads/保修手册.docx", "uploads/退货运费.pdf"]
    assert sorted(f["doc_id"] for f in body["files"] if f["status"] == 200) == good
    assert all(files[name]["outcome"] == "added" for name in ("以旧换新.md", "会员积分.csv"))
    # one new version holding all the good files, and nothing of the bad ones
    assert body["version"] == before + 1 and body["serving"] == f"v{before + 1}"
    assert sorted(body["change"]["added"]) == good
    versions = admin.get("/v1/kb/versions").json()
    assert versions["head"] == before + 1 and versions["data"][1]["number"] == before
    stored = documents(admin)
    assert {d: stored[d]["kind"] for d in good} == {
        "uploads/以旧换新.md": "doc",
        "uploads/会员积分.csv": "faq",
        "uploads/保修手册.docx": "doc",
        "uploads/退货运费.pdf": "doc",
    }
    assert "uploads/损坏.pdf" not in stored and "uploads/大文件.txt" not in stored

    # hit-testing: chunk, title, section, source, each score, confidence and decision
    found = admin.get("/v1/kb/search", params={"q": "质量问题退货的运费谁出？", "k": 3}).json()
    top = found["hits"][0]
    assert top["doc_id"] == "uploads/退货运费.pdf" and top["chunk_id"].startswith("uploads/退货运费.pdf#")
    assert "运费由我们承担" in top["text"] and top["title"] == "退货运费"
    assert set(top["scores"]) == {"fused", "dense", "sparse"} and top["scores"]["sparse"] > 0
    assert found["version"] == f"v{before + 1}" and len(found["hits"]) == 3
    assert found["decision"] in ("grounded", "faq") and 0 < found["confidence"] <= 1

    # the chat answers from the new version, citing the uploaded chunk
    conversation = new_conversation(admin)
    reply = ask(admin, conversation, "旧手机最多能抵扣多少钱？")
    assert reply["answer_kind"] == "grounded"
    assert reply["citations"][0]["doc_id"] == "uploads/以旧换新.md"
    assert "最高抵扣 800 元" in model.history[-1].messages[0].content  # what the model was given
    reply = ask(admin, conversation, "会员积分可以抵现吗？")
    assert reply["answer_kind"] == "faq"
    assert reply["content"].startswith("每 100 积分抵 1 元")
    assert reply["citations"][0]["doc_id"] == "uploads/会员积分.csv"


def test_an_upload_with_nothing_readable_stores_nothing(admin: TestClient) -> None:
    before = head(admin)
    response = upload(admin, ("坏的.pdf", b"%PDF-1.4 not really", "application/pdf"))
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "nothing_stored" and body["version"] is None
    assert body["files"][0]["status"] == 422 and "坏的.pdf" in body["error"]["message"]
    response = upload(admin, ("巨大.md", b"#" * (LIMIT + 1), "text/markdown"))
    assert response.status_code == 413
    assert "KEFU_KB_MAX_FILE_BYTES" in response.json()["files"][0]["error"]["message"]
    response = upload(admin, ("旧格式.doc", b"\xd0\xcf\x11\xe0 word 97", "application/msword"))
    assert response.status_code == 422
    assert "save it as .docx" in response.json()["files"][0]["error"]["message"]
    response = upload(
        admin, ("a.md", b"# a\n\nA", "text/markdown"), ("b.md", b"# b\n\nB", "text/markdown"), doc_id="x"
    )
    assert response.status_code == 400 and "doc_id names one document" in response.json()["error"]["message"]
    assert head(admin) == before


# ---------------------------------------------------------------------------------------- versions


def test_an_edit_makes_a_version_the_diff_shows_and_a_rollback_the_chat_follows(
    admin: TestClient, model: ScriptedModel
) -> None:
    doc_id = "manuals/以旧换新.md"
    first = upload(admin, ("trade-in.md", TRADE_IN.encode(), "text/markdown"), doc_id=doc_id).json()
    v_a = first["version"]
    conversation = new_conversation(admin)
    question = "旧手机最多能抵扣多少钱？"
    assert "800 元" in ask(admin, conversation, question)["content"]

    document = admin.get(f"/v1/kb/documents/{doc_id}").json()["document"]
    document["text"] = document["text"].replace("800 元", "500 元")
    response = admin.put(f"/v1/kb/documents/{doc_id}", json=document, params={"message": "降低抵扣上限"})
    assert response.status_code == 200, response.text
    v_b = response.json()["version"]
    assert v_b == v_a + 1 and response.json()["change"]["updated"] == [doc_id]
    assert admin.get(f"/v1/kb/versions/{v_b}").json()["message"] == "降低抵扣上限"
    # the same body again changes nothing
    again = admin.put(f"/v1/kb/documents/{doc_id}", json=document).json()
    assert again["version"] is None and again["change"]["unchanged"] == [doc_id]

    diff = admin.get("/v1/kb/diff", params={"from": v_a, "to": v_b}).json()
    assert diff["added"] == [] and diff["removed"] == []
    [change] = diff["changed"]
    assert change["doc_id"] == doc_id
    assert "-旧手机可以抵扣新机货款，最高抵扣 800 元" in change["diff"]
    assert "+旧手机可以抵扣新机货款，最高抵扣 500 元" in change["diff"]
    assert diff["text"].startswith(f"知识库 v{v_a} → v{v_b}：新增 0，删除 0，修改 1")
    assert admin.get("/v1/kb/diff", params={"lang": "en"}).json()["to_version"] == v_b  # default: head

    reply = ask(admin, conversation, question)
    assert "500 元" in reply["content"] and "800" not in reply["content"]

    rollback = admin.post("/v1/kb/rollback", json={"version": v_a})
    assert rollback.status_code == 200, rollback.text
    v_c = rollback.json()["version"]["number"]
    assert v_c == v_b + 1 and rollback.json()["serving"] == f"v{v_c}"
    assert rollback.json()["version"]["message"] == f"rollback to v{v_a}"
    reply = ask(admin, conversation, question)
    assert "800 元" in reply["content"] and "500" not in reply["content"]
    # history is kept: v_b still reads 500, and the document's versions are listed
    old = admin.get(f"/v1/kb/documents/{doc_id}", params={"version": v_b}).json()
    assert "500 元" in old["document"]["text"] and old["version"] == v_b
    assert [h["kb_versions"] for h in old["history"]] == [[v_b], [v_a, v_c]]
    assert admin.post("/v1/kb/rollback", json={"version": v_a}).status_code == 409  # already its content


def test_faq_lists_can_be_written_as_json_and_documents_deleted(admin: TestClient) -> None:
    faq = {
        "kind": "faq",
        "title": "门店",
        "faqs": [
            {"id": "store-1", "question": "你们有线下门店吗？", "answer": "目前只在线上销售，没有线下门店。"}
        ],
    }
    response = admin.put("/v1/kb/documents/faq/门店.json", json=faq)
    assert response.status_code == 200, response.text
    assert response.json()["change"]["added"] == ["faq/门店.json"]
    assert documents(admin)["faq/门店.json"]["faqs"] == 1
    found = admin.get("/v1/kb/search", params={"q": "你们有线下门店吗"}).json()
    assert found["decision"] == "faq" and found["faq"] == "faq:store-1"

    bad = {"kind": "faq", "faqs": [{"id": "x", "question": "有门店吗", "answer": "  "}]}
    response = admin.put("/v1/kb/documents/faq/bad.json", json=bad)
    assert response.status_code == 400 and "'answer' must be a non-empty string" in response.text
    response = admin.put("/v1/kb/documents/a.md", json={"kind": "doc", "text": "x", "doc_id": "b.md"})
    assert response.status_code == 400 and "differs from the URL" in response.text
    assert admin.put("/v1/kb/documents/a.md", json={"kind": "doc", "text": " "}).status_code == 400

    response = admin.delete("/v1/kb/documents/faq/门店.json")
    assert response.status_code == 200 and response.json()["change"]["deleted"] == ["faq/门店.json"]
    assert "faq/门店.json" not in documents(admin)
    assert admin.delete("/v1/kb/documents/faq/门店.json").status_code == 404
    # a document from a synced source warns that a sync brings it back once its file changes
    response = admin.delete("/v1/kb/documents/docs/invoices.md")
    assert "a sync brings it back when its file changes there" in response.json()["warning"]


def test_unknown_versions_and_documents_are_404_with_a_hint(admin: TestClient) -> None:
    for url in (
        "/v1/kb/versions/99",
        "/v1/kb/versions/v99",
        "/v1/kb/documents?version=99",
        "/v1/kb/documents?version=v99",
        "/v1/kb/diff?from=1&to=99",
        "/v1/kb/diff?from=v1&to=v99",
    ):
        response = admin.get(url)
        assert response.status_code == 404 and "v99 does not exist" in response.json()["error"]["message"]
    response = admin.get("/v1/kb/documents/docs/nope.md")
    assert response.status_code == 404 and "docs/nope.md" in response.json()["error"]["message"]
    assert admin.post("/v1/kb/rollback", json={"version": True}).status_code == 422
    for bad in (0, "v0", "vx", "1.5", ""):
        response = admin.post("/v1/kb/rollback", json={"version": bad})
        assert response.status_code in (400, 422), (bad, response.text)
        message = response.json()["error"]["message"]
        assert "write it as 3 or v3" in message or "start at v1" in message, response.text
    response = admin.get("/v1/kb/search", params={"q": "退货", "version": "latest"})
    assert response.status_code == 400 and "write it as 3 or v3" in response.json()["error"]["message"]


def test_versions_are_taken_as_v1_or_1(admin: TestClient) -> None:
    head = admin.get("/v1/kb/versions").json()["head"]
    assert admin.get(f"/v1/kb/versions/v{head}").json()["number"] == head
    assert admin.get("/v1/kb/documents", params={"version": f"v{head}"}).json()["version"] == head
    assert admin.get("/v1/kb/search", params={"q": "退货", "version": f"v{head}"}).status_code == 200
    assert admin.get("/v1/kb/export", params={"version": f"V{head}"}).status_code == 200
    assert admin.get("/v1/kb/conflicts", params={"version": f"v{head}", "semantic": False}).status_code == 200
    doc_id = "manuals/新.md"
    upload(admin, ("new.md", "# 新\n\n新的说明。\n".encode(), "text/markdown"), doc_id=doc_id)
    diff = admin.get("/v1/kb/diff", params={"from": f"v{head}", "to": f"v{head + 1}"}).json()
    assert diff["added"] == [doc_id]
    rollback = admin.post("/v1/kb/rollback", json={"version": f"v{head}"})
    assert rollback.status_code == 200 and rollback.json()["version"]["message"] == f"rollback to v{head}"


# ---------------------------------------------------------------------------------------- checks


def test_the_conflicts_endpoint_reports_two_contradictory_faqs(admin: TestClient) -> None:
    upload(
        admin,
        (
            "发票甲.csv",
            "问题,答案\n可以开专票吗？,可以开增值税专用发票，下单时填写税号。\n".encode(),
            "text/csv",
        ),
        ("发票乙.csv", "问题,答案\n可以开专票吗,抱歉，我们只开普通发票，不开专票。\n".encode(), "text/csv"),
    )
    found = admin.get("/v1/kb/conflicts", params={"semantic": "false"}).json()
    assert found["conflicts"] == 1
    [conflict] = [c for c in found["data"] if c["kind"] == "conflict"]
    assert {conflict["entry_a"]["doc_id"], conflict["entry_b"]["doc_id"]} == {
        "uploads/发票甲.csv",
        "uploads/发票乙.csv",
    }
    assert "different answers" in conflict["reason"]
    # neither answer is served verbatim while they disagree
    reply = ask(admin, new_conversation(admin), "可以开专票吗？")
    assert reply["answer_kind"] != "faq"


# ---------------------------------------------------------------------------------------- export/import


def test_an_export_imported_into_a_fresh_app_has_the_same_documents(
    admin: TestClient, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    upload(
        admin,
        ("以旧换新.md", TRADE_IN.encode(), "text/markdown"),
        ("退货运费.pdf", make_pdf(RETURNS_PDF), "application/pdf"),
    )
    admin.delete("/v1/kb/documents/docs/shipping_en.md")
    exported = admin.get("/v1/kb/export")
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
    number = head(admin)
    assert f'filename="kefu-kb-v{number}.zip"' in exported.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(exported.content)).namelist()
    assert "kb.json" in names and "documents/uploads/以旧换新.md.json" in names
    hashes = {d: doc["content_hash"] for d, doc in documents(admin).items()}
    assert "uploads/退货运费.pdf" in hashes and "docs/shipping_en.md" not in hashes

    fresh = make_settings(kb_dir=MINI_KB, admin_token=TOKEN, data_dir=tmp_path / "fresh")
    with admin_app(fresh, ScriptedModel()) as other:
        assert "docs/shipping_en.md" in documents(other)
        response = other.post(
            "/v1/kb/import", files={"file": ("kb.zip", exported.content, "application/zip")}
        )
        assert response.status_code == 200, response.text
        assert response.json()["change"]["deleted"] == ["docs/shipping_en.md"]
        assert {d: doc["content_hash"] for d, doc in documents(other).items()} == hashes
        found = other.get("/v1/kb/search", params={"q": "旧手机最多能抵扣多少钱？"}).json()
        assert found["hits"][0]["doc_id"] == "uploads/以旧换新.md"  # served at once
        before = head(other)
        response = other.post("/v1/kb/import", files={"file": ("kb.zip", b"not a zip", "application/zip")})
        assert response.status_code == 400 and "not a zip file" in response.text
        response = other.post("/v1/kb/import", files={"file": ("evil.zip", evil_zip(), "application/zip")})
        assert response.status_code == 400 and "unsafe path" in response.text
        assert head(other) == before


def evil_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("documents/a.json", '{"doc_id": "a", "kind": "doc", "text": "a"}')
        archive.writestr("../../outside.json", "{}")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- sources


def test_a_registered_folder_is_synced_kept_while_unreadable_and_removed(
    admin: TestClient, tmp_path: Path
) -> None:
    folder = tmp_path / "手册"
    folder.mkdir()
    (folder / "保修.md").write_text("# 保修\n\n电器保修一年。\n", encoding="utf-8")
    (folder / "发货.md").write_text("# 发货\n\n下午四点前下单当天发货。\n", encoding="utf-8")
    response = admin.post(
        "/v1/kb/sources", json={"kind": "folder", "location": str(folder), "interval_seconds": 0}
    )
    assert response.status_code == 201, response.text
    source, report = response.json()["source"], response.json()["report"]
    assert report["change"]["added"] == ["保修.md", "发货.md"] and response.json()["serving"]
    assert source["interval_seconds"] == 0 and source["location"] == str(folder.resolve())
    listed = admin.get("/v1/kb/sources").json()["data"]
    assert [s["documents"] for s in listed if s["id"] == source["id"]] == [2]

    (folder / "保修.md").write_text("# 保修\n\n电器保修两年。\n", encoding="utf-8")
    synced = admin.post(f"/v1/kb/sources/{source['id']}/sync").json()
    assert synced["change"]["updated"] == ["保修.md"] and synced["version"] == head(admin)

    moved = tmp_path / "elsewhere"
    shutil.move(folder, moved)  # unmounted: nothing is retired
    synced = admin.post(f"/v1/kb/sources/{source['id']}/sync").json()
    assert synced["version"] is None and "is not a folder" in synced["errors"][0]["error"]
    assert {"保修.md", "发货.md"} <= set(documents(admin))
    shutil.move(moved, folder)
    (folder / "发货.md").unlink()
    synced = admin.post(f"/v1/kb/sources/{source['id']}/sync").json()
    assert synced["change"]["deleted"] == ["发货.md"]

    removed = admin.delete(f"/v1/kb/sources/{source['id']}", params={"retire": "true"}).json()
    assert removed["change"]["deleted"] == ["保修.md"] and "保修.md" not in documents(admin)
    assert source["id"] not in {s["id"] for s in admin.get("/v1/kb/sources").json()["data"]}
    assert admin.post(f"/v1/kb/sources/{source['id']}/sync").status_code == 404

    response = admin.post("/v1/kb/sources", json={"kind": "folder", "location": str(tmp_path / "none")})
    assert response.status_code == 400 and "is not a folder on the server" in response.text
    response = admin.post("/v1/kb/sources", json={"kind": "urls", "urls": ["ftp://example.com/a"]})
    assert response.status_code == 400 and "is not an http(s) URL" in response.text


def test_url_sources_cannot_reach_the_servers_own_network_unless_allowed(
    make_settings: Callable[..., Settings], model: ScriptedModel
) -> None:
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    from conftest import live_server

    site = FastAPI()

    @site.get("/help/returns")
    async def returns_page() -> HTMLResponse:
        return HTMLResponse(
            "<html><head><title>退货</title></head><body><main><h1>退货</h1><p>签收后七天内可退。</p></main></body></html>"
        )

    with live_server(site) as base:
        url = f"{base}/help/returns"
        with admin_app(make_settings(kb_dir=MINI_KB, admin_token=TOKEN), model) as closed:
            response = closed.post("/v1/kb/sources", json={"kind": "urls", "urls": [url]})
            assert response.status_code == 400 and "KEFU_KB_ALLOW_PRIVATE_URLS" in response.text
            assert url not in documents(closed)  # nothing was fetched or stored
        settings = make_settings(kb_dir=MINI_KB, admin_token=TOKEN, kb_allow_private_urls=True)
        with admin_app(settings, model) as intranet:
            response = intranet.post("/v1/kb/sources", json={"kind": "urls", "urls": [url]})
            assert response.status_code == 201, response.text
            assert url in documents(intranet)
