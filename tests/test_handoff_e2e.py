"""Human handoff end to end: the customer page and the agent console in headless Chromium, one real server.

The customer asks the bot, asks for a human, sees their place in the queue; an agent signs in on /agent,
takes the conversation over, replies live; the bot stays quiet while the agent owns the conversation and
answers again once the agent hands it back. Debian's /usr/bin/chromium, Playwright's synchronous API and
the approach of test_web_e2e.py (a real uvicorn server, the mini knowledge pack, the scripted model).
Screenshots go to /tmp/kefu-shots/ for a person to look at."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from typer.testing import CliRunner

import test_web_e2e
from conftest import live_server
from kefu.api.app import create_app
from kefu.cli import app as cli_app
from kefu.config import Settings
from test_web_e2e import (  # the same Chromium, pages and helpers as the chat page's own tests
    MINI_KB,
    PHONE,
    Q1,
    Served,
    answers,
    ask,
)

pytestmark = pytest.mark.browser

# The chat page tests' fixtures: one headless Chromium per module, fresh contexts, page errors fail the test.
browser = test_web_e2e.browser
open_page = test_web_e2e.open_page

SHOTS = Path("/tmp/kefu-shots")
AGENT = {"username": "xiaowang", "display_name": "小王", "password": "wang-pass-2024"}
HELLO = "您好，我是客服小王"
DURING = "我的耳机左边没声音了，能帮我看看吗？"
AFTER = "新疆、西藏这些偏远地区多久能送到？"  # a knowledge-base question, asked after the hand-back


class Kefu(Served):
    def __init__(self, url: str, app: object, settings: Settings) -> None:
        super().__init__(url, app)  # type: ignore[arg-type]
        self.settings = settings


@pytest.fixture
def kefu(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Kefu]]:
    """A real server (scripted model, mini pack) with agent 小王 created by `kefu agent add`."""
    with ExitStack() as stack:

        def start(**overrides: object) -> Kefu:
            settings = make_settings(llm="scripted", kb_dir=MINI_KB, **overrides)
            app = create_app(settings)
            served = Kefu(stack.enter_context(live_server(app)), app, settings)
            add_agent(settings, monkeypatch)
            return served

        yield start


def add_agent(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's way: `kefu agent add`, against the server's own database."""
    monkeypatch.setenv("KEFU_ENVIRONMENT", "test")
    monkeypatch.setenv("KEFU_LLM", "scripted")
    monkeypatch.setenv("KEFU_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(settings.cache_dir))
    monkeypatch.setenv("KEFU_DATABASE_URL", settings.effective_database_url)
    args = ["agent", "add", AGENT["username"], "--display-name", AGENT["display_name"]]
    result = CliRunner().invoke(cli_app, [*args, "--password", AGENT["password"]])
    assert result.exit_code == 0, result.output


def customer_id(page: Page) -> str:
    cid = page.evaluate("sessionStorage.getItem('kefu.conversation')")
    assert cid, "the chat page keeps its conversation id in sessionStorage"
    return str(cid)


def sign_in(page: Page, password: str = AGENT["password"]) -> None:
    page.get_by_label("用户名").fill(AGENT["username"])
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录", exact=True).click()


def queue_item(page: Page, cid: str) -> Locator:
    return page.locator(f"[data-testid=queue-item][data-conversation-id='{cid}']")


def history(page: Page, role: str) -> Locator:
    return page.locator(f"[data-testid=history-message][data-role={role}]")


def status_line(page: Page) -> Locator:
    return page.get_by_test_id("handoff-status").last


def stored(served: Served, cid: str) -> list[tuple[str, str]]:
    response = httpx.get(f"{served.url}/v1/conversations/{cid}/messages")
    response.raise_for_status()
    return [(m["role"], m["content"]) for m in response.json()["data"]]


def queue_someone_else(served: Served) -> str:
    """Another customer who asked for a human first (over the API), so ours is second in line."""
    created = httpx.post(f"{served.url}/v1/conversations", json={"channel": "api"})
    created.raise_for_status()
    cid = str(created.json()["id"])
    reply = httpx.post(f"{served.url}/v1/conversations/{cid}/messages", json={"content": "转人工"})
    reply.raise_for_status()
    assert reply.json()["message"]["answer_kind"] == "handoff", reply.text
    return cid


def no_page_overflow(page: Page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"horizontal scroll: content {width}px wide in a {inner}px window"


def test_agent_takes_over_replies_live_and_hands_back(kefu, open_page):
    served = kefu()
    SHOTS.mkdir(exist_ok=True)
    other = queue_someone_else(served)
    customer = open_page(served.url)
    agent = open_page(f"{served.url}/agent")

    # The bot answers a knowledge-base question, then the customer asks for a human.
    first = ask(customer, Q1)
    expect(first.get_by_test_id("citation").first).to_be_visible()
    handoff_reply = ask(customer, "转人工")
    expect(handoff_reply).to_have_attribute("data-answer-kind", "handoff")
    expect(status_line(customer)).to_have_attribute("data-status", "queued")
    expect(status_line(customer)).to_have_text(re.compile(r"您前面还有 1 位，预计等待约 \d+ 分钟"))
    cid = customer_id(customer)

    # The agent signs in and sees both waiting conversations, ours second, with what it is about.
    expect(agent.get_by_role("heading", name="客服登录")).to_be_visible()
    sign_in(agent)
    expect(agent.get_by_test_id("agent-name")).to_have_text("小王")
    mine = queue_item(agent, cid)
    expect(mine).to_be_visible()
    waiting = agent.get_by_test_id("queue-list").get_by_test_id("queue-item")
    expect(waiting).to_have_count(2)
    expect(waiting.first).to_have_attribute("data-conversation-id", other)
    expect(mine).to_have_attribute("data-status", "queued")
    expect(mine.get_by_test_id("priority")).to_have_text(re.compile(r"^P\d"))
    expect(mine.get_by_test_id("reason")).to_have_text("客户要求转人工")
    expect(mine.get_by_test_id("last-message")).to_contain_text("转人工")
    expect(mine.get_by_test_id("waiting")).to_contain_text("已等待")
    expect(agent.get_by_test_id("live-state")).to_have_attribute("data-state", "live")

    # Take over: the full history (customer and bot, answer kinds marked) and the summary.
    mine.click()
    agent.get_by_role("button", name="接入", exact=True).click()
    expect(agent.get_by_test_id("conversation-status")).to_have_text("由我处理")
    expect(history(agent, "user").first).to_have_text(re.compile(re.escape(Q1)))
    expect(history(agent, "user").nth(1)).to_contain_text("转人工")
    expect(history(agent, "assistant")).to_have_count(2)
    expect(history(agent, "assistant").first.get_by_test_id("answer-kind")).to_be_visible()
    expect(history(agent, "assistant").nth(1)).to_have_attribute("data-answer-kind", "handoff")
    expect(agent.get_by_test_id("summary")).to_contain_text(Q1)  # the customer's questions, oldest first
    expect(status_line(customer)).to_have_attribute("data-status", "active")
    expect(status_line(customer)).to_have_text("客服 小王 已接入")

    # The agent's reply appears on the customer page as it is sent.
    reply_box = agent.get_by_label("回复客户")
    reply_box.fill(HELLO)
    reply_box.press("Enter")
    expect(history(agent, "agent")).to_have_text([re.compile(re.escape(HELLO))])
    from_agent = customer.locator("[data-testid=message][data-role=agent]")
    expect(from_agent).to_have_count(1)
    expect(from_agent.locator(".bubble")).to_have_text(HELLO)
    expect(from_agent.locator(".msg-from")).to_have_text("人工客服 小王")
    expect(reply_box).to_have_value("")

    # The customer writes while the agent owns the conversation: it goes to the agent, the bot is silent.
    bot_bubbles = answers(customer).count()
    box = customer.get_by_test_id("message-input")
    box.fill(DURING)
    box.press("Enter")
    expect(customer.locator("[data-role=user][data-state=sent]")).to_have_count(1)
    expect(customer.locator("#log")).to_have_attribute("aria-busy", "false")
    assert answers(customer).count() == bot_bubbles
    expect(history(agent, "user").last).to_have_text(re.compile(re.escape(DURING)))
    expect(agent.get_by_test_id("live-state")).to_have_attribute("data-state", "live")  # not the poll
    messages = stored(served, cid)
    assert messages[-2:] == [("agent", HELLO), ("user", DURING)], messages
    assert not any(DURING in m.content for r in served.model.history for m in r.messages)
    customer.screenshot(path=str(SHOTS / "customer-desktop.png"))
    agent.screenshot(path=str(SHOTS / "agent-desktop.png"))

    # Hand back: the customer is told, and the bot answers the next question from the knowledge base.
    agent.get_by_role("button", name="交还机器人", exact=True).click()
    expect(agent.get_by_test_id("conversation-status")).to_have_text("已交还机器人")
    expect(agent.get_by_label("回复客户")).to_be_disabled()
    expect(status_line(customer)).to_have_text("已转回智能助手")
    asked_before = len(served.model.history)
    again = ask(customer, AFTER)
    expect(again.get_by_test_id("citation").first).to_be_visible()
    assert len(served.model.history) == asked_before + 1
    assert stored(served, cid)[-1][0] == "assistant"
    expect(queue_item(agent, cid)).to_have_count(0)  # gone from the queue; the other customer still waits
    expect(queue_item(agent, other)).to_have_count(1)


def test_phone_width_console_and_chat(kefu, open_page):
    served = kefu()
    SHOTS.mkdir(exist_ok=True)
    customer = open_page(served.url, PHONE)
    agent = open_page(f"{served.url}/agent", PHONE)

    # A wrong password is refused politely; the right one signs in.
    sign_in(agent, password="not-the-password")
    expect(agent.get_by_role("alert")).to_contain_text("用户名或密码不正确")
    agent.screenshot(path=str(SHOTS / "agent-phone-login.png"))
    sign_in(agent)

    ask(customer, Q1)
    ask(customer, "转人工")
    cid = customer_id(customer)
    expect(status_line(customer)).to_have_attribute("data-status", "queued")

    item = queue_item(agent, cid)
    expect(item).to_be_visible()
    no_page_overflow(agent)
    agent.screenshot(path=str(SHOTS / "agent-phone-queue.png"))

    # On a phone the list and the conversation take turns.
    item.click()
    expect(agent.get_by_test_id("queue-list")).to_be_hidden()
    agent.get_by_role("button", name="接入", exact=True).click()
    reply_box = agent.get_by_label("回复客户")
    reply_box.fill(HELLO + "，请问有什么可以帮您？")
    reply_box.press("Enter")
    expect(customer.locator("[data-testid=message][data-role=agent]")).to_have_count(1)
    for page in (agent, customer):
        no_page_overflow(page)
    expect(reply_box).to_be_in_viewport()
    agent.screenshot(path=str(SHOTS / "agent-phone-conversation.png"))
    customer.screenshot(path=str(SHOTS / "customer-phone.png"))

    # A reload keeps the agent's message and the status; the agent closes the conversation.
    customer.reload()
    customer.wait_for_selector("body[data-ready=true]")
    expect(customer.locator("[data-testid=message][data-role=agent]")).to_have_count(1)
    expect(status_line(customer)).to_have_attribute("data-status", "active")
    agent.get_by_role("button", name="结束会话", exact=True).click()
    expect(status_line(customer)).to_have_attribute("data-status", "closed")
    agent.get_by_role("button", name="‹ 返回列表", exact=True).click()
    expect(queue_item(agent, cid)).to_have_count(0)

    # English on the console.
    agent.get_by_test_id("lang-toggle").click()
    expect(agent.get_by_role("tab", name=re.compile("Queue"))).to_be_visible()
    expect(agent).to_have_title(re.compile("Agent console"))
    agent.screenshot(path=str(SHOTS / "agent-phone-english.png"))


def test_outside_working_hours_the_request_becomes_a_ticket_an_agent_can_take(kefu, open_page):
    start = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=3)  # agents start in 3 hours
    hours = f"{start:%H:%M}-{start + timedelta(minutes=30):%H:%M}"
    served = kefu(handoff_hours=hours, handoff_timezone="Asia/Shanghai")
    customer = open_page(served.url)
    agent = open_page(f"{served.url}/agent")
    sign_in(agent)

    ticket_reply = ask(customer, "转人工，我要投诉")
    expect(ticket_reply).to_have_attribute("data-answer-kind", "ticket")
    expect(status_line(customer)).to_have_attribute("data-status", "ticket")
    expect(status_line(customer)).to_have_text("已为您记录留言，客服上班后会尽快回复您")
    cid = customer_id(customer)

    # The bot keeps answering a ticket's customer; the ticket waits in its own tab.
    ask(customer, Q1)
    expect(agent.get_by_test_id("queue-list").get_by_test_id("queue-item")).to_have_count(0)
    expect(agent.get_by_test_id("tickets-count")).to_have_text("1")
    agent.get_by_role("tab", name=re.compile("留言工单")).click()
    ticket = queue_item(agent, cid)
    expect(ticket).to_have_attribute("data-status", "ticket")
    expect(ticket.get_by_test_id("waiting")).to_contain_text("留言于")
    ticket.click()
    agent.get_by_role("button", name="接入", exact=True).click()
    expect(agent.get_by_test_id("conversation-status")).to_have_text("由我处理")
    reply_box = agent.get_by_label("回复客户")
    reply_box.fill("您好，已看到您的留言")
    reply_box.press("Enter")
    expect(customer.locator("[data-testid=message][data-role=agent] .bubble")).to_have_text(
        "您好，已看到您的留言"
    )
    expect(status_line(customer)).to_have_text("客服 小王 已接入")
