"""Which flow a message asks for, by the flows' own trigger words — deterministic, no model.

Flows are tried from the highest ``priority`` down, so 「取消订单，要退款」 starts the cancellation, not
a return; the first flow with a trigger in the message wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from kefu.flows.spec import FlowSpec, demo_flows


@lru_cache(maxsize=1)
def _demo() -> dict[str, FlowSpec]:
    return demo_flows()


def detect_flow(text: str, specs: Mapping[str, FlowSpec] | None = None) -> str | None:
    """The name of the flow whose trigger words occur in ``text`` (the demo flows by default)."""
    lowered = text.lower()
    flows = sorted((specs if specs is not None else _demo()).values(), key=lambda s: (-s.priority, s.name))
    for spec in flows:
        if any(trigger.lower() in lowered for trigger in spec.triggers):
            return spec.name
    return None
