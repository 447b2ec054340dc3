"""Tamper-evident, encrypted audit log: every model input/output, tool call, handoff and admin action.

log = AuditLog(engine, load_keyring(environment=settings.environment, data_dir=settings.data_dir))
log.append("model_input", {"messages": [...]}, conversation_id=conv.id)
report = verify(engine)            # hashes only; verify(engine, keyring=...) also decrypts
print(format_report(report))
log.purge_older_than(days=180)     # retention; the chain stays verifiable
"""

from kefu.audit.errors import AuditDecryptError, AuditWriteError
from kefu.audit.keyring import ENV_VAR, Keyring, load_keyring
from kefu.audit.log import AuditLog
from kefu.audit.records import AuditRecord
from kefu.audit.retention import PurgeResult, purge_older_than
from kefu.audit.schema import ensure_schema
from kefu.audit.verify import VerifyReport, format_report, verify

__all__ = [
    "ENV_VAR",
    "AuditDecryptError",
    "AuditLog",
    "AuditRecord",
    "AuditWriteError",
    "Keyring",
    "PurgeResult",
    "VerifyReport",
    "ensure_schema",
    "format_report",
    "load_keyring",
    "purge_older_than",
    "verify",
]
