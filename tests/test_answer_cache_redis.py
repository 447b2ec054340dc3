"""The answer cache in Redis (KEFU_TEST_REDIS_URL): two replicas share cached answers, with the TTL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from conftest import MINI_KB, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from test_answer_cache import REMOTE, say, stage_of

PREFIX = "kefu:answers:"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("KEFU_TEST_REDIS_URL")
    if not url:
        pytest.skip("KEFU_TEST_REDIS_URL not set: the Redis answer-cache tests are skipped")
    client = redis.Redis.from_url(url)

    def clear() -> None:
        for name in client.scan_iter(f"{PREFIX}*"):
            client.delete(name)

    clear()
    yield url
    clear()
    client.close()


def replica(make_settings: Callable[..., Settings], tmp_path: Path, name: str, url: str) -> Settings:
    """One replica: its own data folder (and SQLite database) on the same pack and the same Redis."""
    return make_settings(kb_dir=MINI_KB, redis_url=url, data_dir=tmp_path / name, answer_cache_threshold=0.98)


def test_two_replicas_share_cached_answers(
    make_settings: Callable[..., Settings], tmp_path: Path, redis_url: str
) -> None:
    model_a, model_b = ScriptedModel(), ScriptedModel()
    with (
        TestClient(create_app(replica(make_settings, tmp_path, "a", redis_url), model=model_a)) as a,
        TestClient(create_app(replica(make_settings, tmp_path, "b", redis_url), model=model_b)) as b,
    ):
        first = say(a, new_conversation(a), REMOTE)
        assert first["cache"] is None and len(model_a.history) == 1

        shared = say(b, new_conversation(b), REMOTE)
        assert shared["cache"] == "exact" and model_b.history == []
        assert shared["message"]["content"] == first["message"]["content"]
        # the entry carried its vector: replica b now matches the question by meaning too
        assert say(b, new_conversation(b), "偏远地区的运费是多少")["cache"] == "semantic"
        assert model_b.history == []
        assert stage_of(b).counts() == {"exact": 1, "semantic": 1, "miss": 0, "stored": 0}

    client = redis.Redis.from_url(redis_url)
    names = list(client.scan_iter(f"{PREFIX}*"))
    assert len(names) == 1
    ttl = client.ttl(names[0])
    assert isinstance(ttl, int) and 0 < ttl <= 24 * 3600  # KEFU_ANSWER_CACHE_TTL_SECONDS
    client.close()
