"""A Rasa server killed while it is answering (production profile: two Rasa servers behind nginx,
PostgreSQL, Redis — started by bot.ops.cluster as `make run-prod` does): the message in flight
is not lost and not answered twice, on each channel.

To have a message certainly in flight on the server that is killed, the test holds the
conversation's lock in Redis (as another server answering that conversation would): the message
waits for it inside Rasa on server B; B is SIGKILLed; the client does what it does when its
connection breaks —

* REST: sends the message again with the same message_id (through nginx);
* widget: reconnects (through nginx) and sends the message whose turn_done it never got again,
  with the same message_id (web/widget.js);
* WeChat: WeChat's servers send the same MsgId again (through nginx);

and gets one answer, with one user event in PostgreSQL. Then the case of a server that died
after storing the turn but before answering (the state Redis is left in is recreated): the
retry gets the stored answer, the turn is not processed a second time.

Skipped when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable or nginx is
not installed. Ports: a block of 7 in 6460-6489 (+1 for the fake WeChat API); its own database
zwzx_test_fo_<random> (dropped afterwards) and Redis key prefix.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid

import pytest
import requests
import yaml

from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import ALWAYS_OPEN, ROOT
from tests.test_prod_profile import MODEL, PG_PASSWORD, PG_USER, REDIS_HOST, REDIS_PORT, pg_url, port_free, \
    services_or_skip

pytestmark = pytest.mark.timeout(900)

TOKEN = "zwzx-fo-token"
APP_ID = "wxfo0123456789ab"
APP_SECRET = "zwzx-fo-secret"
QUESTION = "政府网站集约化建设有什么要求"


def port_block(lo=6460, hi=6489, n=8):
    for base in range(lo, hi - n + 2):
        if all(port_free(p) for p in range(base, base + n)):
            return list(range(base, base + n))
    pytest.skip(f"no block of {n} free ports in {lo}-{hi}")


class Stack:
    def __init__(self, cluster, fake, dbname, prefix):
        import redis
        import sqlalchemy as sa

        self.cluster, self.fake, self.dbname, self.prefix, self.sa = cluster, fake, dbname, prefix, sa
        self.engine = sa.create_engine(pg_url(dbname))
        self.redis = redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)

    @property
    def public(self):
        return self.cluster.public_url

    def events(self, sender, kind):
        with self.engine.connect() as conn:
            rows = conn.execute(self.sa.text("SELECT data FROM events WHERE sender_id = :s AND type_name = :t "
                                             "ORDER BY id"), {"s": sender, "t": kind}).fetchall()
        return [json.loads(r[0]) for r in rows]

    def user_texts(self, sender):
        return [e.get("text") for e in self.events(sender, "user")]

    def cards(self, sender):
        return [e for e in self.events(sender, "bot") if isinstance((e.get("data") or {}).get("custom"), dict)]

    def hold(self, sender):
        from bot.ops.lock_store import AtomicRedisLockStore

        store = AtomicRedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=0, key_prefix=self.prefix)
        return store, store.issue_ticket(sender, 60)

    def ensure_running(self, name="rasa-1"):
        if not self.cluster.procs[name].running():
            self.cluster.start(name)
        self.cluster.wait_ready([name], timeout=300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    services_or_skip()
    import sqlalchemy as sa

    from bot.ops.cluster import Cluster

    ports = port_block()
    suffix = uuid.uuid4().hex[:8]
    dbname, prefix = f"zwzx_test_fo_{suffix}", f"zwzxfo{suffix}"
    tmp = tmp_path_factory.mktemp("prod_fo")
    fake = FakeWeChatAPI(APP_ID, APP_SECRET, port=ports[7]).start()
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n"
        "bot.channels.widget.WidgetInput:\n  session_persistence: true\nbot.channels.wechat.WeChatInput:\n"
        f'  token: "{TOKEN}"\n  app_id: "{APP_ID}"\n  app_secret: "{APP_SECRET}"\n'
        f'  api_base: "{fake.base_url}"\n', encoding="utf-8")
    handoff = tmp / "handoff.yml"
    base = yaml.safe_load((ROOT / "handoff.yml").read_text(encoding="utf-8")) or {}
    base.update(ALWAYS_OPEN)
    handoff.write_text(yaml.safe_dump(base, allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZWZX_", "WECHAT_"))}
    env.update(ZWZX_PG_HOST="127.0.0.1", ZWZX_PG_PORT=os.environ.get("ZWZX_TEST_PG_PORT", "5432"),
               ZWZX_PG_DB=dbname, ZWZX_PG_USER=PG_USER, ZWZX_PG_PASSWORD=PG_PASSWORD, ZWZX_PG_SSLMODE="disable",
               ZWZX_REDIS_HOST=REDIS_HOST, ZWZX_REDIS_PORT=str(REDIS_PORT), ZWZX_REDIS_PREFIX=prefix,
               ZWZX_HTTP_PORT=str(ports[0]), ZWZX_ACTIONS_LB_PORT=str(ports[1]),
               ZWZX_RASA_BASE_PORT=str(ports[2]), ZWZX_ACTION_BASE_PORT=str(ports[4]),
               ZWZX_RASA_SERVERS="2", ZWZX_ACTION_SERVERS="2", ZWZX_CONSOLE_SERVERS="0",
               ZWZX_RUN_DIR=str(tmp / "run"), ZWZX_MODEL=str(MODEL), ZWZX_CREDENTIALS=str(credentials),
               ZWZX_HANDOFF_CONFIG=str(handoff), ZWZX_WIDGET_SECRET="zwzx-test-widget-secret-" + uuid.uuid4().hex)
    cluster = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", flush=True))
    s = None
    try:
        cluster.start_all(timeout=600)
        s = Stack(cluster, fake, dbname, prefix)
        yield s
    finally:
        cluster.stop_all()
        fake.stop()
        if s is not None:
            s.engine.dispose()
        engine = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        finally:
            engine.dispose()
        import redis

        client = redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def in_background(fn, *args, **kwargs):
    out = {}

    def run():
        try:
            out["r"] = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 — what the client saw
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def rest(base, sender, text, message_id, timeout=60):
    return requests.post(f"{base}/webhooks/rest/webhook", json={"sender": sender, "message": text,
                                                                "message_id": message_id}, timeout=timeout)


def card(messages):
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    assert len(cards) == 1, messages
    return cards[0]


# ----------------------------------------------------------------------------- tests
def test_rest_message_in_flight_on_the_killed_server_is_answered_once_on_retry(stack):
    stack.ensure_running()
    sender, mid = "fo-rest-" + uuid.uuid4().hex[:6], uuid.uuid4().hex
    store, ticket = stack.hold(sender)
    t, out = in_background(rest, stack.cluster.rasa_url(1), sender, QUESTION, mid)
    time.sleep(1.0)                                   # waiting for the conversation lock on server B
    assert t.is_alive()
    stack.cluster.kill("rasa-1")
    t.join(30)
    assert "e" in out, out                            # the client's connection broke: no answer
    store.finish_serving(sender, ticket)
    t0 = time.time()
    r = rest(stack.public, sender, QUESTION, mid)     # the client sends it again, same id, via nginx
    assert r.status_code == 200, r.text
    assert card(r.json())["kind"] == "answer"
    print(f"REST retry answered {time.time() - t0:.1f} s after the kill")
    again = rest(stack.public, sender, QUESTION, mid)
    assert again.json() == r.json() and again.headers.get("X-Zwzx-Replayed") == "1"
    assert stack.user_texts(sender) == [QUESTION] and len(stack.cards(sender)) == 1
    stack.ensure_running()


def test_widget_message_in_flight_on_the_killed_server_is_sent_again_after_reconnect(stack):
    from tests.test_widget_session import Client

    stack.ensure_running()
    citizen = Client(stack.cluster.rasa_url(1))        # its socket is on server B
    sid, token = citizen.session_id, citizen.token
    store, ticket = stack.hold(sid)
    mid = uuid.uuid4().hex
    pending = {"message": QUESTION, "session_id": sid, "session_token": token, "metadata": {}, "message_id": mid}
    citizen.sio.emit("user_uttered", pending)
    time.sleep(1.0)
    stack.cluster.kill("rasa-1")
    deadline = time.time() + 10
    while citizen.sio.connected and time.time() < deadline:
        time.sleep(0.05)
    assert not citizen.sio.connected                  # the widget shows 连接已断开，正在尝试重新连接…
    assert not any(e == "turn_done" for e, _ in citizen.events)
    store.finish_serving(sid, ticket)
    back = Client(stack.public, session_id=sid, token=token)   # reconnected through nginx: server A
    try:
        assert back.session_id == sid
        got = back.ask(QUESTION, message_id=mid)      # the pending message again, same id
        cards = [d["custom"] for e, d in got if e == "bot_uttered" and d.get("custom")]
        assert len(cards) == 1 and cards[0]["kind"] == "answer"
        done = [d for e, d in got if e == "turn_done"]
        assert done[-1]["message_id"] == mid
        assert stack.user_texts(sid) == [QUESTION] and len(stack.cards(sid)) == 1
    finally:
        back.close()
        stack.ensure_running()


def wechat_post(base, body):
    from wechatpy.utils import WeChatSigner

    timestamp, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce)
    return requests.post(f"{base}/webhooks/wechat/webhook", data=body.encode("utf-8"),
                         params={"signature": signer.signature, "timestamp": timestamp, "nonce": nonce},
                         headers={"Content-Type": "text/xml"}, timeout=60)


def test_wechat_message_in_flight_on_the_killed_server_answered_once_on_wechats_retry(stack):
    from tests.test_prod_shared_state import _ids, content_of, new_openid, text_xml, wait_messages

    post = wechat_post
    stack.ensure_running()
    openid = new_openid()
    sender = "wechat:" + openid
    body = text_xml(openid, QUESTION, next(_ids))
    store, ticket = stack.hold(sender)
    t, out = in_background(post, stack.cluster.rasa_url(1), body)
    time.sleep(1.0)
    stack.cluster.kill("rasa-1")
    t.join(30)
    assert "e" in out or out["r"].status_code >= 500, out
    store.finish_serving(sender, ticket)
    replies = [post(stack.public, body)]              # WeChat's retry, same MsgId, via nginx
    replies.append(post(stack.public, body))          # and another
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    passive = {content_of(r) for r in replies} - {None}
    api = wait_messages(stack.fake, openid, 1 if not passive else 0, timeout=30 if not passive else 2)
    assert len(passive) + (1 if api else 0) == 1, (passive, api)   # one answer, whichever way
    assert stack.user_texts(sender) == [QUESTION]
    stack.ensure_running()


@pytest.mark.parametrize("channel", ["rest", "widget", "wechat"])
def test_killed_after_storing_the_turn_the_retry_gets_the_stored_answer(stack, channel):
    """The server stored the turn and died before the client had the answer (and before it
    recorded the reply under the message id): the retry's server finds the turn in the tracker
    and answers from it instead of processing the message a second time."""
    from tests.test_widget_session import Client

    stack.ensure_running()
    mid = uuid.uuid4().hex
    citizen = None
    if channel == "wechat":
        from tests.test_prod_shared_state import _ids, content_of, new_openid, text_xml

        openid = new_openid()
        sender, msg_id = "wechat:" + openid, next(_ids)
        body = text_xml(openid, QUESTION, msg_id)
        first = wechat_post(stack.cluster.rasa_url(1), body)
        assert first.status_code == 200 and content_of(first)
        key = f"{stack.prefix}:state:wechat:{APP_ID}:msg:msg:{msg_id}"
        assert stack.redis.get(key).startswith("passive:")
        stack.redis.set(key, "processing:" + uuid.uuid4().hex, ex=600)  # its owner died before deciding
        retry = wechat_post(stack.cluster.rasa_url(0), body)           # WeChat's retry, the other server
        assert retry.status_code == 200 and content_of(retry) == content_of(first)
        assert stack.user_texts(sender) == [QUESTION] and len(stack.cards(sender)) == 1
        return
    if channel == "rest":
        sender = "fo-stored-" + uuid.uuid4().hex[:6]
        first = rest(stack.cluster.rasa_url(1), sender, QUESTION, mid)
        assert first.status_code == 200
        expected = first.json()
    else:
        citizen = Client(stack.cluster.rasa_url(1))
        sender = citizen.session_id
        got = citizen.ask(QUESTION, message_id=mid)
        expected = [{k: v for k, v in d.items() if k != "metadata"} for e, d in got if e == "bot_uttered"]
    # what Redis holds when the answering server dies after storing: a claim without a live owner
    key = f"{stack.prefix}:state:mid:{channel}:{sender}:{mid}"
    assert stack.redis.get(key).startswith("done:")
    stack.redis.set(key, "processing:" + uuid.uuid4().hex, ex=600)
    if channel == "rest":
        r = rest(stack.cluster.rasa_url(0), sender, QUESTION, mid)
        assert r.status_code == 200 and r.headers.get("X-Zwzx-Replayed") == "1"
        assert r.json() == expected
    else:
        other = Client(stack.cluster.rasa_url(0), session_id=sender, token=citizen.token)
        try:
            got = other.ask(QUESTION, message_id=mid)
        finally:
            other.close()
            citizen.close()
        replayed = [{k: v for k, v in d.items() if k != "metadata"} for e, d in got if e == "bot_uttered"]
        assert replayed == expected
        assert [d for e, d in got if e == "turn_done"][-1].get("replayed") is True
    assert stack.user_texts(sender) == [QUESTION] and len(stack.cards(sender)) == 1


def socket_server_of_loopback(stack):
    """Which Rasa server nginx routes this host's widget sockets to (hash of the client address):
    the upstream of the newest /socket.io/ line in nginx's access log."""
    import re

    log = stack.cluster.run_dir / "logs" / "nginx-access.log"
    deadline = time.time() + 10
    while time.time() < deadline:
        if log.exists():
            ups = re.findall(r'"GET /socket\.io/[^"]*" \d+ .* upstream=127\.0\.0\.1:(\d+)', log.read_text())
            if ups:
                port = int(ups[-1])
                return f"rasa-{stack.cluster.topology.rasa_ports.index(port)}"
        time.sleep(0.5)
    raise AssertionError("no /socket.io/ request in nginx's access log")


def test_widget_in_a_browser_sends_its_message_again_when_its_server_dies(stack):
    """web/widget.js in Chromium, through nginx: the server holding its socket is killed while
    the message is being answered; the citizen sees the connection notice, the widget reconnects
    to the other server and sends the message again (same id); one question, one answer."""
    from playwright import sync_api

    from tests.browser import CHROMIUM, CHROMIUM_ARGS
    from tests.test_widget_browser import Chat

    stack.ensure_running("rasa-0")
    stack.ensure_running("rasa-1")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        chat = Chat(browser, {"url": stack.public})
        try:
            page = chat.load().page
            page.wait_for_function("() => window.zwzxWidget.socket.io.engine.transport.name === 'websocket'",
                                   timeout=10000)
            victim = socket_server_of_loopback(stack)
            sid = chat.session_id
            store, ticket = stack.hold(sid)
            before = chat.bot_count()
            page.fill(".zw-input", QUESTION)
            page.press(".zw-input", "Enter")
            time.sleep(1.0)                                     # being answered (waiting for the lock)
            stack.cluster.kill(victim)
            page.wait_for_selector("#zwzx-widget[data-state=disconnected]", state="attached", timeout=10000)
            notice = page.locator(".zw-status").inner_text()
            store.finish_serving(sid, ticket)
            t0 = time.time()
            answer = chat.wait_turn(before)                      # reconnected + sent again + answered
            print(f"widget: answer {time.time() - t0:.1f} s after the kill; notice shown: {notice!r}")
            assert "连接已断开" in notice
            assert answer.locator(".zw-chip").count() >= 1
            page.wait_for_function("() => !document.querySelector('.zw-typing') || "
                                   "document.querySelector('.zw-typing').hidden")
            time.sleep(1.0)  # the redraw from the history after the resent turn
            users = [t for t in page.locator(".zw-msg--user").all_inner_texts() if QUESTION in t]
            assert len(users) == 1, users                       # the question once, not twice
            assert chat.errors == []
        finally:
            chat.close()
            browser.close()
    assert stack.user_texts(sid) == [QUESTION] and len(stack.cards(sid)) == 1
    stack.ensure_running("rasa-0")
    stack.ensure_running("rasa-1")
