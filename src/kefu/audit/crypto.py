"""The two pieces of cryptography in a record: AES-256-GCM over the payload, SHA-256 over the row.

Both use one canonical encoding: a JSON array (fixed order, no spaces, UTF-8, bytes as base64)
prefixed with a version tag, so the same fields always give the same bytes on every database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kefu.audit.errors import AuditDecryptError
from kefu.audit.keyring import ENV_VAR, Keyring

HASH_VERSION = "kefu-audit-v1"
AAD_VERSION = "kefu-audit-aad-v1"
GENESIS_HASH = "0" * 64
NONCE_BYTES = 12


@dataclass(frozen=True)
class ChainFields:
    """Everything the row hash covers (all columns but the hash itself)."""

    seq: int
    created_at: str  # fixed-width ISO 8601 UTC, e.g. 2025-01-31T08:00:00.000000Z
    kind: str
    actor: str
    conversation_id: str | None
    key_id: str
    nonce: bytes
    ciphertext: bytes
    prev_hash: str


def _canonical(*values: Any) -> bytes:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def record_hash(f: ChainFields) -> str:
    """Hex SHA-256 of the canonical encoding of the record's chained fields."""
    encoded = _canonical(
        HASH_VERSION,
        f.seq,
        f.created_at,
        f.kind,
        f.actor,
        f.conversation_id,
        f.key_id,
        _b64(f.nonce),
        _b64(f.ciphertext),
        f.prev_hash,
    )
    return hashlib.sha256(encoded).hexdigest()


def associated_data(
    seq: int, kind: str, created_at: str, prev_hash: str, actor: str, conversation_id: str | None, key_id: str
) -> bytes:
    """The metadata a payload is bound to: moving a ciphertext to another row breaks its GCM tag."""
    return _canonical(AAD_VERSION, seq, kind, created_at, prev_hash, actor, conversation_id, key_id)


def encode_payload(payload: dict[str, Any]) -> bytes:
    try:
        return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"audit payloads must be JSON-serialisable dicts of str/number/bool/None: {err}"
        ) from None


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext+tag) under a fresh random 96-bit nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt_payload(keyring: Keyring, f: ChainFields) -> dict[str, Any]:
    """The record's payload, or ``AuditDecryptError`` saying whether the key is missing or wrong."""
    key = keyring.get(f.key_id)
    if key is None:
        raise AuditDecryptError(
            f"audit record {f.seq} was encrypted with key {f.key_id!r}, which is not in {ENV_VAR} "
            f"(it has {keyring.key_ids}); add that key back after the active one to read old records"
        )
    aad = associated_data(f.seq, f.kind, f.created_at, f.prev_hash, f.actor, f.conversation_id, f.key_id)
    try:
        plaintext = AESGCM(key).decrypt(f.nonce, f.ciphertext, aad)
    except InvalidTag:
        raise AuditDecryptError(
            f"audit record {f.seq} does not decrypt with key {f.key_id!r}: the key in {ENV_VAR} is not "
            "the one it was written with, or the record was altered; run `kefu audit verify` to check the chain"
        ) from None
    result: dict[str, Any] = json.loads(plaintext.decode("utf-8"))
    return result
