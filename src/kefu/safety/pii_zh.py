"""Personal names and street addresses in a (normalised) message, Chinese first.

Names are found by what introduces them — a cue (「我叫」「收件人」「姓名：」, "my name is") followed by
a common surname and one or two given-name characters — or by where they stand: a surname + given
name written right next to a phone number or an address (「李娜 13800138000」, a recipient line).
Bare names in questions (「李宁的鞋子怎么退」) are left alone: a cue or that context is required, and
``PUBLIC_NAMES`` are never taken from context alone.

Addresses follow the hierarchy province → city → district/county → town → road → building →
number (号/栋/单元/室…); one is taken from a gazetteer province or city, from a cue (「地址是」
「住在」「寄到」) or from a road with a house number, and the whole span becomes one placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from kefu.safety.pii_zh_places import CITIES, COMPOUND_SURNAMES, PROVINCES, PUBLIC_NAMES, SURNAMES

_CJK = "\u4e00-\u9fff"
# Characters that do not belong to a place name: they end or start one (「我家在」「寄到」「的」).
_PLACE_STOP = (
    "的了是在住到于和与给把被从向往我你他她它们这那个吗呢吧啊请帮要想改寄送发收货址地及或也都就还再已能可"
)
_W = rf"(?:(?![{_PLACE_STOP}])[{_CJK}])"
_NUM = r"(?:[0-9]+|[一二三四五六七八九十百零〇两]+)"
_SP = r"[ ]?"
_NOT_ROAD = "(?!大道|大街|路|街|巷)"  # 「中山路」「北京路」 are roads, not the city

_LEVELS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(_SP + body))
    for name, body in (
        (
            "province",
            rf"(?:(?:{'|'.join(PROVINCES)})(?:省|市|壮族自治区|回族自治区|维吾尔自治区|自治区|特别行政区)?{_NOT_ROAD}"
            rf"|{_W}{{2,3}}省)",
        ),
        ("city", rf"(?:(?:{'|'.join(CITIES)})市?{_NOT_ROAD}|{_W}{{1,5}}?(?:市|地区|盟)|{_W}{{2,10}}?自治州)"),
        ("district", rf"(?:{_W}{{1,7}}?(?:区|县|旗)|{_W}{{2,10}}?自治县)"),
        ("town", rf"{_W}{{1,5}}?(?:镇|乡|街道|村)"),
        ("road", rf"{_W}{{1,8}}?(?:大道|大街|路|街|巷|胡同|道(?=[ ]?{_NUM}))(?:{_NUM}段|[东南西北中]段)?"),
        (
            "building",  # by its suffix, or by the block number that follows it: 「金色港湾16栋」
            rf"(?:{_W}{{1,8}}?(?:小区|花园|公寓|大厦|广场|家园|新村|苑)|{_W}{{2,8}}?(?={_NUM}[ ]?(?:栋|幢|座|号楼|单元)))",
        ),
        ("number", rf"(?:[A-Z]{{1,2}}[0-9]{{0,3}}|{_NUM})[ ]?(?:号院|号楼|号|弄|栋|幢|座|单元|层|楼|室|户)"),
        ("number", r"[0-9]+-[0-9]+(?:-[0-9]+)?(?:室|号)?"),
    )
)
_RANK = {"province": 0, "city": 1, "district": 2, "town": 3, "road": 4, "building": 5, "number": 6}
_REPEATABLE = frozenset({"district", "road", "number"})  # 「南山区科技园南区」「中山路88弄」
_ROOM_TAIL = re.compile(r"[0-9]{2,5}(?![0-9])")
_ADDRESS_CUE = re.compile(
    r"(?:收货地址|送货地址|家庭住址|详细地址|新地址|住址|地址)(?:是|为|改成|改为|改到)?[:：]?[ ]?"
    r"|(?:家住|住在|我住|现住|寄到|送到|发到|寄往|寄去|搬到|改到|改成|位于)[ ]?"
)
_PLACE = re.compile("|".join(sorted((*PROVINCES, *CITIES), key=len, reverse=True)))
_DISTRICT = re.compile(r"(?<=[\u4e00-\u9fff])(?:区|县)")
_ROAD_WITH_NUMBER = re.compile(rf"(?:大道|大街|路|街|巷|胡同)[ ]?{_NUM}[ ]?(?:号|弄)")

_NAME_STOP = (
    "的了是在住到于和与给把被从向往我你他她它们这那个吗呢吧啊呀哦嗯请帮要想改寄送发收货址地电话手机号码身份证卡邮箱"
    "省市区县路街"
)
_GIVEN = rf"(?:(?![{_NAME_STOP}])[{_CJK}])"
_SURNAME = f"(?:{'|'.join(sorted(COMPOUND_SURNAMES))}|[{''.join(sorted(SURNAMES))}])"
_NAME = re.compile(rf"{_SURNAME}(?:先生|女士|小姐|{_GIVEN}{{1,2}})")
_STRONG_CUE = re.compile(
    r"(?:我叫|名叫|我的名字是|名字是|名字叫|收件人|收货人|联系人|寄件人|签收人|持卡人)(?:是|为|叫)?[:：]?[ ]?"
    r"|(?:姓名|名字|户名|开户名)(?:[:：][ ]?|是|为|[ ])"  # a form field: 「姓名：」, never 「姓名和身份证」
)
# After a strong cue a rarer surname than ours is still a name: 2–3 characters that end the clause.
_ANY_NAME = re.compile(rf"(?:{_GIVEN}(?:先生|女士|小姐)|{_GIVEN}{{2,3}})")
_RECIPIENT = re.compile(rf"(?<![{_CJK}])({_GIVEN}{{2,4}})[ ]?收(?![{_CJK}])")  # 「孙涵 收」 on a parcel label
_WEAK_CUE = re.compile(r"(?:我是|本人是|本人|请联系|联系)[ ]?")
# After a name given with a weak cue: the end of the clause, or what a customer says next.
_NAME_END = re.compile(rf"$|[^{_CJK}]|住|电话|手机|联系|身份|地址|今年|来自")
_EN_WORD = r"[^\W\d_][^\W\d_'\-]*(?:['\-][^\W\d_]+)*"  # any script: Hamanová, O'Neil, Smith-Jones
_EN_NAME = re.compile(
    r"(?:\b(?:[Mm]y name is|[Mm]y name's|[Nn]ame:|[Tt]his is|I am|I'm|[Dd]ear|[Cc]ontact)\s+"
    r"|\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+)"
    rf"({_EN_WORD}(?:\s+[^\W\d_]\.)?(?:\s+{_EN_WORD}){{0,2}})"
)
_EN_NOT_NAMES = frozenset(
    "I The A An Not So Very Sorry Happy Unable Still Just Here Looking Trying "  # noqa: SIM905
    "Writing Calling Interested Having Going Getting Done Okay Ok Fine Sure Glad New "
    "From In On At With Your Our My This That Hello Hi".split()
)


# What 「我是…」 introduces when it is not a name: roles, and the public names.
_NOT_NAMES = (
    PUBLIC_NAMES
    | frozenset(
        # words a cue can be followed by that are no name: 「联系方式」「收货人信息」
        "谢谢 方式 方便 方法 信息 是谁 写错 填错 不对 有误 电话 地址 姓名 名字 车牌".split()  # noqa: SIM905
    )
    | frozenset(
        "商家 卖家 买家 店家 店主 客户 用户 会员 学生 老师 司机 骑手 房东 房客 宾馆 商户 老板 新手 程序员 家长 凌晨 晚上 早上 中午 上午 下午 "  # noqa: SIM905
        "昨天 今天 明天 第一 外地 本地 江苏 江西 湖南 湖北 广东 广西 海南 安徽 福建 山东 山西 河南 河北 云南 贵州 四川 甘肃 青海 宁夏 西藏 "
        "新疆 台湾 香港 澳门".split()
    )
)


def _plausible(name: str) -> bool:
    return not any(name.startswith(word) for word in _NOT_NAMES)


def find_addresses(text: str) -> Iterator[tuple[int, int]]:
    """Address spans: every parse that reaches a street, building or house number."""
    starts: dict[int, bool] = {}  # start -> opened by a cue
    for match in _ADDRESS_CUE.finditer(text):
        starts[match.end()] = True
    for match in _PLACE.finditer(text):
        starts.setdefault(match.start(), False)
    # 「海淀区五道口华清嘉园12号楼」 (no province or city) and 「文一西路1888号」 (no district either):
    # from where the place name begins, unless a cue or a gazetteer place starts inside it
    for anchor in (*_DISTRICT.finditer(text), *_ROAD_WITH_NUMBER.finditer(text)):
        run = _run_start(text, anchor.start())
        if not any(run <= known < anchor.start() for known in starts):
            starts[run] = False
    for start, cued in sorted(starts.items()):
        end = _parse_address(text, start, cued)
        if end is not None:
            yield start, end


def _run_start(text: str, end: int) -> int:
    """Where the place-name characters ending at ``end`` begin (at most 24 back)."""
    start = end
    while start > max(0, end - 24) and re.fullmatch(_W, text[start - 1]):
        start -= 1
    return start


def _parse_address(text: str, start: int, cued: bool) -> int | None:
    pos, rank, seen = start, -1, []
    while True:
        for level, pattern in _LEVELS:
            after_number = level == "building" and rank == _RANK["number"] and "building" not in seen
            if not after_number and (
                _RANK[level] < rank or (_RANK[level] == rank and level not in _REPEATABLE)
            ):
                continue  # 「…路844号金色港湾16栋」: a complex may follow the house number
            match = pattern.match(text, pos)
            if match:
                pos, rank = match.end(), _RANK[level]
                seen.append(level)
                break
        else:
            break
    if seen and seen[-1] == "number":
        tail = _ROOM_TAIL.match(text, pos)
        pos = tail.end() if tail else pos
    if not _is_address(set(seen), cued):
        return None
    return pos if text[start:pos].strip() else None


def _is_address(levels: set[str], cued: bool) -> bool:
    street = levels & {"road", "building", "town"}
    admin = levels & {"city", "district"}
    if "number" in levels and (street or (admin and cued)):  # never a floor alone: 「我家住五楼」
        return True
    if not street:
        return False
    return cued or (bool(admin) and len(levels) >= 3)


def find_names(text: str) -> Iterator[tuple[int, int]]:
    """Names after a cue: 「我叫王小明」「收件人：欧阳娜娜」「訾伟 收」, "My name is Jane Doe"."""
    for match in _STRONG_CUE.finditer(text):
        name = _NAME.match(text, match.end()) or _ANY_NAME.match(text, match.end())
        if name and (name.re is _NAME or _NAME_END.match(text, name.end())) and _plausible(name.group(0)):
            yield name.span()
    for match in _RECIPIENT.finditer(text):
        yield match.span(1)
    for match in _WEAK_CUE.finditer(text):
        name = _NAME.match(text, match.end())
        if name and _plausible(name.group(0)) and _NAME_END.match(text, name.end()):
            yield name.span()
    for match in _EN_NAME.finditer(text):
        words = match.group(1).split()
        if words[0][0].isupper() and words[0] not in _EN_NOT_NAMES:
            yield match.start(1), match.start(1) + len(" ".join(words[: _leading(words)]))


def _leading(words: list[str]) -> int:
    """How many of ``words`` from the start are capitalised (a name ends at "Smith and")."""
    count = 0
    while count < len(words) and words[count][0].isupper():
        count += 1
    return count


def names_beside(text: str, spans: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """A surname + given name written right before or after a phone number or an address
    (「李娜 上海市徐汇区…」「13800138000 张伟」): the recipient line of a form."""
    for start, end in spans:
        before = start
        while before > 0 and text[before - 1] in " ,，:：":
            before -= 1
        run = before
        while run > max(0, before - 5) and re.fullmatch(_GIVEN, text[run - 1]):
            run -= 1
        name = _NAME.fullmatch(text, run, before)  # the whole run: 「联系方式」 holds no name 「方式」
        if name and _plausible(name.group(0)):
            yield run, before
        after = end
        while after < len(text) and text[after] in " ,，:：":
            after += 1
        name = _NAME.match(text, after)
        if name and _plausible(name.group(0)) and _NAME_END.match(text, name.end()):
            yield name.span()
