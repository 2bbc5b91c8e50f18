"""The chat widget in a real headless Chromium (Debian `chromium`, driven by Playwright),
against a real Rasa server + action server (tests/servers.py: trained model, temp SQLite tracker
store and ticket database), with the widget and staff channels enabled.

Needs: /usr/bin/chromium (apt-get install chromium) and the pinned `playwright` package.
Playwright never downloads a browser here: it is pointed at the system Chromium.
Ports: 5410-5499 (first free ones).
"""
import os
import time
from pathlib import Path

import pytest
import requests

from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.browser import screenshot_path as _shot
from tests.servers import free_ports, running_bot

PORTS = (5410, 5499)
STAFF_NAME = "李工"
TURN_TIMEOUT_MS = 30000

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (see requirements.lock)")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} not found: CI must install it (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium", allow_module_level=True)


def screenshot_path(servers, name):
    return _shot(name, servers["tmp"])


# ------------------------------------------------------------------ servers
@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("widget")
    credentials = tmp / "credentials.yml"
    credentials.write_text("bot.channels.widget.WidgetInput:\n  session_persistence: true\n"
                           "bot.channels.staff.StaffInput:\n", encoding="utf-8")
    rasa_port, action_port = free_ports(2, *PORTS)
    # running_bot opens the handoff hours all week, so 转人工 opens a ticket at any time of day
    with running_bot(rasa_port, action_port, tmp, credentials=credentials) as bot:
        yield {"url": bot.rasa_url, "token": bot.add_staff(STAFF_NAME, "agent"), "tmp": tmp}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# ------------------------------------------------------------------ helpers
class Chat:
    """The demo portal page with the widget, as a citizen uses it."""

    def __init__(self, browser, servers, **context_opts):
        context_opts.setdefault("viewport", {"width": 1280, "height": 800})
        context_opts.setdefault("locale", "zh-CN")
        context_opts.setdefault("timezone_id", "Asia/Shanghai")
        self.context = browser.new_context(**context_opts)
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.url = servers["url"]
        self.page.set_default_timeout(TURN_TIMEOUT_MS)

    def close(self):
        self.context.close()

    def load(self, open_panel=True):
        self.page.goto(f"{self.url}/webhooks/widget/demo")
        if open_panel and self.page.locator(".zw-panel").is_hidden():
            self.page.click(".zw-launcher")
        self.wait_connected()
        return self

    def wait_connected(self):
        self.page.wait_for_selector("#zwzx-widget[data-state=connected]", state="attached")
        self.page.wait_for_function("() => !!(window.zwzxWidget && window.zwzxWidget.sessionId)")

    @property
    def session_id(self):
        return self.page.evaluate("window.zwzxWidget.sessionId")

    def bot_count(self):
        return self.page.locator(".zw-msg--bot").count()

    def wait_turn(self, before):
        """Until the bot finished the turn (typing indicator gone) with a new bot message."""
        self.page.wait_for_function(
            "n => document.querySelector('.zw-typing').hidden && "
            "document.querySelectorAll('.zw-msg--bot').length > n", arg=before)
        # pinned to this message (".last" would move on to later ones)
        return self.page.locator(".zw-msg--bot").nth(self.bot_count() - 1)

    def ask(self, text):
        before = self.bot_count()
        self.page.fill(".zw-input", text)
        self.page.press(".zw-input", "Enter")
        return self.wait_turn(before)

    def click_and_wait(self, locator):
        before = self.bot_count()
        locator.click()
        return self.wait_turn(before)


@pytest.fixture
def chat(browser, servers):
    c = Chat(browser, servers)
    yield c
    assert not c.errors, f"JavaScript errors on the page: {c.errors}"
    c.close()


def staff_api(servers, method, path, **kw):
    r = requests.request(method, f"{servers['url']}/webhooks/staff{path}",
                         headers={"Authorization": f"Bearer {servers['token']}"}, timeout=30, **kw)
    assert r.status_code == 200, (r.status_code, r.text)
    return r.json()


def tracker_events(servers, session_id):
    r = requests.get(f"{servers['url']}/conversations/{session_id}/tracker", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["events"]


# ------------------------------------------------------------------ tests
def test_answer_with_citation_chip_that_opens_the_item(chat):
    page = chat.load().page
    welcome = page.locator(".zw-welcome")
    assert "政务咨询助手" in welcome.inner_text()
    assert welcome.locator(".zw-reply").count() == 3  # example questions
    assert page.locator(".zw-human").inner_text() == "转人工"

    answer = chat.ask("请问惠民惠农的资金发放信息会公开吗")
    user = page.locator(".zw-msg--user").last
    assert user.locator(".zw-bubble").inner_text() == "请问惠民惠农的资金发放信息会公开吗"
    assert "补贴信息公开" in answer.inner_text() or "惠民惠农" in answer.inner_text()
    chip = answer.locator(".zw-chip").first
    assert chip.inner_text().strip().endswith("第（五）项 做好财政信息公开")
    assert answer.locator(".zw-sender").inner_text() == "智能助手"
    assert ":" in answer.locator("time.zw-time").inner_text()  # HH:MM timestamp
    assert answer.locator(".zw-fb-up").is_visible() and answer.locator(".zw-fb-down").is_visible()

    chip.click()
    dialog = page.locator(".zw-dialog")
    dialog.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('.zw-dialog-units') !== null")
    text = dialog.inner_text()
    assert "第（五）项 做好财政信息公开" in text
    assert "还本付息" in text                       # the item's full text
    assert "市财政局" in text and "责任单位" in text  # with its departments
    assert "宁乡市2021年政务公开工作要点" in text
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('zw-chip')")


def test_follow_up_question_in_context(chat):
    chat.load()
    first = chat.ask("疫情防控的信息怎么公开")
    assert "第（六）项 做好疫情防控信息公开" in first.locator(".zw-chip").first.inner_text()
    follow = chat.ask("那由哪个部门负责？")
    text = follow.inner_text()
    assert "市卫生健康局" in text and "牵头" in text
    assert "第（六）项 做好疫情防控信息公开" in follow.locator(".zw-chip").first.inner_text()


def test_clarify_buttons_are_quick_replies(chat):
    page = chat.load().page
    # questions made only of words most items use: the bot asks which item is meant
    for text in ("信息公开", "政务公开工作", "公开"):
        clarify = chat.ask(text)
        buttons = clarify.locator(".zw-reply")
        if clarify.locator(".zw-chip").count() == 0:
            break
    assert buttons.count() >= 2, clarify.inner_text()
    assert clarify.locator(".zw-chip").count() == 0  # candidates are not citations
    title = buttons.first.inner_text()
    assert title.startswith("第（")
    answer = chat.click_and_wait(buttons.first)
    # the citizen's bubble shows the button's title, not its payload
    assert page.locator(".zw-msg--user .zw-bubble").last.inner_text() == title
    assert title in answer.locator(".zw-chip").first.inner_text()


def test_thumbs_down_is_stored_as_feedback(chat, servers):
    page = chat.load().page
    answer = chat.ask("政府网站集约化建设有什么要求")
    down = answer.locator(".zw-fb-down")
    n_user = page.locator(".zw-msg--user").count()
    down.click()
    page.wait_for_function("() => document.querySelector('.zw-typing').hidden")
    assert down.get_attribute("aria-pressed") == "true"
    assert answer.locator(".zw-fb-thanks").is_visible()
    assert page.locator(".zw-msg--user").count() == n_user  # no bubble for the feedback itself
    sid = chat.session_id
    deadline = time.time() + 15
    sent = []
    while time.time() < deadline and not sent:
        sent = [e for e in tracker_events(servers, sid) if e["event"] == "user"
                and e.get("text") == '/feedback{"feedback": "down"}']
        time.sleep(0.3)
    assert sent, "the widget did not send /feedback{\"feedback\": \"down\"}"
    assert sent[-1]["input_channel"] == "widget"
    # after a reload the widget still shows the choice
    page.reload()
    chat.wait_connected()
    assert page.locator(".zw-feedback[data-feedback=down]").count() == 1
    feedback = [e for e in sent if (e.get("parse_data") or {}).get("intent", {}).get("name") == "feedback"]
    assert feedback, "no user event with intent feedback in the tracker"
    event = feedback[-1]
    assert event["text"] == '/feedback{"feedback": "down"}'
    assert {"entity": "feedback", "value": "down"}.items() <= \
        next(e for e in event["parse_data"]["entities"] if e["entity"] == "feedback").items()
    assert event["input_channel"] == "widget"


def test_handoff_staff_reply_then_bot_answers_again(chat, servers):
    page = chat.load().page
    before = chat.bot_count()
    page.click(".zw-human")
    reply = chat.wait_turn(before)
    assert page.locator(".zw-msg--user .zw-bubble").last.inner_text() == "转人工"
    assert "工单号" in reply.inner_text(), reply.inner_text()
    sid = chat.session_id
    tickets = staff_api(servers, "GET", "/tickets", params={"status": "waiting"})["tickets"]
    ticket = next(t for t in tickets if t["sender_id"] == sid)
    assert ticket["channel"] == "widget"
    staff_api(servers, "POST", f"/tickets/{ticket['id']}/accept")

    # while staff handle it, the bot stays quiet
    n_bot = chat.bot_count()
    page.fill(".zw-input", "我想咨询财政资金公开的具体渠道")
    page.press(".zw-input", "Enter")
    page.wait_for_function("() => document.querySelector('.zw-typing').hidden")
    assert chat.bot_count() == n_bot

    out = staff_api(servers, "POST", f"/tickets/{ticket['id']}/messages",
                    json={"text": "您好，我是12345热线工作人员，请问您想了解哪方面的财政信息？"})
    assert out["delivered"] is True, out
    staff = page.locator(".zw-msg--staff").last
    staff.wait_for()
    assert "12345热线工作人员" in staff.locator(".zw-bubble").inner_text()
    assert staff.locator(".zw-sender").inner_text().startswith("工作人员")
    # styled differently from the bot
    bot_bg = page.evaluate("getComputedStyle(document.querySelector('.zw-msg--bot .zw-bubble')).backgroundColor")
    staff_bg = page.evaluate("getComputedStyle(document.querySelector('.zw-msg--staff .zw-bubble')).backgroundColor")
    assert bot_bg != staff_bg
    page.evaluate("document.activeElement.blur()")
    page.wait_for_timeout(500)
    page.locator(".zw-panel").screenshot(path=screenshot_path(servers, "widget-handoff.png"))

    # staff text is shown as text, never as HTML
    page.evaluate("window.__staffXss = 0")
    html = '<b>加粗</b><img src=x onerror="window.__staffXss=1">'
    staff_api(servers, "POST", f"/tickets/{ticket['id']}/messages", json={"text": html})
    page.wait_for_function("() => document.querySelectorAll('.zw-msg--staff').length >= 2")
    assert page.locator(".zw-msg--staff .zw-bubble").last.inner_text() == html
    assert page.locator("#zwzx-widget img, #zwzx-widget b").count() == 0
    assert page.evaluate("window.__staffXss") == 0

    staff_api(servers, "POST", f"/tickets/{ticket['id']}/close")
    page.wait_for_function("() => document.querySelector('.zw-log').innerText.includes('人工服务已结束')")
    answer = chat.ask("财政预决算会公开吗")
    assert answer.locator(".zw-chip").count() >= 1, answer.inner_text()
    # the staff turns are part of the history after a reload
    page.reload()
    chat.wait_connected()
    assert page.locator(".zw-msg--staff").count() == 2


def test_reload_keeps_the_conversation(chat):
    page = chat.load().page
    chat.ask("疫情防控的信息怎么公开")
    sid = chat.session_id
    stored = page.evaluate("localStorage.getItem('zwzx-widget-session')")
    assert stored == sid
    page.reload()
    chat.wait_connected()
    assert chat.session_id == sid
    assert page.locator(".zw-panel").is_visible()  # stays open
    log = page.locator(".zw-log").inner_text()
    assert "疫情防控的信息怎么公开" in log
    assert page.locator(".zw-chip", has_text="第（六）项 做好疫情防控信息公开").count() >= 1
    # the same conversation continues: the follow-up is answered in context
    follow = chat.ask("那由哪个部门负责？")
    assert "市卫生健康局" in follow.inner_text()


def test_html_in_messages_is_shown_as_text(browser, servers):
    # bypass_csp: the demo page's Content-Security-Policy would block inline handlers anyway;
    # this checks that the widget itself never turns text into HTML.
    chat = Chat(browser, servers, bypass_csp=True)
    try:
        page = chat.load().page
        page.evaluate("window.__xss = 0")
        evil = '<img src=x onerror="window.__xss=1">'
        chat.ask(evil)
        assert page.locator(".zw-msg--user .zw-bubble").last.inner_text() == evil
        assert page.locator("#zwzx-widget img").count() == 0
        assert page.evaluate("window.__xss") == 0
        page.reload()  # and from the history
        chat.wait_connected()
        page.evaluate("window.__xss = 0")
        assert page.locator(".zw-msg--user .zw-bubble").last.inner_text() == evil
        page.wait_for_timeout(300)
        assert page.locator("#zwzx-widget img").count() == 0
        assert page.evaluate("window.__xss") == 0
        assert not chat.errors
    finally:
        chat.close()


def test_keyboard_only_use(chat):
    page = chat.page
    page.goto(f"{chat.url}/webhooks/widget/demo")
    page.wait_for_selector(".zw-launcher")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('zw-launcher')"):
            break
    else:
        pytest.fail("the launcher is not reachable with Tab")
    # focus is visible
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Enter")
    chat.wait_connected()
    assert page.evaluate("document.activeElement.id") == "zw-input"
    log = page.locator(".zw-log")
    assert log.get_attribute("role") == "log" and log.get_attribute("aria-live") == "polite"
    before = chat.bot_count()
    page.keyboard.type("政策解读有什么要求")
    page.keyboard.press("Enter")
    chat.wait_turn(before)
    for _ in range(12):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.classList.contains('zw-chip')"):
            break
    else:
        pytest.fail("the citation chip is not reachable with Shift+Tab")
    page.keyboard.press("Enter")
    page.locator(".zw-dialog").wait_for(state="visible")
    assert page.evaluate("document.activeElement.classList.contains('zw-dialog-close')")
    page.keyboard.press("Escape")
    page.locator(".zw-dialog").wait_for(state="hidden")
    page.keyboard.press("Escape")
    page.locator(".zw-panel").wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('zw-launcher')")


def test_input_length_is_limited_with_a_counter(chat):
    page = chat.load().page
    assert page.locator(".zw-counter").inner_text() == "0/300"
    page.focus(".zw-input")
    page.keyboard.insert_text("我" * 320)
    assert len(page.input_value(".zw-input")) == 300
    assert page.locator(".zw-counter").inner_text() == "300/300"
    page.fill(".zw-input", "")
    # the server refuses over-long messages that bypass the input field
    page.evaluate("window.zwzxWidget.socket.emit('user_uttered', "
                  "{message: '长'.repeat(600), session_id: window.zwzxWidget.sessionId})")
    page.wait_for_function("() => [...document.querySelectorAll('.zw-msg--system')]"
                           ".some(e => e.innerText.includes('长度限制'))")


def test_connection_drop_notice_and_reconnect(chat):
    page = chat.load().page
    status = page.locator(".zw-status")
    assert status.is_hidden()
    # real time: socket.io upgrades from long-polling to a WebSocket
    page.wait_for_function("() => window.zwzxWidget.socket.io.engine.transport.name === 'websocket'",
                           timeout=10000)
    # the transport drops: notice, automatic reconnect
    page.evaluate("window.zwzxWidget.socket.io.engine.close()")
    page.wait_for_selector("#zwzx-widget[data-state=disconnected]", state="attached", timeout=5000)
    assert "连接已断开" in status.inner_text()
    chat.wait_connected()
    page.wait_for_selector("#zwzx-widget[data-state=connected]", state="attached")
    # the server drops the client for good: notice with a button to reconnect
    page.evaluate("window.zwzxWidget.socket.disconnect()")
    page.wait_for_selector("#zwzx-widget[data-state=disconnected]", state="attached", timeout=5000)
    assert status.is_visible() and "连接已断开" in status.inner_text()
    page.click(".zw-reconnect")
    page.wait_for_selector("#zwzx-widget[data-state=connected]", state="attached")
    status.wait_for(state="hidden", timeout=10000)
    answer = chat.ask("政策解读有什么要求")
    assert answer.locator(".zw-chip").count() >= 1


def test_http_routes_refuse_bad_input(servers):
    url = servers["url"] + "/webhooks/widget"
    r = requests.get(f"{url}/item/ningxiang-2021/99", timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "未找到该条目"
    r = requests.get(f"{url}/item/ningxiang-2021/abc", timeout=10)
    assert r.status_code == 400 and "格式" in r.json()["error"]
    r = requests.get(f"{url}/history/..%2F..%2Fetc", timeout=10)
    assert r.status_code in (400, 404)
    r = requests.get(f"{url}/history/short", timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "会话编号格式不正确"
    r = requests.get(f"{url}/history/{'a' * 32}", timeout=10)   # no session token (issue 12)
    assert r.status_code == 403 and "凭证" in r.json()["error"]
    from bot.ops.widget_session import SessionSigner
    r = requests.get(f"{url}/history/{'a' * 32}", params={"token": SessionSigner.from_environment().token("a" * 32)},
                     timeout=10)
    assert r.status_code == 200 and r.json()["turns"] == []
    for bad in ("../bot/channels/widget.py", "..%2Fbot%2Fchannels%2Fwidget.py", "%2e%2e/credentials.yml"):
        r = requests.get(f"{url}/static/{bad}", timeout=10)
        assert r.status_code == 404, bad
    r = requests.get(f"{url}/static/widget.js", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/javascript")
    assert "innerHTML" not in r.text and "insertAdjacentHTML" not in r.text
    r = requests.get(f"{url}/demo", timeout=10)
    assert r.status_code == 200 and "script-src 'self'" in r.headers["content-security-policy"]
    # socket.io only accepts the server's own origin unless configured otherwise
    r = requests.get(f"{servers['url']}/socket.io/?EIO=4&transport=polling",
                     headers={"Origin": "https://evil.example.com"}, timeout=10)
    assert r.status_code == 400


def test_screenshots_desktop_and_phone(browser, servers):
    for name, opts in (("widget-desktop.png", {"viewport": {"width": 1280, "height": 800}}),
                       ("widget-phone.png", {"viewport": {"width": 360, "height": 740}, "is_mobile": True,
                                             "has_touch": True, "device_scale_factor": 1})):
        chat = Chat(browser, servers, **opts)
        try:
            page = chat.load().page
            chat.ask("请问惠民惠农的资金发放信息会公开吗")
            panel = page.locator(".zw-panel").bounding_box()
            if name == "widget-phone.png":
                # the open panel fills the phone screen, nothing sticks out sideways
                assert panel["x"] == 0 and panel["width"] == 360 and panel["height"] == 740
                assert page.evaluate("document.querySelector('.zw-log').scrollWidth "
                                     "<= document.querySelector('.zw-log').clientWidth")
                assert page.locator(".zw-send").bounding_box()["x"] + 10 < 360
            else:
                assert panel["width"] == 400 and panel["x"] + panel["width"] <= 1280
            page.evaluate("document.activeElement.blur()")
            # show the question at the top of the log, then the answer below it
            page.evaluate("document.querySelector('.zw-log').style.scrollBehavior = 'auto'")
            page.wait_for_timeout(800)  # a smooth scroll still running would undo ours
            page.evaluate("(() => { const log = document.querySelector('.zw-log');"
                          " const q = [...log.querySelectorAll('.zw-msg--user')].pop();"
                          " log.scrollTop = q.offsetTop - log.offsetTop - 8; })()")
            page.wait_for_timeout(300)
            page.screenshot(path=screenshot_path(servers, name))
            assert not chat.errors
        finally:
            chat.close()
