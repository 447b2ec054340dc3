"""Field encryption at rest for the SQL stores, with the audit log's keys (``KEFU_AUDIT_KEYS``).

Values: AES-256-GCM under the ring's active key and a fresh 96-bit nonce (``kefu.audit.crypto``).
The key id is stored with every value, so rotation only needs the old keys kept after the new one.
The associated data binds a value to its place: ``["kefu-field-v1", table, column, row, key_id]``
— a ciphertext copied to another row or column no longer decrypts.

Lookups by value (``find_conversation`` by ``external_user``) use a blind index: HMAC-SHA256 of
``["kefu-index-v1", purpose, value]`` under a key derived from each ring key with HKDF-SHA256
(``info="kefu-blind-index-v1"``, no salt), never the encryption key itself. New rows are indexed
with the active key; a lookup tries the index of every key in the ring, so rows written before a
rotation are still found. The index hides the value from anyone without a key, but like any
deterministic index it shows which rows share a value, and with a key a small value space
(phone numbers) can be enumerated: guard the keys as you guard the data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kefu.audit.crypto import NONCE_BYTES, encrypt
from kefu.audit.keyring import ENV_VAR, Keyring
from kefu.errors import KefuError

AAD_VERSION = "kefu-field-v1"
INDEX_VERSION = "kefu-index-v1"
INDEX_KEY_INFO = b"kefu-blind-index-v1"
TOKEN_VERSION = "f1"


class FieldDecryptError(KefuError):
    """A stored value cannot be decrypted: its key is not in the ring, the key is wrong, or the
    value or the row it is bound to was altered."""

    code = "field_decrypt_failed"
    status = 500


@dataclass(frozen=True)
class Binding:
    """Where a value lives; it is authenticated with the ciphertext (the AES-GCM associated data)."""

    table: str
    column: str
    row: str

    def associated_data(self, key_id: str) -> bytes:
        return _canonical(AAD_VERSION, self.table, self.column, self.row, key_id)

    def __str__(self) -> str:
        return f"{self.table}.{self.column} of row {self.row!r}"


@dataclass(frozen=True)
class Sealed:
    """One encrypted value: the id of its key, the nonce, and the ciphertext with its GCM tag."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


class FieldCipher:
    """Encrypts, decrypts and blind-indexes column values with one keyring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._index_keys = {key_id: _index_key(keyring.get(key_id) or b"") for key_id in keyring.key_ids}

    def __repr__(self) -> str:
        return f"FieldCipher({self.keyring!r})"

    def seal(self, value: str, binding: Binding) -> Sealed:
        key_id = self.keyring.active_id
        nonce, ciphertext = encrypt(
            self.keyring.active_key, value.encode("utf-8"), binding.associated_data(key_id)
        )
        return Sealed(key_id, nonce, ciphertext)

    def open(self, sealed: Sealed, binding: Binding) -> str:
        key = self.keyring.get(sealed.key_id)
        if key is None:
            raise FieldDecryptError(
                f"{binding} was encrypted with key {sealed.key_id!r}, which is not in {ENV_VAR} "
                f"(it has {self.keyring.key_ids}); put that key back after the active one"
            )
        try:
            plaintext = AESGCM(key).decrypt(
                sealed.nonce, sealed.ciphertext, binding.associated_data(sealed.key_id)
            )
        except InvalidTag:
            raise FieldDecryptError(
                f"{binding} does not decrypt with key {sealed.key_id!r}: the key in {ENV_VAR} is not "
                "the one it was written with (restore the original key), or the row was altered"
            ) from None
        return plaintext.decode("utf-8")

    def blind_index(self, value: str, purpose: str) -> str:
        """The index of a new value: hex HMAC under the active key's index key."""
        return _hmac(self._index_keys[self.keyring.active_id], purpose, value)

    def blind_indexes(self, value: str, purpose: str) -> list[str]:
        """The value's index under every key of the ring, active first (for lookups)."""
        ids = [self.keyring.active_id, *(k for k in self._index_keys if k != self.keyring.active_id)]
        return [_hmac(self._index_keys[key_id], purpose, value) for key_id in ids]


def pack(sealed: Sealed) -> str:
    """One text column: ``f1:<key_id>:<base64(nonce + ciphertext)>``."""
    body = base64.b64encode(sealed.nonce + sealed.ciphertext).decode("ascii")
    return f"{TOKEN_VERSION}:{sealed.key_id}:{body}"


def unpack(token: str, binding: Binding) -> Sealed:
    version, _, rest = token.partition(":")
    key_id, _, body = rest.partition(":")
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if version != TOKEN_VERSION or not key_id or len(raw) <= NONCE_BYTES:
        raise FieldDecryptError(
            f"{binding} is not an encrypted value ({TOKEN_VERSION}:<key id>:<base64>); "
            "was it written by hand or by an older kefu? Run the migrations (kefu.storage.migrate)"
        )
    return Sealed(key_id, raw[:NONCE_BYTES], raw[NONCE_BYTES:])


def _index_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=INDEX_KEY_INFO).derive(key)


def _hmac(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, _canonical(INDEX_VERSION, purpose, value), hashlib.sha256).hexdigest()


def _canonical(*values: str) -> bytes:
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
