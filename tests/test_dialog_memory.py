import pytest

from kefu.dialog.language import detect_language
from kefu.dialog.memory import SUMMARY_MAX_CHARS, is_follow_up, remember, retrieval_query
from kefu.dialog.router import route
from kefu.storage.base import SessionState


def _state() -> SessionState:
    return SessionState(session_id="s", conversation_id="c")


def test_window_keeps_last_turns_and_folds_older_questions_into_summary():
    state = _state()
    for i in range(8):
        state = remember(state, f"问题{i}", f"回答{i}", window=5)
    assert [t.user for t in state.turns] == [f"问题{i}" for i in range(3, 8)]
    assert state.summary.splitlines() == ["- 问题0", "- 问题1", "- 问题2"]
    assert "回答0" not in state.summary  # only the customer's questions are summarised


def test_summary_is_capped_and_keeps_the_newest_questions():
    state = _state()
    for i in range(60):
        state = remember(state, f"这是一个比较长的问题，编号{i:02d}，" + "内容" * 10, "好的", window=1)
    assert len(state.summary) <= SUMMARY_MAX_CHARS
    assert "编号58" in state.summary and "编号00" not in state.summary


def test_follow_up_questions_are_searched_with_the_previous_question():
    state = remember(_state(), "你们发什么快递？多久能到？", "顺丰……", window=5)
    assert is_follow_up("那新疆呢？")
    assert is_follow_up("What about Tibet?")
    assert retrieval_query(state, "那新疆呢？") == "你们发什么快递？多久能到？ 那新疆呢？"
    standalone = "电子发票在哪里下载？我上周买的耳机需要报销"
    assert not is_follow_up(standalone)
    assert retrieval_query(state, standalone) == standalone
    assert retrieval_query(_state(), "那新疆呢？") == "那新疆呢？"  # nothing to lean on
    assert retrieval_query(state, "可以用花呗吗") == "可以用花呗吗"  # short is not elliptical


def test_language_and_small_talk_routing():
    assert detect_language("Do you ship to Hong Kong?") == "en"
    assert detect_language("可以开发票吗 invoice") == "zh"
    # no words at all: the shop's first language, not English
    assert detect_language("9002") == "zh" and detect_language("XP1001") == "zh"
    assert detect_language("XP1001 please") == "en"
    assert route("你好") == "greeting"
    assert route("hello!") == "greeting"
    assert route("谢谢！") == "thanks"
    assert route("你好，我想退货") == "knowledge"
    assert route("好的") == "ack" and route("确认。") == "ack" and route("OK") == "ack"
    assert route("好的，那运费多少") == "knowledge" and route("可以开发票吗") == "knowledge"
    assert route("thanks, but where is my parcel?") == "knowledge"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks, that was really helpful!", "thanks"),  # answered "no reliable answer" before
        ("thank you so much", "thanks"),
        ("谢谢你的帮助，问题解决了", "thanks"),
        ("非常感谢！", "thanks"),
        ("谢谢，那运费怎么算？", "knowledge"),
        ("感谢你们的快递太慢了", "knowledge"),
        ("谢谢，我还想问一下退货", "knowledge"),
        ("谢谢" + "，" * 3000 + "退货", "knowledge"),  # a long run of punctuation: no regex blow-up
    ],
)
def test_thanks_with_its_usual_tail_is_small_talk(text: str, expected: str) -> None:
    assert route(text) == expected
