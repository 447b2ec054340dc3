"""OpenAIEmbedder against a real HTTP server speaking the OpenAI embeddings protocol."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conftest import live_server
from kefu.errors import ModelUnavailable
from kefu.kb.embeddings import EmbeddingCache, OpenAIEmbedder, embed_cached


def embeddings_app(received: list[dict], dim: int = 8, status: int = 200) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        received.append({"body": body, "auth": request.headers.get("authorization")})
        if status != 200:
            return JSONResponse({"error": {"message": "model not found"}}, status_code=status)
        data = []
        for i, text in enumerate(body["input"]):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            vector = np.random.default_rng(seed).normal(size=dim) * 3.0  # deliberately not normalised
            data.append({"object": "embedding", "index": i, "embedding": vector.tolist()})
        data.reverse()  # servers may answer out of order: the index field decides
        return JSONResponse({"object": "list", "data": data, "model": body["model"]})

    return app


def test_vectors_are_normalised_ordered_and_batched() -> None:
    received: list[dict] = []
    with live_server(embeddings_app(received)) as url:
        embedder = OpenAIEmbedder(f"{url}/v1", "bge-m3", api_key="sk-test", batch=2)
        vectors = embedder.embed_passages(["退货政策", "运费", "发票"])
        again = embedder.embed_queries(["运费"])
        embedder.close()
    assert vectors.shape == (3, 8) and embedder.dim == 8
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[1], again[0], atol=1e-6)  # same text, same vector, whatever the order
    assert [r["body"]["input"] for r in received] == [["退货政策", "运费"], ["发票"], ["运费"]]
    assert {r["body"]["model"] for r in received} == {"bge-m3"}
    assert {r["auth"] for r in received} == {"Bearer sk-test"}


def test_cache_means_a_text_is_sent_once(tmp_path) -> None:
    received: list[dict] = []
    with live_server(embeddings_app(received)) as url:
        embedder = OpenAIEmbedder(f"{url}/v1", "m", dim=8)
        cache = EmbeddingCache(tmp_path / "e.sqlite")
        first = embed_cached(embedder, cache, ["a", "b"], "passage")
        second = embed_cached(embedder, cache, ["a", "b", "c"], "passage")
        embedder.close()
    assert np.allclose(first, second[:2])
    assert [r["body"]["input"] for r in received] == [["a", "b"], ["c"]]


def test_server_error_and_wrong_dimension_are_clear() -> None:
    with live_server(embeddings_app([], status=404)) as url:
        embedder = OpenAIEmbedder(f"{url}/v1", "missing")
        with pytest.raises(ModelUnavailable, match=r"answered 404.*KEFU_EMBEDDING_MODEL"):
            embedder.embed_queries(["x"])
        embedder.close()
    with live_server(embeddings_app([], dim=8)) as url:
        embedder = OpenAIEmbedder(f"{url}/v1", "m", dim=16)
        with pytest.raises(ModelUnavailable, match="8-dimensional vectors, expected 16"):
            embedder.embed_queries(["x"])
        embedder.close()


def test_unreachable_endpoint_says_what_to_check() -> None:
    from conftest import free_port

    embedder = OpenAIEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m", timeout=2)
    with pytest.raises(ModelUnavailable, match=r"unreachable.*KEFU_EMBEDDING_URL"):
        embedder.embed_passages(["x"])
    embedder.close()
