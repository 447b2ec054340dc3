"""A real Celery worker (``celery -A kefu.worker worker``) on the Redis test broker syncs a registered
folder source into its SQLite database: the tasks a deployment with KEFU_CELERY_BROKER_URL runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from kefu.kb.sources import SourceStore
from kefu.kb.store import KbStore
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate

pytestmark = pytest.mark.redis
CELERY = Path(sys.executable).parent / "celery"


@pytest.fixture
def broker_url() -> str:
    url = os.environ.get("KEFU_TEST_REDIS_URL")
    if not url:
        pytest.skip("KEFU_TEST_REDIS_URL not set: the Celery worker test needs Redis")
    base, _, _db = url.rpartition("/")
    return f"{base}/14"  # a database of its own, next to the one the other Redis tests use


@pytest.fixture
def worker(broker_url: str, tmp_path: Path, shared_cache_dir: Path) -> Iterator[dict[str, Any]]:
    """A Celery worker subprocess on a queue of its own, writing to a SQLite file in tmp_path."""
    queue = f"kefu-test-{uuid4().hex[:10]}"
    database_url = f"sqlite:///{tmp_path / 'kefu.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env |= {
        "KEFU_ENVIRONMENT": "test",
        "KEFU_DATABASE_URL": database_url,
        "KEFU_DATA_DIR": str(tmp_path / "data"),
        "KEFU_CACHE_DIR": str(shared_cache_dir),
        "KEFU_CELERY_BROKER_URL": broker_url,
        "HF_HUB_OFFLINE": "1",
    }
    log_path = tmp_path / "worker.log"
    command = [str(CELERY), "-A", "kefu.worker", "worker", "--pool=solo", "-Q", queue, "-n", f"{queue}@%h"]
    command += ["--loglevel=info", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield {"queue": queue, "database_url": database_url, "process": process, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _clean_redis(broker_url, queue)


def _clean_redis(url: str, queue: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = [*client.scan_iter(f"*{queue}*"), *client.scan_iter("celery-task-meta-*")]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run_task(broker_url: str, worker: dict[str, Any], name: str, *args: object) -> Any:
    """Send ``name`` to the worker's queue and wait for its result (failing fast if the worker died)."""
    from celery import Celery

    client = Celery("kefu-test-client", broker=broker_url, backend=broker_url, set_as_current=False)
    try:
        result = client.send_task(name, args=list(args), queue=worker["queue"])
        deadline = time.monotonic() + 180
        while not result.ready():
            process: subprocess.Popen[bytes] = worker["process"]
            if process.poll() is not None or time.monotonic() > deadline:
                log = Path(worker["log"]).read_text(errors="replace")[-3000:]
                raise AssertionError(f"no result from the Celery worker (exit {process.poll()}):\n{log}")
            time.sleep(0.1)
        value = result.get(timeout=10)
        result.forget()
        return value
    finally:
        client.close()


def test_a_celery_worker_syncs_a_registered_folder_into_the_database(
    broker_url: str, worker: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "手册"
    folder.mkdir()
    (folder / "退货.md").write_text("# 退货\n\n七天无理由退货。\n", encoding="utf-8")
    (folder / "发货.md").write_text("# 发货\n\n下午四点前付款当天发货。\n", encoding="utf-8")
    engine = make_engine(worker["database_url"])
    try:
        migrate(engine)
        source = SourceStore(engine).add("folder", str(folder), 0)  # as `kefu kb ingest` registers it
        store = KbStore(engine)
        assert store.head() is None

        report = run_task(broker_url, worker, "kefu.kb.sync_source", source.id)
        assert report["version"] == 1 and report["change"]["added"] == ["发货.md", "退货.md"]
        assert report["source"]["id"] == source.id and report["errors"] == []
        head = store.head()
        assert head is not None and head.number == 1 and head.author == "celery"

        (folder / "退货.md").write_text("# 退货\n\n十五天无理由退货。\n", encoding="utf-8")
        report = run_task(broker_url, worker, "kefu.kb.sync_source", source.id)
        assert report["version"] == 2 and report["change"]["updated"] == ["退货.md"]
        assert "十五天" in store.document("退货.md").text
        assert run_task(broker_url, worker, "kefu.kb.sync_due") == []  # interval 0: only by hand

        (folder / "保修.md").write_text("# 保修\n\n电器保修一年。\n", encoding="utf-8")
        report = run_task(broker_url, worker, "kefu.kb.ingest", [str(folder / "保修.md")], False)
        assert report["version"] == 3 and report["change"]["added"] == ["保修.md"]
        assert [v.number for v in store.history()] == [3, 2, 1]
    finally:
        engine.dispose()
