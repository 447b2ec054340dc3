"""Safety checks on customer messages: PII redaction (``redact_pii``) and its validators."""

from kefu.safety.pii import MemoryPiiVault, PiiEntity, PiiVault, Redaction, redact_pii, restore
from kefu.safety.pii_detect import LABELS, PiiType

__all__ = [
    "LABELS",
    "MemoryPiiVault",
    "PiiEntity",
    "PiiType",
    "PiiVault",
    "Redaction",
    "redact_pii",
    "restore",
]
