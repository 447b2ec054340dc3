"""``kefu export finetune`` on answers made by the real Assistant (scripted model, the mini KB): the
exported system prompt is the one the model received (sources as stored snippets), the answer rated 👍 is
an example, the one rated 👎 is not, and the CLI prints its counts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from conftest import MINI_KB, ask, new_conversation
from kefu.api.app import create_app
from kefu.cli import app as cli
from kefu.config import Settings
from kefu.dialog.orchestrator import SNIPPET_CHARS
from kefu.learning.finetune import KbChunkTexts, collect
from kefu.llm.testing import ScriptedModel
from kefu.storage.engine import make_engine
from kefu.storage.models import MessageRow


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(kb_dir=MINI_KB)


@pytest.fixture
def shop(settings: Settings, model: ScriptedModel) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model)) as test_client:
        yield test_client


def test_rated_answers_of_the_real_assistant_become_examples(
    shop: TestClient,
    model: ScriptedModel,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    good, bad = new_conversation(shop), new_conversation(shop)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    liked = ask(shop, good, "你们发什么快递？多久能到？")
    assert liked["answer_kind"] == "grounded"
    received = model.history[-1].messages[0].content  # the system prompt the model was given
    model.enqueue("我们默认使用中通快递 [1]。")
    disliked = ask(shop, bad, "你们发什么快递？")
    for conversation, message, score in ((good, liked, 1), (bad, disliked, 0)):
        response = shop.post(
            f"/v1/conversations/{conversation}/messages/{message['id']}/rating",
            json={"kind": "thumbs", "score": score},
        )
        assert response.status_code in (200, 201), response.text

    monkeypatch.setenv("KEFU_DATA_DIR", str(Path(settings.data_dir)))
    out = tmp_path / "ft"
    result = CliRunner().invoke(cli, ["export", "finetune", "--out", str(out), "--since", "30d"])
    assert result.exit_code == 0, result.output
    assert "1 examples (1 well-rated, 0 agent-corrected) from 1 conversations" in result.output
    assert "low_rated 1" in result.output
    lines = (out / "train.jsonl").read_text("utf-8").splitlines() + (out / "validation.jsonl").read_text(
        "utf-8"
    ).splitlines()
    (example,) = [json.loads(line) for line in lines]
    system, user, assistant = example["messages"]
    assert (user, assistant) == (
        {"role": "user", "content": "你们发什么快递？多久能到？"},
        {"role": "assistant", "content": "我们默认使用中通快递，江浙沪 1–2 天送达 [1]。"},
    )
    # the very prompt the model was given: the cited chunks' full text re-read from the KB version
    assert system == {"role": "system", "content": received}
    assert "sources as their stored snippet" not in result.output


def test_sources_fall_back_to_the_snippet_when_the_kb_version_is_gone(
    shop: TestClient, model: ScriptedModel, settings: Settings, tmp_path: Path
) -> None:
    conversation = new_conversation(shop)
    model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    message = ask(shop, conversation, "你们发什么快递？多久能到？")
    received = model.history[-1].messages[0].content
    shop.post(
        f"/v1/conversations/{conversation}/messages/{message['id']}/rating",
        json={"kind": "thumbs", "score": 1},
    )
    engine = make_engine(settings.effective_database_url)
    missing = KbChunkTexts(engine, settings.kb_chunk_chars, settings.kb_chunk_overlap)
    with engine.begin() as conn:  # the citations name a version this store does not hold
        conn.execute(
            update(MessageRow).values(citations=[{**c, "kb_version": "v99"} for c in message["citations"]])
        )
    result = collect(engine, shop=settings.shop_name, texts=missing)
    engine.dispose()
    (example,) = result.examples
    assert result.snippet_sources == len(message["citations"]) >= 1
    system = example.messages[0]["content"]
    rules, sources = received.split("【资料】\n")
    assert system.startswith(rules + "【资料】\n")
    for got, sent in zip(system.split("【资料】\n")[1].split("\n\n"), sources.split("\n\n"), strict=True):
        heading, _, text = sent.partition("\n")
        assert got == f"{heading}\n{text.strip()[:SNIPPET_CHARS]}"  # the stored snippet


def test_the_validation_share_is_checked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KEFU_DATA_DIR", str(Path(settings.data_dir)))
    result = CliRunner().invoke(cli, ["export", "finetune", "--out", str(tmp_path), "--validation", "1.5"])
    assert result.exit_code != 0 and "--validation 1.5 is not in [0, 1)" in result.output
