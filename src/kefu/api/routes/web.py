"""The customer chat page at ``/``."""

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
def _index_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
async def index(runtime: RuntimeDep) -> HTMLResponse:
    settings = runtime.settings
    page = (
        _index_template()
        .replace("{{shop_name}}", html.escape(settings.shop_name))
        .replace("{{max_message_chars}}", str(settings.max_message_chars))
    )
    return HTMLResponse(page)
