"""The kefu error tree.

Every error carries a stable ``code``, the HTTP ``status`` it maps to at the API edge, and a
message that says what was wrong *and what to do*. Errors become JSON (API) or a red line (CLI)
only at the edge; inside the package they are ordinary exceptions.

    KefuError
    ├── ConfigError            developer/operator: bad settings, fails at start-up (500 if ever raised late)
    ├── ModelUnavailable       the configured model cannot be loaded or reached at start-up (503)
    ├── ModelError             a model call failed or timed out at run time (502); callers fall back
    ├── InvalidInput           the caller sent something we cannot use (400)
    │   ├── MessageTooLong     over the configured character limit (413)
    │   └── EmptyMessage       blank after trimming (400)
    ├── Unauthorized           no, a wrong or an expired credential (401)
    ├── Forbidden              a valid credential that may not do this (403)
    ├── NotFound               an id that does not exist (404)
    ├── Conflict               the request clashes with current state (409)
    ├── StoreUnavailable       the database or Redis cannot be reached (503)
    └── KnowledgeBaseError     the knowledge base cannot be loaded or built (500)
        └── ParseError         a source document cannot be read: unsupported, damaged, encrypted,
            │                  scanned, not text, empty or too large (422)
            └── FetchError     a URL cannot be fetched: HTTP error, timeout, refused, too large (422)
"""

from __future__ import annotations


class KefuError(Exception):
    code = "kefu_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": {"code": self.code, "message": self.message}}


class ConfigError(KefuError):
    code = "config_error"
    status = 500


class ModelUnavailable(KefuError):
    code = "model_unavailable"
    status = 503


class ModelError(KefuError):
    code = "model_error"
    status = 502


class InvalidInput(KefuError):
    code = "invalid_input"
    status = 400


class MessageTooLong(InvalidInput):
    code = "message_too_long"
    status = 413


class EmptyMessage(InvalidInput):
    code = "empty_message"
    status = 400


class Unauthorized(KefuError):
    code = "unauthorized"
    status = 401


class Forbidden(KefuError):
    code = "forbidden"
    status = 403


class NotFound(KefuError):
    code = "not_found"
    status = 404


class Conflict(KefuError):
    code = "conflict"
    status = 409


class StoreUnavailable(KefuError):
    code = "store_unavailable"
    status = 503


class KnowledgeBaseError(KefuError):
    code = "knowledge_base_error"
    status = 500


class ParseError(KnowledgeBaseError):
    code = "unparseable_document"
    status = 422


class FetchError(ParseError):
    code = "fetch_failed"
    status = 422
