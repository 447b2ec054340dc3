"""Route a customer message: small talk, a complaint, a request for a human agent, or a question for the
knowledge base (task flows are recognised by ``kefu.flows.detect_flow``)."""

from __future__ import annotations

import re
from typing import Literal

from kefu.flows.questions import is_question

Route = Literal["greeting", "thanks", "ack", "complaint", "human", "knowledge"]

_GREETING = re.compile(
    r"^\s*(你好|您好|在吗|在不在|哈喽|嗨|hello|hi|hey|good (morning|afternoon|evening))[\s!！。.,，~～?？呀啊呢]*$",
    re.IGNORECASE,
)
_THANKS = re.compile(
    r"^\s*(非常|十分|太)?(谢谢|多谢|感谢|好的谢谢|ok谢谢|thanks|thank you|thx|many thanks)(你|您)?(的帮助|帮忙)?"
    # a thanks with its usual tail: 「谢谢你的帮助，问题解决了」, "Thanks, that was really helpful!" (each
    # part of the tail is a word, never only punctuation: no backtracking blow-up on a long run of it)
    r"([\s!！。.,，~～]*((问题)?(已经)?(解决了|懂了|明白了)|啦|哈|so much|a lot|very much"
    r"|for (your|the|all the|all your) help|(that|this|it) (was|is|'s) (really |very |so )?"
    r"(helpful|great|perfect|clear))){0,3}"
    r"[\s!！。.,，~～了啊呀你您]*$",
    re.IGNORECASE,
)
# 「好的」「确认」「收到」, "ok": an acknowledgement — small talk unless a flow is waiting for an answer
_ACK = re.compile(
    r"^\s*(好的?|好滴|好吧|行|可以|确认|确定|收到|知道了|明白了?|了解|嗯嗯?|ok|okay|got it|sure|alright)"
    r"[\s!！。.,，~～了啊呀哈的]*$",
    re.IGNORECASE,
)

# 「转人工」「人工客服」「找客服」「真人」, "agent", "talk to a person" — but not 「人工智能」 or "human hair".
_HUMAN_ZH = re.compile(
    r"(转|找|要|接|叫|换|切)(个|一下|一个)?(人工|真人|活人|客服)"
    r"|人工(客服|坐席|座席|服务台|接待)|真人|活人"
    r"|^\s*(人工|客服)\s*[!！。.?？~～啊呀吧呢]*\s*$"
)
_NOT_HUMAN_ZH = re.compile(r"(不|别|无需|不用|没)(要|用|需要|必)?(转|找|接)?(人工|真人|客服)|真人秀")
_HUMAN_EN = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put)\b[^.?!]{0,20}\b(human|person|agent|representative|someone)\b"
    r"|\b(human|live|real)[ -](agent|person|being|support|operator)\b"
    r"|^\s*(an? )?(agent|human|representative|operator)( please)?\s*[.!?]*\s*$",
    re.IGNORECASE,
)
_NOT_HUMAN_EN = re.compile(r"\b(don'?t|do not|no need to)\b[^.?!]{0,12}\b(human|person|agent)\b", re.I)


# 「我要投诉」「举报」「打12315」「给你们差评」, "I want to file a complaint" — but not 「不是投诉」 or 「差评多吗」.
_COMPLAINT_ZH = re.compile(
    r"投诉|举报|12315|消协|消费者协会|市场监管局|工商局|(给|打|写|留|发)[^，,。！？!?]{0,6}差评|差评(警告|伺候)"
)
_NOT_COMPLAINT_ZH = re.compile(r"(不|别|没|无需|不用)(是|要|想|打算|会)?(要)?(投诉|举报|差评)")
_COMPLAINT_EN = re.compile(r"\b(complain(t|ts|ing)?|report you|consumer (protection|association))\b", re.I)
_NOT_COMPLAINT_EN = re.compile(r"\b(not|no|don'?t|never)\b[^.?!]{0,12}\bcomplain", re.I)
# The customer's own complaint, also inside a question (「我要投诉，怎么处理？」) — unlike a question about
# complaints (「投诉一般多久给结果」「投诉电话多少」), which the knowledge base answers.
_OWN_COMPLAINT = re.compile(
    r"(我|俺)[^，,。！？!?]{0,4}(投诉|举报)|打\s*12315|告你们|(给|打|写|留|发)[^，,。！？!?]{0,6}差评|差评(警告|伺候)"
    r"|\bi(('m| am) going to| will|'ll| want to| wanna| would like to|'d like to) (file a |make a |lodge a )?"
    r"complain|\bi('m| am) complaining",
    re.I,
)


def wants_to_complain(text: str) -> bool:
    """Whether the customer complains, or threatens a complaint or a bad review: a person takes it."""
    said = _COMPLAINT_ZH.search(text) and not _NOT_COMPLAINT_ZH.search(text)
    said = said or (_COMPLAINT_EN.search(text) and not _NOT_COMPLAINT_EN.search(text))
    return bool(said) and (bool(_OWN_COMPLAINT.search(text)) or not is_question(text))


# A question ABOUT the human service (「人工客服几点下班」「金卡会员找人工有优先吗」): the knowledge base answers.
_ABOUT_SERVICE = re.compile(
    r"几点|上班|下班|营业|服务时间|工作时间|优先|多久|多长时间|电话|邮箱"
    r"|[0-9一二三四五六七八九十两]+\s*点|晚上|夜里|半夜|凌晨|周末|节假日|过年"
    r"|\b(what time|opening hours|service hours|working hours|priority|phone number|e-?mail"
    r"|\d{1,2}\s*(am|pm)|tonight|at night|midnight|weekends?|holidays?)\b",
    re.I,
)


def wants_human(text: str) -> bool:
    """Whether the customer asks for a human agent (not a question about when or how agents work)."""
    if _ABOUT_SERVICE.search(text) and is_question(text):
        return False
    if _HUMAN_ZH.search(text) and not _NOT_HUMAN_ZH.search(text):
        return True
    return bool(_HUMAN_EN.search(text)) and not _NOT_HUMAN_EN.search(text)


def route(text: str) -> Route:
    if _GREETING.match(text):
        return "greeting"
    if _THANKS.match(text):
        return "thanks"
    if _ACK.match(text):
        return "ack"
    if wants_to_complain(text):
        return "complaint"
    if wants_human(text):
        return "human"
    return "knowledge"
