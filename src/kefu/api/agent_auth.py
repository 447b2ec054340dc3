"""Agent sign-in tokens: ``<payload>.<signature>``, base64url, HMAC-SHA256 over the payload
``{"sub": agent id, "exp": unix seconds}``; valid for ``KEFU_AGENT_TOKEN_TTL_SECONDS``.

The signing key is derived from ``KEFU_SECRET_KEY`` (production refuses a placeholder one). With the
development placeholder, a random key is generated once into ``<data_dir>/agent-token.key`` (mode
0600), so tokens survive restarts; replicas must then share ``KEFU_SECRET_KEY`` (or the data dir).
Every request checks the agent still exists and is active (403 when deactivated).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request

from kefu.api.deps import RuntimeDep
from kefu.config import PLACEHOLDER_SECRETS, Settings
from kefu.errors import Forbidden, NotFound, Unauthorized
from kefu.storage.handoff import AgentRecord

KEY_FILE = "agent-token.key"
_SIGN_IN = "sign in again (POST /v1/agent/login) and send Authorization: Bearer <token>"


def token_key(settings: Settings) -> bytes:
    return _key(settings.secret_key, settings.data_dir)


@functools.cache
def _key(secret_key: str, data_dir: Path) -> bytes:
    if secret_key not in PLACEHOLDER_SECRETS:
        return hmac.new(secret_key.encode(), b"kefu agent tokens v1", hashlib.sha256).digest()
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def issue_token(key: bytes, agent_id: str, ttl_seconds: int, now: float | None = None) -> str:
    payload = {"sub": agent_id, "exp": int((now or time.time()) + ttl_seconds)}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64(_sign(key, body))}"


def read_token(key: bytes, token: str, now: float | None = None) -> str:
    """The agent id of a valid token; ``Unauthorized`` for a forged, malformed or expired one."""
    body, _, signature = token.partition(".")
    try:
        good = hmac.compare_digest(_unb64(signature), _sign(key, body))
        payload = json.loads(_unb64(body)) if good else None
    except ValueError:
        good, payload = False, None
    if not good or not isinstance(payload, dict) or not isinstance(payload.get("sub"), str):
        raise Unauthorized(f"the sign-in token is not valid; {_SIGN_IN}")
    if int(payload.get("exp", 0)) < (now or time.time()):
        raise Unauthorized(f"the sign-in token has expired; {_SIGN_IN}")
    return str(payload["sub"])


def _sign(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def bearer_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def agent_for(runtime: RuntimeDep, token: str | None) -> AgentRecord:
    """The signed-in, active agent of ``token`` (and note that they are at the console now)."""
    if not token:
        raise Unauthorized(f"this needs a signed-in agent; {_SIGN_IN}")
    agent_id = read_token(token_key(runtime.settings), token)
    store = runtime.handoffs.store
    try:
        agent = await to_thread.run_sync(lambda: store.get_agent(agent_id))
    except NotFound:
        raise Unauthorized(f"the agent of this token no longer exists; {_SIGN_IN}") from None
    if not agent.active:
        raise Forbidden(f"the agent account {agent.username!r} is deactivated; ask an administrator")
    await to_thread.run_sync(lambda: store.touch_agent(agent.id))
    return agent


async def current_agent(request: Request, runtime: RuntimeDep) -> AgentRecord:
    return await agent_for(runtime, bearer_token(request))


AgentDep = Annotated[AgentRecord, Depends(current_agent)]
