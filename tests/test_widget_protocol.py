"""The widget's socket.io protocol against a real Rasa server + action server (tests/servers.py),
from other clients than our own widget.js:

* python-socketio's client (websocket and long-polling): what a message shows as is decided by
  the server (a spoofed `metadata.display` never reaches the history or the staff console, a
  button click shows the button's title), and every `user_uttered` ends with exactly one
  `turn_done` — answered, refused (too long, empty, malformed) or a frame above engine.io's
  limit, after which the same connection still works.
* the community Rasa widget `rasa-webchat` 1.0.1 (Botfront), installed from npm by this test into
  tests/webchat/vendor/ (git-ignored), on the test page tests/webchat/index.html served from
  another origin, in headless Chromium: ask a question, get the answer text and the quick
  replies, click one. Skipped (with the reason) only when the npm registry cannot be reached.

Ports: 5700-5739 (first free ones).
"""
import functools
import http.server
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.servers import free_ports, running_bot

socketio = pytest.importorskip("socketio")

PORTS = (5700, 5739)
ROOT = Path(__file__).resolve().parents[1]
WEBCHAT_DIR = ROOT / "tests" / "webchat"
WEBCHAT_VENDOR = WEBCHAT_DIR / "vendor"
WEBCHAT_VERSION = "1.0.1"
SPOOF = "我同意公开我的身份证号"
TOO_LONG = "您的消息超过了500字的长度限制，请精简后重新发送。"
# questions whose answer offers quick replies (the first one that does is used)
BUTTON_QUESTIONS = ("信息公开", "公开", "平台建设", "天气怎么样")
TURN_TIMEOUT = 60


# ------------------------------------------------------------------ servers
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("widget_protocol")
    rasa_port, action_port, page_port = free_ports(3, *PORTS)
    page_origin = f"http://127.0.0.1:{page_port}"
    credentials = tmp / "credentials.yml"
    # the test page is a portal on another origin, as where rasa-webchat is embedded
    credentials.write_text("bot.channels.widget.WidgetInput:\n  session_persistence: true\n"
                           f"  cors_allowed_origins: [\"{page_origin}\", \"http://127.0.0.1:{rasa_port}\"]\n"
                           "  max_message_length: 500\n",
                           encoding="utf-8")
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", page_port), functools.partial(QuietHandler, directory=str(WEBCHAT_DIR)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with running_bot(rasa_port, action_port, tmp, credentials=credentials) as bot:
            yield {"url": bot.rasa_url, "db_url": bot.db_url, "page": page_origin, "tmp": tmp}
    finally:
        httpd.shutdown()
        httpd.server_close()


class Client:
    """python-socketio's client with every event it receives recorded in order."""

    def __init__(self, url, transport):
        self.sio = socketio.Client(reconnection=False)
        self.events = []
        self.lock = threading.Lock()
        self.disconnects = 0
        for name in ("session_confirm", "bot_uttered", "turn_done", "widget_error"):
            self.sio.on(name, functools.partial(self._record, name))
        self.sio.on("disconnect", self._disconnected)
        self.sio.connect(url, transports=[transport], wait_timeout=20)
        assert self.sio.transport() == transport
        self.eio_sid = self.sio.eio.sid
        self.sio.emit("session_request", {"session_id": None})
        self.session_id = self.wait_for("session_confirm")[1]

    def _record(self, name, data=None):
        with self.lock:
            self.events.append((name, data))

    def _disconnected(self, *args):
        self.disconnects += 1

    def wait_for(self, name, start=0, timeout=TURN_TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for ev in self.events[start:]:
                    if ev[0] == name:
                        return ev
            time.sleep(0.05)
        raise AssertionError(f"no {name} within {timeout} s; got {self.events[start:]}")

    def turn(self, data):
        """Send one user_uttered; the events up to and including its turn_done (and checks that
        no second outcome follows)."""
        start = len(self.events)
        self.sio.emit("user_uttered", data)
        self.wait_for("turn_done", start)
        time.sleep(0.4)  # anything arriving after the turn_done would be a second outcome
        with self.lock:
            got = self.events[start:]
        assert [e for e, _ in got].count("turn_done") == 1, got
        assert got[-1][0] == "turn_done", got
        return got

    def ask(self, text, **extra):
        return self.turn(dict({"message": text, "session_id": self.session_id}, **extra))

    def close(self):
        self.sio.disconnect()


@pytest.fixture(params=["websocket", "polling"])
def client(servers, request):
    c = Client(servers["url"], request.param)
    yield c
    c.close()


def bot_texts(got):
    return [d.get("text") for e, d in got if e == "bot_uttered" and d.get("text")]


def errors(got):
    return [d["text"] for e, d in got if e == "widget_error"]


def history_user_texts(servers, session_id):
    from bot.ops.widget_session import SessionSigner  # the servers' secret (build/widget_secret)

    token = SessionSigner.from_environment().token(session_id)
    r = requests.get(f"{servers['url']}/webhooks/widget/history/{session_id}", params={"token": token}, timeout=30)
    assert r.status_code == 200, r.text
    return [t["text"] for t in r.json()["turns"] if t["role"] == "user"]


def tracker_user_events(servers, session_id):
    r = requests.get(f"{servers['url']}/conversations/{session_id}/tracker", timeout=30)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["event"] == "user"]


def offered_button(c):
    """(the questions asked, in order, the last of them answered with quick replies; its first one)."""
    asked = []
    for question in BUTTON_QUESTIONS:
        asked.append(question)
        got = c.ask(question)
        for e, d in got:
            if e == "bot_uttered" and d.get("quick_replies"):
                return asked, d["quick_replies"][0]
    pytest.fail(f"none of {BUTTON_QUESTIONS} was answered with quick replies")


# ------------------------------------------------------------------ display decided by the server
def test_spoofed_display_never_reaches_history_or_console(servers):
    from bot.console.conversations import load_transcript
    from bot.console.db import Database

    c = Client(servers["url"], "websocket")
    try:
        got = c.ask("财政预决算会公开吗", metadata={"display": SPOOF})
        assert bot_texts(got) and not errors(got)
        questions, button = offered_button(c)
        # a click on the offered button, with a spoofed display: shows the button's title
        c.ask(button["payload"], metadata={"display": SPOOF})
        # the same click as our widget and rasa-webchat send it
        c.ask(button["payload"], metadata={"display": button["title"]})
        c.ask(button["payload"])
        # a payload nobody offered shows itself
        c.ask('/ask_policy{"item_ref": "ningxiang-2021#1"}', metadata={"display": SPOOF})
    finally:
        c.close()
    sid = c.session_id
    expected = ["财政预决算会公开吗", *questions, button["title"], button["title"], button["title"],
                '/ask_policy{"item_ref": "ningxiang-2021#1"}']
    assert history_user_texts(servers, sid) == expected
    # the tracker keeps the real text; the display it stores is the server's
    events = tracker_user_events(servers, sid)
    assert [e["text"] for e in events] == ["财政预决算会公开吗", *questions] + [button["payload"]] * 3 + \
        ['/ask_policy{"item_ref": "ningxiang-2021#1"}']
    assert SPOOF not in json.dumps([e.get("metadata") for e in events], ensure_ascii=False)
    assert all(e["input_channel"] == "widget" for e in events)
    # the staff console's transcript shows what the history shows (and the real payload beside it)
    citizen = [m for m in load_transcript(Database(servers["db_url"]), sid) if m["who"] == "citizen"]
    assert [m["display"] for m in citizen] == expected
    assert SPOOF not in json.dumps(citizen, ensure_ascii=False)


# ------------------------------------------------------------------ one outcome per message
def test_every_message_ends_with_one_turn_done(client):
    normal = client.ask("财政预决算会公开吗")
    assert bot_texts(normal) and not errors(normal)

    refused = client.ask("长" * 501)
    assert errors(refused) == [TOO_LONG] and not bot_texts(refused)
    assert [e for e, _ in refused] == ["widget_error", "turn_done"]

    for bad in ({"message": "   ", "session_id": client.session_id}, "not an object"):
        got = client.turn(bad)
        assert [e for e, _ in got] == ["widget_error", "turn_done"]
        assert "您" in errors(got)[0]

    # exactly 500 characters is allowed (and its frame is below engine.io's limit)
    allowed = client.ask("财政预决算会公开吗" + "。" * (500 - len("财政预决算会公开吗")))
    assert not errors(allowed)


@pytest.mark.parametrize("size", [9000, 1_000_000])
def test_oversized_frame_is_refused_and_the_socket_stays(client, size):
    for text in ("长" * size, "a" * size):
        got = client.ask(text)
        assert [e for e, _ in got] == ["widget_error", "turn_done"], got
        assert errors(got) == [TOO_LONG]
    # the same connection (no disconnect, same engine.io session) answers the next question
    assert client.sio.connected and client.disconnects == 0 and client.sio.eio.sid == client.eio_sid
    after = client.ask("政策解读有什么要求")
    assert bot_texts(after) and not errors(after)
    assert client.disconnects == 0 and client.sio.eio.sid == client.eio_sid


# ------------------------------------------------------------------ rasa-webchat in Chromium
def _npm_unreachable(output: str) -> bool:
    markers = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
               "network", "socket hang up", "getaddrinfo")
    return any(m in output for m in markers)


@pytest.fixture(scope="module")
def webchat():
    """rasa-webchat's published bundle, from the npm registry (`npm pack`; not committed)."""
    target = WEBCHAT_VENDOR / "rasa-webchat"
    bundle = target / "lib" / "index.js"
    package = target / "package.json"
    if bundle.exists() and package.exists() and \
            json.loads(package.read_text(encoding="utf-8")).get("version") == WEBCHAT_VERSION:
        return bundle
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (apt-get install -y npm): rasa-webchat cannot be installed")
    WEBCHAT_VENDOR.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run([npm, "pack", f"rasa-webchat@{WEBCHAT_VERSION}", "--pack-destination",
                              str(WEBCHAT_VENDOR), "--silent"], capture_output=True, text=True, timeout=180,
                             env=dict(os.environ, npm_config_fund="false", npm_config_audit="false"))
    except subprocess.TimeoutExpired:
        pytest.skip("npm registry unreachable: `npm pack rasa-webchat` timed out")
    if out.returncode != 0:
        text = out.stdout + out.stderr
        if _npm_unreachable(text):
            pytest.skip(f"npm registry unreachable: {text.strip()[-300:]}")
        raise RuntimeError(f"npm pack rasa-webchat@{WEBCHAT_VERSION} failed:\n{text}")
    tgz = WEBCHAT_VENDOR / f"rasa-webchat-{WEBCHAT_VERSION}.tgz"
    if target.exists():
        shutil.rmtree(target)
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/")
                   and ".." not in m.name and (m.isfile() or m.isdir())]
        for m in members:
            m.name = "rasa-webchat/" + m.name[len("package/"):]
        tar.extractall(WEBCHAT_VENDOR, members=members)
    tgz.unlink()
    assert bundle.exists(), f"{bundle} missing from the npm package"
    return bundle


@pytest.fixture(scope="module")
def browser():
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (see requirements.lock)")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} not found: CI must install it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_rasa_webchat_asks_and_gets_the_answer_and_quick_replies(servers, webchat, browser):
    from playwright import sync_api

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    # the page has no network beyond the two test servers (rasa-webchat's CSS asks Google Fonts)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        ("http://127.0.0.1", "ws://127.0.0.1", "data:")) else route.abort())
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    page.set_default_timeout(TURN_TIMEOUT * 1000)
    try:
        page.goto(f"{servers['page']}/index.html?server={servers['url']}")
        launcher = page.locator(".rw-launcher")
        launcher.wait_for(state="visible", timeout=30000)
        launcher.click()
        field = page.locator(".rw-new-message")
        field.wait_for(state="visible")

        texts = page.locator(".rw-response .rw-markdown")  # the bot's text messages

        def ask(text):
            before = texts.count()
            field.fill(text)
            field.press("Enter")
            # rasa-webchat shows a turn's messages one after another, after a typing indicator
            page.wait_for_function("n => document.querySelectorAll('.rw-response .rw-markdown').length > n",
                                   arg=before)
            try:
                page.wait_for_function("n => document.querySelectorAll('.rw-response .rw-markdown').length > n"
                                       " && document.querySelectorAll('.rw-replies .rw-reply').length > 0",
                                       arg=before, timeout=8000)
            except sync_api.TimeoutError:
                pass
            return texts.nth(before).inner_text().strip()

        for question in BUTTON_QUESTIONS:
            answer = ask(question)
            if page.locator(".rw-replies .rw-reply").count():
                break
        else:
            pytest.fail(f"rasa-webchat showed no quick replies for {BUTTON_QUESTIONS}: "
                        f"{page.locator('.rw-messages-container').inner_text()}")
        assert page.locator(".rw-client").last.inner_text().strip() == question
        assert len(answer) > 4, answer
        replies = page.locator(".rw-replies").last.locator(".rw-reply")
        title = replies.first.inner_text().strip()
        assert title
        session_id = page.evaluate("JSON.parse(sessionStorage.getItem('chat_session')).session_id")
        before = texts.count()
        replies.first.click()
        page.wait_for_function("n => document.querySelectorAll('.rw-response .rw-markdown').length > n",
                               arg=before)
        assert page.locator(".rw-client").last.inner_text().strip() == title
        page.screenshot(path=str(servers["tmp"] / "rasa-webchat.png"))
        # rasa-webchat sends the payload without any display: the server knows the title
        assert history_user_texts(servers, session_id)[-1] == title
        assert not page_errors, page_errors
    finally:
        context.close()
