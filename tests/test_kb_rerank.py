"""The optional rerank step against a real HTTP server speaking the /rerank protocol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conftest import free_port, live_server
from kefu.config import Settings
from kefu.kb.rerank import HttpReranker
from kefu.kb.service import KnowledgeService
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate


def rerank_app(received: list[dict], prefer: str, status: int = 200) -> FastAPI:
    """Scores a document 1.0 when it contains ``prefer``, else 0.1 (a stand-in cross-encoder)."""
    app = FastAPI()

    @app.post("/v1/rerank")
    async def rerank(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        if status != 200:
            return JSONResponse({"error": "overloaded"}, status_code=status)
        results = [
            {"index": i, "relevance_score": 1.0 if prefer in doc else 0.1}
            for i, doc in enumerate(body["documents"])
        ]
        return JSONResponse({"results": results})

    return app


def write_kb(root: Path) -> Path:
    root.mkdir()
    (root / "shipping.md").write_text("# 配送\n\n默认使用中通快递，江浙沪一到两天送达。\n", encoding="utf-8")
    (root / "remote.md").write_text(
        "# 偏远地区\n\n新疆西藏等偏远地区使用EMS，五到八天送达。\n", encoding="utf-8"
    )
    (root / "returns.md").write_text("# 退货\n\n签收后七天内可以无理由退货。\n", encoding="utf-8")
    return root


def open_service(settings: Settings) -> KnowledgeService:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    return KnowledgeService.open(settings, engine)


def test_the_reranker_reorders_candidates_but_not_the_decision(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = write_kb(tmp_path / "kb")
    plain = open_service(make_settings(data_dir=tmp_path / "plain"))
    plain.ingest([str(folder)])
    before = plain.refresh().search("快递多久能送到", 3)
    received: list[dict] = []
    with live_server(rerank_app(received, prefer="EMS")) as url:
        settings = make_settings(
            data_dir=tmp_path / "ranked", rerank_url=f"{url}/v1", rerank_model="bge-reranker"
        )
        ranked = open_service(settings)
        ranked.ingest([str(folder)])
        after = ranked.refresh().search("快递多久能送到", 3)
        ranked.close()
    plain.close()
    assert before.hits[0].chunk.doc_id != "remote.md"  # fused order: the shipping document first
    assert after.hits[0].chunk.doc_id == "remote.md"  # the reranker's choice
    assert (after.decision, after.confidence) == (before.decision, before.confidence)
    assert received[0]["query"] == "快递多久能送到" and received[0]["model"] == "bge-reranker"
    assert sorted(received[0]["documents"]) == sorted(c.text for c in ranked.current().chunks)


def test_a_failing_reranker_falls_back_to_the_fused_order() -> None:
    with live_server(rerank_app([], prefer="x", status=503)) as url:
        reranker = HttpReranker(f"{url}/v1", "m")
        assert reranker.rerank("q", ["a", "b"]) is None
        reranker.close()
    unreachable = HttpReranker(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=1)
    assert unreachable.rerank("q", ["a"]) is None
    unreachable.close()
