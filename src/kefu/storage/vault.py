"""``SqlPiiVault``: one conversation's placeholder → raw PII value map, encrypted in the database.

    vault = stores.vault_for(conversation.id)
    redaction = redact_pii(text, vault=vault)   # "[手机号_1]" stays the same number all conversation

Each value is its own ``pii_vault`` row, AES-256-GCM encrypted with the ``KEFU_AUDIT_KEYS`` active key
and bound to (conversation, placeholder): a ciphertext moved to another row does not decrypt. Rows
go when their conversation is deleted (ON DELETE CASCADE). ``remember`` never overwrites: the first
value stored under a placeholder wins, as in ``MemoryPiiVault``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from kefu.audit.keyring import Keyring
from kefu.storage.crypto import Binding, FieldCipher, Sealed
from kefu.storage.models import PiiVaultRow, utcnow
from kefu.storage.sql import not_found


class SqlPiiVault:
    """``kefu.safety.pii.PiiVault`` persisted in ``pii_vault``; safe to share between threads."""

    def __init__(self, engine: Engine, keyring: Keyring, conversation_id: str) -> None:
        self.engine = engine
        self.conversation_id = conversation_id
        self._cipher = FieldCipher(keyring)

    def __repr__(self) -> str:  # never the values
        return f"SqlPiiVault(conversation_id={self.conversation_id!r})"

    def known(self) -> Mapping[str, str]:
        """Every placeholder of the conversation with its value; ``FieldDecryptError`` if one
        does not decrypt with the ring."""
        query = select(PiiVaultRow.placeholder, PiiVaultRow.key_id, PiiVaultRow.nonce, PiiVaultRow.ciphertext)
        query = query.where(PiiVaultRow.conversation_id == self.conversation_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            placeholder: self._cipher.open(Sealed(key_id, nonce, ciphertext), self._binding(placeholder))
            for placeholder, key_id, nonce, ciphertext in rows
        }

    def remember(self, mapping: Mapping[str, str]) -> None:
        """Store the new placeholders (existing ones are kept as they are). ``NotFound`` if the
        conversation does not exist."""
        if not mapping:
            return
        rows = [self._row(placeholder, value) for placeholder, value in mapping.items()]
        try:
            with self.engine.begin() as conn:
                conn.execute(self._insert_ignoring_duplicates(), rows)
        except IntegrityError:  # duplicates are ignored, so only the foreign key can refuse
            raise not_found(self.conversation_id) from None

    def _binding(self, placeholder: str) -> Binding:
        return Binding("pii_vault", placeholder, self.conversation_id)

    def _row(self, placeholder: str, value: str) -> dict[str, Any]:
        sealed = self._cipher.seal(value, self._binding(placeholder))
        return {
            "conversation_id": self.conversation_id,
            "placeholder": placeholder,
            "key_id": sealed.key_id,
            "nonce": sealed.nonce,
            "ciphertext": sealed.ciphertext,
            "created_at": utcnow(),
        }

    def _insert_ignoring_duplicates(self) -> Insert:
        keys = ["conversation_id", "placeholder"]
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(PiiVaultRow).on_conflict_do_nothing(index_elements=keys)
        return sqlite.insert(PiiVaultRow).on_conflict_do_nothing(index_elements=keys)
