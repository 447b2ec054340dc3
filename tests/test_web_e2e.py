"""The customer chat page in headless Chromium, against the real app (scripted model, demo knowledge base).

Chromium is Debian's (``scripts/install-browser.sh``); Playwright never downloads a browser. The tests use
Playwright's synchronous API in plain test functions, so no event loop is shared with pytest-asyncio.
Screenshots go to /tmp/kefu-e2e-*.png for a person to look at."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from conftest import live_server
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
WAIT_MS = 60_000  # an upper bound for waiting on the page, never a speed assertion

# The lead's small knowledge pack: these two questions are answered by the model from cited docs.
MINI_KB = Path(__file__).parent / "data" / "mini_kb"
Q1 = "你们发什么快递？多久能到？"
Q2 = "那新疆呢？"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's /usr/bin/chromium — run scripts/install-browser.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Served:
    def __init__(self, url: str, app: FastAPI) -> None:
        self.url = url
        self.app = app

    @property
    def model(self) -> ScriptedModel:
        model = self.app.state.model
        while not isinstance(model, ScriptedModel) and "inner" in vars(model):  # single flight's wrapper
            model = model.inner
        assert isinstance(model, ScriptedModel), (
            f"KEFU_LLM=scripted should give a ScriptedModel, got {model!r}"
        )
        return model


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Served]]:
    """Start the real app in a uvicorn thread on a free port; settings overrides are keyword arguments."""
    with ExitStack() as stack:

        def start(**overrides: object) -> Served:
            app = create_app(make_settings(llm="scripted", kb_dir=MINI_KB, **overrides))
            return Served(stack.enter_context(live_server(app)), app)

        yield start


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open the chat page in a fresh browser context; fail the test on any uncaught page error."""
    contexts = []
    errors: list[str] = []

    def open_(url: str, viewport: dict[str, int] = DESKTOP) -> Page:
        context = browser.new_context(viewport=viewport, locale="zh-CN")  # type: ignore[arg-type]
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def answers(page: Page) -> Locator:
    return page.locator("[data-testid=message][data-role=assistant]")


def ask(page: Page, text: str) -> Locator:
    """Type ``text``, press Enter, wait until the streamed answer is complete; return its message element."""
    done = page.locator("[data-testid=message][data-role=assistant][data-state=done]")
    before = done.count()
    page.get_by_test_id("message-input").fill(text)
    page.get_by_test_id("message-input").press("Enter")
    expect(done).to_have_count(before + 1)
    expect(page.locator("#log")).to_have_attribute("aria-busy", "false")
    return done.nth(before)


def sections(message: Locator) -> list[str]:
    return [c.get_attribute("data-section") or "" for c in message.get_by_test_id("citation").all()]


def test_two_turns_stream_cited_answers_and_the_model_sees_the_first_turn(serve, open_page):
    served = serve()
    page = open_page(served.url)
    expect(page).to_have_title("小铺优选 在线客服")

    first = ask(page, Q1)
    expect(first.get_by_test_id("citation").first).to_be_visible()
    first_text = first.locator(".bubble").text_content()
    assert first_text

    second = ask(page, Q2)
    expect(second.get_by_test_id("citation").first).to_be_visible()
    assert any("偏远地区" in s for s in sections(second)), sections(second)

    # The model received the whole session: the first turn, then the follow-up.
    received = [(m.role, m.content) for m in served.model.history[-1].messages]
    assert ("user", Q1) in received
    assert ("assistant", first_text) in received
    assert received[-1] == ("user", f"{Q2}（接着问：{Q1}）")
    assert any("新疆" in m.content for m in served.model.history[-1].messages if m.role == "system")

    # [n] markers are superscript links to their source chip, which opens on click.
    marker = second.locator("sup > a.cite-link").first
    expect(marker).to_be_visible()
    marker.click()
    target = page.locator(str(marker.get_attribute("href")))
    expect(target.locator("details")).to_have_attribute("open", "")
    expect(target.locator(".snippet")).to_be_visible()
    page.screenshot(path="/tmp/kefu-e2e-desktop.png")

    # A reload shows the same conversation again, sources included.
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    roles = [m.get_attribute("data-role") for m in page.get_by_test_id("message").all()]
    assert roles == ["welcome", "user", "assistant", "user", "assistant"]
    assert any("偏远地区" in s for s in sections(answers(page).nth(1)))


def test_phone_viewport_has_no_horizontal_scroll_and_keeps_the_input_at_the_bottom(serve, open_page):
    served = serve()
    page = open_page(served.url, PHONE)
    ask(page, Q1)
    ask(page, "请看这个订单号" + "A1B2C3D4E5" * 12)  # one long unbreakable word
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner
    box = page.locator("#composer").bounding_box()
    assert box is not None
    assert abs(box["y"] + box["height"] - PHONE["height"]) <= 1
    expect(page.get_by_test_id("send-button")).to_be_in_viewport()
    page.screenshot(path="/tmp/kefu-e2e-phone.png")


def test_english_switch_changes_the_ui_and_is_remembered(serve, open_page):
    served = serve(shop_name="示例小店")
    page = open_page(served.url)
    expect(page).to_have_title("示例小店 在线客服")
    expect(page.get_by_test_id("send-button")).to_have_text("发送")

    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("send-button")).to_have_text("Send")
    expect(page.get_by_test_id("new-chat")).to_have_text("New chat")
    expect(page.get_by_test_id("lang-toggle")).to_have_text("中文")
    expect(page).to_have_title("示例小店 Support")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_test_id("message-input")).to_have_attribute("placeholder", "Type your question…")
    ask(page, Q1)
    expect(answers(page).first.locator(".citations-label")).to_have_text("Sources")

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    expect(page.get_by_test_id("send-button")).to_have_text("Send")
    page.screenshot(path="/tmp/kefu-e2e-english.png")
    page.get_by_test_id("lang-toggle").click()
    expect(page.get_by_test_id("send-button")).to_have_text("发送")
    expect(answers(page).first.locator(".citations-label")).to_have_text("参考来源")


def test_streaming_state_escaping_and_new_chat(serve, open_page):
    served = serve()
    page = open_page(served.url)
    served.model.delay = 3.0  # slow enough to look at the page while the answer streams
    served.model.enqueue("好的。")  # three pieces: the first arrives after a second
    send = page.get_by_test_id("send-button")
    page.get_by_test_id("message-input").fill(Q1)
    send.click()
    expect(page.get_by_test_id("typing")).to_be_visible()
    page.screenshot(path="/tmp/kefu-e2e-typing.png")
    page.get_by_test_id("message-input").fill("还有一个问题")
    expect(send).to_be_disabled()  # while the answer streams
    expect(answers(page).first).to_have_attribute("data-state", "done")
    expect(send).to_be_enabled()
    served.model.delay = 0

    # Text is shown as text: markup typed by the customer (and echoed back) never becomes elements.
    page.evaluate("window.__pwned = false")
    ask(page, '<img src=x onerror="window.__pwned = true"><b>粗体</b>')
    expect(page.locator("[data-role=user] .bubble").last).to_have_text(
        '<img src=x onerror="window.__pwned = true"><b>粗体</b>'
    )
    assert page.locator("#log img, #log b").count() == 0
    assert page.evaluate("window.__pwned") is False

    # Shift+Enter is a newline, not a send.
    box = page.get_by_test_id("message-input")
    box.fill("第一行")
    box.press("Shift+Enter")
    box.press_sequentially("第二行")
    expect(box).to_have_value("第一行\n第二行")
    expect(page.locator("#char-count")).to_have_text("7/4000")

    page.get_by_test_id("new-chat").click()
    roles = [m.get_attribute("data-role") for m in page.get_by_test_id("message").all()]
    assert roles == ["welcome"]
    assert page.evaluate("sessionStorage.getItem('kefu.conversation')") is None
    fresh = "新疆、西藏这些偏远地区多久能送到？"
    ask(page, fresh)
    received = [(m.role, m.content) for m in served.model.history[-1].messages if m.role != "system"]
    assert received == [("user", fresh)]  # a new conversation carries no earlier turns

    # A conversation id the server no longer knows (e.g. a fresh database) is dropped quietly.
    page.evaluate("sessionStorage.setItem('kefu.conversation', 'no-such-conversation')")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert [m.get_attribute("data-role") for m in page.get_by_test_id("message").all()] == ["welcome"]
    expect(ask(page, Q1).get_by_test_id("citation").first).to_be_visible()


def test_a_rejected_message_is_shown_as_a_polite_error(serve, open_page):
    served = serve(max_message_chars=20)
    page = open_page(served.url)
    ask(page, Q1)
    box = page.get_by_test_id("message-input")
    assert box.get_attribute("maxlength") == "20"  # the server's limit reached the page
    box.evaluate("el => el.removeAttribute('maxlength')")  # e.g. text pasted by a script
    box.fill("这是一条超过二十个字的很长很长很长很长很长的消息")
    box.press("Enter")
    error = page.locator("[data-testid=message][data-role=error]")
    expect(error).to_be_visible()
    expect(error).to_contain_text("20")
    page.screenshot(path="/tmp/kefu-e2e-error.png")
