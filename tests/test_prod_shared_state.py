"""WeChat retries and replays against TWO Rasa servers behind nginx (production profile, started
by bot.ops.cluster as `make run-prod` does), the servers sharing their WeChat state through Redis
(bot/ops/shared_state.py). Requests alternate between the two servers (their own ports) and also
go through nginx's round robin.

To have a retry arrive while the first request is certainly still being answered, the test holds
the conversation's lock in Redis (Rasa's lock store, the same key the servers use): the first
request waits for it inside Rasa, the retries arrive at the other server, then the lock is
released. Checked: one bot answer (a passive reply, the same for every retry — or, when the
answer is late, one customer-service message), one user event in PostgreSQL, one handoff ticket,
a replayed nonce with another message refused by the server that did not see it, one access
token fetched for both servers.

Last, the web widget across servers (socket.io with python-socketio's Redis manager): a staff
message sent through the other server reaches the widget, and a widget whose server is killed
reconnects to the other one with its signed token and still gets its history.

Skipped when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable or nginx is
not installed. Ports 6100-6149 (nginx, action LB, 2 Rasa, 2 action servers, fake WeChat API);
its own database zwzx_test_ss_<random> (dropped afterwards) and Redis key prefix.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from wechatpy.utils import WeChatSigner

from tests.fake_wechat_api import FakeWeChatAPI
from tests.servers import ALWAYS_OPEN, ROOT, free_ports
from tests.test_prod_profile import MODEL, PG_PASSWORD, PG_USER, REDIS_HOST, REDIS_PORT, pg_url, services_or_skip

pytestmark = pytest.mark.timeout(900)

TOKEN = "zwzx-ss-token"
APP_ID = "wxss0123456789ab"
APP_SECRET = "zwzx-ss-secret"
GH_ID = "gh_zwzx_ss"
PASSIVE_SECONDS = 3.0
HANDOFF_TEXT = "我要转人工"


class Stack:
    def __init__(self, cluster, fake, dbname, prefix):
        import sqlalchemy as sa

        self.cluster, self.fake, self.dbname, self.prefix = cluster, fake, dbname, prefix
        self.sa = sa
        self.engine = sa.create_engine(pg_url(dbname))

    def server(self, i):
        return self.cluster.rasa_url(i % 2)

    def user_texts(self, sender):
        with self.engine.connect() as conn:
            rows = conn.execute(self.sa.text(
                "SELECT data FROM events WHERE sender_id = :s AND type_name = 'user' ORDER BY id"),
                {"s": sender}).fetchall()
        import json

        return [json.loads(r[0]).get("text") for r in rows]

    def tickets(self, sender):
        with self.engine.connect() as conn:
            return conn.execute(self.sa.text("SELECT id FROM handoff_tickets WHERE sender_id = :s"),
                                {"s": sender}).fetchall()

    def lock_store(self):
        from bot.ops.lock_store import AtomicRedisLockStore

        return AtomicRedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=0, key_prefix=self.prefix)  # ZWZX_REDIS_DB


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    services_or_skip()
    import redis
    import sqlalchemy as sa

    from bot.ops.cluster import Cluster

    ports = free_ports(7, 6100, 6149)
    suffix = uuid.uuid4().hex[:8]
    dbname, prefix = f"zwzx_test_ss_{suffix}", f"zwzxss{suffix}"
    tmp = tmp_path_factory.mktemp("prod_ss")
    fake = FakeWeChatAPI(APP_ID, APP_SECRET, port=ports[6]).start()
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n"
        "bot.channels.widget.WidgetInput:\n  session_persistence: true\nbot.channels.wechat.WeChatInput:\n"
        f'  token: "{TOKEN}"\n  app_id: "{APP_ID}"\n  app_secret: "{APP_SECRET}"\n'
        f'  api_base: "{fake.base_url}"\n  passive_reply_seconds: {PASSIVE_SECONDS}\n', encoding="utf-8")
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
               ZWZX_RUN_DIR=str(tmp / "run"),
               ZWZX_MODEL=str(MODEL), ZWZX_CREDENTIALS=str(credentials), ZWZX_HANDOFF_CONFIG=str(handoff),
               ZWZX_WIDGET_SECRET="zwzx-test-widget-secret-" + uuid.uuid4().hex)
    cluster = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", flush=True))
    s = None
    try:
        # Rasa/action ports must be consecutive for the cluster (base + i)
        assert ports[3] == ports[2] + 1 and ports[5] == ports[4] + 1, f"ports not consecutive: {ports}"
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
        client = redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


# ----------------------------------------------------------------------------- a WeChat-like client
_ids = iter(range(int(time.time() * 1000) * 10, 10 ** 20))


def new_openid():
    return "o" + uuid.uuid4().hex[:27]


def text_xml(openid, content, msg_id):
    return (f"<xml><ToUserName><![CDATA[{GH_ID}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def post(base, body, nonce=None, timestamp=None):
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:10]
    signer = WeChatSigner()
    signer.add_data(TOKEN, timestamp, nonce)
    params = {"signature": signer.signature, "timestamp": timestamp, "nonce": nonce}
    return requests.post(f"{base}/webhooks/wechat/webhook", params=params, data=body.encode("utf-8"),
                         headers={"Content-Type": "text/xml"}, timeout=60)


def content_of(r):
    import xmltodict

    if r.text == "success":
        return None
    return xmltodict.parse(r.text)["xml"]["Content"]


def in_background(fn, *args):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn(*args)))
    t.start()
    return t, out


class HeldConversation:
    """Holds the Rasa conversation lock of `sender` (as a server processing a message would)."""

    def __init__(self, stack, sender):
        self.store, self.sender = stack.lock_store(), sender

    def __enter__(self):
        self.ticket = self.store.issue_ticket(self.sender, 60)
        return self

    def release(self):
        if self.ticket is not None:
            self.store.finish_serving(self.sender, self.ticket)
            self.ticket = None

    def __exit__(self, *exc):
        self.release()


def wait_messages(fake, openid, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(fake.messages_to(openid)) >= count:
            break
        time.sleep(0.2)
    time.sleep(1.0)  # and nothing more arrives
    return fake.messages_to(openid)


# ----------------------------------------------------------------------------- tests
def test_retries_on_the_other_server_while_being_answered_one_answer_one_event_one_ticket(stack):
    openid = new_openid()
    sender = "wechat:" + openid
    body = text_xml(openid, HANDOFF_TEXT, next(_ids))
    with HeldConversation(stack, sender) as held:
        assert stack.lock_store().get_lock(sender).is_locked(held.ticket + 1)
        t0, first = in_background(post, stack.server(0), body)       # server A: waits for the lock
        time.sleep(0.7)
        t1, retry1 = in_background(post, stack.server(1), body)      # WeChat's retry → server B
        time.sleep(0.3)
        held.release()                                                # A goes on
        t2, retry2 = in_background(post, stack.server(0), body)      # another retry → A again
        for t in (t0, t1, t2):
            t.join(60)
    replies = [first["r"], retry1["r"], retry2["r"]]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    # later retries after the outcome, alternating, and one through nginx
    replies += [post(stack.server(1), body), post(stack.server(0), body), post(stack.cluster.public_url, body)]
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    passive = {content_of(r) for r in replies} - {None}
    api = wait_messages(stack.fake, openid, 1 if not passive else 0, timeout=30 if not passive else 2)
    answers = len(passive) + (1 if api else 0)
    assert answers == 1, (passive, api)             # one answer, in whichever way it went out
    assert len(api) <= 1
    text = next(iter(passive)) if passive else api[0]
    assert "人工" in text
    assert stack.user_texts(sender) == [HANDOFF_TEXT]
    assert len(stack.tickets(sender)) == 1
    if passive:  # every request got the same passive reply, or "success" if it came too late
        assert all(content_of(r) in (None, text) for r in replies)


def test_late_answer_goes_once_through_the_api_retries_on_both_servers_get_success(stack):
    openid = new_openid()
    sender = "wechat:" + openid
    body = text_xml(openid, "财政预决算信息会公开吗？", next(_ids))
    with HeldConversation(stack, sender) as held:
        threads = [in_background(post, stack.server(0), body)]
        for i, delay in enumerate((1.0, 1.5, 1.5)):                  # B, A, B: all before the answer
            time.sleep(delay)
            threads.append(in_background(post, stack.server(i + 1), body))
        time.sleep(PASSIVE_SECONDS - 1.0)
        held.release()
        for t, _ in threads:
            t.join(60)
    replies = [out["r"] for _, out in threads]
    assert [(r.status_code, r.text) for r in replies] == [(200, "success")] * 4
    messages = wait_messages(stack.fake, openid, 1)
    assert len(messages) == 1 and "依据" in messages[0], messages
    assert stack.user_texts(sender) == ["财政预决算信息会公开吗？"]


def test_replayed_nonce_refused_by_the_server_that_did_not_see_it(stack):
    openid = new_openid()
    sender = "wechat:" + openid
    nonce, ts = uuid.uuid4().hex[:10], str(int(time.time()))
    original = text_xml(openid, "政府网站集约化建设有什么要求", next(_ids))
    r = post(stack.server(0), original, nonce=nonce, timestamp=ts)
    assert r.status_code == 200
    forged = text_xml(openid, HANDOFF_TEXT, next(_ids))               # captured query string, new body
    r2 = post(stack.server(1), forged, nonce=nonce, timestamp=ts)
    assert r2.status_code == 403 and "nonce" in r2.json()["error"]
    r3 = post(stack.server(1), original, nonce=nonce, timestamp=ts)   # exact replay: deduplicated
    assert r3.status_code == 200 and content_of(r3) == content_of(r)
    assert stack.user_texts(sender) == ["政府网站集约化建设有什么要求"]
    assert stack.tickets(sender) == []


def test_concurrent_copies_through_nginx_processed_once(stack):
    openid = new_openid()
    sender = "wechat:" + openid
    body = text_xml(openid, "政府信息公开申请怎么办理", next(_ids))
    threads = [in_background(post, stack.cluster.public_url, body) for _ in range(4)]
    for t, _ in threads:
        t.join(60)
    replies = [out["r"] for _, out in threads]
    assert all(r.status_code == 200 for r in replies)
    passive = {content_of(r) for r in replies} - {None}
    assert len(passive) <= 1
    if not passive:
        assert len(wait_messages(stack.fake, openid, 1)) == 1
    assert stack.user_texts(sender) == ["政府信息公开申请怎么办理"]


def test_one_access_token_for_both_servers(stack):
    """Staff messages sent through each server use the token the cluster fetched once."""
    from bot.handoff.store import get_store
    from bot.ops.settings import db_url

    openid = new_openid()
    sender = "wechat:" + openid
    r = post(stack.server(0), text_xml(openid, HANDOFF_TEXT, next(_ids)))
    assert r.status_code == 200
    for _ in range(50):
        if stack.tickets(sender):
            break
        time.sleep(0.2)
    ticket_id = stack.tickets(sender)[0][0]
    store = get_store(db_url({"ZWZX_PG_DB": stack.dbname, "ZWZX_PG_USER": PG_USER, "ZWZX_PG_PASSWORD": PG_PASSWORD,
                              "ZWZX_PG_SSLMODE": "disable"}))
    token = store.add_staff(f"坐席{uuid.uuid4().hex[:12]}", "agent")
    auth = {"Authorization": f"Bearer {token}"}
    before = stack.fake.token_requests
    assert requests.post(f"{stack.server(0)}/webhooks/staff/tickets/{ticket_id}/accept", headers=auth,
                         timeout=30).status_code == 200
    for i in range(4):
        r = requests.post(f"{stack.server(i)}/webhooks/staff/tickets/{ticket_id}/messages", headers=auth,
                          json={"text": f"您好，第{i + 1}条"}, timeout=30)
        assert r.status_code == 200 and r.json().get("delivered") is True, r.text
    got = [m for m in wait_messages(stack.fake, openid, 4) if "您好，第" in m]
    assert len(got) == 4
    # every server found the token in Redis: at most one fetch in all (none if fetched earlier)
    assert stack.fake.token_requests - before <= 1 and stack.fake.token_requests <= 1


def test_widget_staff_message_through_the_other_server_and_reconnect_after_its_server_is_killed(stack):
    from bot.handoff.store import get_store
    from bot.ops.settings import db_url
    from tests.test_widget_session import Client, history

    citizen = Client(stack.server(0))                       # socket on server A
    sid, token = citizen.session_id, citizen.token
    got = citizen.ask("我要转人工")
    assert any(e == "bot_uttered" and "人工" in (d.get("text") or "") for e, d in got), got
    store = get_store(db_url({"ZWZX_PG_DB": stack.dbname, "ZWZX_PG_USER": PG_USER, "ZWZX_PG_PASSWORD": PG_PASSWORD,
                              "ZWZX_PG_SSLMODE": "disable"}))
    ticket = store.open_ticket_for(sid)
    auth = {"Authorization": f"Bearer {store.add_staff(f'坐席{uuid.uuid4().hex[:12]}', 'agent')}"}
    assert requests.post(f"{stack.server(1)}/webhooks/staff/tickets/{ticket['id']}/accept", headers=auth,
                         timeout=30).status_code == 200
    r = requests.post(f"{stack.server(1)}/webhooks/staff/tickets/{ticket['id']}/messages", headers=auth,
                      json={"text": "您好，我在另一台服务器上"}, timeout=30)   # staff API on server B
    assert r.status_code == 200 and r.json()["delivered"] is True, r.text
    deadline = time.time() + 15
    while time.time() < deadline and not citizen.staff_texts():
        time.sleep(0.05)
    assert citizen.staff_texts() == ["您好，我在另一台服务器上"]
    # server A is killed: the widget reconnects (through nginx → server B) with its token
    stack.cluster.kill("rasa-0")
    try:
        back = Client(stack.cluster.public_url, session_id=sid, token=token)
        assert back.session_id == sid
        r = history(stack.cluster.public_url, sid, token)
        assert r.status_code == 200
        turns = r.json()["turns"]
        assert [t["text"] for t in turns if t["role"] == "user"] == ["我要转人工"]
        assert any(t.get("role") == "staff" and "另一台" in t.get("text", "") for t in turns), turns
        assert history(stack.cluster.public_url, sid).status_code == 403
        r = requests.post(f"{stack.server(1)}/webhooks/staff/tickets/{ticket['id']}/messages", headers=auth,
                          json={"text": "还在吗？"}, timeout=30)
        assert r.status_code == 200
        deadline = time.time() + 15
        while time.time() < deadline and not back.staff_texts():
            time.sleep(0.05)
        assert back.staff_texts() == ["还在吗？"]
        back.close()
    finally:
        citizen.close()
        stack.cluster.start("rasa-0")
        stack.cluster.wait_ready(["rasa-0"], timeout=300)
