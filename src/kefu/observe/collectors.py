"""Gauges read at scrape time: build info, circuit breakers, the agent queue and the KPI ratios.

Each collector reads the running parts it is given (never at import) and yields nothing it cannot read:
a failing source is logged once per scrape with what to check and the other gauges are still served.
The queue and the ratios come from the shared database, so every replica reports the same value —
aggregate them with ``max`` across instances, not ``sum`` (the dashboard and the rules do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from kefu import __version__
from kefu.observe.metrics import endpoint

if TYPE_CHECKING:
    from prometheus_client import Metric
    from sqlalchemy.engine import Engine

    from kefu.storage.handoff import SqlHandoffStore

log = logging.getLogger("kefu.observe")

BREAKER_STATES = ("closed", "open", "half-open")


class BuildInfo(Collector):
    """``kefu_build_info{version, label}`` — the label tells a canary from the stable release."""

    def __init__(self, label: str) -> None:
        self.label = label

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("kefu_build", "The running kefu: package version and release label.")
        info.add_metric([], {"version": __version__, "label": self.label or "default"})
        yield info


class BreakerStates(Collector):
    """``kefu_breaker_state{breaker, state}`` = 1 for each breaker's current state, 0 for the others."""

    def __init__(self, breakers: Callable[[], list[Any]]) -> None:
        self.breakers = breakers  # objects with ``name`` and ``state`` (kefu.breakers.CircuitBreaker)

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "kefu_breaker_state",
            "Circuit breaker state of each guarded endpoint (1 = current state).",
            labels=["breaker", "state"],
        )
        try:
            found = [(endpoint(str(b.name)), str(b.state)) for b in self.breakers()]
        except Exception as exc:  # a breaker that cannot say its state must not break the scrape
            log.warning("metrics: the circuit breakers' states could not be read (%s)", exc)
            found = []
        for name, current in found:
            for state in BREAKER_STATES:
                gauge.add_metric([name, state], 1.0 if state == current else 0.0)
        yield gauge


class HandoffQueue(Collector):
    """The agent queue: queued and active handoffs, the oldest queued one's wait, agents online and the
    expected wait of the next customer to join the queue."""

    def __init__(self, store: SqlHandoffStore, handle_seconds: Callable[[], float]) -> None:
        self.store, self.handle_seconds = store, handle_seconds

    def collect(self) -> Iterator[Metric]:
        try:
            open_handoffs = self.store.queue()
            agents = self.store.agents_online()
            per_place = self.handle_seconds() / max(1, agents)
        except Exception as exc:  # the database is down: /readyz says so; the other gauges still serve
            log.warning("metrics: the agent queue could not be read (%s) — check the database", exc)
            return
        queued = [h for h in open_handoffs if h.status == "queued"]
        now = datetime.now(UTC)
        oldest = max((_age(now, h.created_at) for h in queued), default=0.0)
        yield _gauge("kefu_handoff_queue_length", "Handoffs waiting for an agent.", len(queued))
        yield _gauge(
            "kefu_handoff_active", "Handoffs an agent is handling.", len(open_handoffs) - len(queued)
        )
        yield _gauge(
            "kefu_handoff_queue_oldest_wait_seconds",
            "How long the longest-waiting customer has waited.",
            oldest,
        )
        yield _gauge("kefu_agents_online", "Agents seen in the last minutes.", agents)
        yield _gauge(
            "kefu_handoff_expected_wait_seconds",
            "Expected wait of a customer joining the queue now.",
            (len(queued) + 1) * per_place,
        )


class OperationsRatios(Collector):
    """The KPI ratios of ``kefu stats`` (``kefu.storage.stats``) over the conversations started in the
    last ``window_hours``: session completion, handoff and flow completion rates and the flow counts.
    Read at most every ``ttl`` seconds (several scrapers cost one aggregate query, not one each)."""

    def __init__(self, engine: Engine, window_hours: float, ttl: float = 10.0) -> None:
        self.engine, self.window, self.ttl = engine, timedelta(hours=window_hours), ttl
        self._cached: tuple[float, dict[str, Any]] | None = None

    def collect(self) -> Iterator[Metric]:
        summary = self._summary()
        if summary is None:
            return
        rates = GaugeMetricFamily(
            "kefu_operations_ratio",
            "KPI ratios over the conversations started in the window (kefu stats' definitions).",
            labels=["kpi"],
        )
        for kpi in ("session_completion_rate", "handoff_rate", "flow_completion_rate"):
            if summary[kpi] is not None:
                rates.add_metric([kpi.removesuffix("_rate")], float(summary[kpi]))
        yield rates
        flows = GaugeMetricFamily("kefu_flows", "Task flows in the window by state.", labels=["state"])
        for state in ("started", "completed", "failed"):
            flows.add_metric([state], float(summary[f"flows_{state}"]))
        yield flows
        yield _gauge(
            "kefu_operations_conversations",
            "Conversations with a customer message in the window.",
            summary["conversations"],
        )

    def _summary(self) -> dict[str, Any] | None:
        from kefu.storage.stats import operations_summary

        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.ttl:
            return self._cached[1]
        try:
            summary = operations_summary(self.engine, datetime.now(UTC) - self.window)
        except Exception as exc:
            log.warning("metrics: the operations summary could not be read (%s) — check the database", exc)
            return None
        self._cached = (now, summary)
        return summary


class RatingNumbers(Collector):
    """``kefu_csat`` (mean 1-5) and ``kefu_rating_ratio{ratio="csat_satisfied"|"thumbs_up"}`` over the
    ratings of the last ``window_hours`` (``kefu.storage.headline``), read at most every ``ttl`` s."""

    def __init__(self, engine: Engine, window_hours: float, ttl: float = 10.0) -> None:
        self.engine, self.window, self.ttl = engine, timedelta(hours=window_hours), ttl
        self._cached: tuple[float, dict[str, Any]] | None = None

    def collect(self) -> Iterator[Metric]:
        from kefu.storage.headline import ratings_summary

        now = time.monotonic()
        if self._cached is None or now - self._cached[0] >= self.ttl:
            try:
                self._cached = (now, ratings_summary(self.engine, datetime.now(UTC) - self.window))
            except Exception as exc:
                log.warning("metrics: the ratings could not be read (%s) — check the database", exc)
                return
        numbers = self._cached[1]
        if numbers["csat_mean"] is not None:
            yield _gauge("kefu_csat", "Mean CSAT (1-5) of the ratings in the window.", numbers["csat_mean"])
        ratios = GaugeMetricFamily(
            "kefu_rating_ratio", "Share of CSAT 4-5 and of 👍 among the window's ratings.", labels=["ratio"]
        )
        for label, key in (("csat_satisfied", "csat_satisfied_share"), ("thumbs_up", "thumbs_up_rate")):
            if numbers[key] is not None:
                ratios.add_metric([label], float(numbers[key]))
        yield ratios


class CostBudgets(Collector):
    """``kefu_cost_budget{scope="conversation"|"day"}``: the configured budgets, so the alerts compare
    against the same numbers the router enforces (absent when 0 = no budget)."""

    def __init__(self, budgets: dict[str, float]) -> None:
        self.budgets = budgets

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "kefu_cost_budget", "Configured cost budgets (0 = none: not exported).", labels=["scope"]
        )
        for scope, value in self.budgets.items():
            if value > 0:
                gauge.add_metric([scope], value)
        yield gauge


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))


def _age(now: datetime, then: datetime) -> float:
    if then.tzinfo is None:  # SQLite returns naive UTC
        then = then.replace(tzinfo=UTC)
    return max(0.0, (now - then).total_seconds())
