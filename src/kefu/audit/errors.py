"""Errors of the audit log. Both are ``KefuError``: they name what was wrong and what to do."""

from __future__ import annotations

from kefu.errors import KefuError


class AuditDecryptError(KefuError):
    """A record's payload cannot be decrypted: its key is not in the ring, or the key is wrong, or the
    ciphertext or its metadata were altered (the AES-GCM tag does not match)."""

    code = "audit_decrypt_failed"
    status = 500


class AuditWriteError(KefuError):
    """An append could not be chained (e.g. a writer that bypassed the chain lock took the seq)."""

    code = "audit_write_failed"
    status = 500
