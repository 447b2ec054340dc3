"""Which flow a message asks for, by the flows' own words — deterministic, no model.

A flow file lists two kinds of words, ``requests`` (the customer's own request in the flow's topic:
「想退」「帮我查下订单」, "where is my order") and ``triggers`` (the topic: 「退货」「换货」「退款」). For the
first flow, by ``priority``, whose words occur in the message:

1. an order number (XP…) makes it the customer's own order: the flow starts (「XP1002 能退吗」);
2. a question about a fact of the policy — who pays, how long, how much, fees — is for the knowledge base
   (「换货运费谁出？」「退货要多久到账」「耳机有质量问题要退货，运费我要自己出吗？」);
3. a request starts the flow, also inside a question (「耳机收到8天了想退，可以吗？」「我要换货」
   「帮我退了这个订单」): a request word of the flow, or 我要… / 帮我… / "I want …" / 「这个订单」;
4. any other question is for the knowledge base (「能开发票吗？」「怎么查物流」); anything else starts it.

Flows are tried from the highest ``priority`` down, so 「取消订单，要退款」 starts the cancellation.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from kefu.flows.questions import asks_policy_fact, is_question, names_order, states_request
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
        requested = any(phrase.lower() in lowered for phrase in spec.requests)
        if not requested and not any(trigger.lower() in lowered for trigger in spec.triggers):
            continue
        if names_order(text):
            return spec.name
        if asks_policy_fact(text):
            return None
        if requested or states_request(text) or not is_question(text):
            return spec.name
        return None
    return None
