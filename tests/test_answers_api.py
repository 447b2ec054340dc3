"""The answer modes through the API on the mini pack: what the model received when it rewords or
translates the knowledge base's sentences, and what the customer gets when its wording is unfaithful."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

REMOTE_FEE = "偏远地区订单不满 199 元收取运费 20 元。"


def reply_to(settings: Settings, model: ScriptedModel, question: str) -> dict:
    with TestClient(create_app(settings, model=model)) as client:
        return ask(client, new_conversation(client), question)


def test_a_faithful_rewording_is_sent_with_the_sentences_citations(
    make_settings: Callable[..., Settings], model: ScriptedModel
):
    model.enqueue("偏远地区的订单如果不满 199 元，要收 20 元运费。")
    reply = reply_to(make_settings(kb_dir=MINI_KB, answer_mode="rephrase"), model, "偏远地区运费怎么收？")
    assert (
        reply["content"] == "偏远地区的订单如果不满 199 元，要收 20 元运费。[1]" and reply["status"] == "ok"
    )
    received = model.history[-1].messages
    assert "改写" in received[0].content  # the rewording prompt, not the free-answer one
    assert REMOTE_FEE in received[1].content and received[1].content.endswith("偏远地区运费怎么收？")
    assert reply["citations"][0]["chunk_id"].startswith("docs/shipping.md")


def test_an_unfaithful_rewording_is_replaced_by_the_sentences(
    make_settings: Callable[..., Settings], model: ScriptedModel
):
    model.enqueue(
        "偏远地区不满 199 元的订单运费由您自己承担，8 元。"
    )  # 8 is not the fee, nor is the payer said
    reply = reply_to(make_settings(kb_dir=MINI_KB, answer_mode="rephrase"), model, "偏远地区运费怎么收？")
    assert reply["status"] == "replaced" and "8 元" not in reply["content"]
    assert REMOTE_FEE in re.sub(r"\[\d+\]", "", reply["content"])


def test_an_english_question_on_chinese_sources_is_translated_and_checked(
    make_settings: Callable[..., Settings], model: ScriptedModel
):
    settings = make_settings(kb_dir=MINI_KB, answer_mode="rephrase")  # the model may word it: it translates
    model.enqueue("Orders to remote areas under 199 yuan pay 20 yuan shipping.")
    reply = reply_to(settings, model, "What is the shipping fee for remote areas?")
    assert reply["content"] == "Orders to remote areas under 199 yuan pay 20 yuan shipping.[1]"
    received = model.history[-1].messages
    assert "in English" in received[0].content and REMOTE_FEE in received[1].content

    model.enqueue("Orders to remote areas under 199 yuan pay 8 yuan shipping.")
    wrong = reply_to(settings, model, "What is the shipping fee for remote areas?")
    assert wrong["status"] == "replaced" and "8 yuan" not in wrong["content"]
    assert (
        wrong["content"].startswith("Our help centre has this only in Chinese")
        and "20 元" in wrong["content"]
    )


def test_without_a_model_an_english_question_gets_the_chinese_sentences_said_so(
    make_settings: Callable[..., Settings],
):
    settings = make_settings(kb_dir=MINI_KB, llm="none")
    with TestClient(create_app(settings)) as client:
        reply = ask(client, new_conversation(client), "What is the shipping fee for remote areas?")
    assert (
        reply["content"].startswith("Our help centre has this only in Chinese")
        and "20 元" in reply["content"]
    )


def test_a_hypothetical_return_question_is_decided_by_the_return_flows_rules(
    make_settings: Callable[..., Settings], model: ScriptedModel
):
    """With the demo ERP the return flow's rules answer 「收到10天了还能退吗」: no model call, both cases."""
    settings = make_settings(demo_erp=True)  # the demo shop's KB and flows
    reply = reply_to(settings, model, "收到10天了还能退吗？")
    assert reply["answer_kind"] == "policy" and not model.history
    assert (
        "第 10 天" in reply["content"]
        and "照片或视频" in reply["content"]
        and "不能再退货" in reply["content"]
    )
    assert reply["citations"] and all(c["doc_id"] for c in reply["citations"])


def test_extractive_mode_never_translates_even_with_a_model(
    make_settings: Callable[..., Settings], model: ScriptedModel
):
    """The local model's default: a translation can bend a condition no check sees, so none is made."""
    settings = make_settings(kb_dir=MINI_KB, answer_mode="extractive")
    reply = reply_to(settings, model, "What is the shipping fee for remote areas?")
    assert not model.history and reply["content"].startswith("Our help centre has this only in Chinese")
