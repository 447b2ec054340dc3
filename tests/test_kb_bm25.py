from kefu.kb.bm25 import BM25, tokenize


def test_mixed_chinese_english_tokens() -> None:
    tokens = tokenize("我的iPhone 15 Pro退货要多久？Refund!")
    assert {"iphone", "15", "pro", "退货", "多久", "refund"} <= set(tokens)
    assert not {"我", "的", "？", "!", " "} & set(tokens)


def test_search_tokens_include_sub_words() -> None:
    assert {"中华", "人民", "共和国"} <= set(tokenize("中华人民共和国"))


def test_bm25_ranks_documents_with_query_terms() -> None:
    docs = ["新疆和西藏属于偏远地区，使用EMS发货。", "默认使用中通快递发货。", "发票可以在订单详情下载。"]
    scores = BM25([tokenize(d) for d in docs]).scores(tokenize("新疆怎么发货"))
    assert scores.argmax() == 0
    assert scores[2] == 0
