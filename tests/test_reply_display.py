"""What citizens and staff see of the bot's replies (issue 17), against the real Rasa server and
action server (tests/servers.py) with the REST, widget, staff and WeChat channels (a local fake of
the WeChat API), in headless Chromium (/usr/bin/chromium via Playwright):

* the widget draws the answer card, so an answer's source and units appear there once (the
  card's citation link and units line), never again in the text bubbles — desktop and 360 px;
  REST and WeChat clients have no card and keep the source line in the text (one decision,
  bot.answering.cards.renders_cards);
* the staff console transcript shows every bot event — text, buttons and card, in tracker
  order — for every reply kind (answer, clarify, fallback, out_of_scope, handoff, chitchat,
  feedback prompts, staff messages);
* a question wrapped in markup or entities gets the same card (kind, item) as the bare question
  on REST, widget and WeChat; the raw text stays in the tracker and shows escaped.

Ports: 5600-5699 (first free ones).
"""
from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
import requests
import xmltodict
from wechatpy.utils import WeChatSigner

from bot.answering.cards import CARD_CHANNELS, Reply, renders_cards
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot_path
from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import free_ports, running_bot

PORTS = (5600, 5699)
TURN_TIMEOUT_MS = 30000
STAFF_NAME = "赵敏"
WECHAT_TOKEN = "zwzx-display-token"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "zwzx-display-secret"
GH_ID = "gh_zwzx_display"
DOC = "宁乡市2021年政务公开工作要点"

QUESTION = "请问惠民惠农的资金发放信息会公开吗"   # item 5, 做好财政信息公开: no lead unit, 市财政局 first
UNITS_LINE = "责任：市财政局、市直相关单位、各乡镇（街道）人民政府（办事处）"
BARE = "政府债务"
MARKUP = ["<img src=x onerror=alert(1)>政府债务<script>alert(3)</script>", "政府&nbsp;债务<br>",
          "<p><b>政府债务</b></p>", "政府&#20538;务"]
XSS_SENDER = "xss<img src=x onerror=alert(2)>"

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (see requirements.lock)")


# ------------------------------------------------------------------ unit: one decision per channel
def test_one_place_decides_which_channels_draw_the_card():
    assert renders_cards("widget") and CARD_CHANNELS == {"widget"}
    for channel in ("rest", "wechat", "staff", None, "cmdline"):
        assert not renders_cards(channel)
    source = f"依据：《{DOC}》第（五）项 做好财政信息公开\n牵头单位：市财政局"
    reply = Reply("answer", ["答复句子。", source, "回复“查看全文”可查看该项全文。"],
                  citations=[{"doc": "d", "item": 5}], departments=["市财政局"],
                  card_texts=[source, "回复“查看全文”可查看该项全文。"])
    assert [m.get("text") for m in reply.messages("widget")] == ["答复句子。", None]
    for channel in ("rest", "wechat", None):
        assert [m.get("text") for m in reply.messages(channel)] == reply.texts + [None]
        assert reply.messages(channel)[-1] == reply.messages("widget")[-1]  # the same card
    # buttons stay on the last text that is sent
    reply.buttons = [{"title": "相关：第（六）项", "payload": "/ask_policy"}]
    assert reply.messages("widget")[0]["buttons"] == reply.buttons
    assert reply.messages("rest")[2]["buttons"] == reply.buttons


def test_answerer_marks_source_texts_of_every_answer_mode():
    from actions.knowledge import answerer
    from bot.answering.answerer import Query
    from bot.nlp.segmenter import default_segmenter

    words = default_segmenter().words
    ctx = {"current_doc": "ningxiang-2021", "current_item": 5}
    for text, intent, extra in ((QUESTION, "ask_policy", {}), ("那由哪个部门负责？", "ask_responsible", ctx),
                                ("有什么时间要求", "ask_deadline", ctx), ("查看全文", "ask_full_text", ctx)):
        reply = answerer().answer(Query(text=text, tokens=words(text), intent=intent, **extra))
        assert reply.kind == "answer" and reply.citations[0]["item"] == 5, (text, reply)
        shown = [m["text"] for m in reply.messages("widget") if m.get("text")]
        assert shown and not any("依据" in t for t in shown), (text, shown)
        rest = [m["text"] for m in reply.messages("rest") if m.get("text")]
        assert sum("依据：" in t for t in rest) == 1, (text, rest)
        assert reply.citations[0]["lead_units"] == [] and reply.citations[0]["responsible_units"][0] == "市财政局"


# ------------------------------------------------------------------ servers
class Servers:
    def __init__(self, bot, fake: FakeWeChatAPI, token: str, tmp: Path, console_port: int):
        self.bot, self.fake, self.token, self.tmp = bot, fake, token, tmp
        self.url = bot.rasa_url
        self.db_url = bot.db_url
        self.console_port = console_port

    def events(self, sender: str) -> List[Dict[str, Any]]:
        """The tracker's events as stored (read from the tracker store's database, so that any
        sender id, e.g. one with markup in it, works)."""
        import json

        import sqlalchemy as sa

        from bot.console.db import Database, events

        db = Database(self.db_url)
        try:
            with db.engine.connect() as conn:
                rows = conn.execute(sa.select(events.c.data).where(events.c.sender_id == sender)
                                    .order_by(events.c.id)).all()
        finally:
            db.engine.dispose()
        return [json.loads(r.data) for r in rows]

    def staff(self, method: str, path: str, **kw) -> Dict[str, Any]:
        r = requests.request(method, f"{self.url}/webhooks/staff{path}",
                             headers={"Authorization": f"Bearer {self.token}"}, timeout=30, **kw)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("display")
    rasa_port, action_port, fake_port, console_port = free_ports(4, *PORTS)
    fake = FakeWeChatAPI(APP_ID, APP_SECRET, port=fake_port).start()
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n"
        "bot.channels.widget.WidgetInput:\n  session_persistence: true\n"
        "bot.channels.wechat.WeChatInput:\n"
        f'  token: "{WECHAT_TOKEN}"\n  app_id: "{APP_ID}"\n  app_secret: "{APP_SECRET}"\n'
        f'  encrypt_mode: plain\n  api_base: "{fake.base_url}"\n  passive_reply_seconds: 4.0\n',
        encoding="utf-8")
    no_wechat_env = {k: None for k in os.environ if k.startswith("WECHAT_")}
    try:
        with running_bot(rasa_port, action_port, tmp, credentials=credentials, extra_env=no_wechat_env) as bot:
            s = Servers(bot, fake, bot.add_staff(STAFF_NAME, "agent"), tmp, console_port)
            rest(s, "warm-up-" + uuid.uuid4().hex[:6], "你好")  # first turn loads lazily
            yield s
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: make browser")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# ------------------------------------------------------------------ clients
def new_sender(prefix: str = "display") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def rest(s: Servers, sender: str, text: str):
    """(card, texts) of one REST turn."""
    r = requests.post(f"{s.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60)
    assert r.status_code == 200, r.text
    messages = r.json()
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    assert len(cards) == 1, messages
    return cards[0], [m["text"] for m in messages if m.get("text")]


def card_key(card: Dict[str, Any]):
    cites = card.get("citations") or []
    return card.get("kind"), (cites[0].get("doc"), cites[0].get("item")) if cites else None


def last_card(events: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    cards = [(e.get("data") or {}).get("custom") for e in events if e.get("event") == "bot"]
    cards = [c for c in cards if isinstance(c, dict) and c.get("kind")]
    return cards[-1] if cards else None


def wechat(s: Servers, openid: str, content: str) -> str:
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(WECHAT_TOKEN, ts, nonce)
    fields = {"ToUserName": GH_ID, "FromUserName": openid, "CreateTime": int(ts), "MsgType": "text",
              "Content": content, "MsgId": int(time.time() * 1e6)}
    body = "<xml>" + "".join(f"<{k}>{v}</{k}>" if isinstance(v, int) else f"<{k}><![CDATA[{v}]]></{k}>"
                             for k, v in fields.items()) + "</xml>"
    r = requests.post(f"{s.url}/webhooks/wechat/webhook", data=body.encode("utf-8"), timeout=60,
                      params={"signature": signer.signature, "timestamp": ts, "nonce": nonce, "openid": openid},
                      headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    if r.text == "success":  # too slow for the passive reply: it went out as a customer-service message
        return "\n".join(s.fake.wait_for(openid, 1, 40))
    return xmltodict.parse(r.text)["xml"]["Content"]


class Widget:
    """The demo portal page with the widget, as a citizen uses it."""

    def __init__(self, browser, s: Servers, **opts):
        opts.setdefault("viewport", {"width": 1280, "height": 800})
        self.context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai", **opts)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TURN_TIMEOUT_MS)
        self.errors: List[str] = []
        self.dialogs: List[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(f"{s.url}/webhooks/widget/demo")
        if self.page.locator(".zw-panel").is_hidden():
            self.page.click(".zw-launcher")
        self.wait_connected()

    def wait_connected(self):
        self.page.wait_for_selector("#zwzx-widget[data-state=connected]", state="attached")
        self.page.wait_for_function("() => !!(window.zwzxWidget && window.zwzxWidget.sessionId)")

    @property
    def session_id(self) -> str:
        return self.page.evaluate("window.zwzxWidget.sessionId")

    def ask(self, text: str):
        before = self.page.locator(".zw-msg--bot").count()
        self.page.fill(".zw-input", text)
        self.page.press(".zw-input", "Enter")
        self.page.wait_for_function(
            "n => document.querySelector('.zw-typing').hidden && "
            "document.querySelectorAll('.zw-msg--bot').length > n", arg=before)
        return self.page.locator(".zw-msg--bot").nth(self.page.locator(".zw-msg--bot").count() - 1)

    def close(self):
        self.context.close()


def assert_citation_once(answer) -> None:
    """An answer block of the widget names its source and its units exactly once: in the card."""
    text = answer.inner_text()
    assert text.count("第（五）项") == 1, text
    assert text.count("依据") == 1, text
    assert text.count("市财政局") == 1, text
    assert text.count(DOC) == 0, text  # the document title is the link's tooltip and the dialog's
    bubbles = [answer.locator(".zw-bubble").nth(i).inner_text() for i in range(answer.locator(".zw-bubble").count())]
    assert bubbles and "惠民惠农" in bubbles[0], bubbles
    for b in bubbles:
        assert not any(w in b for w in ("依据", "牵头单位", "责任单位", "第（五）项", "查看全文")), bubbles
    chip = answer.locator(".zw-cites .zw-chip")
    assert chip.count() == 1 and chip.inner_text().strip().endswith("第（五）项 做好财政信息公开")
    assert answer.locator(".zw-depts").inner_text() == UNITS_LINE


# ------------------------------------------------------------------ citation once
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_widget_answer_shows_its_citation_exactly_once(browser, servers, size):
    opts = {"viewport": {"width": 1280, "height": 800}} if size == "desktop" else \
        {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True, "device_scale_factor": 1}
    w = Widget(browser, servers, **opts)
    try:
        answer = w.ask(QUESTION)
        assert_citation_once(answer)
        # the chip is the link to the item's full text and its units
        answer.locator(".zw-chip").click()
        dialog = w.page.locator(".zw-dialog")
        dialog.wait_for(state="visible")
        w.page.wait_for_function("() => document.querySelector('.zw-dialog-units') !== null")
        assert "还本付息" in dialog.inner_text() and "市财政局" in dialog.inner_text()
        w.page.keyboard.press("Escape")
        dialog.wait_for(state="hidden")
        if size == "phone":
            # question and the whole answer (sentence, citation, units) fit on one phone screen
            log_box = w.page.locator(".zw-log").bounding_box()
            question = w.page.locator(".zw-msg--user").last.bounding_box()
            block = answer.bounding_box()
            assert block["y"] + block["height"] - question["y"] < log_box["height"], (question, block, log_box)
        # the tracker holds what was sent: no source texts, the card with its citation
        bots = [e for e in servers.events(w.session_id) if e["event"] == "bot"]
        assert not any("依据" in (e.get("text") or "") for e in bots)
        assert card_key(last_card(bots)) == ("answer", ("ningxiang-2021", 5))
        # "who is responsible": the sentence names the units, the card only links the item
        who = w.ask("那由哪个部门负责？")
        text = who.inner_text()
        assert text.count("市财政局") == 1 and text.count("第（五）项") == 1 and text.count("依据") == 1, text
        assert who.locator(".zw-depts").count() == 0 and "市财政局" in who.locator(".zw-bubble").first.inner_text()
        # and after a reload (history) it is still shown once
        w.page.reload()
        w.wait_connected()
        w.page.wait_for_function("() => document.querySelectorAll('.zw-msg--bot .zw-chip').length >= 2")
        assert_citation_once(w.page.locator(".zw-msg--bot").nth(w.page.locator(".zw-msg--bot").count() - 2))
        assert not w.errors and not w.dialogs
    finally:
        w.close()


def test_text_clients_keep_the_source_line(servers):
    card, texts = rest(servers, new_sender(), QUESTION)
    assert card_key(card) == ("answer", ("ningxiang-2021", 5))
    assert sum(t.count("依据：") for t in texts) == 1
    assert any(t.startswith(f"依据：《{DOC}》第（五）项 做好财政信息公开\n责任单位：市财政局") for t in texts)
    content = wechat(servers, "o" + uuid.uuid4().hex[:27], QUESTION)
    assert content.count("依据：") == 1 and f"依据：《{DOC}》第（五）项 做好财政信息公开" in content
    assert content.count("市财政局") == 1 and "惠民惠农" in content


# ------------------------------------------------------------------ markup in questions
@pytest.mark.parametrize("text", MARKUP)
def test_markup_question_gets_the_bare_questions_card_on_rest(servers, text):
    bare, _ = rest(servers, new_sender(), BARE)
    assert card_key(bare) == ("answer", ("ningxiang-2021", 5))
    sender = new_sender()
    card, texts = rest(servers, sender, text)
    assert card_key(card) == card_key(bare), (text, card, texts)
    users = [e for e in servers.events(sender) if e["event"] == "user"]
    assert users[-1]["text"] == text  # the raw text stays in the tracker for the record


def test_markup_question_gets_the_bare_questions_card_on_wechat(servers):
    bare_id = "o" + uuid.uuid4().hex[:27]
    bare_text = wechat(servers, bare_id, BARE)
    bare = last_card(servers.events(f"wechat:{bare_id}"))
    assert card_key(bare) == ("answer", ("ningxiang-2021", 5)), bare_text
    for text in MARKUP[:2]:
        openid = "o" + uuid.uuid4().hex[:27]
        content = wechat(servers, openid, text)
        events = servers.events(f"wechat:{openid}")
        assert card_key(last_card(events)) == card_key(bare), (text, content)
        assert content == bare_text
        assert [e["text"] for e in events if e["event"] == "user"][-1] == text


def test_markup_question_gets_the_bare_questions_card_in_the_widget(browser, servers):
    w = Widget(browser, servers, bypass_csp=True)  # CSP would block inline handlers anyway
    try:
        w.page.evaluate("window.__xss = 0")
        bare = w.ask(BARE)
        assert "政府债务" in bare.inner_text()
        evil = '<img src=x onerror="window.__xss=1">' + MARKUP[0]
        for text in (evil, MARKUP[1]):
            answer = w.ask(text)
            assert w.page.locator(".zw-msg--user .zw-bubble").last.inner_text() == text.strip()
            assert answer.locator(".zw-chip").inner_text() == bare.locator(".zw-chip").inner_text()
            assert answer.locator(".zw-bubble").first.inner_text() == bare.locator(".zw-bubble").first.inner_text()
        events = servers.events(w.session_id)
        bot_cards = [e["data"]["custom"] for e in events if e["event"] == "bot"
                     and isinstance((e.get("data") or {}).get("custom"), dict)]
        assert [card_key(c) for c in bot_cards] == [("answer", ("ningxiang-2021", 5))] * 3
        assert [e["text"] for e in events if e["event"] == "user"] == [BARE, evil, MARKUP[1].strip()]
        assert w.page.locator("#zwzx-widget img").count() == 0
        assert w.page.evaluate("window.__xss") == 0 and not w.dialogs and not w.errors
    finally:
        w.close()


# ------------------------------------------------------------------ console transcript
def expected_transcript(events: List[Dict[str, Any]]) -> List[tuple]:
    """What the transcript must show, in order, from the tracker's own events."""
    out = []
    for e in events:
        if e["event"] == "user":
            if (e.get("parse_data") or {}).get("intent", {}).get("name") == "feedback":
                out.append(("feedback",))
            else:
                out.append(("citizen", e.get("text") or ""))
        elif e["event"] == "bot":
            meta = e.get("metadata") or {}
            if meta.get("from") == "staff":
                out.append(("staff", e["text"]))
                continue
            data = e.get("data") or {}
            buttons = tuple(b["title"] for b in data.get("buttons") or [])
            if e.get("text") or buttons:
                out.append(("bot", e.get("text") or "", buttons))
            custom = data.get("custom")
            if isinstance(custom, dict) and custom.get("kind"):
                out.append(("card", custom["kind"]))
    return out


SHOWN_JS = """() => [...document.querySelectorAll('#transcript > div')].map(d => {
  const text = d.querySelector(':scope > .text');
  if (d.classList.contains('citizen')) return ['citizen', text.textContent];
  if (d.classList.contains('staff')) return ['staff', text.textContent];
  if (d.classList.contains('feedback')) return ['feedback'];
  if (d.classList.contains('bot')) return ['bot', text ? text.textContent : '',
      [...d.querySelectorAll('.buttons .chip')].map(b => b.textContent)];
  if (d.classList.contains('card')) return ['card', [...d.classList].find(c => c.startsWith('kind-')).slice(5)];
  return ['?', d.className];
})"""


def ask_until_clarify(s: Servers, sid: str) -> None:
    """A clarifying question with its buttons. Which words make the bot unsure depends on the
    retrieval's current thresholds; when none of these does, the clarify reply the action sends
    (Answerer.clarify on real hits) is appended through Rasa's tracker API."""
    for text in ("平台建设", "公开的信息", "信息", "服务"):
        card, _ = rest(s, sid, text)
        if card["kind"] == "clarify":
            return
    from actions.knowledge import answerer
    from bot.answering.answerer import Query
    from bot.nlp.segmenter import default_segmenter

    text = "信息"
    a = answerer()
    q = Query(text=text, tokens=default_segmenter().words(text), intent="ask_policy")
    reply = a.clarify(a.index.search(text, q.tokens, [])[:3], q)
    now = time.time()
    events = [{"event": "user", "text": text, "timestamp": now, "input_channel": "rest",
               "parse_data": {"intent": {"name": "ask_policy", "confidence": 0.5}, "entities": []}}]
    for i, m in enumerate(reply.messages("rest")):
        data = {"buttons": m["buttons"]} if m.get("buttons") else {}
        if m.get("json_message"):
            data["custom"] = m["json_message"]
        events.append({"event": "bot", "text": m.get("text"), "data": data, "timestamp": now + 0.01 * (i + 1)})
    r = requests.post(f"{s.url}/conversations/{sid}/tracker/events", json=events, timeout=30)
    assert r.status_code == 200, r.text


def converse_every_kind(s: Servers) -> Dict[str, str]:
    """Conversations with every reply kind over REST; returns label → sender id."""
    convs: Dict[str, str] = {}
    sid = convs["answer+feedback"] = new_sender("kinds")
    assert rest(s, sid, "你好")[0]["kind"] == "chitchat"
    assert rest(s, sid, QUESTION)[0]["kind"] == "answer"
    assert rest(s, sid, '/feedback{"feedback": "up"}')[0]["kind"] == "chitchat"
    ask_until_clarify(s, sid)
    assert rest(s, sid, '/feedback{"feedback": "down"}')[0]["kind"] in ("handoff", "chitchat")
    sid = convs["fallback"] = new_sender("fallback")
    assert rest(s, sid, "   ")[0]["kind"] == "fallback"  # a blank message
    sid = convs["out_of_scope"] = XSS_SENDER
    card, _ = rest(s, sid, "帮我查一下明天的天气")
    assert card["kind"] == "out_of_scope", card
    card, _ = rest(s, sid, MARKUP[0])  # answered now like 政府债务
    assert card_key(card) == ("answer", ("ningxiang-2021", 5))
    sid = convs["handoff"] = new_sender("handoff")
    assert rest(s, sid, "帮我转人工客服")[0]["kind"] == "handoff"
    ticket = next(t for t in s.staff("GET", "/tickets", params={"status": "waiting"})["tickets"]
                  if t["sender_id"] == sid)
    s.staff("POST", f"/tickets/{ticket['id']}/accept")
    s.staff("POST", f"/tickets/{ticket['id']}/messages", json={"text": "您好，我是热线工作人员<b>赵敏</b>。"})
    s.staff("POST", f"/tickets/{ticket['id']}/close")
    deadline = time.time() + 20  # the bot's closing notice with the rating prompt is written after the close
    while time.time() < deadline and not any(
            e["event"] == "bot" and not (e.get("metadata") or {}).get("from") for e in s.events(sid)[-3:]):
        time.sleep(0.3)
    return convs


def test_console_transcript_shows_every_bot_reply(browser, servers):
    from bot.console import auth
    from bot.console.conversations import load_transcript
    from bot.console.db import Database
    from bot.console.demo import ConsoleProcess

    convs = converse_every_kind(servers)
    db = Database(servers.db_url)
    auth.create_user(db, "王芳", "supervisor", "supervisor-pass-1")
    console = ConsoleProcess(servers.db_url, servers.tmp / "console.log", port=servers.console_port)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    dialogs: List[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(console.url + "/login")
        page.fill("input[name=name]", "王芳")
        page.fill("input[name=password]", "supervisor-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url(console.url + "/conversations")
        kinds_seen = set()
        for label, sid in convs.items():
            events = servers.events(sid)
            expected = expected_transcript(events)
            page.goto(console.url + "/conversation?" + requests.compat.urlencode({"sid": sid}))
            shown = [tuple(tuple(x) if isinstance(x, list) else x for x in row) for row in page.evaluate(SHOWN_JS)]
            assert shown == expected, (label, shown, expected)
            bot_texts = [e["text"] for e in events if e["event"] == "bot" and e.get("text")]
            assert bot_texts and all(t in page.locator("#transcript").inner_text() for t in bot_texts)
            kinds_seen.update(row[1] for row in expected if row[0] == "card")
            # the data behind the page says the same
            assert [m["who"] for m in load_transcript(db, sid)] == [row[0] for row in expected]
            if label == "out_of_scope":
                assert page.locator(".msg.citizen .text").last.inner_text() == MARKUP[0]
                assert XSS_SENDER in page.locator(".conv-head code").inner_text()
                oos = page.locator(".card.kind-out_of_scope")
                assert oos.count() == 1
                said = oos.locator("xpath=preceding-sibling::div[1]")
                assert "bot" in said.get_attribute("class") and said.locator(".text").inner_text().strip()
                page.screenshot(path=screenshot_path("console-transcript-out-of-scope.png"), full_page=True)
            if label == "handoff":
                assert page.locator(".msg.staff .text").first.inner_text() == "您好，我是热线工作人员<b>赵敏</b>。"
                page.screenshot(path=screenshot_path("console-transcript-handoff.png"), full_page=True)
            if label == "answer+feedback":
                page.screenshot(path=screenshot_path("console-transcript-kinds.png"), full_page=True)
            assert page.locator("#transcript script, #transcript img, #transcript b").count() == 0
        assert kinds_seen >= {"answer", "clarify", "chitchat", "out_of_scope", "handoff"}, kinds_seen
        assert dialogs == []
    finally:
        page.close()
        console.stop()
        db.engine.dispose()
