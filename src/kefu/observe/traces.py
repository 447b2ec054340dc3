"""OpenTelemetry traces of each turn, exported over OTLP/HTTP when ``KEFU_OTLP_ENDPOINT`` is set
(``pip install 'kefu[otel]'``). Off by default: nothing is imported or sent without the setting.

One trace per turn, from the outside of ``Assistant.answer`` (``kefu.observe.turns``):

    kefu.turn            the customer's message → the stored reply
      kefu.turn.plan     → the plan's ``Meta`` (validate, redact, store, route, guards, flow, retrieval)
      kefu.turn.reply    → ``Done`` (the model's or the knowledge base's wording, checks, storage, audit)
    event "first_text"   when the first text went out

Attributes are the metrics' bounded labels (channel, answer kind, route, cache, model, outcome) and
numbers (tokens, cost): never the conversation id or any text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kefu import __version__
from kefu.errors import ConfigError
from kefu.observe.metrics import TurnFacts, bounded, endpoint


@dataclass
class TurnTracer:
    tracer: Any  # opentelemetry.trace.Tracer
    provider: Any  # opentelemetry.sdk.trace.TracerProvider: flush / shutdown

    def record(
        self,
        facts: TurnFacts,
        started_ns: int,
        planned_ns: int | None,
        first_text_ns: int | None,
        done_ns: int,
    ) -> None:
        from opentelemetry import trace

        root = self.tracer.start_span("kefu.turn", start_time=started_ns, attributes=attributes(facts))
        context = trace.set_span_in_context(root)
        if planned_ns is not None:
            self.tracer.start_span("kefu.turn.plan", context=context, start_time=started_ns).end(
                end_time=planned_ns
            )
            self.tracer.start_span("kefu.turn.reply", context=context, start_time=planned_ns).end(
                end_time=done_ns
            )
        if first_text_ns is not None:
            root.add_event("first_text", timestamp=first_text_ns)
        root.end(end_time=done_ns)

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def attributes(facts: TurnFacts) -> dict[str, str | int | float]:
    found: dict[str, str | int | float] = {
        "kefu.channel": bounded(facts.channel),
        "kefu.answer_kind": bounded(facts.kind),
        "kefu.status": bounded(facts.status),
        "kefu.cache": bounded(facts.cache, default="miss"),
    }
    if facts.model:
        found.update(
            {
                "kefu.model": endpoint(facts.model),
                "kefu.route": bounded(facts.route, default="default"),
                "kefu.prompt_tokens": facts.prompt_tokens,
                "kefu.completion_tokens": facts.completion_tokens,
                "kefu.cost": facts.cost,
            }
        )
    if facts.handoff_reason:
        found["kefu.handoff_reason"] = bounded(facts.handoff_reason)
    return found


def build_tracer(otlp_endpoint: str, label: str = "") -> TurnTracer | None:
    """A tracer exporting to ``<otlp_endpoint>/v1/traces`` (OTLP over HTTP); None when not configured."""
    if not otlp_endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            "KEFU_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed — "
            "pip install 'kefu[otel]' (or unset KEFU_OTLP_ENDPOINT)"
        ) from exc
    resource = Resource.create(
        {"service.name": "kefu", "service.version": __version__, "deployment.label": label or "default"}
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return TurnTracer(provider.get_tracer("kefu"), provider)
