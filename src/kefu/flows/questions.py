"""Is a message a question, a question about a policy, or the customer's own request? Word cues only.

    is_question("退款多久到账？")             # True: the flow waiting for an order number lets the KB answer
    is_policy_question("换货运费谁出？")      # True: asks ABOUT the policy — no flow starts
    states_request("帮我退了这个订单")         # True: the customer's own request — the flow starts
    states_request("我想问一下退货运费谁出")   # False: 我想问 asks, it does not request

Deterministic and shared by flow triggering (``intents.py``), the slot readers and the engine.
"""

from __future__ import annotations

import re

# A question ABOUT a policy: who pays, how much / long, how to, can one … ?, rules.
_POLICY_ZH = re.compile(
    r"谁(出|付|承担|负责|来出|来付|掏)|多少|多久|多长时间|几天|几个?工作日|怎么|怎样|如何|哪些|哪里|哪儿"
    r"|是否|能不能|可不可以|能否|可否|有没有|是不是|会不会|要不要|需不需要|用不用|算不算"
    r"|(能|可以|可|会|要|需要|用|得|支持|有|算|包)[^，,。.!！？?]{0,12}[吗么嘛]"
    r"|规则|政策|规定|流程|期限|时效"
)
_POLICY_EN = re.compile(
    r"\b(who (pays|covers)|how (long|much|many|soon|do|does|can|to)|can (i|you|we)|could i|do (you|i)"
    r"|does it|is (it|there)|are there|what|when (will|do|does)|policy|rules?)\b",
    re.IGNORECASE,
)
# Any question: the policy cues, a question mark, a final 吗/呢, or a question word.
_QUESTION = re.compile(
    r"[?？]\s*$|[吗么呢嘛][\s。.!！~～]*$|什么|为什么|为啥|啥|哪|多少|多久|怎么|如何"
    r"|^\s*(what|why|how|when|where|which|who|can|could|do|does|is|are|will|would|should)\b",
    re.IGNORECASE,
)
# The customer's own request: 帮我 / 给我 / 我要退 / 我想换 (not 我想问, 我要自己出运费吗), or their order.
_REQUEST_ZH = re.compile(
    r"帮我|给我|替我|帮忙|麻烦(你|您)|请(你|您)?帮"
    r"|我(要|想要|想|需要|打算|准备)(退|换|取消|撤销|改|修改|开|补开|查|申请|办理)"
)
_REQUEST_EN = re.compile(
    r"\b(i (want|need|would like|'d like|wanna)|i'd like|please (help|return|exchange|cancel|refund|check)"
    r"|help me)\b",
    re.IGNORECASE,
)
_OWN_ORDER = re.compile(
    r"(?<![A-Za-z0-9])XP\d{4,}|(我|俺)的(订单|快递|包裹)|这个?订单|那个?订单|这一?单|订单号"
    r"|\b(my|this) (order|package|parcel)\b",
    re.IGNORECASE,
)


def is_question(text: str) -> bool:
    """Whether ``text`` reads as a question (a question mark, 吗/呢, a question word)."""
    return bool(_QUESTION.search(text) or is_policy_question(text))


def is_policy_question(text: str) -> bool:
    """Whether ``text`` asks how something works — who pays, how long, can one … — with cue words."""
    return bool(_POLICY_ZH.search(text) or _POLICY_EN.search(text))


def states_request(text: str) -> bool:
    """Whether ``text`` states the customer's own request (帮我…, 我要…, "I want …") or names their order."""
    return bool(_REQUEST_ZH.search(text) or _REQUEST_EN.search(text) or _OWN_ORDER.search(text))
