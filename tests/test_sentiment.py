"""Sentiment of customer messages (zh classifier + lexicon, en VADER) and the escalation rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kefu.errors import ConfigError
from kefu.safety.sentiment import NEUTRAL_BAND, SentimentTracker, label_of, score_sentiment
from kefu.safety.sentiment_zh import ZhSentimentModel, bundled_model, char_ngrams


@pytest.mark.parametrize(
    "text",
    ["等了一周还没到，太差劲了", "客服态度太差了，再也不买了", "我要投诉，东西坏了也没人管", "不太满意"],
)
def test_clear_chinese_complaints_are_negative(text: str) -> None:
    assert score_sentiment(text).label == "negative"


@pytest.mark.parametrize("text", ["谢谢，问题解决了", "质量很好，很满意", "非常感谢你的帮助"])
def test_clear_chinese_praise_is_positive(text: str) -> None:
    assert score_sentiment(text).label == "positive"


@pytest.mark.parametrize("text", ["我的订单什么时候发货？", "能开发票吗", "耳机坏了怎么保修"])
def test_plain_shop_questions_are_not_negative(text: str) -> None:
    assert score_sentiment(text).label != "negative"


def test_english_uses_vader() -> None:
    assert score_sentiment("This is terrible, my order never arrived and nobody answers").label == "negative"
    assert score_sentiment("Thanks a lot, that solved it!").label == "positive"
    assert score_sentiment("Where is my parcel?").label == "neutral"


def test_score_is_bounded_and_label_follows_the_band() -> None:
    for text in ["垃圾垃圾垃圾！！！", "太好了太好了，谢谢谢谢", "", "OK"]:
        s = score_sentiment(text)
        assert -1.0 <= s.score <= 1.0
        assert s.label == label_of(s.score)
    assert label_of(-NEUTRAL_BAND) == "negative" and label_of(NEUTRAL_BAND) == "positive"
    assert label_of(0.0) == "neutral"


def test_one_very_negative_turn_escalates() -> None:
    assert SentimentTracker().update(-0.9) is True


def test_two_of_the_last_three_negative_turns_escalate() -> None:
    tracker = SentimentTracker()
    assert tracker.update(-0.5) is False  # one mildly negative turn is not enough
    assert tracker.update(0.2) is False
    assert tracker.update(-0.4) is True  # two of the last three


def test_negative_turns_that_fall_out_of_the_window_do_not_count() -> None:
    tracker = SentimentTracker()
    for score in (-0.5, 0.1, 0.3, -0.5):
        escalated = tracker.update(score)
    assert escalated is False  # the first -0.5 is four turns back


def test_tracker_on_a_real_conversation() -> None:
    tracker = SentimentTracker()
    turns = ["我的快递到哪了", "已经等了一周了，怎么还没到", "太差劲了，我要投诉"]
    signals = [tracker.update(score_sentiment(t).score) for t in turns]
    assert signals[0] is False and signals[-1] is True


def test_shipped_weights_are_small_and_round_trip(tmp_path: Path) -> None:
    model = bundled_model()
    assert 0 < len(model.vocab) <= 60_000
    path = tmp_path / "copy.npz"
    model.save(path)
    again = ZhSentimentModel.load(path)
    text = "东西收到了，还不错"
    assert again.probability(text) == pytest.approx(model.probability(text), abs=1e-3)


def test_missing_weights_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sentiment_train"):
        ZhSentimentModel.load(tmp_path / "nope.npz")


def test_ngrams_normalise_full_width_but_keep_case() -> None:
    assert char_ngrams("ＡB") == ["A", "B", "AB"]
    assert np.isclose(ZhSentimentModel({}, np.zeros(0, np.float32), 0.0).logit(" "), 0.0)


def test_customer_service_dev_messages_are_read_sensibly() -> None:
    """The hand-written dev split (evals/sentiment_cs.yaml; the test split is only scored by the eval)."""
    from kefu.evals.sentiment_data import cs_messages

    dev = [m for m in cs_messages() if m.split == "dev"]
    labels = [(m.label, score_sentiment(m.text).label) for m in dev]
    negatives = [got for gold, got in labels if gold == "negative"]
    others = [got for gold, got in labels if gold != "negative"]
    assert sum(got == "negative" for got in negatives) / len(negatives) >= 0.75
    assert sum(got == "negative" for got in others) / len(others) <= 0.1
    assert sum(gold == got for gold, got in labels) / len(labels) >= 0.8


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("请问投诉应该找哪个部门", "neutral"),  # the procedure, asked about
        ("客服一直不回消息，我要投诉你们", "negative"),  # the procedure, stated in anger
        ("呵呵", "negative"),
        ("你们是不是骗子", "negative"),
        ("等了三天还没发货，急死了", "negative"),
        ("怎么退货", "neutral"),
        ("你真没用", "negative"),  # 没用: "useless" at the end of a clause …
        ("输入多次验证码都没用", "negative"),
        ("商品没用过可以退吗", "neutral"),  # … "not used" before a verb or 过/上: a return question
        ("没用绑定信用卡可以贷款嘛", "neutral"),
    ],
)
def test_customer_service_cues(text: str, label: str) -> None:
    assert score_sentiment(text).label == label


def test_model_file_round_trips_its_provenance(tmp_path: Path) -> None:
    model = ZhSentimentModel(
        {"好": 0, "差": 1},
        np.array([1.0, -1.0], np.float32),
        0.0,
        {"reviews": {"rows_trained": 3}},
        frozenset({0, 5, 17}),
        frozenset({2}),
    )
    model.save(tmp_path / "m.npz")
    again = ZhSentimentModel.load(tmp_path / "m.npz")
    assert again.provenance == {"reviews": {"rows_trained": 3}}
    assert again.trained_reviews == {0, 5, 17} and again.trained_neutral == {2}


def test_shipped_model_loads_offline_with_its_provenance() -> None:
    model = ZhSentimentModel.load()  # a file in the package: no network, no shared data
    record = model.provenance
    assert record["reviews"]["rows_trained"] == len(model.trained_reviews) > 0  # type: ignore[index]
    assert len(record["reviews"]["categories"]) == 10  # type: ignore[index]
    assert model.trained_neutral
