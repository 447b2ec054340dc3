"""Which flow a message asks for, by the flows' own words — deterministic, no model.

A flow file lists two kinds of words:

* ``requests``: the customer's own request in the flow's topic (「想退」「帮我查下订单」, "where is my
  order"). They start the flow even inside a question: 「耳机收到8天了想退，可以吗？」 wants a return.
* ``triggers``: the flow's topic (「退货」「换货」「退款」). They start the flow — unless the message is a
  question ABOUT the policy (「换货运费谁出？」「退货要多久到账」) with no request of the customer's own
  (「我要…」「帮我…」, an order number, 「这个订单」): the knowledge base answers those.

Flows are tried from the highest ``priority`` down, so 「取消订单，要退款」 starts the cancellation, not
a return; the first flow whose words occur in the message decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from kefu.flows.questions import is_policy_question, states_request
from kefu.flows.spec import FlowSpec, demo_flows


@lru_cache(maxsize=1)
def _demo() -> dict[str, FlowSpec]:
    return demo_flows()


def detect_flow(text: str, specs: Mapping[str, FlowSpec] | None = None) -> str | None:
    """The flow ``text`` asks to start (the demo flows by default), or None — also for a question
    about a flow's policy, which is for the knowledge base."""
    lowered = text.lower()
    flows = sorted((specs if specs is not None else _demo()).values(), key=lambda s: (-s.priority, s.name))
    for spec in flows:
        if any(phrase.lower() in lowered for phrase in spec.requests):
            return spec.name
        if any(trigger.lower() in lowered for trigger in spec.triggers):
            if is_policy_question(text) and not states_request(text):
                return None
            return spec.name
    return None
