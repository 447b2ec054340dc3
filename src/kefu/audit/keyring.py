"""AES-256 keys for the audit log, by key id, and which one encrypts new records.

``KEFU_AUDIT_KEYS="k2:<base64 32 bytes>,k1:<base64 32 bytes>"``: the first key is the active one;
the others only decrypt older records. Rotation = put a new key first and keep the old ones.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from kefu.errors import ConfigError

ENV_VAR = "KEFU_AUDIT_KEYS"
KEY_BYTES = 32
DEV_KEY_FILE = "audit-dev.key"
GENERATE_HINT = (
    'generate a key with `python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"` '
    f'and set {ENV_VAR}="k1:<that key>" (first key = active; keep old ones after it when rotating)'
)
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

log = logging.getLogger(__name__)
_warned_dev_keys: set[Path] = set()  # the development-key warning is logged once per process and file


def _config_error(problem: str) -> ConfigError:
    return ConfigError(f"{ENV_VAR}: {problem}; {GENERATE_HINT}")


class Keyring:
    """Key id → 32-byte key, plus the id of the key that encrypts new records. Immutable."""

    def __init__(self, keys: Mapping[str, bytes], active_id: str) -> None:
        for key_id, key in keys.items():
            _check_key(key_id, key)
        if active_id not in keys:
            raise _config_error(f"the active key id {active_id!r} is not among the keys")
        self._keys: Mapping[str, bytes] = MappingProxyType(dict(keys))
        self.active_id = active_id

    def __repr__(self) -> str:  # never print key bytes
        return f"Keyring(active_id={self.active_id!r}, key_ids={list(self._keys)!r})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    @property
    def active_key(self) -> bytes:
        return self._keys[self.active_id]

    def get(self, key_id: str) -> bytes | None:
        return self._keys.get(key_id)

    @classmethod
    def from_env_value(cls, value: str) -> Keyring:
        """Parse ``"k2:<base64>,k1:<base64>"``; the first key is active."""
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise _config_error("no key is set")
        keys: dict[str, bytes] = {}
        for item in items:
            key_id, key = _parse_item(item)
            if key_id in keys:
                raise _config_error(f"the key id {key_id!r} appears twice")
            keys[key_id] = key
        return cls(keys, items[0].partition(":")[0].strip())

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A ring with one fresh random key (tests, first set-up)."""
        return cls({key_id: os.urandom(KEY_BYTES)}, key_id)

    def with_new_active(self, key_id: str, key: bytes | None = None) -> Keyring:
        """Rotation: a ring whose active key is ``key_id`` (fresh if not given), old keys kept."""
        new_key = key if key is not None else os.urandom(KEY_BYTES)
        return Keyring({key_id: new_key, **{k: v for k, v in self._keys.items() if k != key_id}}, key_id)

    def to_env_value(self) -> str:
        """The ``KEFU_AUDIT_KEYS`` string for this ring, active key first."""
        ordered = [self.active_id, *(k for k in self._keys if k != self.active_id)]
        return ",".join(f"{k}:{base64.b64encode(self._keys[k]).decode()}" for k in ordered)


def _parse_item(item: str) -> tuple[str, bytes]:
    key_id, sep, encoded = item.partition(":")
    key_id = key_id.strip()
    if not sep or not key_id:
        raise _config_error(f"expected key_id:base64key, got an item without a key id ({_mask(item)})")
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _config_error(f"the key {key_id!r} is not valid base64") from None
    return key_id, key


def _check_key(key_id: str, key: bytes) -> None:
    if not _KEY_ID.match(key_id):
        raise _config_error(f"the key id {key_id!r} must be 1-64 letters, digits, '_', '.' or '-'")
    if len(key) != KEY_BYTES:
        raise _config_error(f"the key {key_id!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")


def _mask(item: str) -> str:
    return item[:4] + "…" if len(item) > 4 else item


def load_keyring(*, environment: str, data_dir: Path, env_value: str | None = None) -> Keyring:
    """The ring from ``KEFU_AUDIT_KEYS`` (``env_value``, else the environment variable).

    Unset in production → ``ConfigError``. Unset elsewhere → a random development key kept in
    ``<data_dir>/audit-dev.key`` (created on first use, mode 0600), with a loud warning.
    """
    value = env_value if env_value is not None else os.environ.get(ENV_VAR, "")
    if value.strip():
        return Keyring.from_env_value(value)
    if environment == "production":
        raise _config_error("it is not set, and production refuses to write an unencrypted or dev-keyed log")
    return _development_keyring(data_dir)


def _development_keyring(data_dir: Path) -> Keyring:
    path = data_dir / DEV_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        ring = Keyring.generate("dev")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(ring.to_env_value() + "\n")
    if path not in _warned_dev_keys:
        _warn_development_key(path)
        _warned_dev_keys.add(path)
    return Keyring.from_env_value(path.read_text().strip())


def _warn_development_key(path: Path) -> None:
    log.warning(
        "%s is not set: the audit log is encrypted with a DEVELOPMENT key stored in %s. "
        "Anyone who can read that file can read the log. Never use this in production; %s",
        ENV_VAR,
        path,
        GENERATE_HINT,
    )
