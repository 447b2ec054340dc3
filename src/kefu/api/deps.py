"""Dependencies, each declared once as an ``Annotated`` alias."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from kefu.dialog.orchestrator import Assistant
from kefu.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_assistant(request: Request) -> Assistant:
    return get_runtime(request).assistant


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if not content_type.split(";")[0].strip().lower().endswith("json"):
        raise HTTPException(
            status_code=415,
            detail=f"expected Content-Type: application/json, got {content_type or 'none'!r}",
        )


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AssistantDep = Annotated[Assistant, Depends(get_assistant)]
JsonBody = Depends(require_json)
