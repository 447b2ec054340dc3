"""``SqlPiiVault``: placeholders stay the same all conversation long, across turns, store instances and
processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kefu.audit import Keyring
from kefu.config import Settings
from kefu.errors import NotFound
from kefu.safety.pii import redact_pii
from kefu.storage.engine import make_engine
from kefu.storage.factory import build_stores
from kefu.storage.migrate import migrate
from kefu.storage.sql import SqlConversationStore
from kefu.storage.vault import SqlPiiVault

POSTGRES_URL = os.environ.get("KEFU_TEST_POSTGRES_URL")
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def engine(database_url: str, keyring: Keyring) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine, keyring=keyring)
    yield engine
    engine.dispose()


def new_conversation(engine: Engine, keyring: Keyring) -> str:
    return SqlConversationStore(engine, keyring).create_conversation(channel="web").id


def test_the_same_value_keeps_its_placeholder_across_turns(engine: Engine, keyring: Keyring) -> None:
    vault = SqlPiiVault(engine, keyring, new_conversation(engine, keyring))

    turns = [
        redact_pii("我的手机13800138000", vault=vault).text,
        redact_pii("身份证11010519491231002X", vault=vault).text,
        redact_pii("还是这个号 138-0013-8000", vault=vault).text,
        redact_pii("换个号 13912345678", vault=vault).text,
    ]

    assert turns == ["我的手机[手机号_1]", "身份证[身份证号_1]", "还是这个号 [手机号_1]", "换个号 [手机号_2]"]
    assert vault.known() == {
        "[手机号_1]": "13800138000",
        "[身份证号_1]": "11010519491231002X",
        "[手机号_2]": "13912345678",
    }


def test_a_new_vault_object_sees_what_an_earlier_one_stored(engine: Engine, keyring: Keyring) -> None:
    conversation_id = new_conversation(engine, keyring)
    redact_pii("手机13800138000", vault=SqlPiiVault(engine, keyring, conversation_id))

    again = redact_pii("13800138000 和 13912345678", vault=SqlPiiVault(engine, keyring, conversation_id))

    assert again.text == "[手机号_1] 和 [手机号_2]"


def test_conversations_have_their_own_vaults(engine: Engine, keyring: Keyring) -> None:
    first = SqlPiiVault(engine, keyring, new_conversation(engine, keyring))
    second = SqlPiiVault(engine, keyring, new_conversation(engine, keyring))
    redact_pii("手机13800138000", vault=first)

    assert second.known() == {}
    assert redact_pii("手机13912345678", vault=second).text == "手机[手机号_1]"
    assert first.known() == {"[手机号_1]": "13800138000"}
    assert second.known() == {"[手机号_1]": "13912345678"}


def test_the_first_value_under_a_placeholder_wins(engine: Engine, keyring: Keyring) -> None:
    conversation_id = new_conversation(engine, keyring)
    SqlPiiVault(engine, keyring, conversation_id).remember({"[手机号_1]": "13800138000"})
    SqlPiiVault(engine, keyring, conversation_id).remember({"[手机号_1]": "13912345678"})

    assert SqlPiiVault(engine, keyring, conversation_id).known() == {"[手机号_1]": "13800138000"}


def test_an_unknown_conversation_is_not_found(engine: Engine, keyring: Keyring) -> None:
    vault = SqlPiiVault(engine, keyring, "nope")
    assert vault.known() == {}
    with pytest.raises(NotFound, match="'nope'"):
        vault.remember({"[手机号_1]": "13800138000"})
    vault.remember({})  # nothing to store, nothing to refuse


_READER = """
import json, sys
from kefu.audit import Keyring
from kefu.safety.pii import redact_pii
from kefu.storage.engine import make_engine
from kefu.storage.vault import SqlPiiVault

url, keys, conversation_id, text = sys.argv[1:]
engine = make_engine(url)
vault = SqlPiiVault(engine, Keyring.from_env_value(keys), conversation_id)
print(json.dumps({"known": dict(vault.known()), "text": redact_pii(text, vault=vault).text}))
engine.dispose()
"""


def test_another_process_reading_the_same_database_continues_the_numbering(
    engine: Engine, keyring: Keyring, database_url: str
) -> None:
    conversation_id = new_conversation(engine, keyring)
    redact_pii(
        "身份证11010519491231002X，手机13800138000", vault=SqlPiiVault(engine, keyring, conversation_id)
    )
    engine.dispose()

    args = [database_url, keyring.to_env_value(), conversation_id, "手机 13800138000，备用 13912345678"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _READER, *args], capture_output=True, text=True, env=env, check=True
    )

    result = json.loads(done.stdout)
    assert result["known"] == {"[身份证号_1]": "11010519491231002X", "[手机号_1]": "13800138000"}
    assert result["text"] == "手机 [手机号_1]，备用 [手机号_2]"
    assert SqlPiiVault(engine, keyring, conversation_id).known()["[手机号_2]"] == "13912345678"


def test_stores_hand_out_vaults_that_outlive_a_restart(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    stores = build_stores(settings)  # no KEFU_AUDIT_KEYS in tests: the development key in data_dir
    try:
        conversation_id = stores.conversations.create_conversation(channel="web").id
        redact_pii("手机13800138000", vault=stores.vault_for(conversation_id))
    finally:
        stores.close()

    reopened = build_stores(settings)
    try:
        vault = reopened.vault_for(conversation_id)
        assert redact_pii("13800138000 还是它", vault=vault).text == "[手机号_1] 还是它"
    finally:
        reopened.close()
