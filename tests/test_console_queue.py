"""The console's handoff queue against the real bot: Rasa server (REST + staff API) and action
server from tests/servers.py, the console as a subprocess, and a headless Chromium. A citizen
asks for a person over REST, a staff member accepts and answers from the console's queue page,
another agent is refused, the citizen gets the answer through the REST outbox, the ticket is
closed — all through the staff API (/webhooks/staff/), with the staff member's own identity."""
import json
import re
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bot.console import auth
from bot.console.conversations import load_transcript
from bot.console.db import Database, audit
from bot.console.demo import ConsoleProcess, free_port
from tests.servers import running_bot
from tests.browser import screenshot_path
from tests.test_console_browser import launch
from tests.test_console_http import login

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console_queue")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n", encoding="utf-8")
    rasa_port = free_port()
    action_port = free_port()
    while action_port == rasa_port:
        action_port = free_port()
    with running_bot(rasa_port, action_port, tmp / "bot", credentials=credentials) as servers:
        db = Database(servers.db_url)
        auth.create_user(db, "李明", "agent", "agent-pass-12345")
        auth.create_user(db, "张伟", "agent", "agent-pass-23456")
        auth.create_user(db, "王芳", "supervisor", "supervisor-pass-1")
        console = ConsoleProcess(servers.db_url, tmp / "console.log", env={"ZWZX_RASA_URL": servers.rasa_url})
        console.db = db
        console.servers = servers
        try:
            yield console
        finally:
            console.stop()
            db.engine.dispose()


def citizen_says(stack, sender, text):
    r = requests.post(stack.servers.rasa_url + "/webhooks/rest/webhook", json={"sender": sender, "message": text},
                      timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def request_handoff(stack, sender) -> int:
    citizen_says(stack, sender, "政务公开目录在哪里看")
    replies = citizen_says(stack, sender, "我要转人工")
    cards = [m["custom"] for m in replies if isinstance(m.get("custom"), dict)]
    assert cards and cards[-1]["kind"] == "handoff", replies
    return int(cards[-1]["ticket"])


def test_accept_reply_close_through_the_console(stack):
    ticket = request_handoff(stack, "citizen-queue-1")
    agent = login(stack, "李明", "agent-pass-12345")
    other = login(stack, "张伟", "agent-pass-23456")
    queue = agent.get(stack.url + "/api/queue").json()
    mine = [t for t in queue["tickets"] if t["id"] == ticket][0]
    assert mine["status"] == "waiting" and mine["sender_id"] == "citizen-queue-1"
    assert mine["age"].endswith("秒") and mine["status_label"] == "等待中"

    token = agent.get(stack.url + "/queue").text.split('name="csrf-token" content="')[1].split('"')[0]
    other_token = other.get(stack.url + "/queue").text.split('name="csrf-token" content="')[1].split('"')[0]

    r = agent.post(stack.url + f"/api/queue/{ticket}/accept", headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["ticket"]["assignee"] == "李明"
    r = other.post(stack.url + f"/api/queue/{ticket}/accept", headers={"X-CSRF-Token": other_token})
    assert r.status_code == 409 and "工单" in r.json()["error"]
    r = other.post(stack.url + f"/api/queue/{ticket}/messages", headers={"X-CSRF-Token": other_token},
                   json={"text": "我来回答"})
    assert r.status_code == 403

    r = agent.get(stack.url + f"/api/queue/{ticket}/transcript?open=1")
    assert r.status_code == 200
    assert "我要转人工" in [e["text"] for e in r.json()["events"] if e["from"] == "citizen"]

    since = time.time() - 1
    r = agent.post(stack.url + f"/api/queue/{ticket}/messages", headers={"X-CSRF-Token": token},
                   json={"text": "您好，我是12345热线工作人员，政务公开目录可在市政府门户网站查看。"})
    assert r.status_code == 200, r.text
    outbox = requests.get(stack.servers.rasa_url + "/webhooks/rest/outbox/citizen-queue-1",
                          params={"since": since}, timeout=10).json()["messages"]
    assert [(m["from"], m["staff"]) for m in outbox] == [("staff", "李明")]
    staff_msgs = [m for m in load_transcript(stack.db, "citizen-queue-1") if m["who"] == "staff"]
    assert staff_msgs[-1]["staff"] == "李明" and "门户网站" in staff_msgs[-1]["text"]

    r = agent.post(stack.url + f"/api/queue/{ticket}/close", headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["ticket"]["status"] == "closed"
    assert ticket not in [t["id"] for t in agent.get(stack.url + "/api/queue").json()["tickets"]]

    with stack.db.engine.connect() as conn:
        rows = conn.execute(sa.select(audit.c.actor, audit.c.action, audit.c.detail)
                            .where(audit.c.target == f"ticket:{ticket}").order_by(audit.c.id)).all()
    assert [(a, b) for a, b, _ in rows] == [("李明", "queue_accept"), ("张伟", "queue_accept"),
                                            ("张伟", "queue_messages"), ("李明", "queue_read"),
                                            ("李明", "queue_messages"), ("李明", "queue_close")]
    assert json.loads(rows[1][2])["status"] == 409


def test_queue_page_in_the_browser(stack):
    from playwright.sync_api import expect, sync_playwright

    ticket = request_handoff(stack, "citizen-queue-2")
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page.on("dialog", lambda d: d.accept())
        page.goto(stack.url + "/login")
        page.fill("input[name=name]", "李明")
        page.fill("input[name=password]", "agent-pass-12345")
        page.click("button[type=submit]")
        page.wait_for_url(stack.url + "/conversations")
        page.goto(stack.url + "/queue")
        card = page.locator(f"#q-waiting [data-ticket='{ticket}']")
        card.wait_for(timeout=15000)
        assert "已等待" in card.inner_text()
        card.locator("button[data-action=accept]").click()
        page.locator("#ticket-panel").wait_for(state="visible", timeout=15000)
        page.locator(f"#q-active [data-ticket='{ticket}']").wait_for(timeout=15000)
        assert "我要转人工" in page.locator("#ticket-transcript").inner_text()
        page.fill("#reply-text", "您好，我是工作人员李明，请问您想查询哪个乡镇的公开目录？")
        page.click("#reply-form button[type=submit]")
        expect(page.locator("#reply-status")).to_have_text(re.compile("^已"), timeout=15000)
        # the citizen answers; the next refresh shows it in the open transcript
        citizen_says(stack, "citizen-queue-2", "我是玉潭街道的<b>居民</b>")
        expect(page.locator("#ticket-transcript")).to_contain_text("玉潭街道的<b>居民</b>", timeout=15000)
        assert page.locator("#ticket-transcript b").count() == 0  # markup shown as text
        page.screenshot(path=screenshot_path("console-queue.png"), full_page=True)
        page.click("#close-ticket")
        page.locator("#ticket-panel").wait_for(state="hidden", timeout=15000)
        browser.close()
    t = stack.servers.store().get_ticket(ticket)
    assert t["status"] == "closed" and t["assignee"] == "李明"
    whos = [(m["who"], m.get("staff")) for m in load_transcript(stack.db, "citizen-queue-2")]
    assert ("staff", "李明") in whos
