"""One contract for every vector index: memory (the reference), FAISS on disk, pgvector.

pgvector runs twice: ``exact=True`` must equal the reference to 1e-5 like the other backends;
``exact=False`` (HNSW, approximate) keeps every other promise, and its recall is measured on its own.
The pgvector cases need KEFU_TEST_POSTGRES_URL (with the extension installed: scripts/install-pgvector.sh);
each test uses namespaces of its own and drops their tables afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text

from kefu.errors import ConfigError, KnowledgeBaseError, StoreUnavailable
from kefu.kb.vectors import FaissIndex, MemoryIndex, PgVectorIndex, VectorIndex, open_vector_index

DIM = 32
TOL = 1e-5
POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
pg = pytest.mark.postgres
EXACT = ["memory", "faiss", pytest.param("pgvector", marks=pg)]
ALL = [*EXACT, pytest.param("pgvector-hnsw", marks=pg)]
PERSISTENT = ["faiss", pytest.param("pgvector", marks=pg), pytest.param("pgvector-hnsw", marks=pg)]

Opener = Callable[..., VectorIndex]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    if not POSTGRES_URL:
        pytest.skip("KEFU_TEST_POSTGRES_URL not set: pgvector contract tests skipped")
    from kefu.storage.engine import make_engine

    engine = make_engine(POSTGRES_URL)
    yield engine
    engine.dispose()


@pytest.fixture
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open_index(namespace="main", dim=DIM)``: a new object on the backend's storage for that namespace
    (the memory backend keeps nothing between objects). Everything opened is closed, and every pgvector
    namespace dropped, after the test."""
    backend: str = request.param
    opened: list[VectorIndex] = []
    engine = request.getfixturevalue("pg_engine") if backend.startswith("pgvector") else None
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def open_(namespace: str = "main", dim: int = DIM) -> VectorIndex:
        index: VectorIndex
        if backend == "memory":
            index = MemoryIndex(dim, namespace)
        elif backend == "faiss":
            index = FaissIndex(tmp_path / "vectors", dim, namespace)
        else:
            assert engine is not None
            index = PgVectorIndex(engine, dim, f"{prefix}_{namespace}", exact=backend == "pgvector")
        opened.append(index)
        return index

    yield open_
    for index in opened:
        index.close()
    if engine is not None:
        with engine.begin() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE tablename LIKE :p"),
                {"p": f"kb_vectors_{prefix}%"},
            ).scalars()
            for table in list(tables):
                conn.execute(text(f'DROP TABLE "{table}"'))


def assert_matches_reference(
    got: list[tuple[str, float]], reference: MemoryIndex, query: np.ndarray, k: int
) -> None:
    """``got`` is a correct top-k: the reference's scores in order (to TOL), each id with its true score,
    any id that differs from the reference's only where scores are within TOL, best first, ties by id."""
    want = reference.search(query, k)
    true = dict(reference.search(query, len(reference)))
    assert len(got) == len(want) == min(k, len(reference))
    assert len({i for i, _ in got}) == len(got)
    for (got_id, got_score), (want_id, want_score) in zip(got, want, strict=True):
        assert got_score == pytest.approx(want_score, abs=TOL)
        assert got_score == pytest.approx(true[got_id], abs=TOL)
        if got_id != want_id:
            assert true[got_id] == pytest.approx(want_score, abs=TOL), (got_id, want_id)
    for (id_a, score_a), (id_b, score_b) in pairwise(got):
        assert score_a > score_b or (score_a == score_b and id_a < id_b)


@pytest.mark.parametrize("k", [1, 5, 50])
@pytest.mark.parametrize("open_index", EXACT, indirect=True)
def test_search_equals_the_reference_after_upserts_replacements_and_deletes(
    open_index: Opener, k: int
) -> None:
    rng = np.random.default_rng(k)
    index, reference = open_index(), MemoryIndex(DIM)
    ids = [f"key-{i:04d}" for i in range(600)]
    vectors = unit(rng, len(ids))
    replaced, deleted = ids[::7], ids[3::11]
    fresh = unit(rng, len(replaced))
    for target in (index, reference):
        for start in range(0, len(ids), 250):
            target.upsert(ids[start : start + 250], vectors[start : start + 250])
        target.upsert(replaced, fresh)
        target.delete(deleted)
    assert len(index) == len(reference) == len(ids) - len(set(deleted))
    assert index.ids() == reference.ids()
    queries = [*unit(rng, 10), vectors[1], fresh[2]]
    for query in queries:
        assert_matches_reference(index.search(query, k), reference, query, k)


def test_memory_index_equals_brute_force() -> None:
    rng = np.random.default_rng(3)
    ids = [f"k{i}" for i in rng.permutation(300)]
    vectors = unit(rng, 300)
    index = MemoryIndex(DIM)
    index.upsert(ids, vectors)
    for query in unit(rng, 5):
        scores = vectors @ query
        want = sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))[:20]
        got = index.search(query, 20)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-6)


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_upsert_replaces_an_existing_id(open_index: Opener) -> None:
    rng = np.random.default_rng(1)
    index = open_index()
    old, new, other = unit(rng, 3)
    index.upsert(["a", "b"], np.stack([old, other]))
    index.upsert(["a"], new[None, :])
    assert len(index) == 2
    assert index.ids() == {"a", "b"}
    hits = dict(index.search(old, 2))
    assert hits["a"] == pytest.approx(float(old @ new), abs=TOL)
    assert index.search(new, 1)[0][0] == "a"
    assert index.search(new, 1)[0][1] == pytest.approx(1.0, abs=TOL)


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_a_repeated_id_in_one_batch_keeps_its_last_vector(open_index: Opener) -> None:
    rng = np.random.default_rng(2)
    index = open_index()
    first, last = unit(rng, 2)
    index.upsert(["a", "a"], np.stack([first, last]))
    assert len(index) == 1
    assert index.search(last, 1)[0] == ("a", pytest.approx(1.0, abs=TOL))


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_delete_removes_and_ignores_unknown_ids(open_index: Opener) -> None:
    rng = np.random.default_rng(4)
    index = open_index()
    vectors = unit(rng, 4)
    index.upsert(["a", "b", "c", "d"], vectors)
    index.delete(["b", "never-added", "b"])
    index.delete([])
    assert index.ids() == {"a", "c", "d"}
    assert len(index) == 3
    assert "b" not in dict(index.search(vectors[1], 10))
    assert len(index.search(vectors[1], 10)) == 3
    index.delete(["a", "c", "d"])
    assert len(index) == 0
    assert index.search(vectors[0], 5) == []


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_empty_index_returns_nothing(open_index: Opener) -> None:
    index = open_index()
    query = unit(np.random.default_rng(5), 1)[0]
    assert index.search(query, 10) == []
    assert index.ids() == set()
    assert len(index) == 0
    index.upsert([], np.zeros((0, DIM), dtype=np.float32))
    assert len(index) == 0


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_equal_scores_are_ordered_by_id_and_k_above_size_returns_all(open_index: Opener) -> None:
    rng = np.random.default_rng(6)
    index = open_index()
    same, others = unit(rng, 1)[0], unit(rng, 3)
    index.upsert(["m", "b", "z", "a"], np.stack([same] * 4))
    index.upsert(["o1", "o2", "o3"], others)
    assert [i for i, _ in index.search(same, 2)] == ["a", "b"]
    assert [i for i, _ in index.search(same, 4)] == ["a", "b", "m", "z"]
    everything = index.search(same, 100)
    assert len(everything) == 7
    assert {i for i, _ in everything[4:]} == {"o1", "o2", "o3"}
    assert index.search(same, 0) == []


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_namespaces_are_isolated(open_index: Opener) -> None:
    rng = np.random.default_rng(7)
    first, second = open_index("first"), open_index("second")
    a, b = unit(rng, 2)
    first.upsert(["x", "only-first"], np.stack([a, b]))
    second.upsert(["x"], b[None, :])
    assert first.ids() == {"x", "only-first"}
    assert second.ids() == {"x"}
    assert second.search(a, 5) == [("x", pytest.approx(float(a @ b), abs=TOL))]
    first.delete(["x"])
    assert second.ids() == {"x"}
    assert len(first) == 1


@pytest.mark.parametrize("open_index", ALL, indirect=True)
def test_wrong_dimensions_and_unnormalised_vectors_are_refused(open_index: Opener) -> None:
    rng = np.random.default_rng(8)
    index = open_index()
    with pytest.raises(KnowledgeBaseError, match=f"holds {DIM}-dimensional vectors"):
        index.upsert(["a"], unit(rng, 1, DIM + 1))
    with pytest.raises(KnowledgeBaseError, match=f"holds {DIM}-dimensional vectors"):
        index.search(unit(rng, 1, DIM * 2)[0], 3)
    with pytest.raises(KnowledgeBaseError, match="not L2-normalised"):
        index.upsert(["a"], 2 * unit(rng, 1))
    with pytest.raises(KnowledgeBaseError, match="2 ids but 1 vectors"):
        index.upsert(["a", "b"], unit(rng, 1))
    assert len(index) == 0


@pytest.mark.parametrize("open_index", PERSISTENT, indirect=True)
def test_a_reopened_index_has_what_was_written(open_index: Opener) -> None:
    rng = np.random.default_rng(9)
    index = open_index()
    ids = [f"k{i}" for i in range(40)]
    vectors = unit(rng, 40)
    index.upsert(ids, vectors)
    index.upsert(["k0"], vectors[1:2])
    index.delete(["k5", "k6"])
    query = unit(rng, 1)[0]
    before = index.search(query, 10)
    index.close()
    reopened = open_index()
    assert reopened.ids() == set(ids) - {"k5", "k6"}
    assert len(reopened) == 38
    assert reopened.search(query, 10) == before
    assert reopened.search(vectors[1], 2) == [
        ("k0", pytest.approx(1.0, abs=TOL)),
        ("k1", pytest.approx(1.0, abs=TOL)),
    ]
    reopened.upsert(["new"], unit(rng, 1))
    assert open_index().ids() == reopened.ids()


@pytest.mark.parametrize("open_index", PERSISTENT, indirect=True)
def test_reopening_with_another_dimension_is_refused(open_index: Opener) -> None:
    open_index().upsert(["a"], unit(np.random.default_rng(10), 1))
    with pytest.raises(KnowledgeBaseError, match=f"holds {DIM}-dimensional vectors.*new namespace"):
        open_index(dim=DIM * 2)


# --- FAISS files -------------------------------------------------------------------------------


def faiss_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_faiss_saves_each_batch_atomically_and_keeps_one_index_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    index = FaissIndex(tmp_path, DIM, "kb")
    index.upsert(["a", "b"], unit(rng, 2))
    first = faiss_files(tmp_path)
    index.upsert(["c"], unit(rng, 1))
    second = faiss_files(tmp_path)
    assert len(first) == len(second) == 2
    assert "kb.ids.json" in second
    assert first != second  # a new index file per save, the old one removed after the commit
    record = json.loads((tmp_path / "kb.ids.json").read_text())
    assert set(record["ids"]) == {"a", "b", "c"}
    assert record["file"] in second


def test_faiss_without_autosave_writes_on_save_or_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    index = FaissIndex(tmp_path, DIM, "kb", autosave=False)
    index.upsert(["a"], unit(rng, 1))
    assert FaissIndex(tmp_path, DIM, "kb").ids() == set()
    index.save()
    assert FaissIndex(tmp_path, DIM, "kb").ids() == {"a"}
    index.upsert(["b"], unit(rng, 1))
    index.close()
    assert FaissIndex(tmp_path, DIM, "kb").ids() == {"a", "b"}


def test_faiss_ignores_what_a_crash_mid_save_leaves(tmp_path: Path) -> None:
    """A crash after the new index file was written but before the commit record was replaced leaves
    an uncommitted .faiss file (and maybe a half-written temp file): the last commit is loaded."""
    rng = np.random.default_rng(13)
    index = FaissIndex(tmp_path, DIM, "kb")
    index.upsert(["a", "b"], unit(rng, 2))
    (tmp_path / "kb.0123456789abcdef.faiss").write_bytes(b"half a new index")
    (tmp_path / "kb.ids.json.999.tmp").write_text('{"format": 1, "ids": {"a"')
    reopened = FaissIndex(tmp_path, DIM, "kb")
    assert reopened.ids() == {"a", "b"}
    reopened.upsert(["c"], unit(rng, 1))
    assert len(faiss_files(tmp_path)) == 2  # the leftovers are removed by the next save
    assert FaissIndex(tmp_path, DIM, "kb").ids() == {"a", "b", "c"}


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage-record", "missing-index", "not-faiss"])
def test_a_corrupt_faiss_index_is_reported_with_what_to_delete(tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(14)
    FaissIndex(tmp_path, DIM, "kb").upsert([f"k{i}" for i in range(50)], unit(rng, 50))
    record = tmp_path / "kb.ids.json"
    index_file = tmp_path / json.loads(record.read_text())["file"]
    data = index_file.read_bytes()
    if damage == "truncate":
        index_file.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        index_file.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    elif damage == "garbage-record":
        record.write_text("{not json")
    elif damage == "not-faiss":  # a file FAISS itself refuses, with a matching checksum
        garbage = b"not a faiss index" * 10
        index_file.write_bytes(garbage)
        fields = json.loads(record.read_text())
        record.write_text(json.dumps({**fields, "sha256": hashlib.sha256(garbage).hexdigest()}))
    else:
        index_file.unlink()
    with pytest.raises(KnowledgeBaseError, match=r"unreadable .*delete .*kb\.ids\.json.*rebuild") as caught:
        FaissIndex(tmp_path, DIM, "kb")
    assert str(tmp_path) in caught.value.message
    for path in tmp_path.glob("kb.*"):
        path.unlink()
    assert len(FaissIndex(tmp_path, DIM, "kb")) == 0


def test_faiss_namespaces_get_distinct_safe_file_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    FaissIndex(tmp_path, DIM, "KB v1/中文").upsert(["a"], unit(rng, 1))
    FaissIndex(tmp_path, DIM, "kb_v1__").upsert(["b"], unit(rng, 1))
    assert all(name.isascii() and "/" not in name for name in faiss_files(tmp_path))
    assert FaissIndex(tmp_path, DIM, "KB v1/中文").ids() == {"a"}
    assert FaissIndex(tmp_path, DIM, "kb_v1__").ids() == {"b"}


# --- pgvector ----------------------------------------------------------------------------------

# recall@10 of the HNSW graph (m=16, ef_construction=64) on this test's data: 3,000 random 384-d
# vectors, 100 random queries. Measured: 0.30 at ef_search=10, 0.65 at 40, 0.90 at 100, 0.98 at 200
# (the graph's levels are random, so a run varies by about ±0.01). Random high-dimensional vectors
# are HNSW's hard case; benchmarks/vector_bench.py --real measures real embeddings.
HNSW_RECALL_FLOOR = {100: 0.85, 200: 0.95}


@pg
def test_hnsw_recall_and_exact_search_over_the_same_table(pg_engine: Engine) -> None:
    rng = np.random.default_rng(16)
    dim, n = 384, 3000
    vectors, queries = unit(rng, n, dim), unit(rng, 100, dim)
    ids = [f"k{i}" for i in range(n)]
    reference = MemoryIndex(dim)
    reference.upsert(ids, vectors)
    namespace = f"t{uuid.uuid4().hex[:10]}_recall"
    exact = PgVectorIndex(pg_engine, dim, namespace, exact=True)

    def recall(index: PgVectorIndex) -> float:
        found = [
            len({i for i, _ in index.search(q, 10)} & {i for i, _ in reference.search(q, 10)})
            for q in queries
        ]
        return sum(found) / (10 * len(queries))

    try:
        exact.upsert(ids, vectors)
        graph = PgVectorIndex(pg_engine, dim, namespace, exact=False)  # builds the graph over the rows
        for ef_search, floor in HNSW_RECALL_FLOOR.items():
            graph.ef_search = ef_search
            assert recall(graph) >= floor
        graph.ef_search = 10
        assert recall(graph) < 0.5  # few candidates: the graph (not a scan) answers, and misses neighbours …
        assert recall(exact) == 1.0  # … which the exact search over the same table, graph and all, finds
        for q in queries[:20]:
            assert_matches_reference(exact.search(q, 10), reference, q, 10)
    finally:
        exact.drop()


def test_pgvector_needs_a_postgresql_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a postgresql:// database URL"):
        PgVectorIndex(f"sqlite:///{tmp_path / 'kefu.db'}", DIM, "kb")


def test_pgvector_reports_an_unreachable_server() -> None:
    with pytest.raises(StoreUnavailable, match="cannot reach the database"):
        PgVectorIndex("postgresql://kefu@127.0.0.1:1/kefu", DIM, "kb")


# --- the factory -------------------------------------------------------------------------------


def test_open_vector_index_builds_each_backend(tmp_path: Path) -> None:
    rng = np.random.default_rng(18)
    memory = open_vector_index("memory", dim=DIM, namespace="kb")
    faiss = open_vector_index("faiss", dim=DIM, namespace="kb", directory=tmp_path)
    assert (memory.name, type(memory)) == ("memory", MemoryIndex)
    assert (faiss.name, type(faiss), faiss.dim) == ("faiss", FaissIndex, DIM)
    faiss.upsert(["a"], unit(rng, 1))
    assert open_vector_index("faiss", dim=DIM, namespace="kb", directory=tmp_path).ids() == {"a"}
    with pytest.raises(
        ConfigError, match="unknown vector index backend 'annoy'; use one of memory, faiss, pgvector"
    ):
        open_vector_index("annoy", dim=DIM, namespace="kb")
    with pytest.raises(ConfigError, match="needs a folder"):
        open_vector_index("faiss", dim=DIM, namespace="kb")
    with pytest.raises(ConfigError, match="KEFU_DATABASE_URL"):
        open_vector_index("pgvector", dim=DIM, namespace="kb")


@pg
def test_open_vector_index_pgvector_from_a_url(pg_engine: Engine) -> None:
    assert POSTGRES_URL  # pg_engine skipped the test when it is not set
    namespace = f"t{uuid.uuid4().hex[:10]}_url"
    index = open_vector_index("pgvector", dim=DIM, namespace=namespace, database_url=POSTGRES_URL)
    try:
        assert (index.name, index.dim) == ("pgvector", DIM)
        index.upsert(["a"], unit(np.random.default_rng(19), 1))
        assert index.ids() == {"a"}
    finally:
        assert isinstance(index, PgVectorIndex)
        index.drop()
        index.close()
