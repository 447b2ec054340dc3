"""Model routing, cost and budgets: which model answers a turn, what it cost, and when to stop paying.

    KEFU_MODELS=models.yaml   the model matrix as data (``load_matrix``): named models — an OpenAI-compatible
                              endpoint or the local model — each with its price (per 1k input / output
                              tokens, or a coefficient on ``base_price_per_1k``), context size and
                              capabilities, and the routes: scenario → model name
    choose_route(…)           the scenario of one turn, deterministic: long_context › complaint › complex › faq
    ModelRouter               the matrix's models behind the ``ChatModel`` seam (``complete`` goes to the
                              "faq" route, for callers that do not route — a request with tools to a
                              model listing the `tools` capability); ``for_route`` picks one
    Budget                    KEFU_BUDGET_DAILY / KEFU_BUDGET_CONVERSATION: "ok", "degrade" (≥
                              KEFU_BUDGET_DEGRADE_AT of a cap: the "cheap" route), "over" (no model call)

Without KEFU_MODELS the configured model is the only one: route "default", priced by
KEFU_LLM_PRICE_IN_PER_1K / KEFU_LLM_PRICE_OUT_PER_1K (0 → cost 0) — today's behaviour, now with its cost.

Cost unit: whatever currency the prices are written in (the matrix's ``currency``, for display). A model
priced by ``cost_coefficient`` costs ``coefficient × (input + output tokens) / 1000 × base_price_per_1k``
(``base_price_per_1k`` defaults to 1.0: the cost is then in "1k tokens of the ×1.0 model").
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from kefu.config import Settings
from kefu.errors import ConfigError
from kefu.llm.base import ChatModel, ChatRequest, Reply, StreamChunk, Usage

log = logging.getLogger("kefu.llm")

SCENARIOS = ("faq", "complex", "complaint", "long_context", "batch")
CHEAP = "cheap"  # the route a turn degrades to near a budget cap
DEFAULT_ROUTE = "default"  # without KEFU_MODELS: the one configured model
OVER_BUDGET = "over_budget"  # the route recorded when a budget is spent: no model was called
CAPABILITIES = ("tools", "vision")
# A message whose sentiment score is at or below this is treated as a complaint (kefu.safety.sentiment:
# "negative" starts at -0.3; a complaint wants more than a sigh)
COMPLAINT_SENTIMENT = -0.35
# A single question longer than this (characters) is "complex" even without several parts
COMPLEX_CHARS = 120
# A grievance stated as fact, which the sentiment model scores as neutral (「到现在还没到」, "still hasn't
# arrived"): the customer complains even without an angry word
_GRIEVANCE = re.compile(
    r"(还|仍|一直|迟迟|始终)(没|未)(到|收到|发货|发出|退款|到账|处理|回复)|等了.{0,4}(天|周|星期|个月|很久|好久)"
    r"|(坏|破|漏|错|少)了|发错|少发|漏发|质量(问题|太差)"
    r"|\b(still (not|hasn'?t|haven'?t)|never (arrived|came|received)|(is|was|arrived) (late|broken|damaged)"
    r"|wrong (item|size|colou?r)|missing (item|part)s?)\b",
    re.I,
)

BudgetState = Literal["ok", "degrade", "over"]


@dataclass(frozen=True)
class ModelSpec:
    """One named model of the matrix."""

    name: str
    kind: Literal["openai", "local"]
    model: str = ""  # the model name the endpoint expects (openai)
    base_url: str = ""
    api_key_env: str = ""  # the environment variable holding the key; never the key itself
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    cost_coefficient: float | None = None  # instead of the two prices: × base_price_per_1k per 1k tokens
    context_tokens: int = 8192
    capabilities: tuple[str, ...] = ()

    def cost(self, usage: Usage, base_price_per_1k: float = 1.0) -> float:
        """What ``usage`` cost on this model, in the matrix's currency."""
        if self.cost_coefficient is not None:
            return self.cost_coefficient * usage.total_tokens / 1000 * base_price_per_1k
        return (
            usage.prompt_tokens / 1000 * self.price_in_per_1k
            + usage.completion_tokens / 1000 * self.price_out_per_1k
        )


@dataclass(frozen=True)
class ModelMatrix:
    models: dict[str, ModelSpec]
    routes: dict[str, str]  # scenario (and "cheap") → model name; every scenario is filled in
    currency: str = ""
    base_price_per_1k: float = 1.0
    source: str = ""  # the file it was read from, for messages

    def spec_for(self, route: str) -> ModelSpec:
        return self.models[self.routes.get(route, self.routes["faq"])]

    def cost(self, name: str, usage: Usage) -> float:
        return self.models[name].cost(usage, self.base_price_per_1k)


def single_matrix(settings: Settings, name: str = DEFAULT_ROUTE) -> ModelMatrix:
    """The matrix without KEFU_MODELS: the configured model alone, priced by KEFU_LLM_PRICE_*_PER_1K."""
    spec = ModelSpec(
        name=name,
        kind="local" if settings.llm == "local" else "openai",
        model=settings.llm_model,
        price_in_per_1k=settings.llm_price_in_per_1k,
        price_out_per_1k=settings.llm_price_out_per_1k,
        context_tokens=settings.local_n_ctx if settings.llm == "local" else 128_000,
    )
    return ModelMatrix({name: spec}, {route: name for route in (*SCENARIOS, CHEAP)})


# --- the matrix file ------------------------------------------------------------------------------

_MODEL_KEYS = {
    "kind",
    "model",
    "base_url",
    "api_key_env",
    "price_in_per_1k",
    "price_out_per_1k",
    "cost_coefficient",
    "context_tokens",
    "capabilities",
}


def load_matrix(path: Path) -> ModelMatrix:
    """Read and validate the matrix file; every mistake is a ``ConfigError`` naming the file, the model
    or route, and the fix."""
    where = f"KEFU_MODELS={path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the model matrix ({exc.strerror}); fix the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc}); see docs/models.example.yaml") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
        raise ConfigError(
            f"{where}: needs a `models:` mapping (name → kind, model, prices …) and a `routes:` mapping; "
            "see docs/models.example.yaml"
        )
    unknown = set(data) - {"models", "routes", "currency", "base_price_per_1k"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown top-level key(s) {sorted(unknown)}; allowed: models, routes, currency, "
            "base_price_per_1k"
        )
    base = _number(data.get("base_price_per_1k", 1.0), f"{where}: base_price_per_1k")
    models = {str(name): _model(str(name), raw, where) for name, raw in data["models"].items()}
    routes = _routes(data.get("routes"), models, where)
    return ModelMatrix(models, routes, str(data.get("currency") or ""), base, str(path))


def _model(name: str, raw: Any, where: str) -> ModelSpec:
    at = f"{where}: model {name!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be a mapping (kind, model, base_url, api_key_env, prices …)")
    unknown = set(raw) - _MODEL_KEYS
    if unknown:
        raise ConfigError(f"{at} has unknown key(s) {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")
    kind = raw.get("kind", "openai")
    if kind not in ("openai", "local"):
        raise ConfigError(f"{at}: kind {kind!r} is not openai or local")
    if kind == "openai":
        for key in ("base_url", "model"):
            if not raw.get(key):
                raise ConfigError(
                    f"{at}: an openai model needs {key} (e.g. base_url: http://127.0.0.1:8001/v1)"
                )
    env = str(raw.get("api_key_env") or "")
    if env and not env.replace("_", "").isalnum():
        raise ConfigError(
            f"{at}: api_key_env {env!r} must be the NAME of an environment variable holding the key "
            "(e.g. DEEPSEEK_API_KEY), never the key itself"
        )
    has_prices = "price_in_per_1k" in raw or "price_out_per_1k" in raw
    if has_prices and "cost_coefficient" in raw:
        raise ConfigError(f"{at}: give either price_in_per_1k/price_out_per_1k or cost_coefficient, not both")
    coefficient = raw.get("cost_coefficient")
    capabilities = raw.get("capabilities") or []
    if not isinstance(capabilities, list) or set(map(str, capabilities)) - set(CAPABILITIES):
        raise ConfigError(f"{at}: capabilities must be a list of {list(CAPABILITIES)}, got {capabilities!r}")
    context = raw.get("context_tokens", 8192)
    if not isinstance(context, int) or isinstance(context, bool) or context < 256:
        raise ConfigError(f"{at}: context_tokens must be a whole number of tokens ≥ 256, got {context!r}")
    return ModelSpec(
        name=name,
        kind=kind,
        model=str(raw.get("model") or ""),
        base_url=str(raw.get("base_url") or ""),
        api_key_env=env,
        price_in_per_1k=_number(raw.get("price_in_per_1k", 0.0), f"{at}: price_in_per_1k"),
        price_out_per_1k=_number(raw.get("price_out_per_1k", 0.0), f"{at}: price_out_per_1k"),
        cost_coefficient=None if coefficient is None else _number(coefficient, f"{at}: cost_coefficient"),
        context_tokens=context,
        capabilities=tuple(str(c) for c in capabilities),
    )


def _routes(raw: Any, models: dict[str, ModelSpec], where: str) -> dict[str, str]:
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: routes must map a scenario to a model name, e.g. `faq: cheap`")
    unknown = set(raw) - {*SCENARIOS, CHEAP}
    if unknown:
        raise ConfigError(f"{where}: unknown route(s) {sorted(unknown)}; routes: {[*SCENARIOS, CHEAP]}")
    for route, name in raw.items():
        if name not in models:
            raise ConfigError(
                f"{where}: route {route!r} names model {name!r}, which is not under models: {sorted(models)}"
            )
    if "faq" not in raw and len(models) > 1:
        raise ConfigError(
            f"{where}: routes needs at least `faq: <model>` (the default for every other route)"
        )
    routes = {str(k): str(v) for k, v in raw.items()}
    routes.setdefault("faq", next(iter(models)))
    for scenario in SCENARIOS:
        routes.setdefault(scenario, routes["faq"])
    routes.setdefault(CHEAP, min(models.values(), key=lambda m: m.cost(Usage(1000, 1000))).name)
    return routes


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{what} must be a number ≥ 0, got {value!r}")
    return float(value)


# --- choosing a route -----------------------------------------------------------------------------


def choose_route(
    question: str, *, parts: int, sentiment: float, prompt_tokens: int, context_tokens: int
) -> str:
    """The scenario of one knowledge turn, by rule (first match):

    long_context  the prompt (estimated tokens) does not fit the "faq" model's context
    complaint     the customer is upset (sentiment score ≤ COMPLAINT_SENTIMENT) or states a grievance
                  (「到现在还没到」「发错了」, "still hasn't arrived")
    complex       several questions in one message (``extractive.split_parts``), or a long one
    faq           everything else: one plain question
    """
    if prompt_tokens > context_tokens:
        return "long_context"
    if sentiment <= COMPLAINT_SENTIMENT or _GRIEVANCE.search(question):
        return "complaint"
    if parts > 1 or len(question) > COMPLEX_CHARS:
        return "complex"
    return "faq"


# --- budgets --------------------------------------------------------------------------------------

# (spent today UTC, spent in this conversation), in the matrix's currency
Spend = Callable[[str], tuple[float, float]]


@dataclass
class Budget:
    """KEFU_BUDGET_DAILY / KEFU_BUDGET_CONVERSATION (0 = none); "degrade" from ``degrade_at`` of a cap."""

    daily: float = 0.0
    conversation: float = 0.0
    degrade_at: float = 0.8
    spend: Spend | None = None
    _last: dict[str, BudgetState] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.spend is not None and (self.daily > 0 or self.conversation > 0)

    def state(self, conversation_id: str) -> BudgetState:
        """The budget state before this conversation's next model call (one SQL sum per cap)."""
        if not self.active or self.spend is None:
            return "ok"
        today, this_conversation = self.spend(conversation_id)
        day = self._check("daily", today, self.daily)
        mine = self._check(f"conversation {conversation_id}", this_conversation, self.conversation)
        if "over" in (day, mine):
            return "over"
        return "degrade" if "degrade" in (day, mine) else "ok"

    def _check(self, scope: str, spent: float, cap: float) -> BudgetState:
        if cap <= 0:
            return "ok"
        state: BudgetState = "over" if spent >= cap else "degrade" if spent >= cap * self.degrade_at else "ok"
        key = "daily" if scope == "daily" else "conversation"
        if self._last.get(scope, "ok") != state:
            variable = f"KEFU_BUDGET_{key.upper()}"
            what = {
                "ok": "back under the threshold: routes as configured",
                "degrade": f"at {spent / cap:.0%} of the cap: the cheap route answers",
                "over": "spent: no model calls, answers from the FAQ and the knowledge base's own "
                "sentences, with a human offered — raise the cap to restore the models",
            }[state]
            log.warning("%s budget (%s=%g): spent %.4f, %s", scope, variable, cap, spent, what)
        self._last[scope] = state
        if scope != "daily" and len(self._last) > 10_000:  # conversations come and go
            self._last = {k: v for k, v in self._last.items() if k == "daily"}
        return state


# --- the router -----------------------------------------------------------------------------------


class ModelRouter(ChatModel):
    """The matrix's models, one ``ChatModel`` each (endpoints behind their own breakers); a caller that
    does not route (the flows' slot reader) gets the "faq" route's model, or a tools-capable one."""

    def __init__(self, matrix: ModelMatrix, models: dict[str, ChatModel], budget: Budget | None = None):
        missing = set(matrix.models) - set(models)
        if missing:
            raise ValueError(f"no ChatModel for matrix model(s) {sorted(missing)}")
        self.matrix = matrix
        self.models = models
        self.budget = budget or Budget()
        default = models[matrix.routes["faq"]]
        self.name = default.name
        self.supports_tools = self._tools_model() is not None

    def for_route(self, route: str) -> tuple[str, ChatModel]:
        """(matrix model name, model) serving ``route``."""
        name = self.matrix.routes.get(route, self.matrix.routes["faq"])
        return name, self.models[name]

    def describe(self) -> str:
        if not self.matrix.source:  # one model (route "default"), routed only for its budget
            return self.models[DEFAULT_ROUTE].describe()
        routes = ", ".join(f"{r}→{n}" for r, n in self.matrix.routes.items())
        return f"routed ({routes})"

    def _default(self, request: ChatRequest) -> ChatModel:
        """The "faq" route's model; for a request with tools, the first model whose matrix entry lists the
        `tools` capability (the "faq" one first) — a one-model router: that model, as it says."""
        model = self.models[self.matrix.routes["faq"]]
        if request.tools:
            return self._tools_model() or model
        return model

    def _tools_model(self) -> ChatModel | None:
        if not self.matrix.source:
            model = self.models[DEFAULT_ROUTE]
            return model if model.supports_tools else None
        faq = self.matrix.routes["faq"]
        names = [faq, *(n for n in self.matrix.models if n != faq)]
        return next(
            (
                self.models[n]
                for n in names
                if "tools" in self.matrix.models[n].capabilities and self.models[n].supports_tools
            ),
            None,
        )

    async def complete(self, request: ChatRequest) -> Reply:
        return await self._default(request).complete(request)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamChunk]:
        async for chunk in self._default(request).stream(request):
            yield chunk

    async def check(self) -> None:
        for model in self._unique():
            check = getattr(model, "check", None)
            if check is not None:
                await check()

    def readiness(self) -> tuple[bool, str]:
        details, ready = [], True
        for name, model in self.models.items():
            readiness = getattr(model, "readiness", None)
            ok, detail = readiness() if readiness is not None else (True, model.describe())
            ready = ready and ok
            details.append(f"{name}: {detail}")
        return ready, "; ".join(details)

    def breakers(self) -> list[Any]:
        from kefu.llm.breaker import breakers_of

        return [b for model in self._unique() for b in breakers_of(model)]

    async def aclose(self) -> None:
        for model in self._unique():
            await model.aclose()

    def _unique(self) -> list[ChatModel]:
        seen: dict[int, ChatModel] = {}
        for model in self.models.values():
            seen.setdefault(id(model), model)
        return list(seen.values())


def build_routed_model(settings: Settings) -> ChatModel | None:
    """The configured model: without KEFU_MODELS exactly ``build_chat_model``'s; with the matrix a
    ``ModelRouter`` over its models (the local one built once, by ``build_chat_model``)."""
    from kefu.llm import build_chat_model, build_endpoint

    if settings.models is None:
        return build_chat_model(settings)
    matrix = load_matrix(settings.models)
    models: dict[str, ChatModel] = {}
    local: ChatModel | None = None
    for name, spec in matrix.models.items():
        if spec.kind == "local":
            if local is None:
                local = build_chat_model(settings.model_copy(update={"llm": "local"}))
            assert local is not None
            models[name] = local
            continue
        key = ""
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env, "")
            if not key:
                raise ConfigError(
                    f"KEFU_MODELS={matrix.source}: model {name!r} reads its API key from "
                    f"${spec.api_key_env}, which is not set — export it (or drop api_key_env for a "
                    "server without keys)"
                )
        models[name] = build_endpoint(settings, spec.base_url, key, spec.model)
    return ModelRouter(matrix, models)


def with_budgets(settings: Settings, model: ChatModel | None, spend: Spend) -> ChatModel | None:
    """``model`` with KEFU_BUDGET_* applied: a router gets the budget; a single model becomes a one-model
    router (route "default") only when a budget is set — otherwise it is returned unchanged."""
    budget = Budget(settings.budget_daily, settings.budget_conversation, settings.budget_degrade_at, spend)
    if model is None or not (budget.active or isinstance(model, ModelRouter)):
        return model
    router = router_of(model, settings)
    assert router is not None
    router.budget = budget
    return router


def router_of(model: ChatModel | None, settings: Settings) -> ModelRouter | None:
    """The model as a router: itself, a one-model router around it (route "default"), or None."""
    if model is None or isinstance(model, ModelRouter):
        return model
    return ModelRouter(single_matrix(settings), {DEFAULT_ROUTE: model})
