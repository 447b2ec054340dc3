"""``kefu chat``: a terminal client for a running kefu server.

It creates a conversation, sends each line you type with ``stream=true``, prints the answer as it
streams in and then the numbered sources the answer cites. ``/new`` starts a new conversation,
``/quit`` (or end of input) leaves.

    run_chat("http://127.0.0.1:8000")                       # the CLI wires `kefu chat` to this
    run_chat(url, "en", stdin=io.StringIO("hi\\n"), stdout=out)  # tests script both ends
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from typing import Any, TextIO

import httpx

from kefu.errors import InvalidInput

TIMEOUT = httpx.Timeout(10.0, read=300.0)  # a local model on a small CPU can take a while to start

TEXT = {
    "zh": {
        "banner": "kefu 在线客服（{url}）— 输入问题后回车；/new 开始新对话，/quit 退出",
        "you": "你> ",
        "bot": "客服> ",
        "sources": "  来源：",
        "new": "（已开始新对话）",
        "bye": "再见！",
        "unreachable": "无法连接 kefu：{url} —— 请先用 `kefu serve` 启动服务",
        "lost": "与 kefu 的连接中断了（{url}），请确认服务仍在运行后重新发送",
        "timeout": "kefu 太久没有回应，请稍后重新发送",
        "cut": "（回答中断了，请重新发送）",
        "interrupted": "（已停止）",
        "restarted": "（原对话已不存在，已开始新对话）",
    },
    "en": {
        "banner": "kefu chat ({url}) — type a question and press Enter; /new starts over, /quit leaves",
        "you": "you> ",
        "bot": "kefu> ",
        "sources": "  Sources:",
        "new": "(new conversation)",
        "bye": "Bye!",
        "unreachable": "cannot reach kefu at {url} — start it with `kefu serve`",
        "lost": "lost the connection to kefu at {url}; check that it is still running and send again",
        "timeout": "kefu took too long to answer; please send again",
        "cut": "(the answer was cut off; please send again)",
        "interrupted": "(stopped)",
        "restarted": "(the old conversation is gone; started a new one)",
    },
}


class ServerError(Exception):
    """The server answered with an error body: ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Answer:
    text: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    answer_kind: str | None = None
    finished: bool = False


def iter_sse(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse server-sent events from decoded lines into ``(event, data)`` pairs (data is JSON)."""
    name = "message"
    data: list[str] = []
    for line in chain(lines, [""]):  # lazily: events go out as they arrive
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif not line.startswith(":"):
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)


def _error_from(response: httpx.Response) -> ServerError:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        error = {}
    message = error.get("message") or f"HTTP {response.status_code}"
    return ServerError(response.status_code, error.get("code", "http_error"), message)


class KefuChat:
    """The HTTP side: one conversation at a time over an ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.conversation_id: str | None = None

    def new_conversation(self) -> str:
        response = self.client.post("/v1/conversations", json={"channel": "cli"})
        if response.status_code != 201:
            raise _error_from(response)
        self.conversation_id = str(response.json()["id"])
        return self.conversation_id

    def events(self, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Post ``text`` with ``stream=true`` and yield the answer's events as they arrive."""
        conversation = self.conversation_id or self.new_conversation()
        body = {"content": text, "stream": True}
        with self.client.stream("POST", f"/v1/conversations/{conversation}/messages", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise _error_from(response)
            yield from iter_sse(response.iter_lines())


class ChatSession:
    """The terminal side: reads lines, prints streamed answers and their sources."""

    def __init__(self, chat: KefuChat, url: str, lang: str, stdin: TextIO, stdout: TextIO) -> None:
        self.chat, self.url, self.text = chat, url, TEXT[lang]
        self.stdin, self.stdout = stdin, stdout

    def say(self, key: str, end: str = "\n") -> None:
        self.write(self.text[key].format(url=self.url) + end)

    def write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def read_line(self) -> str | None:
        if self.stdin is sys.stdin and self.stdin.isatty():
            try:
                return input(self.text["you"])
            except EOFError:
                return None
        self.say("you", end="")
        line = self.stdin.readline()
        if not line:
            return None
        self.write(line if line.endswith("\n") else line + "\n")  # echo piped input: a readable transcript
        return line.rstrip("\r\n")

    def loop(self) -> None:
        self.say("banner")
        while (line := self.read_line()) is not None:
            command = line.strip()
            if command in {"/quit", "/exit", "/q"}:
                break
            if command == "/new":
                self.guarded(self.start_over)
            elif command:
                self.guarded(partial(self.ask, command))
        self.say("bye")

    def start_over(self) -> None:
        self.chat.new_conversation()
        self.say("new")

    def guarded(self, action: Callable[[], None]) -> None:
        """Run one action; a failure becomes one clear line and the loop goes on."""
        try:
            action()
        except KeyboardInterrupt:
            self.write("\n")
            self.say("interrupted")
        except (httpx.ConnectError, httpx.ConnectTimeout):
            self.say("unreachable")
        except httpx.TimeoutException:
            self.write("\n")
            self.say("timeout")
        except httpx.TransportError:
            self.write("\n")
            self.say("lost")
        except ServerError as exc:
            self.write(f"{exc.message}\n")

    def ask(self, text: str) -> None:
        try:
            answer = self.stream(text)
        except ServerError as exc:
            if exc.status != 404:
                raise
            self.chat.new_conversation()  # the server no longer knows it (e.g. a new database)
            self.say("restarted")
            answer = self.stream(text)
        self.show(answer)

    def stream(self, text: str) -> Answer:
        answer = Answer()
        self.say("bot", end="")
        try:
            for event, data in self.chat.events(text):
                self.apply(answer, event, data)
        except ServerError:
            if answer.text:
                self.write("\n")
            raise
        self.write("\n")
        return answer

    def apply(self, answer: Answer, event: str, data: dict[str, Any]) -> None:
        if event == "meta":
            answer.answer_kind = data.get("answer_kind")
        elif event == "citations":
            answer.citations = list(data.get("citations") or [])
        elif event == "delta":
            answer.text += data.get("text", "")
            self.write(data.get("text", ""))
        elif event == "done":
            answer.finished = True
            answer.citations = list((data.get("message") or {}).get("citations") or answer.citations)
        elif event == "error":
            error = data.get("error", {})
            raise ServerError(200, error.get("code", "stream_error"), error.get("message", "error"))

    def show(self, answer: Answer) -> None:
        if not answer.finished:
            self.say("cut")
        if answer.citations:
            self.say("sources")
            for citation in answer.citations:
                self.write(f"  {format_citation(citation)}\n")


def format_citation(citation: dict[str, Any]) -> str:
    """``[1] 配送说明 > 偏远地区 (docs/shipping.md)``."""
    label = citation.get("section") or citation.get("title") or citation.get("chunk_id", "")
    source = citation.get("source")
    return f"[{citation.get('index', '?')}] {label}" + (f" ({source})" if source else "")


def _normalise(base_url: str) -> str:
    url = base_url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def run_chat(
    base_url: str,
    lang: str = "zh",
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Chat with the kefu server at ``base_url`` in the terminal. Returns the process exit code."""
    if lang not in TEXT:
        raise InvalidInput(f"unknown language {lang!r}: use one of {', '.join(TEXT)}")
    url = _normalise(base_url)
    with httpx.Client(base_url=url, timeout=TIMEOUT, transport=transport) as client:
        session = ChatSession(KefuChat(client), url, lang, stdin or sys.stdin, stdout or sys.stdout)
        return _guarded(session)


def _guarded(session: ChatSession) -> int:
    """Start a conversation (or say clearly why not), then run the loop until /quit or end of input."""
    try:
        session.chat.new_conversation()
    except httpx.TransportError:
        session.say("unreachable")
        return 1
    except ServerError as exc:
        session.write(f"{exc.message}\n")
        return 1
    try:
        session.loop()
    except KeyboardInterrupt:
        session.write("\n")
        session.say("bye")
    return 0
