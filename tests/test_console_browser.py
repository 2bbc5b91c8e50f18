"""A real headless Chromium (the system /usr/bin/chromium, driven by Playwright) uses the staff
console: logs in, filters to handoffs, opens a transcript, tags it, sees the dashboard charts;
a citizen's `<script>` shows as text and never runs. Saves the screenshots shown in the README
(docs/screenshots/console-*.png)."""
import datetime as dt
from pathlib import Path

import pytest

from bot.console import annotations, auth
from bot.console.conversations import local_tz
from bot.console.db import Database
from bot.console.demo import ConsoleProcess, seed

ROOT = Path(__file__).resolve().parents[1]
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot_path  # noqa: E402


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium missing: apt-get install -y chromium")
    tmp = tmp_path_factory.mktemp("console_browser")
    url = f"sqlite:///{tmp / 'tracker.db'}"
    seed(url, day0=dt.datetime.now(local_tz()).date())
    db = Database(url)
    auth.create_user(db, "王芳", "supervisor", "supervisor-pass-1")
    proc = ConsoleProcess(url, tmp / "console.log")
    proc.db = db
    yield proc
    proc.stop()
    db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def test_staff_member_reviews_a_handoff_in_the_browser(console, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="zh-CN")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # not logged in: the console sends us to the login page
    page.goto(console.url + "/conversations")
    assert page.url.startswith(console.url + "/login")
    page.screenshot(path=screenshot_path("console-login.png"))
    page.fill("input[name=name]", "王芳")
    page.fill("input[name=password]", "supervisor-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/conversations")
    assert page.locator("a.conv-link").count() == 25  # first page
    page.screenshot(path=screenshot_path("console-conversations.png"), full_page=True)

    # filter to handoffs
    page.select_option("#filter-kind", "handoff")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**kind=handoff**")
    links = page.locator("a.conv-link")
    assert links.count() == 2
    assert page.locator("#total").inner_text() == "2"

    # open the transcript
    page.click("a.conv-link:has-text('基层政务公开标准化是什么意思')")
    page.wait_for_url("**/conversation?sid=demo-handoff-1")
    transcript = page.locator("#transcript")
    assert "工作人员 王芳" in transcript.inner_text()
    assert page.locator(".card.kind-handoff").count() == 1
    assert page.locator("a.cite").first.inner_text().startswith("《宁乡市2021年政务公开工作要点》")

    # tag it
    page.select_option("#conv-tag-form select[name=tag]", "需转人工")
    page.click("#conv-tag-form button[type=submit]")
    page.wait_for_load_state()
    assert "需转人工" in page.locator("#tags").inner_text()
    tags = annotations.tags_of(console.db, "demo-handoff-1")
    assert [(t["tag"], t["created_by"], t["event_id"]) for t in tags] == [("需转人工", "王芳", None)]
    page.screenshot(path=screenshot_path("console-transcript.png"), full_page=True)

    # the tag is a filter now
    page.goto(console.url + "/conversations?tag=需转人工")
    assert page.locator("a.conv-link").count() == 1

    # the citation links to the item text
    page.goto(console.url + "/conversation?sid=demo-answer-1")
    page.click("a.cite")
    assert "全面推行政府网站集约化建设" in page.locator("h1").inner_text()

    # dashboard: charts drawn in the page, no network beyond the console itself
    requests_seen = []
    page.on("request", lambda r: requests_seen.append(r.url))
    page.goto(console.url + "/dashboard")
    kinds_bars = page.locator("#chart-kinds svg rect.bar")
    assert kinds_bars.count() >= 4 and kinds_bars.first.is_visible()
    assert page.locator("#chart-per-day svg polyline").count() == 2
    assert page.locator("#chart-hours svg rect.bar").count() == 24
    box = page.locator("#chart-per-day svg").bounding_box()
    assert box["width"] > 600 and box["height"] > 100
    assert all(u.startswith(console.url) for u in requests_seen), requests_seen
    page.screenshot(path=screenshot_path("console-dashboard.png"), full_page=True)

    page.goto(console.url + "/gaps")
    group = page.locator("details.group").first
    assert "我家门口的路灯坏了找谁修" in group.inner_text()
    group.locator("input[data-select-group]").check()
    boxes = group.locator("input[name=turn]")
    assert boxes.count() == 3 and all(boxes.nth(i).is_checked() for i in range(3))
    assert page.locator("input[name=turn]:checked").count() == 3  # only this group
    page.screenshot(path=screenshot_path("console-gaps.png"), full_page=True)
    assert dialogs == []
    page.close()


def test_citizen_script_shows_as_text(console, browser):
    page = browser.new_page(locale="zh-CN")
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(console.url + "/login")
    page.fill("input[name=name]", "王芳")
    page.fill("input[name=password]", "supervisor-pass-1")
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/conversations")
    page.goto(console.url + "/conversation?sid=demo-xss-1")
    text = page.locator(".msg.citizen .text").first.inner_text()
    assert text == "<script>alert('xss')</script>政务公开在哪里看"
    assert page.locator("#transcript script").count() == 0
    page.goto(console.url + "/conversations?q=script")
    assert "<script>alert('xss')</script>" in page.locator("a.conv-link").first.inner_text()
    assert dialogs == []
    page.close()
