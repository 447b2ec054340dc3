"""The customer chat page at ``/`` and the agent console at ``/agent``."""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kefu.api.deps import RuntimeDep

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"

router = APIRouter(include_in_schema=False)


@cache
def _template(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def _page(name: str, runtime: RuntimeDep) -> HTMLResponse:
    settings = runtime.settings
    page = (
        _template(name)
        .replace("{{shop_name}}", html.escape(settings.shop_name))
        .replace("{{max_message_chars}}", str(settings.max_message_chars))
    )
    return HTMLResponse(page)


@router.get("/", response_class=HTMLResponse)
async def index(runtime: RuntimeDep) -> HTMLResponse:
    return _page("index.html", runtime)


@router.get("/agent", response_class=HTMLResponse)
async def agent_console(runtime: RuntimeDep) -> HTMLResponse:
    return _page("agent.html", runtime)
