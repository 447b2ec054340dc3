"""Chinese names and addresses, phone formats, plates: what the model would receive instead."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import ask, new_conversation
from kefu.llm.testing import ScriptedModel
from kefu.safety import MemoryPiiVault, PiiType, redact_pii, restore

ISSUE = "我叫王小明，住北京市朝阳区建国路88号3单元502"


def test_the_issue_sentence_loses_both_name_and_address() -> None:
    r = redact_pii(ISSUE)
    assert r.text == "我叫[姓名_1]，住[地址_1]"
    assert r.mapping == {"[姓名_1]": "王小明", "[地址_1]": "北京市朝阳区建国路88号3单元502"}
    assert [e.type for e in r.entities] == [PiiType.PERSON, PiiType.ADDRESS]
    assert restore(r.text, r.mapping) == ISSUE


def test_the_model_and_the_stored_message_get_no_name_or_address(
    client: TestClient, model: ScriptedModel
) -> None:
    conversation = new_conversation(client)
    model.enqueue("好的。")
    ask(client, conversation, ISSUE + "，快递多久能到？")
    stored = client.get(f"/v1/conversations/{conversation}/messages").json()["data"][0]["content"]
    assert stored.startswith("我叫[姓名_1]，住[地址_1]")
    for raw in ("王小明", "建国路", "朝阳区", "3单元502"):
        assert raw not in stored
        assert all(raw not in m.content for m in model.history[-1].messages)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("收件人：欧阳娜娜，电话 138-0013-8000", "收件人：[姓名_1]，电话 [手机号_1]"),
        ("姓名：訾伟\n手机：13800138000", "姓名：[姓名_1]\n手机：[手机号_1]"),  # a surname not in our list
        ("联系人王先生，联系方式 13900139000", "联系人[姓名_1]，联系方式 [手机号_1]"),
        (
            "李娜 上海市徐汇区漕溪北路 1 号",
            "[姓名_1] [地址_1]",
        ),  # a recipient line: no cue, but beside an address
        ("13800138000 张伟", "[手机号_1] [姓名_1]"),
        ("江南区桂花路31号绿城桂花苑17栋3单元2502 孙涵 收", "[地址_1] [姓名_1] 收"),
        ("My name is Marie Hamanová, where is my parcel?", "My name is [姓名_1], where is my parcel?"),
    ],
)
def test_names_with_a_cue_or_beside_an_identifier(text: str, expected: str) -> None:
    assert redact_pii(text).text == expected


@pytest.mark.parametrize(
    "address",
    [
        "北京市朝阳区建国路88号3单元502",
        "浙江省杭州市余杭区文一西路1888号",
        "上海市浦东新区世纪大道 200 号 3 楼",
        "广东省深圳市南山区科技园南区高新南一道8号",
        "成都市武侯区人民南路四段1号",
        "云南省红河哈尼族彝族自治州城关区临湖路910号18幢232室",
        "天津市中山路844号5号楼4层",  # 「中山」 is a city too: here it is a road
        "余杭区文一西路1888号金色港湾16栋3单元802",
        "海淀区五道口华清嘉园12号楼3单元501",  # no province, city or road
    ],
)
def test_a_whole_address_is_one_placeholder(address: str) -> None:
    for text in (f"地址是{address}", f"麻烦寄到{address}，谢谢", f"我家在{address}"):
        r = redact_pii(text)
        assert [text[e.start : e.end] for e in r.entities] == [address], text


@pytest.mark.parametrize(
    "phone",
    [
        "+86 138 0013 8000",
        "0086-138-0013-8000",
        "138 0013 8000",
        "010-12345678",
        "(021) 1234 5678",
        "0755-8888 8888 转 123",
        "+1 (415) 555-0123",
        "+44 20 7946 0958",
        "0044 20 7946 0958",
        "+81 3-1234-5678",
        "+33 1 23 45 67 89",
        "+852 2123 4567",
    ],
)
def test_phone_formats(phone: str) -> None:
    r = redact_pii(f"有事打我电话 {phone}，谢谢")
    assert [r.mapping[e.placeholder] for e in r.entities] == [phone]
    assert {e.type for e in r.entities} <= {PiiType.MOBILE, PiiType.PHONE}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("车牌京A·12345", "车牌[车牌号_1]"),
        ("我的车是粤B12345", "我的车是[车牌号_1]"),
        ("新能源车 粤BD12345 停车费", "新能源车 [车牌号_1] 停车费"),
        ("护照号码 G12345678", "护照号码 [护照号_1]"),
        ("credit card 587428561654 transactions", "credit card [银行卡号_1] transactions"),
    ],
)
def test_plates_passports_and_cards_said_to_be_cards(text: str, expected: str) -> None:
    assert redact_pii(text).text == expected


@pytest.mark.parametrize(
    "text",
    [
        "李宁的鞋子怎么退？",  # a brand
        "马云是谁",  # a public figure, no cue
        "你们和周杰伦有合作吗",
        "王老吉一箱多少钱",
        "我是江苏的，运费多少",
        "我是商家，怎么开通花呗",
        "寄到北京市朝阳区要几天？",  # a city and district only: no street, nothing personal
        "我不知道怎么退货",
        "我家住五楼，能送上楼吗",
        "订单XP1002 尾号 8001",  # the order flow needs both
        "8001",  # a lone 4-digit answer to 「请回复手机号后 4 位」
        "SF1410130086 到哪了",  # a waybill
        "2024-05-12 下的单，付了 1299.00 元",
        "型号 XP-2000 有货吗",
        "我的姓名和身份证填错了怎么改",
    ],
)
def test_plain_shop_questions_and_public_names_stay(text: str) -> None:
    r = redact_pii(text)
    assert r.text == text, r.entities


def test_placeholders_stay_stable_and_redacting_twice_changes_nothing() -> None:
    vault = MemoryPiiVault()
    first = redact_pii(ISSUE, vault=vault)
    again = redact_pii("还是寄到北京市朝阳区建国路88号3单元502，收件人王小明", vault=vault)
    assert again.text == "还是寄到[地址_1]，收件人[姓名_1]"
    assert redact_pii(first.text).text == first.text
    assert vault.known()["[地址_1]"] == "北京市朝阳区建国路88号3单元502"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        (
            "I live at 123 Main Street, Apt. 4, Springfield IL 62704",
            "123 Main Street, Apt. 4, Springfield IL 62704",
        ),
        ("send it to 14 Crown Street\nSuite 321\nLONDON", "14 Crown Street\nSuite 321\nLONDON"),
        ("The bus station is on Villacher Strasse 89", "Villacher Strasse 89"),
        ("Meet me at PSC 1437, Box 3833\nAPO AA 66791", "PSC 1437, Box 3833\nAPO AA 66791"),
    ],
)
def test_western_street_addresses(text: str, address: str) -> None:
    r = redact_pii(text)
    assert [r.mapping[e.placeholder] for e in r.entities if e.type is PiiType.ADDRESS] == [address]


@pytest.mark.parametrize("phone", ["020 7946 0958", "030 1234 5678", "01 23 45 67 89", "(02) 5550 1234"])
def test_national_numbers_written_in_groups(phone: str) -> None:
    assert redact_pii(f"ring {phone} after six").text == "ring [电话_1] after six"


@pytest.mark.parametrize("text", ["I want 2 Big Macs", "2024 05 12 delivery", "total 1 000 000 yuan"])
def test_numbers_and_words_that_are_no_address_or_phone(text: str) -> None:
    assert redact_pii(text).text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pay4111111111111111now", "pay[银行卡号_1]now"),
        ("ID11010519491231002X", "ID[身份证号_1]"),
        ("订单号ABC6222021234567890128", "订单号ABC6222021234567890128"),  # an order number, Luhn or not
        ("SN4111111111111112", "SN4111111111111112"),  # fails Luhn
    ],
)
def test_numbers_glued_to_letters_are_found_by_their_checksum(text: str, expected: str) -> None:
    assert redact_pii(text).text == expected
