"""Schemathesis hooks for ``scripts/api_fuzz.py``: the admin token on the knowledge-base API, an agent's
token on the agent and stats APIs, and kefu's error shape as a check on every 4xx."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.auth().apply_to(path_regex="^/v1/kb")
class AdminToken:
    def get(self, case: Any, ctx: Any) -> str:
        return os.environ["KEFU_FUZZ_ADMIN_TOKEN"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.auth().apply_to(path_regex="^/v1/(agent|stats)")
class AgentToken:
    def get(self, case: Any, ctx: Any) -> str:
        return os.environ["KEFU_FUZZ_AGENT_TOKEN"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.check
def kefu_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is ``{"error": {"code": str, "message": str}}`` (kefu.api.errors)."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except Exception as exc:
        raise AssertionError(
            f"a {response.status_code} without a JSON body: {response.text[:200]!r}"
        ) from exc
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str) and error.get("message")):
        raise AssertionError(f"a {response.status_code} without the error shape: {str(body)[:300]}")
    return True


@schemathesis.check
def kefu_token_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    """The admin and agent tokens given are valid: a 401 on those APIs means the run tested nothing."""
    if (
        response.status_code == 401
        and case.path != "/v1/agent/login"
        and case.path.startswith(("/v1/kb", "/v1/agent", "/v1/stats"))
    ):
        raise AssertionError(f"401 on {case.method} {case.path} with a valid token: {response.text[:200]}")
    return True
