"""What every ``kefu`` sub-command shares: errors printed as one red line that names the fix."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from kefu.errors import KefuError

err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def say_database(url: str) -> None:
    """One line on stderr naming the database a command works on (its password hidden)."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: make_engine will say what is wrong with it
        shown = url.split("@")[-1]
    err.print(f"database: {shown}", highlight=False, soft_wrap=True)


def friendly_errors(fn: F) -> F:
    """A ``KefuError`` becomes ``error: <message>`` on stderr and exit code 2 — never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KefuError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
