"""Is a message a question, a question about a policy's facts, or the customer's own request? Word cues.

    is_question("退款多久到账？")              # True: a flow waiting for an order number lets the KB answer
    asks_policy_fact("换货运费谁出？")         # True: who pays / how long / how much — the KB answers
    states_request("帮我退了这个订单")          # True: the customer's own request — the flow starts
    states_request("我想问一下退货运费谁出")    # False: 我想问 asks, it does not request
    names_order("XP1002 能退吗")               # True: an order number is the customer's own order

Deterministic and shared by flow triggering (``intents.py``), the slot readers and the engine.
"""

from __future__ import annotations

import re

# A fact of a policy the flow cannot tell: who pays, how long / much, fees, where a refund goes.
_FACT_ZH = re.compile(
    r"谁(出|付|承担|负责|来出|来付|掏)|多少|多久|多长时间|几天|几个?工作日|运费|邮费|手续费|到账|退到哪"
    r"|差价|没货|缺货|规则|政策|规定|流程|期限|时效"
)
_FACT_EN = re.compile(
    r"\b(who (pays|covers)|how (long|much|many|soon|fast)|shipping (cost|fee)s?|return shipping"
    r"|the difference|policy|rules?)\b",
    re.IGNORECASE,
)
# Any question: a question mark, a final 吗/呢, a question word, can-one-…-吗, or a fact cue above.
_QUESTION = re.compile(
    r"[?？]|[吗么呢嘛][\s。.!！~～]*$|什么|为什么|为啥|啥|哪|几点|怎么|怎样|如何|咋|是否|能不能|可不可以|能否|可否"
    r"|有没有|是不是|会不会|要不要|需不需要|用不用|算不算|(能|可以|可|会|要|需要|用|支持|有|算|包)[^，,。.!！？?]{0,12}[吗么嘛]"
    r"|^\s*(what|why|how|when|where|which|who|can|could|do|does|is|are|will|would|should)\b"
    r"|\b(can (i|you|we)|could i|do (you|i)|is (it|there)|are there)\b",
    re.IGNORECASE,
)
# The customer's own request: 帮我 / 给我 / 我要退 / 我想换 (not 我想问, 我要自己出运费吗), or their order.
_REQUEST_ZH = re.compile(
    r"帮我|给我|替我|帮忙|麻烦(你|您)|请(你|您)?帮"
    r"|我(要|想要|想|需要|打算|准备)(退|换|取消|撤销|改|修改|开|补开|查|申请|办理)"
)
_REQUEST_EN = re.compile(
    r"\b((?<!do )(?<!don't )i (want|need|would like|'d like|wanna)|i'd like"
    r"|please (help|return|exchange|cancel|refund|check)"
    r"|help me)\b",
    re.IGNORECASE,
)
_ORDER_NUMBER = re.compile(r"(?<![A-Za-z0-9])XP\d{4,}", re.IGNORECASE)
_OWN_ORDER = re.compile(
    r"(我|俺)的(订单|快递|包裹)|这个?订单|那个?订单|这一?单|订单号|\b(my|this) (order|package|parcel)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """Whether ``text`` reads as a question (a question mark, 吗/呢, a question word, "can I …")."""
    return bool(_QUESTION.search(text) or asks_policy_fact(text))


def asks_policy_fact(text: str) -> bool:
    """Whether ``text`` asks a fact of a policy — who pays, how long, how much, fees, where the money goes."""
    return bool(_FACT_ZH.search(text) or _FACT_EN.search(text))


def names_order(text: str) -> bool:
    """Whether ``text`` holds an order number (XP…)."""
    return bool(_ORDER_NUMBER.search(text))


def states_request(text: str) -> bool:
    """Whether ``text`` states the customer's own request (帮我…, 我要退…, "I want …") or names their order."""
    return bool(
        _REQUEST_ZH.search(text) or _REQUEST_EN.search(text) or _OWN_ORDER.search(text) or names_order(text)
    )
