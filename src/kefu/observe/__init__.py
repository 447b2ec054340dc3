"""Observability: Prometheus metrics (``/metrics``) of the turns, the model calls, the knowledge base,
handoffs, rate limits, breakers and the agent queue. ``build_metrics`` wires them to a runtime's parts;
``timed_turn`` times one turn's events; ``RequestMetrics`` is the HTTP middleware. The alerting rules
and the dashboard over these names live in ``deploy/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kefu.observe.metrics import Metrics, TurnFacts
from kefu.observe.turns import timed_turn

if TYPE_CHECKING:
    from kefu.config import Settings
    from kefu.dialog.handoff import HandoffDesk
    from kefu.llm.base import ChatModel
    from kefu.storage.factory import Stores

__all__ = ["Metrics", "TurnFacts", "build_metrics", "timed_turn"]


def build_metrics(
    settings: Settings, stores: Stores, model: ChatModel | None, handoffs: HandoffDesk | None
) -> Metrics:
    """The process's metrics with their scrape-time gauges over ``stores``, ``model`` and ``handoffs``."""
    from kefu.observe import collectors
    from kefu.observe.traces import build_tracer

    metrics = Metrics(conversation_idle_seconds=settings.metrics_conversation_idle_seconds)
    metrics.add_scrape_collector(collectors.BuildInfo(settings.version_label))
    metrics.tracer = build_tracer(settings.otlp_endpoint, settings.version_label)
    metrics.add_scrape_collector(collectors.BreakerStates(lambda: model_breakers(model)))
    metrics.add_scrape_collector(
        collectors.OperationsRatios(stores.engine, settings.metrics_stats_window_hours)
    )
    metrics.add_scrape_collector(collectors.CostBudgets(_budgets(settings)))
    metrics.add_scrape_collector(  # ratings and CSAT (issue #13)
        collectors.RatingNumbers(stores.engine, settings.metrics_stats_window_hours)
    )
    if handoffs is not None:
        store = handoffs.store

        def handle_seconds() -> float:
            return store.mean_handling_seconds(
                settings.handoff_wait_window, settings.handoff_default_handle_seconds
            )

        metrics.add_scrape_collector(collectors.HandoffQueue(store, handle_seconds))
    return metrics


def _budgets(settings: Settings) -> dict[str, float]:
    """The cost budgets of model routing (KEFU_BUDGET_CONVERSATION / KEFU_BUDGET_DAILY; 0 = none)."""
    return {
        "conversation": float(getattr(settings, "budget_conversation", 0.0) or 0.0),
        "day": float(getattr(settings, "budget_daily", 0.0) or 0.0),
    }


def model_breakers(model: ChatModel | None) -> list[Any]:
    """The circuit breakers of the model (one per endpoint of a fallback chain)."""
    from kefu.llm.breaker import breakers_of

    return list(breakers_of(model))
