import itertools

from kefu.kb.chunking import chunk_markdown, split_sentences

SENTENCES = [f"第{i}条规定说明了一件很重要的事情。" for i in range(1, 9)]
DOC = (
    "# 配送说明\n\n开头的介绍。\n\n## 偏远地区\n\n### 送达时间\n"
    + "".join(SENTENCES)
    + "\n\n## 其他\n最后一句！\n"
)


def test_sentences_split_on_chinese_and_english_ends() -> None:
    text = "满99元包邮；不满收8元。能发顺丰吗？可以！Hello world. Second one? 3.5 kg ok\n新的一行"
    assert [s.strip() for s in split_sentences(text)] == [
        "满99元包邮；",
        "不满收8元。",
        "能发顺丰吗？",
        "可以！",
        "Hello world.",
        "Second one?",
        "3.5 kg ok",
        "新的一行",
    ]


def test_chunks_keep_sentences_whole_with_one_sentence_overlap() -> None:
    chunks = [c for c in chunk_markdown(DOC, "docs/shipping.md", max_chars=60) if "送达时间" in c.section]
    assert len(chunks) > 2
    for chunk in chunks:
        assert len(chunk.text) <= 60
        assert all(part + "。" in SENTENCES for part in chunk.text.split("。") if part)
    for sentence in SENTENCES:
        assert any(sentence in c.text for c in chunks)
    for prev, nxt in itertools.pairwise(chunks):
        assert nxt.text.startswith(prev.text.split("。")[-2] + "。")


def test_heading_path_title_and_stable_ids() -> None:
    chunks = chunk_markdown(DOC, "docs/shipping.md")
    assert {c.title for c in chunks} == {"配送说明"}
    assert [c.section for c in chunks] == ["配送说明", "配送说明 > 偏远地区 > 送达时间", "配送说明 > 其他"]
    assert [c.id for c in chunks] == ["docs/shipping.md#1", "docs/shipping.md#2", "docs/shipping.md#3"]
    assert chunks == chunk_markdown(DOC, "docs/shipping.md")


def test_only_an_overlong_sentence_is_cut() -> None:
    long_sentence = "很" * 250 + "长。"
    chunks = chunk_markdown(f"# T\n短句。{long_sentence}短句二。", "docs/t.md", max_chars=100)
    assert all(len(c.text) <= 100 for c in chunks)
    assert "".join(c.text for c in chunks).count("很") >= 250


def test_fenced_code_is_not_a_heading_and_title_falls_back_to_file_name() -> None:
    chunks = chunk_markdown("正文。\n```\n# not a heading\n```\n", "docs/returns.md")
    assert {c.section for c in chunks} == {"returns"}
    assert "# not a heading" in chunks[0].text
