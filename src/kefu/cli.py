"""The ``kefu`` command line. Errors are printed as one red line that names the fix (exit code 2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from kefu import __version__
from kefu.config import Settings, load_settings
from kefu.errors import KefuError

app = typer.Typer(
    name="kefu",
    help="kefu (客服): self-hosted, Chinese-first LLM customer service.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KefuError as exc:
            err.print(f"[red]error:[/red] {exc.message}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    import uvicorn

    from kefu.api.app import create_app
    from kefu.tls import serve_tls_options

    tls = serve_tls_options(tls_cert, tls_key)  # bad files fail here, before anything starts

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = host or settings.host, port or settings.port
    asyncio.run(_preflight(settings))  # a missing model or database is one clear line, not a traceback
    err.print(f"kefu {__version__} — model: {settings.llm}, knowledge base: {settings.kb_dir}")
    scheme = "https" if tls else "http"
    err.print(f"web chat: {scheme}://{host}:{port}/   API docs: {scheme}://{host}:{port}/docs")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", **tls)


async def _preflight(settings: Settings) -> None:
    from kefu.runtime import build_runtime

    runtime = await build_runtime(settings)
    await runtime.aclose()


HostOpt = Annotated[str | None, typer.Option(help="Address to listen on (default KEFU_HOST, 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option(help="Port to listen on (default KEFU_PORT, 8000).")]
TlsCertOpt = Annotated[
    Path | None, typer.Option("--tls-cert", help="PEM certificate (chain): serve HTTPS, TLS 1.3 only.")
]
TlsKeyOpt = Annotated[
    Path | None, typer.Option("--tls-key", help="Unencrypted PEM private key of --tls-cert.")
]


@app.command()
@friendly_errors
def serve(
    host: HostOpt = None, port: PortOpt = None, tls_cert: TlsCertOpt = None, tls_key: TlsKeyOpt = None
) -> None:
    """Run the API and web chat with the configured settings (KEFU_* variables)."""
    _serve(load_settings(), host, port, tls_cert, tls_key)


@app.command()
@friendly_errors
def demo(
    host: HostOpt = None, port: PortOpt = None, tls_cert: TlsCertOpt = None, tls_key: TlsKeyOpt = None
) -> None:
    """Run the demo shop 小铺优选: its knowledge pack, its own database, and (unless KEFU_LLM says otherwise)
    the bundled local model."""
    from kefu.config import DEMO_SHOP_DIR

    settings = load_settings()
    overrides: dict[str, object] = {"kb_dir": DEMO_SHOP_DIR, "demo_erp": not settings.erp_url}
    if not settings.database_url:
        overrides["database_url"] = f"sqlite:///{settings.data_dir / 'demo.db'}"
    _serve(load_settings(**overrides), host, port, tls_cert, tls_key)


@app.command()
@friendly_errors
def chat(
    url: Annotated[str, typer.Option(help="Base URL of a running kefu.")] = "http://127.0.0.1:8000",
    lang: Annotated[str, typer.Option(help="Language of the client's own messages: zh or en.")] = "zh",
) -> None:
    """Chat with a running kefu in the terminal (/new starts over, /quit leaves)."""
    from kefu.chat_client import run_chat

    raise typer.Exit(run_chat(url, lang))


@app.command("fake-llm")
def fake_llm(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8001,
    latency_ms: Annotated[float, typer.Option(help="Delay before the first token.")] = 0.0,
    tokens_per_second: Annotated[float, typer.Option(help="Streaming speed; 0 = as fast as possible.")] = 0.0,
) -> None:
    """Run a fake OpenAI-compatible server (tests, demos, benchmarks): KEFU_LLM=openai KEFU_LLM_BASE_URL=http://HOST:PORT/v1."""
    from kefu.llm.testing import run_fake_server

    run_fake_server(host=host, port=port, latency_ms=latency_ms, tokens_per_second=tokens_per_second)


eval_app = typer.Typer(
    help="Measure quality on real data sets (figures, not pass/fail).", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")
DataOpt = Annotated[Path, typer.Option("--data", help="The evaluation data folder (shared/eval).")]


@eval_app.command("pii")
@friendly_errors
def eval_pii(data: DataOpt = Path("../shared/eval")) -> None:
    """PII detection: validator exact match (stdnum vectors) and entity P/R/F1 (presidio synthetic texts)."""
    from kefu.evals.pii import run_pii_eval

    typer.echo(run_pii_eval(data).format_table())


report_app = typer.Typer(help="Reports over evaluation data (figures, not pass/fail).", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("fairness")
@friendly_errors
def report_fairness(data: DataOpt = Path("../shared/eval")) -> None:
    """Group metrics (Fairlearn MetricFrame) by language and by customer name: refusals, PII, sentiment."""
    from kefu.evals.fairness import run_fairness_report

    typer.echo(run_fairness_report(data).format_table())


audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
@friendly_errors
def audit_verify(
    decrypt: Annotated[
        bool, typer.Option(help="Also decrypt every payload (needs KEFU_AUDIT_KEYS).")
    ] = False,
) -> None:
    """Walk the hash chain; name the first edited, deleted or reordered record (exit code 1)."""
    from kefu.audit import format_report, verify
    from kefu.runtime import open_audit_log
    from kefu.storage.engine import make_engine

    settings = load_settings()
    engine = make_engine(settings.effective_database_url)
    keyring = open_audit_log(settings, engine).keyring if decrypt else None
    report = verify(engine, keyring=keyring)
    typer.echo(format_report(report))
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("purge")
@friendly_errors
def audit_purge(days: Annotated[int, typer.Option(min=1, help="Delete records older than this.")]) -> None:
    """Retention: delete records older than N days; the chain stays verifiable from a checkpoint."""
    from kefu.audit import purge_older_than
    from kefu.storage.engine import make_engine

    engine = make_engine(load_settings().effective_database_url)
    typer.echo(str(purge_older_than(engine, days)))


@eval_app.command("retrieval")
@friendly_errors
def eval_retrieval(
    data: DataOpt = Path("../shared/eval"),
    full: Annotated[
        bool,
        typer.Option("--full", help="Every row of every set (~5 min cold) instead of fixed-seed samples."),
    ] = False,
) -> None:
    """Knowledge-base retrieval: Recall@k / MRR of fused, dense and BM25 ranking; wrong verbatim FAQ answers."""
    from kefu.evals.retrieval import FULL, Sizes, run_retrieval_eval

    settings = load_settings()
    report = run_retrieval_eval(
        data,
        sizes=FULL if full else Sizes(),
        cache_dir=settings.cache_dir / "eval",
        faq_direct_threshold=settings.faq_direct_threshold,
        grounded_threshold=settings.grounded_threshold,
        progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(report.format_table())


@eval_app.command("sentiment")
@friendly_errors
def eval_sentiment(
    data: DataOpt = Path("../shared/eval"),
    limit: Annotated[int | None, typer.Option(help="Read at most this many review rows.")] = None,
) -> None:
    """Sentiment: held-out Chinese review accuracy / macro-F1, neutral rate on plain questions."""
    from kefu.evals.sentiment import run_sentiment_eval

    typer.echo(run_sentiment_eval(data, limit).format_table())


@eval_app.command("scope")
@friendly_errors
def eval_scope(data: DataOpt = Path("../shared/eval")) -> None:
    """Out-of-scope guard: refusal recall (medical, stock) and false refusals (shop FAQ, banking77)."""
    from kefu.evals.scope import run_scope_eval

    typer.echo(run_scope_eval(data).format_table())


@app.command("demo-erp")
@friendly_errors
def demo_erp(
    host: HostOpt = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
    token: Annotated[
        str, typer.Option(envvar="KEFU_ERP_TOKEN", help="Bearer token clients must send.")
    ] = "demo-erp-token",
    db: Annotated[Path | None, typer.Option(help="SQLite file (default <data_dir>/demo-erp.db).")] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the data instead of re-seeding the demo orders.")
    ] = False,
    tau2: Annotated[
        Path | None,
        typer.Option(help="Serve the tau2 retail db.json instead (imported into <data_dir>/tau2-erp.db)."),
    ] = None,
) -> None:
    """Run the demo ERP of 小铺优选 (orders, returns, invoices, credit check) that order flows call."""
    from kefu.tools.demo_erp import import_tau2_retail, run_demo_erp

    data_dir = load_settings().data_dir
    if tau2 is not None:
        db = db or data_dir / "tau2-erp.db"
        typer.echo(f"imported tau2 retail: {import_tau2_retail(tau2, db)}", err=True)
    run_demo_erp(
        db or data_dir / "demo-erp.db", token, host or "127.0.0.1", port, reseed=tau2 is None and not keep
    )


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app(prog_name="kefu")
