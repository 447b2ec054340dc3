import json
from pathlib import Path

import pytest

from kefu.errors import KnowledgeBaseError
from kefu.kb.loader import decode_text, load_pack

FAQ = [
    {
        "id": "ship-001",
        "question": "你们发什么快递？",
        "answer": "默认中通。",
        "similar": ["用哪家快递"],
        "tags": ["shipping"],
    },
    {"id": "ret-001", "question": "能退货吗？", "answer": "7 天无理由。"},
]


def write_pack(root: Path) -> Path:
    (root / "docs").mkdir(parents=True)
    (root / "faq").mkdir()
    (root / "docs" / "a.md").write_text("# 配送\n## 快递\n默认中通快递。", encoding="utf-8-sig")
    (root / "docs" / "b.md").write_bytes("# 发票\n## 抬头\n抬头写错了可以换开。".encode("gb18030"))
    (root / "faq" / "faq.json").write_text(json.dumps(FAQ, ensure_ascii=False), encoding="utf-8")
    return root


def test_decodes_utf8_bom_and_gb18030(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path))
    by_id = {c.id: c for c in pack.chunks}
    assert by_id["docs/a.md#1"].title == "配送"
    assert by_id["docs/b.md#1"].section == "发票 > 抬头"
    assert by_id["docs/b.md#1"].text == "抬头写错了可以换开。"


def test_undecodable_file_is_named() -> None:
    with pytest.raises(KnowledgeBaseError, match=r"docs/bad\.md"):
        decode_text(b"\x80\x81\xff binary", "docs/bad.md")


def test_faq_entry_is_one_chunk_with_paraphrase_keys(tmp_path: Path) -> None:
    pack = load_pack(write_pack(tmp_path))
    faq = next(c for c in pack.chunks if c.id == "faq:ship-001")
    assert (faq.kind, faq.question, faq.answer) == ("faq", "你们发什么快递？", "默认中通。")
    assert faq.text == "问：你们发什么快递？\n答：默认中通。"
    index = pack.chunks.index(faq)
    keys = {(k.text, k.kind) for k in pack.keys if k.chunk == index}
    assert keys == {("你们发什么快递？", "question"), ("用哪家快递", "question"), (faq.text, "passage")}


def test_version_is_stable_and_follows_content(tmp_path: Path) -> None:
    root = write_pack(tmp_path)
    first = load_pack(root).version
    assert load_pack(root).version == first
    (root / "docs" / "a.md").write_text("# 配送\n改了。", encoding="utf-8")
    assert load_pack(root).version != first


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"id": "x"}', "must be a JSON list"),
        ('[{"id": "x", "question": "q"}]', "'answer' must be a non-empty string"),
        ('[{"id": "ship-001", "question": "q", "answer": "a"}]', "ids must be unique"),
    ],
)
def test_bad_faq_file_names_file_and_fix(tmp_path: Path, content: str, message: str) -> None:
    root = write_pack(tmp_path)
    (root / "faq" / "z.json").write_text(content, encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=message) as info:
        load_pack(root)
    assert "z.json" in info.value.message


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="no docs"):
        load_pack(tmp_path)
