"""The chat page's ratings in headless Chromium (issue #13 part 1): 👍, five stars with a comment and the
CSAT prompt when the customer ends the chat, then the admin export holds them (the comment redacted)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest
from playwright.sync_api import expect

import test_handoff_e2e as console
from conftest import live_server
from kefu.api.app import create_app
from kefu.config import Settings
from kefu.llm.testing import ScriptedModel
from test_web_e2e import MINI_KB, Q1, ask, browser, open_page  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

ADMIN = "admin-token-for-the-ratings-page-test"


class Served:
    def __init__(self, url: str, model: ScriptedModel, settings: Settings) -> None:
        self.url, self.model, self.settings = url, model, settings


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Served]]:
    """The real app in a uvicorn thread, answering with a scripted model this test holds."""
    with ExitStack() as stack:

        def start(**overrides: object) -> Served:
            model, settings = ScriptedModel(), make_settings(kb_dir=MINI_KB, **overrides)
            app = create_app(settings, model=model)
            return Served(stack.enter_context(live_server(app)), model, settings)

        yield start


def test_rate_an_answer_and_the_conversation_then_export(serve, open_page):  # noqa: F811
    served = serve(admin_token=ADMIN)
    page = open_page(served.url)
    served.model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    answer = ask(page, Q1)
    message_id = answer.get_attribute("data-message-id")
    assert message_id

    up = answer.get_by_test_id("thumb-up")
    expect(up).to_have_attribute("aria-label", "有帮助")
    up.click()
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_test_id("rate-note")).to_have_text("感谢您的反馈")

    answer.get_by_test_id("star-5").click()
    expect(answer.get_by_test_id("star-5")).to_have_attribute("aria-pressed", "true")
    comment = answer.get_by_test_id("rate-comment")
    expect(comment).to_be_visible()
    comment.fill("讲得很清楚，有问题打我电话 13800138000")
    answer.get_by_test_id("rate-comment-send").click()
    expect(comment).to_be_hidden()

    page.get_by_test_id("end-chat").click()
    csat = page.get_by_test_id("csat")
    expect(csat).to_contain_text("请为本次服务打分")
    csat.get_by_test_id("csat-4").click()
    expect(csat.get_by_test_id("csat-note")).to_have_text("感谢您的评价！")
    page.screenshot(path="/tmp/kefu-e2e-ratings.png")

    headers = {"Authorization": f"Bearer {ADMIN}"}
    exported = httpx.get(f"{served.url}/v1/ratings/export?format=jsonl", headers=headers, timeout=30)
    assert exported.status_code == 200, exported.text
    rows = [json.loads(line) for line in exported.text.splitlines()]
    assert sorted((r["kind"], r["score"]) for r in rows) == [("csat", 4), ("stars", 5), ("thumbs", 1)]
    stars = next(r for r in rows if r["kind"] == "stars")
    assert stars["message_id"] == message_id and stars["kb_version"] == "v1" and stars["channel"] == "web"
    assert "[手机号_1]" in stars["comment"] and "13800138000" not in exported.text
    table = httpx.get(f"{served.url}/v1/ratings/export?format=csv", headers=headers, timeout=30)
    assert "13800138000" not in table.text
    assert len(list(csv.DictReader(io.StringIO(table.text)))) == 3


def test_english_labels_for_the_rating_buttons(serve, open_page):  # noqa: F811
    served = serve()
    page = open_page(served.url)
    served.model.enqueue("We ship with ZTO [1].")
    answer = ask(page, Q1)
    page.get_by_test_id("lang-toggle").click()
    expect(answer.get_by_test_id("thumb-down")).to_have_attribute("aria-label", "Not helpful")
    expect(answer.get_by_test_id("star-3")).to_have_attribute("aria-label", "3 stars")
    expect(page.get_by_test_id("end-chat")).to_have_text("End chat")


def test_the_agent_console_shows_the_ratings(serve, open_page, monkeypatch):  # noqa: F811
    served = serve()
    console.add_agent(served.settings, monkeypatch)
    customer = open_page(served.url)
    served.model.enqueue("我们默认使用中通快递，江浙沪 1–2 天送达 [1]。")
    answer = ask(customer, Q1)
    answer.get_by_test_id("thumb-down").click()
    expect(answer.get_by_test_id("rate-note")).to_have_text("感谢您的反馈")
    customer.get_by_test_id("end-chat").click()
    customer.get_by_test_id("csat").get_by_test_id("csat-2").click()
    expect(customer.get_by_test_id("csat-note")).to_have_text("感谢您的评价！")
    ask(customer, "转人工")
    cid = console.customer_id(customer)

    agent = open_page(f"{served.url}/agent")
    console.sign_in(agent)
    console.queue_item(agent, cid).click()
    rated = console.history(agent, "assistant").first.get_by_test_id("rating")
    expect(rated).to_have_text("👎")
    expect(agent.locator("[data-testid=rating][data-kind=csat]")).to_have_text("满意度 2/5")
