"""Deterministic slot extraction and flow detection."""

from __future__ import annotations

import pytest

from kefu.flows import detect_flow
from kefu.flows import slots as read


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("订单号 xp10023", "XP10023"),
        ("XP123456 到哪了", "XP123456"),
        ("XP12", None),
        ("ABXP10023", None),
        ("", None),
    ],
)
def test_order_ids(text: str, found: str | None) -> None:
    assert read.order_id(text) == found


@pytest.mark.parametrize(
    ("text", "cue", "found"),
    [
        ("1234", False, "1234"),
        ("尾号是 5678", False, "5678"),
        ("XP10023", False, None),
        ("XP10023 0000", False, "0000"),
        ("13800001234", False, None),
        ("文一西路1888号", True, None),
        ("手机尾号1234，订单XP10023", True, "1234"),
        ("1234 和 5678", False, None),
    ],
)
def test_phone_last4(text: str, cue: bool, found: str | None) -> None:
    assert read.phone_last4(text, need_cue=cue) == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("质量问题", "quality"),
        ("耳机坏了", "quality"),
        ("有瑕疵", "quality"),
        ("it's broken", "quality"),
        ("不想要了", "no_reason"),
        ("不喜欢这个颜色", "no_reason"),
        ("changed my mind", "no_reason"),
        ("在吗", None),
    ],
)
def test_reasons(text: str, found: str | None) -> None:
    assert read.reason(text) == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("是", True), ("是的，确认", True), ("好的", True), ("yes please", True), ("OK", True), ("没问题", True),
        ("不是", False), ("不要", False), ("否", False), ("no", False), ("nope", False), ("不了", False),
        ("嗯…我想想", None), ("嗯嗯", True), ("什么意思", None), ("nothing", None), ("yesterday", None),
    ],
)  # fmt: skip
def test_yes_no(text: str, found: bool | None) -> None:
    assert read.yes_no(text) == found


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("已上传", [read.SAYS_HAS_PHOTOS]),  # a claim only: the flow has a person check the photos
        ("发了照片", [read.SAYS_HAS_PHOTOS]),
        ("有", [read.SAYS_HAS_PHOTOS]),
        ("I attached a photo", [read.SAYS_HAS_PHOTOS]),
        ("[图片:a.jpg] 请看", [read.SAYS_HAS_PHOTOS]),
        ("没有照片", []),
        ("没有", []),
        ("左耳没声音", None),
    ],
)
def test_photos_reads_what_the_customer_says_never_evidence(text: str, found: list[str] | None) -> None:
    assert read.photos(text) == found


@pytest.mark.parametrize("text", ["要多久？", "可以吗？", "是不是要运费？", "确认取消后钱多久退回"])
def test_a_question_is_never_read_as_a_yes(text: str) -> None:
    assert read.yes_no(text) is None


def test_a_question_is_not_free_text_unless_it_holds_a_number() -> None:
    assert read.free_text("运费是谁出的呀？", min_length=8) is None
    address = "浙江省杭州市西湖区文一西路1888号"
    assert read.free_text(address, min_length=8) == address
    assert read.free_text(address + "，可以吗？", min_length=8) == address + "，可以吗？"


def test_choice_takes_the_earliest_word() -> None:
    choices = {"return": ["退货", "退"], "exchange": ["换货", "换"]}
    assert read.choice("想退，不换", choices) == "return"
    assert read.choice("换货吧", choices) == "exchange"
    assert read.choice("随便", choices) is None


@pytest.mark.parametrize(
    ("text", "flow"),
    [
        ("我的订单到哪了", "order_status"),
        ("耳机收到8天了想退", "return_exchange"),
        ("退款", "return_exchange"),
        ("我想换个尺码", "return_exchange"),
        ("取消订单", "cancel_order"),
        ("取消订单，要退款", "cancel_order"),
        ("地址填错了，想改地址", "change_address"),
        ("帮我开发票", "invoice"),
        ("Where is my order?", "order_status"),
        ("I want to return my headphones", "return_exchange"),
        ("你们几点上班", None),
        ("发票抬头填错了怎么办", None),
        # a question ABOUT a policy is for the knowledge base; the customer's own request starts the flow
        ("换货运费谁出？", None),
        ("退货要多久到账", None),
        ("怎么取消订单？", None),
        ("能开发票吗？", None),
        ("下单后能修改收货地址吗？", None),
        ("怎么查物流", None),
        ("我想问一下退货运费谁出", None),
        ("How long does a refund take?", None),
        ("我要换货", "return_exchange"),
        ("帮我退了这个订单", "return_exchange"),
        ("耳机收到8天了想退，可以吗？", "return_exchange"),
        ("XP1001 能退款吗", "return_exchange"),
        ("XP1002 能退吗", "return_exchange"),
        ("耳机有质量问题要退货，运费我要自己出吗？钱多久退回来？", None),  # a request, but asks the facts
        ("还没发货能取消吗？钱多久退回来", None),
        ("能开发票不？能用花呗付不？", None),
        ("什么时候发货", None),
        ("我的订单什么时候发货", "order_status"),
        ("我要退货，怎么退", "return_exchange"),
        ("What do I need to return it?", None),
        ("收到 10 天了，耳机坏了还能退吗？", None),
        ("发货了吗", "order_status"),
        ("[身份证号_1]，帮我查下订单", "order_status"),
        ("I want a refund", "return_exchange"),
    ],
)
def test_detect_flow(text: str, flow: str | None) -> None:
    assert detect_flow(text) == flow
