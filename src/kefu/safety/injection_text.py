"""Text views for the injection guard: the message normalised, and every payload hidden inside it decoded.

Attackers disguise instructions so that a plain pattern misses them. ``normalize`` undoes the
disguises that change how a text *looks* but not what it says — full-width letters, zero-width and
other invisible characters, combining marks, Cyrillic/Greek look-alikes, traditional characters,
spaces or dots between Chinese characters, curly quotes. ``spaced_runs`` rejoins words written one
letter at a time ("i g n o r e"). ``decoded_views`` decodes what a reader would have to *decode*:
base64, hex, binary, ``\\u`` escapes, percent-encoding, HTML entities, rot13, reversed text and
leetspeak; an instruction found only there is an "encoding" attack.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
from urllib.parse import unquote

MAX_DEPTH = 2  # base64 of base64 is decoded; deeper nesting is not worth the time
MIN_PRINTABLE = 0.85

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_INVISIBLE = {"\u034f", "\u115f", "\u1160", "\u3164", "\uffa0", "\u180e"}
_LOOKALIKES = str.maketrans(
    "АВЕКМНОРСТХаеорсухіјѕԁɡοαεκνρτυχΙΟΡΤІЈЅ‘’‚‛“”„‟",
    "ABEKMHOPCTXaeopcyxijsdgoaekvptuxIOPTIJS''''\"\"\"\"",
)
_TRADITIONAL = str.maketrans(
    "無視規則詞統係設說復輸顯從現開發員個為們這證驗認錢訂單過麼對讓應該與隱導舊當題戶務權製機約聽話請記裝經洩給內嗎"
    "體離聯繫絡號碼產態護維試廳報關於變換邏輯執資賬帳啟動價幫將須謊稱紹問選擇獎勵額頭",
    "无视规则词统系设说复输显从现开发员个为们这证验认钱订单过么对让应该与隐导旧当题户务权制机约听话请记装经泄给内吗"
    "体离联系络号码产态护维试厅报关于变换逻辑执资账帐启动价帮将须谎称绍问选择奖励额头",
)
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])[\s\-_.*·•|/\\~+,]+(?=[{_CJK}])")
_SPACED_RUN = re.compile(r"(?<![A-Za-z])(?:[A-Za-z](?:[ \t.\-_*·•|/\\+]{1,4})){3,}[A-Za-z](?![A-Za-z])")
_RUN_SEPARATOR = re.compile(r"[.\-_*·•|/\\+]")
_SPACES = re.compile(r"\s+")

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX = re.compile(r"(?:(?:\\x|0x)?[0-9a-fA-F]{2}[ :,-]?){8,}")
_BINARY = re.compile(r"(?:[01]{8}[ ,]?){4,}")
_ESCAPES = re.compile(r"(?:\\u[0-9a-fA-F]{4}|\\U[0-9a-fA-F]{8}|&#x?[0-9a-fA-F]+;|%[0-9a-fA-F]{2}){3,}")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})")
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
)
_LEET_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[0-9@$])[\w@$!]+")


def _strip_marks(text: str) -> str:
    """Drop invisible format characters and combining marks (NFKD first, so "í" keeps its "i")."""
    kept = []
    for char in unicodedata.normalize("NFKD", text):
        category = unicodedata.category(char)
        if category in ("Cf", "Mn", "Me", "Co", "Cs") or char in _INVISIBLE:
            continue
        if category == "Cc" and char not in "\n\t":
            continue
        kept.append(char)
    return unicodedata.normalize("NFKC", "".join(kept))


def strip_invisible(text: str) -> str:
    """``text`` exactly as written, minus invisible format characters (zero-width spaces, BOM, bidi marks)."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf" and c not in _INVISIBLE)


def normalize(text: str) -> str:
    """What the text says, with its visual disguises undone (see the module docstring)."""
    text = _strip_marks(unicodedata.normalize("NFKC", text))
    text = text.translate(_LOOKALIKES).translate(_TRADITIONAL)
    text = _SPACED_RUN.sub(_rejoin, text)
    text = _SPACES.sub(" ", text)
    return _CJK_GAP.sub("", text).strip()


def _rejoin(match: re.Match[str]) -> str:
    """ "i g n o r e  a l l" → " ignore all ": two or more spaces separate words, one joins letters."""
    words = re.split(r"[ \t]{2,}", match.group(0))
    joined = " ".join(_SPACES.sub("", _RUN_SEPARATOR.sub("", w)) for w in words)
    return f" {joined.strip()} "


def spaced_runs(text: str) -> list[str]:
    """Words written one letter at a time, with every separator removed ("i g n o r e a l l" → "ignoreall")."""
    flat = unicodedata.normalize("NFKC", text)
    return [re.sub(r"[^A-Za-z]", "", m.group(0)) for m in _SPACED_RUN.finditer(flat)]


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t")
    return text if printable / len(text) >= MIN_PRINTABLE else None


def _from_base64(token: str) -> str | None:
    padded = token.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        data = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return _readable(data)


def _from_hex(token: str) -> str | None:
    digits = re.sub(r"\\x|0x|[ :,-]", "", token)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _readable(bytes.fromhex(digits))
    except ValueError:
        return None


def _from_binary(token: str) -> str | None:
    bits = re.sub(r"[ ,]", "", token)
    data = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - len(bits) % 8, 8))
    return _readable(data)


def _from_escapes(token: str) -> str | None:
    def one(match: re.Match[str]) -> str:
        code = int(match.group(1) or match.group(2), 16)
        return chr(code) if code <= 0x10FFFF else ""

    return html.unescape(unquote(_ESCAPE.sub(one, token)))


def _payloads(text: str) -> list[tuple[str, str]]:
    """(decoder, decoded text) for every encoded-looking token of ``text``."""
    found: list[tuple[str, str]] = []
    for name, pattern, decode in (
        ("base64", _BASE64, _from_base64),
        ("hex", _HEX, _from_hex),
        ("binary", _BINARY, _from_binary),
        ("escapes", _ESCAPES, _from_escapes),
    ):
        for match in pattern.finditer(text):
            decoded = decode(match.group(0).strip())
            if decoded and decoded.strip() != match.group(0).strip():
                found.append((name, decoded))
    return found


def decoded_views(text: str, depth: int = 0) -> list[tuple[str, str]]:
    """(how it was decoded, normalised text) for each decodable payload, plus rot13, reversed and leet views."""
    flat = normalize(text)
    views = [("rot13", codecs.encode(flat, "rot13")), ("reversed", flat[::-1])]
    leet = _LEET_WORD.sub(lambda m: m.group(0).lower().translate(_LEET), flat)
    if leet != flat:
        views.append(("leetspeak", leet))
    for name, decoded in _payloads(_strip_marks(text)):
        views.append((name, normalize(decoded)))
        if depth + 1 < MAX_DEPTH:
            views.extend((f"{name}+{inner}", t) for inner, t in decoded_views(decoded, depth + 1))
    return views
