from kefu.dialog.grounding import is_grounded, support, unsupported_numbers

SOURCES = (
    "[1] 配送说明 > 偏远地区\n新疆、西藏、青海、内蒙古、宁夏、甘肃属于偏远地区，统一使用中国邮政 EMS 发货，"
    "一般 5–8 天送达。偏远地区订单不满 199 元收取运费 20 元。"
)


def test_an_answer_restating_the_sources_is_grounded():
    assert is_grounded("新疆属于偏远地区，统一使用中国邮政 EMS 发货，一般 5–8 天送达 [1]。", SOURCES)


def test_an_answer_about_something_else_is_not():
    answer = "新疆是中华人民共和国自治区，自治区是中华人民共和国不可分割的一部分。"
    assert support(answer, SOURCES) < 0.5
    assert not is_grounded(answer, SOURCES)


def test_word_salad_from_the_sources_own_words_is_not_grounded():
    context = (
        SOURCES
        + "\n[2] 运费\n订单实付满 69 元包邮，不满 69 元收取运费 8 元。换货时尺码、颜色不合适由买家承担运费。"
    )
    assert support("运费计算公式：[1] 元/尺码，[2] 元/颜色，[3] 元/包邮。", context) < 0.5
    assert is_grounded("订单实付满 69 元包邮，不满 69 元收取运费 8 元 [2]。", context)


def test_an_invented_number_fails_even_when_the_words_match():
    answer = "新疆属于偏远地区，使用 EMS 发货，一般 3 天送达，运费 20 元。"
    assert unsupported_numbers(answer, SOURCES) == ["3天"]
    assert not is_grounded(answer, SOURCES)


def test_a_number_counts_with_its_unit():
    context = "[3] 发票\n确认收货后 3 天内开具电子发票。运费 20 元。"
    assert unsupported_numbers("运费 20 元，3 天内开票", context) == []
    assert unsupported_numbers("运费 3 元", context) == ["3元"]
    assert unsupported_numbers("[3] 里说了", "[3] 发票") == []


def test_citation_markers_are_not_numbers_and_english_words_count():
    assert unsupported_numbers("运费 20 元 [1][2]。", SOURCES) == []
    english = "[1] Shipping\nWe do not ship outside mainland China."
    assert is_grounded("We do not ship outside mainland China [1].", english)
    assert not is_grounded("Yes, we ship worldwide with DHL in three days.", english)
