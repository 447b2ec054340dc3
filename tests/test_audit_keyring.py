"""Keyring: parsing KEFU_AUDIT_KEYS, errors that say how to make a key, the development key file."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from kefu.audit import Keyring, load_keyring
from kefu.errors import ConfigError

GENERATE = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_first_key_is_active_and_all_keys_are_kept() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)

    ring = Keyring.from_env_value(f" k2:{b64(k2)} , k1:{b64(k1)} ")

    assert ring.active_id == "k2"
    assert ring.active_key == k2
    assert ring.get("k1") == k1
    assert ring.get("k3") is None
    assert ring.key_ids == ["k2", "k1"]
    assert Keyring.from_env_value(ring.to_env_value()).key_ids == ["k2", "k1"]


def test_repr_never_shows_key_bytes() -> None:
    ring = Keyring.generate("k1")
    assert b64(ring.active_key) not in repr(ring)
    assert repr(ring) == "Keyring(active_id='k1', key_ids=['k1'])"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "no key is set"),
        (" , ", "no key is set"),
        (b64(os.urandom(32)), "without a key id"),
        ("k1:not base64!!", "'k1' is not valid base64"),
        (f"k1:{b64(os.urandom(16))}", "'k1' is 16 bytes; AES-256 needs exactly 32"),
        (f"k1:{b64(os.urandom(32))},k1:{b64(os.urandom(32))}", "'k1' appears twice"),
        (f"bad id:{b64(os.urandom(32))}", "must be 1-64 letters"),
    ],
)
def test_malformed_keys_name_the_variable_and_how_to_generate_one(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        Keyring.from_env_value(value)

    assert info.value.message.startswith("KEFU_AUDIT_KEYS: ")
    assert problem in info.value.message
    assert GENERATE in info.value.message


def test_rotation_puts_the_new_key_first_and_keeps_the_old_ones() -> None:
    ring = Keyring.generate("k1")

    rotated = ring.with_new_active("k2")

    assert rotated.active_id == "k2"
    assert rotated.key_ids == ["k2", "k1"]
    assert rotated.get("k1") == ring.active_key


def test_production_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEFU_AUDIT_KEYS: it is not set"):
        load_keyring(environment="production", data_dir=tmp_path, env_value="")
    assert not (tmp_path / "audit-dev.key").exists()


def test_explicit_keys_win_in_every_environment(tmp_path: Path) -> None:
    key = os.urandom(32)

    ring = load_keyring(environment="production", data_dir=tmp_path, env_value=f"prod1:{b64(key)}")

    assert (ring.active_id, ring.active_key) == ("prod1", key)


def test_development_key_is_created_once_private_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    with caplog.at_level(logging.WARNING, logger="kefu.audit.keyring"):
        first = load_keyring(environment="development", data_dir=data_dir, env_value="")
        second = load_keyring(environment="test", data_dir=data_dir, env_value="")

    key_file = data_dir / "audit-dev.key"
    assert first.active_id == "dev"
    assert first.active_key == second.active_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    warning = caplog.records[0].getMessage()
    assert "DEVELOPMENT key" in warning
    assert str(key_file) in warning
    assert "Never use this in production" in warning
