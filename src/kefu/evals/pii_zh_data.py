"""A labelled Chinese PII set generated from templates and public name / place lists (seeded).

Records have presidio's shape (``full_text`` and ``spans`` with ``entity_type``, ``start_position``,
``end_position``), so one scorer serves both. The lists below are written from public knowledge
(surnames of the 百家姓 tradition, common given-name characters, Chinese prefecture-level cities,
road-name stems; international phone numbers in the ranges regulators reserve for drama and
examples: Ofcom 020 7946 0xxx, NANP 555-01xx, ACMA 02 5550 xxxx).

Honesty: the detector's gazetteer (``kefu.safety.pii_zh_places``) was written by the same hand.
Every list entry is assigned to ``dev`` or ``test`` by a hash of the entry, and a split draws only
its own entries, so the test split's names, cities and roads are ones no rule was tuned on; the
scorer also reports recall on the entries that are *not* in the detector's gazetteer. Templates
were written before the detector was tuned on this set and include cases it does not handle
(a name with no cue, 「帮我查下张三的快递」).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

SURNAMES = (  # noqa: SIM905
    "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 高 林 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 袁 潘 蒋 蔡 余 "
    "杜 叶 程 苏 魏 吕 丁 任 沈 姚 卢 姜 崔 钟 谭 陆 汪 范 金 石 廖 贾 夏 韦 方 白 邹 孟 熊 秦 邱 江 尹 薛 段 雷 侯 龙 史 陶 "
    "黎 贺 顾 毛 郝 龚 邵 万 钱 严 武 戴 莫 孔 汤 常 康 施 文 牛 樊 葛 邢 訾 逄 仉 郗 鄂 蹇 雒 暴 钭 佴 寿 扶 堵 冒 厍 璩 桓 "
    "郦 禄 糜 欧阳 司马 上官 诸葛 东方 皇甫 慕容 司徒 夏侯 令狐 公孙 宇文 长孙 端木 呼延 南宫"
).split()
GIVEN = (  # noqa: SIM905
    "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 娟 涛 明 超 秀 霞 平 刚 桂 英 华 玉 兰 萍 红 鹏 飞 斌 辉 宇 浩 欣 怡 梓 涵 子 轩 "
    "雨 萱 思 佳 晨 博 文 俊 嘉 瑞 一 诺 若 曦 婷 雪 琳 晓 建 国 志 海 波 春 燕 颖 鑫 亮 彬 健 凯 乐 安 楠 阳 蕾 倩 莉 薇 琪 "
    "悦 泽 宏 远 昊 天 睿 铭"
).split()
PROVINCE_CITIES = (
    ("河北省", "石家庄 唐山 秦皇岛 廊坊 沧州 衡水 邢台 张家口"),
    ("山西省", "太原 大同 晋中 运城 临汾 长治"),
    ("辽宁省", "沈阳 大连 锦州 丹东 营口 鞍山"),
    ("吉林省", "长春 四平 延边朝鲜族自治州 通化"),
    ("黑龙江省", "哈尔滨 齐齐哈尔 牡丹江 佳木斯"),
    ("江苏省", "南京 苏州 无锡 盐城 淮安 连云港 镇江 泰州 宿迁"),
    ("浙江省", "杭州 宁波 温州 衢州 舟山 丽水 金华"),
    ("安徽省", "合肥 蚌埠 安庆 阜阳 黄山 马鞍山"),
    ("福建省", "福州 厦门 漳州 莆田 龙岩 三明"),
    ("江西省", "南昌 九江 上饶 景德镇 宜春"),
    ("山东省", "济南 青岛 淄博 济宁 泰安 威海 日照 德州 聊城"),
    ("河南省", "郑州 开封 新乡 南阳 商丘 信阳 许昌"),
    ("湖北省", "武汉 黄石 十堰 荆州 孝感 恩施土家族苗族自治州"),
    ("湖南省", "长沙 衡阳 常德 郴州 湘潭 益阳"),
    ("广东省", "广州 深圳 韶关 江门 湛江 茂名 肇庆 揭阳 清远"),
    ("四川省", "成都 自贡 泸州 德阳 南充 宜宾 乐山 甘孜藏族自治州"),
    ("贵州省", "贵阳 六盘水 安顺 毕节"),
    ("云南省", "昆明 曲靖 玉溪 丽江 红河哈尼族彝族自治州"),
    ("陕西省", "西安 宝鸡 汉中 榆林 延安"),
    ("甘肃省", "兰州 天水 酒泉 张掖"),
    ("广西壮族自治区", "南宁 桂林 北海 梧州 玉林"),
    ("新疆维吾尔自治区", "乌鲁木齐 克拉玛依 伊犁哈萨克自治州"),
)
MUNICIPALITIES = ("北京市", "上海市", "天津市", "重庆市")
DISTRICT_STEMS = (  # noqa: SIM905
    "城关 新华 长安 高新 开发 经济技术开发 滨湖 东湖 西湖 南湖 北塘 河西 江北 江南 桥东 城南 城北 临港 龙华 青山 金水 雁塔"
).split()
DISTRICT_SUFFIXES = ("区", "区", "县")
TOWNS = ["长安镇", "柳市镇", "石桥镇", "花桥镇", "龙泉街道", "新城街道", "西湖街道", "东风乡"]
ROAD_STEMS = (  # noqa: SIM905
    "人民 解放 中山 建设 和平 胜利 文化 幸福 光明 青年 新华 朝阳 友谊 健康 跃进 团结 长江 黄河 滨江 复兴 兴业 创业 科技 学府 锦绣 春晖 "
    "桂花 梧桐 枫林 银杏 翠柏 望江 临湖 星光"
).split()
ROAD_SUFFIXES = ("路", "路", "街", "大道", "东路", "西路", "南路", "北路", "巷", "大街")
COMPLEXES = (  # noqa: SIM905
    "阳光花园 锦绣家园 翠湖小区 金色港湾 世纪公寓 幸福里小区 绿城桂花苑 时代广场"
).split()
EN_FIRST = (  # noqa: SIM905
    "James Mary Robert Patricia Michael Linda David Susan Daniel Karen Olivia Liam Noah Emma Lucas"
).split()
EN_LAST = (  # noqa: SIM905
    "Smith Johnson Brown Taylor Wilson Martin Clarke Walker Young Harris Lewis Baker Turner Hughes"
).split()
PLATE_REGIONS = "京津沪渝冀豫云辽黑湘皖鲁苏浙赣鄂桂甘晋陕吉闽贵粤川琼"
PUBLIC = ["李宁", "王老吉", "马云", "周杰伦", "刘强东", "雷军", "姚明", "周大福", "张小泉", "董明珠"]


def split_of(entry: str) -> str:
    """``test`` for about a third of the entries of every list, by hash; ``dev`` for the rest."""
    return "test" if hashlib.sha256(entry.encode()).digest()[0] % 3 == 0 else "dev"


@dataclass
class _Pick:
    rng: random.Random
    split: str

    def one(self, items: Sequence[str]) -> str:
        own = [item for item in items if split_of(item) == self.split] or list(items)
        return self.rng.choice(own)

    def digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))


def _name(p: _Pick) -> str:
    title = p.rng.random() < 0.1
    return p.one(SURNAMES) + (p.rng.choice(("先生", "女士")) if title else _given(p))


def _given(p: _Pick) -> str:
    return p.one(GIVEN) + (p.one(GIVEN) if p.rng.random() < 0.7 else "")


def _address(p: _Pick) -> str:
    if p.rng.random() < 0.3:
        head = p.one(MUNICIPALITIES)
    else:
        province, cities = p.rng.choice(PROVINCE_CITIES)
        city = p.one(cities.split())
        head = (province if p.rng.random() < 0.7 else "") + city + ("" if city.endswith("州") else "市")
    district = p.one(DISTRICT_STEMS) + p.rng.choice(DISTRICT_SUFFIXES) if p.rng.random() < 0.8 else ""
    town = p.one(TOWNS) if p.rng.random() < 0.15 else ""
    road = p.one(ROAD_STEMS) + p.rng.choice(ROAD_SUFFIXES)
    sep = " " if p.rng.random() < 0.2 else ""
    number = f"{p.rng.randint(1, 999)}{sep}号"
    detail = p.rng.choice(
        (
            "",
            f"{p.one(COMPLEXES)}{p.rng.randint(1, 30)}栋{p.rng.randint(1, 6)}单元{p.rng.randint(1, 30)}0{p.rng.randint(1, 4)}",
            f"{p.rng.randint(1, 20)}幢{p.rng.randint(101, 2808)}室",
            f"{p.rng.randint(1, 9)}号楼{p.rng.randint(1, 30)}层",
            f"{p.rng.randint(1, 12)}-{p.rng.randint(101, 1808)}",
        )
    )
    if p.rng.random() < 0.2:  # the short form people type: no province or city
        head, district = "", (district or p.one(DISTRICT_STEMS) + "区")
    return f"{head}{district}{town}{road}{number}{detail}"


def _phone(p: _Pick) -> str:
    m = "1" + p.rng.choice("3456789") + p.digits(9)
    forms: tuple[Callable[[], str], ...] = (
        lambda: m,
        lambda: f"{m[:3]} {m[3:7]} {m[7:]}",
        lambda: f"{m[:3]}-{m[3:7]}-{m[7:]}",
        lambda: f"+86 {m[:3]} {m[3:7]} {m[7:]}",
        lambda: f"+86-{m}",
        lambda: f"0086 {m}",
        lambda: f"010-{p.rng.choice('2568')}{p.digits(7)}",
        lambda: f"(021) {p.rng.choice('3456')}{p.digits(3)} {p.digits(4)}",
        lambda: f"0755-{p.rng.choice('2368')}{p.digits(3)} {p.digits(4)} 转 {p.digits(3)}",
        lambda: f"0571-{p.rng.choice('2568')}{p.digits(7)}",
        lambda: f"+1 (415) 555-01{p.digits(2)}",
        lambda: f"+1 212-555-01{p.digits(2)}",
        lambda: f"+44 20 7946 0{p.digits(3)}",
        lambda: f"+44 7700 900{p.digits(3)}",
        lambda: f"+61 2 5550 {p.digits(4)}",
        lambda: f"+81 3-{p.digits(4)}-{p.digits(4)}",
        lambda: f"+49 30 {p.digits(7)}",
        lambda: f"+33 1 {p.digits(2)} {p.digits(2)} {p.digits(2)} {p.digits(2)}",
        lambda: f"+852 {p.rng.choice('23')}{p.digits(3)} {p.digits(4)}",
        lambda: f"+65 6{p.digits(3)} {p.digits(4)}",
        lambda: f"+886 2 {p.digits(4)} {p.digits(4)}",
    )
    return p.rng.choice(forms)()


def _plate(p: _Pick) -> str:
    region = p.rng.choice(PLATE_REGIONS) + p.rng.choice("ABCDEFGHJK")
    tail = p.rng.choice(
        (
            f"{p.digits(5)}",
            f"{p.rng.choice('ABCDEFGHJKLMN')}{p.digits(4)}",
            f"D{p.digits(5)}",
            f"{p.digits(5)}F",
        )
    )
    return region + p.rng.choice(("", "·", " ")) + tail


def _passport(p: _Pick) -> str:
    return p.rng.choice("EG") + p.digits(8)


def _en_name(p: _Pick) -> str:
    return f"{p.one(EN_FIRST)} {p.one(EN_LAST)}"


_FILL: dict[str, tuple[str, Callable[[_Pick], str]]] = {
    "name": ("PERSON", _name),
    "en_name": ("PERSON", _en_name),
    "address": ("ADDRESS", _address),
    "phone": ("PHONE_NUMBER", _phone),
    "plate": ("LICENSE_PLATE", _plate),
    "passport": ("PASSPORT", _passport),
}
_DECOYS: dict[str, Callable[[_Pick], str]] = {
    "order": lambda p: "XP" + p.digits(4),
    "waybill": lambda p: "SF" + p.digits(10),
    "last4": lambda p: p.digits(4),
    "amount": lambda p: f"{p.rng.randint(9, 4999)}.{p.digits(2)}",
    "date": lambda p: f"2025-{p.rng.randint(1, 12):02d}-{p.rng.randint(1, 28):02d}",
    "public": lambda p: p.rng.choice(PUBLIC),
}

TEMPLATES = (
    "我叫{name}，住{address}",
    "收件人：{name}，电话：{phone}，地址：{address}",
    "{name} {phone} {address}",
    "您好，我是{name}，订单{order}一直没发货",
    "麻烦把订单{order}的收货地址改成{address}，谢谢",
    "地址是{address}，收货人{name}",
    "我的手机号是{phone}，有问题请联系我",
    "快递寄到{address}了吗？运单{waybill}",
    "联系人{name}，联系方式{phone}",
    "帮我查下{name}的快递，手机尾号{last4}",
    "新地址：{address} {name} {phone}",
    "我家在{address}，能送货上门吗",
    "请联系{name}，电话 {phone}",
    "我的车牌是{plate}，停车费怎么开发票",
    "护照号{passport}，{name}，下周出国能到货吗",
    "姓名：{name}\n手机：{phone}\n地址：{address}",
    "My name is {en_name}, please call me at {phone}",
    "寄件人{name}（{phone}）",
    "{address}\n{name} 收\n{phone}",
    "订单{order}，尾号{last4}，我要退货",
    "{public}的鞋子怎么退？订单{order}",
    "{date}下的单，付了{amount}元，什么时候发货",
    "你们和{public}有合作吗",
    "尾号{last4}",
    "我想问一下{public}旗舰店的发票怎么开",
)


def generate(split: str, seed: int = 12, per_template: int = 24) -> list[dict[str, Any]]:
    """``per_template`` records of each template, drawing only ``split``'s list entries."""
    p = _Pick(random.Random(f"{seed}:{split}"), split)
    records = []
    for number, template in enumerate(TEMPLATES):
        for _ in range(per_template):
            records.append(_fill(template, p, number))
    return records


def _fill(template: str, p: _Pick, number: int) -> dict[str, Any]:
    text, spans, rest = "", [], template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        slot, _, rest = tail.partition("}")
        text += head
        if slot in _FILL:
            label, make = _FILL[slot]
            value = make(p)
            start = len(text)
            spans.append(
                {
                    "entity_type": label,
                    "start_position": start,
                    "end_position": start + len(value),
                    "entity_value": value,
                }
            )
        else:
            value = _DECOYS[slot](p)
        text += value
    return {"full_text": text + rest, "spans": spans, "template_id": number}
