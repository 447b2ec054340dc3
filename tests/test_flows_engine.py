"""The flow engine on the demo flows, turn by turn, against an in-memory order system."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kefu.errors import InvalidInput
from kefu.flows import FlowEngine, FlowState, demo_flows, idempotency_key, parse_flow
from kefu.flows.engine import SHOP_TZ
from test_flows_fakes import NOW, PHONE, Clock, FakeOrders, engine, make_order, talk


def test_quality_problem_on_day_8_asks_the_reason_then_hands_over_for_a_person_to_check_photos() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=8))
    flows = engine(erp)
    first = flows.start("return_exchange", "c1", "耳机收到8天了想退")
    assert first.outcome == "ongoing" and "订单号" in first.text
    asked_phone = flows.advance(first.state, "XP10023")
    assert asked_phone.state.step == "ask_phone"
    asked_reason = flows.advance(asked_phone.state, PHONE)
    assert asked_reason.state.step == "ask_reason" and "质量问题" in asked_reason.text
    handed = flows.advance(asked_reason.state, "质量问题，左耳没声音，照片已上传")  # a typed claim
    assert handed.outcome == "handoff" and handed.data["reason"] == "evidence_needed"
    assert "照片" in handed.text and "人工客服" in handed.text
    assert erp.calls_to("create_return") == []


def test_answers_tells_an_answer_to_the_waiting_question_from_anything_else() -> None:
    flows = engine(FakeOrders(make_order()))
    waiting = flows.start("return_exchange", "c1", "我要退货").state  # waits for the order number
    assert flows.answers(waiting, "XP10023") and flows.answers(waiting, "算了")
    assert not flows.answers(waiting, "退款多久到账？")
    reminder = flows.waiting_for(waiting)
    assert reminder is not None and "订单号" in reminder.zh and "order number" in reminder.en


def test_no_reason_on_day_8_is_refused_by_policy_and_a_human_offered() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=8))
    turns = talk(engine(erp), "return_exchange", "想退货", "XP10023", PHONE, "不想要了")
    last = turns[-1]
    assert last.outcome == "handoff" and last.data["reason"] == "policy_no_reason_after_7_days"
    assert "7 天" in last.text and "人工客服" in last.text
    assert erp.calls_to("create_return") == []


def test_day_5_return_is_created_once_even_when_the_turn_is_retried() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=5))
    flows = engine(erp)
    turns = talk(flows, "return_exchange", "我要退货", "XP10023", PHONE)
    before = turns[-1].state
    done = flows.advance(before, "不喜欢")
    retried = flows.advance(before, "不喜欢")  # the caller lost the reply and sends the same turn again
    assert done.outcome == retried.outcome == "completed"
    assert retried.data["return_id"] == done.data["return_id"]
    key = idempotency_key("c1", "return_exchange", "create", "XP10023")
    assert [c["key"] for c in erp.calls_to("create_return")] == [key, key]
    assert list(erp.returns) == [key]  # one return order in the ERP
    again = flows.advance(done.state, "不喜欢")  # re-sent after the flow finished: replayed, no call
    assert again.data["return_id"] == done.data["return_id"] and again.text == done.text
    assert len(erp.calls_to("create_return")) == 2


def test_a_completed_return_reaches_the_erp_exactly_once() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=5))
    flows = engine(erp)
    turns = talk(flows, "return_exchange", "想退", "XP10023", PHONE, "不想要了")
    for _ in range(3):
        turns.append(flows.advance(turns[-1].state, "不想要了"))
    assert {t.data["return_id"] for t in turns[3:]} == {"RT20260310-000001"}
    assert len(erp.calls_to("create_return")) == 1


def test_three_wrong_phone_digits_hand_over_without_showing_the_order() -> None:
    erp = FakeOrders(make_order())
    turns = talk(engine(erp), "order_status", "我的订单到哪了", "XP10023", "0000", "1111", "2222")
    assert [t.outcome for t in turns] == ["ongoing"] * 4 + ["handoff"]
    assert turns[-1].data["reason"] == "too_many_tries" and "人工客服" in turns[-1].text
    assert "不一致" in turns[2].text
    assert all("蓝牙耳机" not in t.text and "SF1234567890" not in t.text for t in turns)


def test_two_wrong_digits_then_the_right_ones_continue() -> None:
    erp = FakeOrders(make_order(status="shipped"))
    turns = talk(engine(erp), "order_status", "我的订单到哪了", "XP10023", "0000", "1111", PHONE)
    assert turns[-1].outcome == "completed" and "SF1234567890" in turns[-1].text


def test_an_unknown_order_id_is_asked_again_with_a_clear_message() -> None:
    erp = FakeOrders(make_order())
    flows = engine(erp)
    turns = talk(flows, "order_status", "查一下订单 XP99999")
    assert turns[0].state.step == "ask_order" and "没有找到" in turns[0].text
    turns.append(flows.advance(turns[0].state, "XP10023"))
    assert turns[-1].state.step == "ask_phone"


def test_a_malformed_order_id_gets_the_format_hint() -> None:
    turns = talk(engine(FakeOrders(make_order())), "order_status", "我的订单到哪了", "12345678")
    assert turns[-1].state.step == "ask_order" and "XP10023" in turns[-1].text


def test_erp_down_while_reading_hands_over_and_changes_nothing() -> None:
    erp = FakeOrders(make_order())
    erp.down = True
    turns = talk(engine(erp), "return_exchange", "想退货", "XP10023")
    assert turns[-1].outcome == "handoff" and turns[-1].data["reason"] == "order_system_unavailable"
    assert "没有为您办理任何操作" in turns[-1].text and erp.returns == {}


def test_erp_down_at_the_write_creates_nothing_and_a_retry_later_creates_one() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=2))
    flows = engine(erp)
    turns = talk(flows, "return_exchange", "想退货", "XP10023", PHONE)
    erp.down = True
    failed = flows.advance(turns[-1].state, "不喜欢")
    assert failed.outcome == "handoff" and "不要重复提交" in failed.text and erp.returns == {}
    erp.down = False
    retried = flows.advance(turns[-1].state, "不喜欢")
    assert retried.outcome == "completed" and len(erp.returns) == 1


def test_a_flow_resumes_from_stored_json_in_a_new_engine() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=5))
    turns = talk(engine(erp), "return_exchange", "耳机想退", "XP10023", PHONE)
    assert turns[-1].state.step == "ask_reason"
    stored = turns[-1].state.to_json()
    restarted = FlowEngine(demo_flows(), erp, Clock(NOW + timedelta(minutes=3)))
    done = restarted.advance(FlowState.from_json(stored), "不想要了")
    assert done.outcome == "completed" and erp.calls_to("create_return")[0]["reason"] == "no_reason"


def test_coming_back_after_a_break_repeats_the_question_without_counting_a_try() -> None:
    clock = Clock()
    flows = engine(FakeOrders(make_order()), clock)
    turns = talk(flows, "order_status", "我的订单到哪了", "XP10023")
    clock.advance(timedelta(hours=2))
    back = flows.advance(turns[-1].state, "在吗")
    assert "欢迎回来" in back.text and back.state.step == "ask_phone"
    assert back.state.asks["ask_phone"] == 1


def test_an_expired_flow_starts_again() -> None:
    clock = Clock()
    flows = engine(FakeOrders(make_order()), clock)
    turns = talk(flows, "order_status", "我的订单到哪了", "XP10023")
    clock.advance(timedelta(hours=25))
    again = flows.advance(turns[-1].state, "XP10023")
    assert "重新开始" in again.text and again.state.step == "ask_phone" and again.outcome == "ongoing"


def test_saying_start_over_restarts_and_stop_abandons() -> None:
    flows = engine(FakeOrders(make_order()))
    turns = talk(flows, "order_status", "我的订单到哪了", "XP10023")
    restarted = flows.advance(turns[-1].state, "重新开始")
    assert restarted.state.step == "ask_order" and "order_id" not in restarted.state.slots
    stopped = flows.advance(restarted.state, "算了")
    assert stopped.outcome == "abandoned" and stopped.state.step is None


def test_everything_in_the_first_message_creates_the_return_at_once() -> None:
    erp = FakeOrders(make_order(delivered_days_ago=3))
    first = engine(erp).start("return_exchange", "c9", "订单XP10023，手机尾号1234，耳机坏了想退货")
    assert first.outcome == "completed" and first.data["return_id"]
    assert erp.calls_to("create_return")[0]["reason"] == "quality"


def test_a_shipped_order_cannot_be_returned_yet() -> None:
    erp = FakeOrders(make_order(status="shipped"))
    turns = talk(engine(erp), "return_exchange", "想退货", "XP10023", PHONE)
    assert turns[-1].data["result"] == "not_delivered" and "拒收" in turns[-1].text
    assert erp.calls_to("create_return") == []


def test_day_counting_starts_the_day_after_sign_for_in_shop_time() -> None:
    shanghai = SHOP_TZ
    signed = datetime(2026, 3, 1, 23, 30, tzinfo=shanghai)
    for now, expected in [
        (datetime(2026, 3, 8, 23, 59, tzinfo=shanghai), "completed"),
        (datetime(2026, 3, 9, 0, 1, tzinfo=shanghai), "handoff"),
    ]:
        erp = FakeOrders(make_order(delivered_at=signed.astimezone(UTC)))
        flows = FlowEngine(demo_flows(), erp, Clock(now))
        assert talk(flows, "return_exchange", "想退", "XP10023", PHONE, "不喜欢")[-1].outcome == expected


def test_cancelling_a_shipped_order_is_explained_not_attempted() -> None:
    erp = FakeOrders(make_order(status="shipped"))
    turns = talk(engine(erp), "cancel_order", "取消订单", "XP10023", PHONE)
    assert turns[-1].data["result"] == "not_cancellable_shipped" and "拒收" in turns[-1].text
    assert erp.calls_to("cancel_order") == []


def test_cancelling_a_paid_order_after_confirmation() -> None:
    erp = FakeOrders(make_order(status="paid"))
    turns = talk(engine(erp), "cancel_order", "取消订单 XP10023", PHONE, "是的")
    assert "确认取消订单 XP10023" in turns[1].text
    assert turns[-1].data["result"] == "cancelled" and erp.orders["XP10023"].status == "cancelled"
    assert erp.calls_to("cancel_order")[0]["key"] == idempotency_key(
        "c1", "cancel_order", "cancel", "XP10023"
    )


def test_declining_the_confirmation_keeps_the_order() -> None:
    erp = FakeOrders(make_order(status="paid"))
    turns = talk(engine(erp), "cancel_order", "取消订单 XP10023", PHONE, "不了")
    assert turns[-1].data["result"] == "kept" and erp.calls_to("cancel_order") == []


def test_changing_the_address_before_shipping() -> None:
    erp = FakeOrders(make_order(status="paid"))
    new = "上海市浦东新区世纪大道 200 号 3 楼"
    turns = talk(engine(erp), "change_address", "我要改地址", "XP10023", PHONE, new, "对")
    assert turns[-1].data["result"] == "address_changed" and new in turns[-1].text
    assert erp.orders["XP10023"].address == new


def test_changing_the_address_of_a_shipped_order_goes_to_a_human() -> None:
    erp = FakeOrders(make_order(status="shipped"))
    turns = talk(engine(erp), "change_address", "改地址", "XP10023", PHONE)
    assert turns[-1].outcome == "handoff" and "改派" in turns[-1].text
    assert erp.calls_to("change_address") == []


def test_company_invoice_request() -> None:
    erp = FakeOrders(make_order())
    turns = talk(
        engine(erp), "invoice", "开发票", "XP10023", PHONE, "电子普通发票", "单位",
        "杭州小铺科技有限公司", "税号 91330100MA2B3C4D5E",
    )  # fmt: skip
    assert turns[-1].data["result"] == "invoice_requested"
    [call] = erp.calls_to("request_invoice")
    assert (call["kind"], call["title"], call["tax_id"]) == (
        "electronic",
        "杭州小铺科技有限公司",
        "91330100MA2B3C4D5E",
    )


def test_an_english_conversation_is_answered_in_english() -> None:
    erp = FakeOrders(make_order(status="shipped"))
    turns = talk(engine(erp), "order_status", "Where is my order?", "XP10023", "1234")
    assert turns[0].state.lang == "en" and "order number" in turns[0].text
    assert "tracking number SF1234567890" in turns[-1].text


def test_a_write_before_verification_is_refused_at_run_time() -> None:
    spec = parse_flow(
        {
            "name": "careless",
            "start": "ask_order",
            "steps": {
                "ask_order": {"ask": "order_id", "prompt": "订单号？", "next": "create"},
                "create": {
                    "call": "orders.create_return",
                    "args": {"kind": "return", "reason": "x"},
                    "next": "v",
                },
                "v": {"call": "orders.verify", "args": {"phone_last4": "slots.phone_last4"}, "next": "end"},
                "end": {"end": "completed"},
            },
        },
        "careless.yaml",
    )
    erp = FakeOrders(make_order())
    turn = FlowEngine({"careless": spec}, erp, Clock()).start("careless", "c1", "XP10023")
    assert turn.outcome == "handoff" and turn.data["reason"] == "identity_not_verified"
    assert erp.calls == []


def test_a_stored_state_that_is_not_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a stored flow state"):
        FlowState.from_dict({"flow": "x", "surprise": 1})


def test_idempotency_keys_differ_by_conversation_step_and_order() -> None:
    base = idempotency_key("c1", "return_exchange", "create", "XP1")
    assert base == idempotency_key("c1", "return_exchange", "create", "XP1")
    others = [
        idempotency_key("c2", "return_exchange", "create", "XP1"),
        idempotency_key("c1", "cancel_order", "create", "XP1"),
        idempotency_key("c1", "return_exchange", "other", "XP1"),
        idempotency_key("c1", "return_exchange", "create", "XP2"),
    ]
    assert base not in others and len(set(others)) == 4


def test_a_flow_bug_ends_as_failed_with_a_handoff_notice() -> None:
    spec = parse_flow(
        {
            "name": "buggy",
            "start": "ask_order",
            "steps": {
                "ask_order": {"ask": "order_id", "prompt": "订单号？", "next": "get"},
                "get": {"call": "orders.get", "next": "v"},
                "v": {"call": "orders.verify", "args": {"phone_last4": "1234"}, "next": "say"},
                "say": {"say": "单号 {result.return_id}", "next": "end"},  # no return was created
                "end": {"end": "completed"},
            },
        },
        "buggy.yaml",
    )
    turn = FlowEngine({"buggy": spec}, FakeOrders(make_order()), Clock()).start("buggy", "c1", "XP10023")
    assert turn.outcome == "failed" and "没有为您做任何更改" in turn.text
