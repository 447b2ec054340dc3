"""Extractive answers: the knowledge base's own sentences, chosen per question, with their citations.

The bundled 0.5B model states wrong policy when it writes freely (「要自己出运费」 where the shop pays), so
the default answer to a knowledge question is built from the retrieved chunks themselves:

1. every retrieved chunk is split into sentences (an FAQ contributes its answer, a document chunk its
   text); Markdown list markers and headings are dropped;
2. each sentence is scored by the question's content words it contains, weighted by how rare they are
   among the candidates (a word in every sentence tells nothing), where the sentence's section heading
   (「退货运费由谁承担 > 质量问题退货」) counts too, plus a small prior for the chunk's retrieval rank;
3. the best sentence is taken, then up to ``MAX_SENTENCES - 1`` more that each add a question word the
   chosen ones do not yet cover (multi-part questions: 「保修多久？运费谁出？」);
4. the chosen sentences keep their document order within a chunk and carry the chunk's citation [n],
   numbered by first use (only the chunks used are cited).

Nothing here generates text: every sentence of the answer is a sentence of a cited source.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kefu.kb.chunking import split_sentences
from kefu.kb.index import CROSS_LINGUAL_OFFSET
from kefu.kb.types import Embedder, Hit

MAX_SENTENCES = 3
WHOLE_FAQ_SENTENCES = 5  # an FAQ answer up to this long is sent whole when its question is the one asked
RANK_PRIOR = 0.15  # added for the first chunk, decaying with rank: ties go to the better retrieved chunk
MIN_CHARS = 6  # shorter pieces (「例如：」) are not sentences worth sending on their own
OFF_TOPIC = 0.4  # relevance kept by a sentence about another after-sales case than the one asked
NO_TOPIC = 0.7  # …and by one about none, when the question is about one
MEANING_FLOOR = 0.84  # e5 query–sentence cosine (raised as below) under which no sentence answers
MEANING_TIE = 0.01  # a second sentence as close as the best is sent too

_TOPICS = {
    "return": re.compile(r"退货|退款|退回|能退|可以退|退吗|\breturn|\brefund", re.I),
    "exchange": re.compile(r"换货|换尺码|换颜色|换码|能换|换吗|\bexchange", re.I),
    "warranty": re.compile(r"保修|维修|\bwarrant|\brepair", re.I),
}
# Whose doing it is — one word list for the questions (``policy_answers.reason_given``) and the sentences.
_CASES = {
    "quality": re.compile(
        r"坏|质量|故障|毛病|没声音|无声|不响|充不进|充不了|不能充电|无法充电|破损|瑕疵|开线|脱色|掉色|发错|错发|少件"
        r"|不亮|不转|失灵|broken|defect|faulty|damaged|not working|doesn'?t work|stopped working|quality"
        r"|wrong item|\bdead\b",
        re.I,
    ),
    "own_reason": re.compile(
        r"无理由|不喜欢|不想要|不要了|不合适|尺码|太大|太小|大了|小了|颜色|拍错|买错|后悔|没用过|没拆|个人原因"
        r"|付费维修|超过保修期|no reason|changed? my mind|doesn'?t fit|wrong size|don'?t (?:like|want)"
        r"|no longer (?:want|need)|paid repair|out of warranty",
        re.I,
    ),
}
_PARTS = re.compile(r"[？?；;]+|(?:另外|还有|以及|顺便问一?下|and also|also,)", re.I)
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d+[.、)]|#{1,6})\s+")
_CJK = re.compile(r"[\u3400-\u9fff]")
_EN_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
# Words that say nothing about what is asked (question particles, pronouns, politeness).
_STOP_WORDS = """的 了 吗 呢 吧 啊 呀 么 嘛 是 我 我们 你 你们 您 他 她 它 这 那 这个 那个 有 在 和 与 或 就 都 也 还 要 会 能 可以
    请问 请 一下 怎么 怎么办 怎样 如何 什么 哪 哪里 哪些 多少 多久 几 个 吗？ 为什么 啥 咋 想 问 问下 下 没 不
    a an the is are was were be been do does did i you we our your my me it its this that to of in on for
    and or can could would should will how what when where which who why with at by from as please if
    there any have has had about"""
_STOP = frozenset(_STOP_WORDS.split())
_FUNCTION_CHARS = frozenset("的了吗呢吧啊呀么嘛是我你您他她它这那有在和与或就都也还要会能请问哪几个吗啥咋")


@dataclass(frozen=True)
class Sentence:
    text: str
    hit_index: int  # position of its chunk in the retrieved hits (citation number − 1)
    position: int  # order within its chunk
    terms: frozenset[str]
    faq: bool = False  # a sentence of an FAQ answer


@dataclass(frozen=True)
class Extract:
    groups: tuple[str, ...]  # the chosen sentences of each cited chunk, in answer order
    sentences: tuple[Sentence, ...]
    cited: tuple[int, ...]  # indices of the hits used, in answer order: citation [n] is hits[cited[n - 1]]
    lang: str  # "zh" when the sentences are Chinese, else "en"

    @property
    def text(self) -> str:
        """The answer with its citations numbered by first use: "…。[1]…。[2]"."""
        return self.render(list(range(1, len(self.groups) + 1)))

    def render(self, numbers: list[int]) -> str:
        """The answer with ``numbers[i]`` as the citation of group i (the hits' own numbering, say)."""
        joiner = "" if self.lang == "zh" else " "
        return joiner.join(f"{g}[{n}]" for g, n in zip(self.groups, numbers, strict=True))

    @property
    def plain(self) -> str:
        """The chosen sentences without citation markers (what a rephrasing is checked against)."""
        return "".join(s.text for s in self.sentences)


@functools.cache
def _jieba() -> object:
    import jieba

    jieba.setLogLevel(60)
    return jieba


def terms(text: str) -> frozenset[str]:
    """Content words: jieba words and the character bigrams of Chinese runs (jieba reads 「换货运费」 as
    换/货运费, the bigrams still find 「换货」), lower-cased English words. A bigram with a function
    character (「修的」「的运」) says nothing and is dropped."""
    lowered = text.lower()
    found: set[str] = set()
    for run in _CJK_RUN.findall(lowered):
        words = _jieba().lcut(run)  # type: ignore[attr-defined]
        found.update(w for w in words if len(w) > 1 or w in "退换修")
        pairs = (run[i : i + 2] for i in range(len(run) - 1))
        found.update(p for p in pairs if not (set(p) & _FUNCTION_CHARS))
    found.update(w for w in _EN_WORD.findall(lowered) if len(w) > 1)
    return frozenset(t for t in found if t not in _STOP)


def topics(text: str) -> frozenset[str]:
    """Which after-sales case a text is about: 「退货」 return, 「换货」 exchange, 「保修」 warranty."""
    return frozenset(name for name, pattern in _TOPICS.items() if pattern.search(text))


def cases(text: str) -> frozenset[str]:
    """Whose doing it is: a quality problem (「坏了」「质量问题」) or the customer's own reason (「无理由」)."""
    return frozenset(name for name, pattern in _CASES.items() if pattern.search(text))


def candidate_sentences(hits: Sequence[Hit]) -> list[tuple[Sentence, frozenset[str]]]:
    """(sentence, heading terms) for every usable sentence of the hits."""
    found: list[tuple[Sentence, frozenset[str]]] = []
    for index, hit in enumerate(hits):
        chunk = hit.chunk
        body = chunk.answer if chunk.kind == "faq" and chunk.answer else chunk.text
        heading = chunk.question if chunk.kind == "faq" and chunk.question else chunk.section or chunk.title
        heading_terms = terms(heading or "")
        for position, raw in enumerate(split_sentences(body)):
            text = _LIST_MARK.sub("", raw).strip()
            if len(text) < MIN_CHARS or text.startswith("#"):
                continue
            sentence = Sentence(text, index, position, terms(text), faq=chunk.kind == "faq")
            found.append((sentence, heading_terms))
    return found


def extract_answer(
    question: str,
    hits: Sequence[Hit],
    *,
    lang: str | None = None,
    max_sentences: int = MAX_SENTENCES,
    context: str | None = None,
) -> Extract | None:
    """The best sentences of ``hits`` for ``question``, cited; None when no sentence shares a content word.

    ``lang`` keeps only chunks in that language (an English question prefers the English FAQ);
    ``context`` is the whole message when ``question`` is one part of it (its case and topic count)."""
    chosen = choose_sentences(question, hits, lang=lang, max_sentences=max_sentences, context=context)
    return _compose(chosen) if chosen else None


def extract_parts(parts: Sequence[str], hits: Sequence[Hit], *, lang: str | None = None) -> Extract | None:
    """A multi-part question (「耳机坏了能保修吗？要自己出运费吗？」): the best sentences for each part, together."""
    whole = "".join(parts)
    chosen: list[Sentence] = []
    for part in parts:
        for sentence in choose_sentences(part, hits, lang=lang, max_sentences=2, context=whole):
            if sentence.text not in {c.text for c in chosen}:
                chosen.append(sentence)
    return _compose(chosen) if chosen else None


_TOPIC_WORDS = {
    "return": "退货",
    "exchange": "换货",
    "warranty": "保修",
    "quality": "质量问题",
    "own_reason": "无理由",
}


def part_query(part: str, whole: str) -> str:
    """What to search for one part: the part with the case and topic the whole message is about
    (「要自己出运费吗」 of a warranty question → 「保修 质量问题 要自己出运费吗」)."""
    words = [_TOPIC_WORDS[t] for t in sorted(topics(whole) | cases(whole)) if _TOPIC_WORDS[t] not in part]
    return " ".join([*words, part])


def extract_by_meaning(
    question: str, hits: Sequence[Hit], embedder: Embedder, *, max_sentences: int = 2
) -> Extract | None:
    """For an English question: the sentences closest in meaning (multilingual embeddings), in either
    language — a Chinese sentence's score raised by ``CROSS_LINGUAL_OFFSET``, as in retrieval — the best
    one and any other within ``MEANING_TIE`` of it. English words alone pick poorly among a few short
    English FAQ answers ("phone" in 「开专票需提供电话」 is not the hotline)."""
    candidates = [c[0] for c in candidate_sentences(hits)]
    if not candidates:
        return None
    query = embedder.embed_queries([question])[0]
    vectors = _sentence_vectors(embedder, [c.text for c in candidates])
    raised = np.array([CROSS_LINGUAL_OFFSET if _CJK.search(c.text) else 0.0 for c in candidates])
    scores = vectors @ query + raised
    order = [int(i) for i in np.argsort(-scores)]
    best = float(scores[order[0]])
    if best < MEANING_FLOOR:
        return None
    chosen = [candidates[i] for i in order[:max_sentences] if float(scores[i]) >= best - MEANING_TIE]
    return _compose(chosen)


_VECTORS: dict[tuple[str, str], np.ndarray] = {}


def _sentence_vectors(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """Passage vectors of sentences, kept per embedder (the same help-centre sentences come back often)."""
    missing = [t for t in texts if (embedder.name, t) not in _VECTORS]
    if missing:
        if len(_VECTORS) > 20_000:
            _VECTORS.clear()
        for text, vector in zip(missing, embedder.embed_passages(missing), strict=True):
            _VECTORS[(embedder.name, text)] = vector
    return np.stack([_VECTORS[(embedder.name, t)] for t in texts])


def split_parts(question: str) -> list[str]:
    """The parts of a message that asks several things, split at question marks and 「另外」「还有」."""
    pieces = [p.strip() for p in _PARTS.split(question)]
    parts = [p for p in pieces if len(terms(p)) >= 1 and len(p) >= 3]
    return parts if len(parts) > 1 else [question]


def choose_sentences(
    question: str,
    hits: Sequence[Hit],
    *,
    lang: str | None = None,
    max_sentences: int = MAX_SENTENCES,
    context: str | None = None,
) -> list[Sentence]:
    """The chosen sentences (see the module docstring), empty when none shares a content word."""
    wanted = terms(question)
    candidates = [
        c for c in candidate_sentences(hits) if lang is None or hits[c[0].hit_index].chunk.lang == lang
    ]
    if not wanted or not candidates:
        return []
    seen: dict[str, int] = {}
    for sentence, heading in candidates:
        for term in (sentence.terms | heading) & wanted:
            seen[term] = seen.get(term, 0) + 1
    weight = {t: math.log(1 + len(candidates) / n) for t, n in seen.items()}

    asked_about, asked_case = topics(context or question), cases(context or question)
    about = {id(c[0]): topics(c[0].text) | topics(" ".join(c[1])) for c in candidates}
    case = {id(c[0]): cases(c[0].text) for c in candidates}

    def score(item: tuple[Sentence, frozenset[str]], covered: frozenset[str] = frozenset()) -> float:
        sentence, heading = item
        own = sum(weight[t] for t in (sentence.terms & wanted) - covered)
        titled = sum(weight[t] for t in (heading & wanted) - sentence.terms - covered)
        # a sentence about returns only does not answer a question about exchanges (and so on)
        # (a sentence about no after-sales case at all, e.g. order shipping fees, is half-way)
        topic = about[id(sentence)]
        on_topic = 1.0 if not asked_about or topic & asked_about else (NO_TOPIC if not topic else OFF_TOPIC)
        # …nor one about the customer's own reasons (付费维修, 无理由) a question about a defect
        off_case = asked_case and case[id(sentence)] and not (case[id(sentence)] & asked_case)
        relevance = (own + 0.5 * titled) * on_topic * (OFF_TOPIC if off_case else 1.0)
        return relevance + RANK_PRIOR * math.log(1 + sum(weight.values())) / (1 + sentence.hit_index)

    ranked = sorted(candidates, key=score, reverse=True)
    best = ranked[0]
    if score(best) <= RANK_PRIOR * math.log(1 + sum(weight.values())):  # only the rank prior: no overlap
        return []
    whole = _whole_faq(best, candidates, wanted, weight)
    if whole:
        return whole
    chosen = [best]
    covered = (best[0].terms | best[1]) & wanted
    floor = 0.35 * score(best)
    for item in ranked[1:]:
        if len(chosen) >= max_sentences:
            break
        if item[0].text in {c[0].text for c in chosen}:
            continue
        gain = score(item, covered)
        if (item[0].terms & wanted) - covered and gain >= floor:
            chosen.append(item)
            covered |= (item[0].terms | item[1]) & wanted
    given = frozenset().union(*(case[id(c[0])] for c in chosen))
    if not asked_case and len(given) == 1 and len(chosen) < max_sentences + 1:
        # the customer did not say whose doing it is: the other case too (「质量问题…由小铺优选承担」)
        other = [c for c in ranked if case[id(c[0])] and not (case[id(c[0])] & given) and c not in chosen]
        if other and score(other[0]) >= floor:
            chosen.append(other[0])
    return [c[0] for c in chosen]


def _whole_faq(
    best: tuple[Sentence, frozenset[str]],
    candidates: list[tuple[Sentence, frozenset[str]]],
    wanted: frozenset[str],
    weight: dict[str, float],
) -> list[Sentence]:
    """An FAQ whose question asks what the customer asks is answered whole: its answer is written as one
    answer (「换尺码…由买家承担。质量问题…由小铺优选承担。」 — the cases belong together)."""
    sentence, heading = best
    if not sentence.faq:
        return []
    faq = [c[0] for c in candidates if c[0].hit_index == sentence.hit_index]
    total = sum(weight.get(t, 0.0) for t in wanted)
    asked = sum(weight.get(t, 0.0) for t in heading & wanted)
    answered = heading.union(*(c.terms for c in faq))
    missed = sum(weight.get(t, 0.0) for t in wanted - answered)
    if (
        len(faq) < 2
        or len(faq) > WHOLE_FAQ_SENTENCES
        or total == 0
        or asked < 0.6 * total
        or missed > 0.25 * total
    ):
        return []
    return faq


def _compose(chosen: list[Sentence]) -> Extract:
    """Group by chunk (in the order chunks were first chosen), document order within a chunk, cite each."""
    order: list[int] = []
    for sentence in chosen:
        if sentence.hit_index not in order:
            order.append(sentence.hit_index)
    groups: list[str] = []
    ordered: list[Sentence] = []
    for index in order:
        group = sorted((s for s in chosen if s.hit_index == index), key=lambda s: s.position)
        ordered.extend(group)
        groups.append("".join(_ended(s.text) for s in group).rstrip())
    lang = "zh" if any(_CJK.search(g) for g in groups) else "en"
    return Extract(tuple(groups), tuple(ordered), tuple(order), lang)


def _ended(text: str) -> str:
    """A sentence with end punctuation, so that joined sentences still read as sentences."""
    if text[-1] in "。！？；!?.;…」』”)）":
        return text if _CJK.search(text) or text.endswith(" ") else text + " "
    return text + ("。" if _CJK.search(text) else ". ")
