"""A Redis that goes away mid-conversation is not an outage: sessions go to the database meanwhile and
move back when Redis answers again. Against a real redis-server this test starts and stops itself."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.storage.base import SessionState, Turn
from kefu.storage.engine import make_engine
from kefu.storage.migrate import migrate
from kefu.storage.redis_sessions import DivertingSessionStore, RedisSessionStore
from kefu.storage.sessions_sql import SqlSessionStore

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not on PATH (apt-get install redis-server)"
)


class OwnRedis:
    """A redis-server on a free loopback port that the test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "yes", "--dir", str(self.workdir)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not listen on {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def diverting(own_redis: OwnRedis, tmp_path: Path) -> Iterator[DivertingSessionStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'kefu.db'}")
    migrate(engine)
    store = DivertingSessionStore(
        RedisSessionStore(f"redis://127.0.0.1:{own_redis.port}/0", 3600), SqlSessionStore(engine, 3600)
    )
    yield store
    store.close()
    engine.dispose()


def state(turns: int) -> SessionState:
    return SessionState(
        session_id="c-1",
        conversation_id="c-1",
        turns=[Turn(f"问题{n}", f"回答{n}") for n in range(turns)],
        flow='{"flow": "return", "step": "ask_order"}' if turns >= 2 else None,
        updated_at=1000.0 + turns,
    )


def test_a_redis_outage_keeps_the_conversation_and_moves_it_back(
    diverting: DivertingSessionStore, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    diverting.save(state(1))
    own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="kefu.storage"):
        loaded = diverting.load("c-1")  # nothing of it in the database yet: a fresh session, no error
        diverting.save(state(2))
        assert diverting.load("c-1") == state(2)  # read back from the database
        diverting.save(state(3))
    outage = [r.getMessage() for r in caplog.records]
    assert loaded is None
    assert len(outage) == 1, outage  # one line per outage, not one per call
    assert "KEFU_REDIS_URL" in outage[0] and "sessions go to the database" in outage[0]
    with pytest.raises(Exception, match="KEFU_REDIS_URL"):
        diverting.ping()  # /readyz says Redis is down (as "degraded"), the chat goes on

    own_redis.start()  # the append-only file brings back the old copy (1 turn): ours is newer
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kefu.storage"):
        assert diverting.load("c-1") == state(3)
    assert any("moving 1 session(s) back" in r.getMessage() for r in caplog.records)
    assert diverting.redis.load("c-1") == state(3)  # back in Redis
    assert diverting.fallback.load("c-1") is None  # and gone from the database


def test_an_older_database_copy_never_overwrites_a_newer_redis_one(
    diverting: DivertingSessionStore, own_redis: OwnRedis
) -> None:
    own_redis.stop()
    diverting.save(state(1))  # diverted during the outage
    own_redis.start()
    diverting.redis.save(state(4))  # another replica wrote a newer state after Redis came back
    assert diverting.load("c-1") == state(4)
    assert diverting.redis.load("c-1") == state(4)
