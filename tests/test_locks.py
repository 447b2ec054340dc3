"""A conversation's turns never interleave: in one process (LocalLocks) and across replicas sharing one
real Redis (RedisLocks) — including a replica that died holding the lock, and Redis being down."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from conftest import MINI_KB, free_port
from kefu.config import Settings
from kefu.dialog.locks import ConversationLocks, LocalLocks, RedisLocks
from kefu.llm.testing import ScriptedModel

REDIS_URL = os.environ.get("KEFU_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="KEFU_TEST_REDIS_URL not set: Redis lock tests skipped"
)


async def two_turns(first: ConversationLocks, second: ConversationLocks, conversation: str) -> list[str]:
    """Two turns of one conversation, one through each lock set; what each did, in order."""
    order: list[str] = []

    async def turn(name: str, locks: ConversationLocks) -> None:
        async with locks.hold(conversation):
            order.append(f"{name} in")
            await asyncio.sleep(0.2)  # long enough for the other turn to try to come in
            order.append(f"{name} out")

    await asyncio.gather(turn("a", first), turn("b", second))
    return order


def serial(order: list[str]) -> bool:
    return order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_local_locks_serialise_one_conversation_and_not_two() -> None:
    locks = LocalLocks()
    assert serial(asyncio.run(two_turns(locks, locks, "c1")))

    async def two_conversations() -> list[str]:
        order: list[str] = []
        entered = asyncio.Event()

        async def first() -> None:
            async with locks.hold("c1"):
                order.append("c1 in")
                entered.set()
                await asyncio.sleep(0.2)
                order.append("c1 out")

        async def second() -> None:
            await entered.wait()
            async with locks.hold("c2"):
                order.append("c2 in")

        await asyncio.gather(first(), second())
        return order

    assert asyncio.run(two_conversations()) == ["c1 in", "c2 in", "c1 out"]


@needs_redis
def test_two_replicas_hold_one_redis_lock_per_conversation() -> None:
    assert REDIS_URL
    prefix = f"kefu-test:{uuid.uuid4().hex}:"

    async def scenario() -> tuple[list[str], list[str]]:
        one, two = RedisLocks(REDIS_URL, prefix=prefix), RedisLocks(REDIS_URL, prefix=prefix)
        try:
            same = await two_turns(one, two, "c1")
            # without Redis the two "replicas" would each hold their own lock: the control
            apart = await two_turns(LocalLocks(), LocalLocks(), "c1")
            return same, apart
        finally:
            await one.aclose()
            await two.aclose()

    same, apart = asyncio.run(scenario())
    assert serial(same), same
    assert not serial(apart), apart  # the control shows the test can fail


@needs_redis
def test_two_replicas_answering_one_conversation_never_interleave(
    make_settings: Callable[..., Settings],
) -> None:
    """Two runtimes on one database and one Redis are two replicas; the second turn sees the first's
    stored reply and session (the model it asked received the first exchange as history)."""
    from kefu.runtime import build_runtime

    assert REDIS_URL
    settings = make_settings(kb_dir=MINI_KB, redis_url=REDIS_URL)
    questions = ["你们发什么快递？多久能到？", "增值税专用发票需要提供什么资料？"]

    async def scenario() -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
        models = [ScriptedModel(default="好的，已为您查到 [1]。", delay=0.3) for _ in range(2)]
        replicas = [await build_runtime(settings, model=model) for model in models]
        try:
            assert all(isinstance(r.assistant.locks, RedisLocks) for r in replicas)
            conversation = (await replicas[0].assistant.start_conversation("web")).id

            async def turn(replica: int) -> None:
                async for _ in replicas[replica].assistant.answer(conversation, questions[replica]):
                    pass

            await asyncio.gather(turn(0), turn(1))
            stored = replicas[0].stores.conversations.list_messages(conversation)
            received = [
                [(m.role, m.content) for m in call.messages[1:]] for model in models for call in model.history
            ]
            return [(m.role, m.content) for m in stored], received
        finally:
            for replica in replicas:
                await replica.aclose()

    stored, received = asyncio.run(scenario())
    assert [role for role, _ in stored] == ["user", "assistant", "user", "assistant"], stored
    first_question, second_question = stored[0][1], stored[2][1]
    assert {first_question, second_question} == set(questions)
    assert len(received) == 2  # both turns asked the model: one without history, one with
    later = max(received, key=len)
    assert later[0] == ("user", first_question) and later[-1][1].startswith(second_question), later


CRASHING_HOLDER = """
import asyncio, os, sys
from kefu.dialog.locks import RedisLocks

async def main():
    locks = RedisLocks(sys.argv[1], prefix=sys.argv[2], ttl=float(sys.argv[3]))
    async with locks.hold("c1"):
        print("held", flush=True)
        os._exit(0)  # the replica dies mid-turn: no release

asyncio.run(main())
"""


@needs_redis
def test_a_lock_left_by_a_replica_that_died_expires_after_its_ttl() -> None:
    import redis

    assert REDIS_URL
    prefix = f"kefu-test:{uuid.uuid4().hex}:"
    done = subprocess.run(
        [sys.executable, "-c", CRASHING_HOLDER, REDIS_URL, prefix, "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "held", done.stderr
    with redis.Redis.from_url(REDIS_URL) as client:
        left = client.get(prefix + "c1")
        assert left is not None  # the dead replica's lock is still there…

        async def next_turn() -> bytes | None:
            locks = RedisLocks(REDIS_URL, prefix=prefix, ttl=3)
            try:
                async with locks.hold("c1"):
                    return client.get(prefix + "c1")
            finally:
                await locks.aclose()

        mine = asyncio.run(asyncio.wait_for(next_turn(), timeout=30))  # a hang guard, not a speed check
        assert mine is not None and mine != left  # …until it expired and the next turn took it
        assert client.get(prefix + "c1") is None  # released by its holder


@needs_redis
def test_a_long_turn_keeps_its_lock_by_renewing_it() -> None:
    import redis

    assert REDIS_URL
    prefix = f"kefu-test:{uuid.uuid4().hex}:"

    async def scenario() -> list[bool]:
        holder, other = (
            RedisLocks(REDIS_URL, prefix=prefix, ttl=1),
            RedisLocks(REDIS_URL, prefix=prefix, ttl=1),
        )
        seen = []
        try:
            async with holder.hold("c1"):
                waiting = asyncio.create_task(_enter(other, "c1"))
                for _ in range(5):  # 2.5 s: more than twice the TTL
                    await asyncio.sleep(0.5)
                    with redis.Redis.from_url(REDIS_URL) as client:
                        seen.append(client.get(prefix + "c1") is not None)
                    seen.append(not waiting.done())
            await asyncio.wait_for(waiting, timeout=30)
        finally:
            await holder.aclose()
            await other.aclose()
        return seen

    assert all(asyncio.run(scenario()))


async def _enter(locks: RedisLocks, conversation: str) -> None:
    async with locks.hold(conversation):
        pass


def test_redis_down_serialises_in_process_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there

    async def scenario() -> list[str]:
        locks = RedisLocks(url, retry_seconds=0)  # tries Redis again on every turn
        try:
            return await two_turns(locks, locks, "c1") + await two_turns(locks, locks, "c2")
        finally:
            await locks.aclose()

    with caplog.at_level(logging.WARNING, logger="kefu.locks"):
        order = asyncio.run(scenario())
    assert serial(order[:4]) and serial(order[4:])  # still one turn at a time, never an outage
    warnings = [r.getMessage() for r in caplog.records if r.name == "kefu.locks"]
    assert len(warnings) == 1 and "KEFU_REDIS_URL" in warnings[0], warnings
