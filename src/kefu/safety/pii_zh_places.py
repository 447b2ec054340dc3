"""Gazetteers for Chinese names and addresses, written from public knowledge (no third-party data).

* ``SURNAMES`` / ``COMPOUND_SURNAMES``: the common surnames of the 百家姓 tradition as ranked in
  public census summaries (the top few hundred single-character ones, the usual two-character ones).
* ``PROVINCES``: the 34 provincial-level divisions (GB/T 2260 names, short form);
  ``CITIES``: capitals and large prefecture-level cities (short form, without 市).
* ``PUBLIC_NAMES``: people and brands whose names customers mention in plain shop questions
  (「李宁的鞋」「王老吉」); they are not redacted unless a cue says the customer is giving a name.

The evaluation set (``kefu.evals.pii_zh_data``) draws its names and places from its own lists and
reports separately on the entries that are not in these ones.
"""

from __future__ import annotations

SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫阎段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅"
    "童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项"
    "连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞"
    "敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花"
    "权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母"
    "裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸"
    "奉植衡富尧闭由"
)
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 钟离 澹台 端木 百里 呼延 南宫 西门 独孤 闻人 万俟 申屠 "  # noqa: SIM905
    "太史 拓跋 赫连 东郭 公冶 宗政 濮阳 淳于 单于 太叔 仲孙 司空".split()
)

PROVINCES = (  # noqa: SIM905
    "北京 天津 上海 重庆 河北 山西 辽宁 吉林 黑龙江 江苏 浙江 安徽 福建 江西 山东 河南 湖北 湖南 广东 海南 四川 贵州 云南 陕西 甘肃 青海 "
    "台湾 内蒙古 广西 西藏 宁夏 新疆 香港 澳门"
).split()

CITIES = (  # noqa: SIM905
    "石家庄 唐山 保定 邯郸 太原 大同 沈阳 大连 鞍山 长春 哈尔滨 大庆 南京 苏州 无锡 常州 南通 徐州 扬州 杭州 宁波 温州 绍兴 嘉兴 金华 台州 "
    "湖州 合肥 芜湖 福州 厦门 泉州 南昌 赣州 济南 青岛 烟台 潍坊 临沂 郑州 洛阳 武汉 宜昌 襄阳 长沙 株洲 岳阳 广州 深圳 东莞 佛山 珠海 "
    "中山 惠州 汕头 海口 三亚 成都 绵阳 贵阳 遵义 昆明 大理 西安 咸阳 兰州 西宁 呼和浩特 包头 南宁 桂林 柳州 拉萨 银川 乌鲁木齐 喀什"
).split()

# Said in plain questions about products and news; a customer giving one of these as their own name
# uses a cue (「我叫」「收件人」), and then it is redacted all the same.
PUBLIC_NAMES = frozenset(
    "李宁 王老吉 马云 马化腾 雷军 刘强东 任正非 董明珠 周杰伦 张小泉 李子柒 钟薛高 周大福 周生生 周黑鸭 王府井 张裕 白象 江小白 孔乙己 李白 "  # noqa: SIM905
    "杜甫 苏轼 孙悟空 猪八戒 诸葛亮 孔子 毛泽东 鲁迅 姚明 刘翔 成龙 李小龙 金庸 黄飞鸿 王致和 全聚德 马应龙 云南白药 康师傅 海底捞 华为 小米 "
    "安踏 特步".split()
)
