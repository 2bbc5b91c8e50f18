"""Issue 16: rate limits — token buckets on the shared-state interface (memory and Redis), the
client address (proxy headers only from trusted proxies), and on a real server: 429 +
Retry-After after the burst and recovery (REST), a polite passive reply (WeChat), widget_error
(widget), per address via X-Forwarded-For from a trusted proxy only."""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import time
import uuid

import pytest
import requests
import xmltodict

from bot.ops.limits import _networks, client_address
from bot.ops.ratelimit import Buckets, Rate
from bot.ops.shared_state import MemoryState, RedisState
from tests.servers import free_ports, running_bot

PORTS = (6420, 6429)
TOKEN = "ratetoken16"
PROXY = "127.0.0.2"  # the trusted proxy: requests sent from this loopback source address


# ------------------------------------------------------------------ buckets
class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def _redis_or_skip():
    st = RedisState(prefix=f"test16{uuid.uuid4().hex[:6]}")

    async def ping():
        await st.ping()
        await st.close()
    try:
        asyncio.run(ping())
    except Exception as e:
        pytest.skip(f"Redis not reachable: {e}")
    return st


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_token_bucket_burst_refusal_and_recovery(kind):
    state = MemoryState() if kind == "memory" else _redis_or_skip()
    clock = Clock()
    rate = Rate(1.0, 3)

    async def main():
        a, b = Buckets(state, clock), Buckets(state, clock)  # two servers, one store
        got = [(await (a if i % 2 else b).take("k", rate)).allowed for i in range(4)]
        refused = await a.take("k", rate)
        clock.now += 1.0
        again = await b.take("k", rate)
        other = await a.take("other", rate)
        if kind == "redis":
            await state.close()
        return got, refused, again, other

    got, refused, again, other = asyncio.run(main())
    assert got == [True, True, True, False]
    assert not refused.allowed and 0.9 < refused.retry_after <= 1.0 and refused.retry_after_header == "1"
    assert again.allowed  # one token back after a second
    assert other.allowed  # buckets are per key


def test_the_limiter_fails_open_when_the_store_is_down():
    class Broken(MemoryState):
        async def get(self, key):
            raise ConnectionError("down")

    verdict = asyncio.run(Buckets(Broken()).take("k", Rate(1, 1)))
    assert verdict.allowed


# ------------------------------------------------------------------ client address
TRUSTED = _networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize("peer, headers, expected", [
    ("127.0.0.1", {"x-forwarded-for": "203.0.113.5"}, "203.0.113.5"),
    ("127.0.0.1", {"x-forwarded-for": "198.51.100.9, 203.0.113.5"}, "203.0.113.5"),  # client-forged left part
    ("127.0.0.1", {"x-forwarded-for": "203.0.113.5, 10.1.2.3"}, "203.0.113.5"),      # two trusted hops
    ("127.0.0.1", {"x-real-ip": "203.0.113.7"}, "203.0.113.7"),
    ("127.0.0.1", {}, "127.0.0.1"),
    ("198.51.100.1", {"x-forwarded-for": "203.0.113.5", "x-real-ip": "203.0.113.6"}, "198.51.100.1"),
    ("127.0.0.1", {"x-forwarded-for": "garbage, 203.0.113.5"}, "203.0.113.5"),
    ("127.0.0.1", {"x-forwarded-for": "203.0.113.5, garbage"}, "127.0.0.1"),
])
def test_proxy_headers_count_only_from_trusted_proxies(peer, headers, expected):
    assert client_address(peer, headers, TRUSTED) == expected


# ------------------------------------------------------------------ a real server
@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rate")
    rasa_port, action_port = free_ports(2, *PORTS)
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.rest.RestInput:\n"
        "bot.channels.widget.WidgetInput:\n  session_persistence: true\n  max_message_length: 500\n"
        f'bot.channels.wechat.WeChatInput:\n  token: "{TOKEN}"\n  app_id: "wxrate16"\n'
        '  app_secret: "x"\n  encoding_aes_key: ""\n  encrypt_mode: plain\n'
        '  api_base: "http://127.0.0.1:9"\n', encoding="utf-8")
    env = {"ZWZX_RATE_EXEMPT_LOOPBACK": "0", "ZWZX_TRUSTED_PROXIES": PROXY,
           "ZWZX_RATE_SENDER_BURST": "3", "ZWZX_RATE_SENDER_PER_SECOND": "1",
           "ZWZX_RATE_ADDRESS_BURST": "5", "ZWZX_RATE_ADDRESS_PER_SECOND": "0.2",
           "ZWZX_SHARED_STATE": "memory"}
    env.update({k: None for k in ("WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "WECHAT_ENCRYPT_MODE")})
    with running_bot(rasa_port, action_port, tmp, credentials=credentials, extra_env=env) as servers:
        servers.port = rasa_port
        yield servers


def post_rest(bot, sender, text="你好", source=None, headers=None):
    """POST to the REST webhook from a given loopback source address (127.0.0.x)."""
    conn = http.client.HTTPConnection("127.0.0.1", bot.port, timeout=60,
                                      source_address=(source, 0) if source else None)
    try:
        body = json.dumps({"sender": sender, "message": text})
        conn.request("POST", "/webhooks/rest/webhook", body=body,
                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
        r = conn.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), json.loads(data or b"null")
    finally:
        conn.close()


def test_rest_sender_limit_429_after_the_burst_and_recovery(bot):
    sender = "rl-" + uuid.uuid4().hex[:6]
    # each request from its own forwarded address, so only the per-sender bucket counts
    fwd = lambda i: {"X-Forwarded-For": f"192.0.2.{i}"}  # noqa: E731
    got = [post_rest(bot, sender, source=PROXY, headers=fwd(i))[0] for i in range(4)]
    assert got == [200, 200, 200, 429]
    status, headers, body = post_rest(bot, sender, source=PROXY, headers=fwd(9))
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert "过于频繁" in body["error"]
    time.sleep(1.2)
    assert post_rest(bot, sender, source=PROXY, headers=fwd(10))[0] == 200  # a token came back


def test_forwarded_address_is_honoured_only_from_the_trusted_proxy(bot):
    # from the trusted proxy: X-Forwarded-For is the client; a new sender per request
    statuses = [post_rest(bot, uuid.uuid4().hex, source=PROXY,
                          headers={"X-Forwarded-For": "198.51.100.20"})[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    # another forwarded client is not affected
    assert post_rest(bot, uuid.uuid4().hex, source=PROXY, headers={"X-Forwarded-For": "198.51.100.21"})[0] == 200
    # from 127.0.0.3 (not a trusted proxy) the header is ignored: all share 127.0.0.3's bucket
    statuses = [post_rest(bot, uuid.uuid4().hex, source="127.0.0.3",
                          headers={"X-Forwarded-For": f"198.51.100.{30 + i}"})[0] for i in range(6)]
    assert statuses == [200] * 5 + [429]


def wechat_post(bot, openid, content):
    ts, nonce = str(int(time.time())), uuid.uuid4().hex[:10]
    sig = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
    xml = (f"<xml><ToUserName><![CDATA[gh_rate]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
           f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{content}]]></Content><MsgId>{uuid.uuid4().int % 10 ** 18}</MsgId></xml>")
    t0 = time.perf_counter()
    r = requests.post(f"{bot.rasa_url}/webhooks/wechat/webhook",
                      params={"signature": sig, "timestamp": ts, "nonce": nonce},
                      data=xml.encode("utf-8"), headers={"Content-Type": "text/xml"}, timeout=30)
    return r, time.perf_counter() - t0


def test_wechat_limited_user_gets_a_short_passive_reply_in_time(bot):
    openid = "orate" + uuid.uuid4().hex[:20]
    replies = []
    for _ in range(4):
        r, elapsed = wechat_post(bot, openid, "你好")
        assert r.status_code == 200 and elapsed < 4.5, (r.status_code, elapsed)
        replies.append(xmltodict.parse(r.text)["xml"]["Content"] if r.text != "success" else None)
    assert not any(r and "过于频繁" in r for r in replies[:3]), replies
    assert replies[3] and "过于频繁" in replies[3], replies


def test_widget_messages_are_limited_per_session(bot):
    from tests.test_widget_protocol import Client

    c = Client(bot.rasa_url, "websocket")
    try:
        start = len(c.events)
        for _ in range(5):  # faster than the bucket refills (burst 3, 1 per second)
            c.sio.emit("user_uttered", {"message": "你好", "session_id": c.session_id})
        deadline = time.time() + 60
        while time.time() < deadline:
            with c.lock:
                done = [e for e, _ in c.events[start:] if e == "turn_done"]
            if len(done) >= 5:
                break
            time.sleep(0.1)
        with c.lock:
            got = c.events[start:]
        errors = [d.get("text") for e, d in got if e == "widget_error"]
        assert len([e for e, _ in got if e == "turn_done"]) == 5, got
        assert errors and all("过于频繁" in t for t in errors), got
        assert len(errors) == 2, errors
        assert c.sio.connected
    finally:
        c.close()


def test_in_flight_cap_per_conversation(monkeypatch):
    from bot.ops import limits

    monkeypatch.setattr(limits, "_limits", limits.Limits(max_in_flight_per_sender=2))
    assert limits.enter_conversation("rest", "c1", "203.0.113.1")
    assert limits.enter_conversation("rest", "c1", "203.0.113.1")
    assert not limits.enter_conversation("rest", "c1", "203.0.113.1")  # a third one is refused
    assert limits.enter_conversation("rest", "c2", "203.0.113.1")       # other conversations are not
    assert limits.enter_conversation("rest", "c1", "127.0.0.1")         # loopback exempt by default
    for _ in range(3):
        limits.leave_conversation("rest", "c1")
    limits.leave_conversation("rest", "c2")
    assert limits._in_flight == {}
    assert limits.enter_conversation("rest", "c1", "203.0.113.1")
    limits.leave_conversation("rest", "c1")
