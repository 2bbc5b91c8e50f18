"""Issue 16: bounded work per request — body limits before anything is read, over-long messages
answered without NLU, lean storage, body pace (slow bodies: 408 within ~1 s, honest ones pass).
Real Rasa + action servers (tests/servers.py)
and a real staff console; the NLU is spied on through ZWZX_NLU_SPY_FILE (one line per NLU run,
written by bot.ops.limits.install_nlu_counter in the server process)."""
from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests
import xmltodict

from tests.servers import free_ports, running_bot

PORTS = (6410, 6419)
TOKEN = "edgetoken16"
GH_ID = "gh_edge16"
TOO_LARGE = "请求内容过大"


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edge")
    rasa_port, action_port = free_ports(2, *PORTS)
    credentials = tmp / "credentials.yml"
    credentials.write_text(
        "bot.channels.rest.RestInput:\nbot.channels.staff.StaffInput:\n"
        "bot.channels.widget.WidgetInput:\n  session_persistence: true\n  max_message_length: 500\n"
        f'bot.channels.wechat.WeChatInput:\n  token: "{TOKEN}"\n  app_id: "wxedge16"\n'
        '  app_secret: "x"\n  encoding_aes_key: ""\n  encrypt_mode: plain\n'
        '  api_base: "http://127.0.0.1:9"\n', encoding="utf-8")
    spy = tmp / "nlu_spy.txt"
    env = {"ZWZX_NLU_SPY_FILE": str(spy)}  # every limit at its default (the body pace too)
    env.update({k: None for k in ("WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "WECHAT_ENCRYPT_MODE")})
    with running_bot(rasa_port, action_port, tmp, credentials=credentials, extra_env=env) as servers:
        servers.spy = spy
        servers.port = rasa_port
        yield servers


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    from bot.console.demo import ConsoleProcess

    tmp = tmp_path_factory.mktemp("edge_console")
    proc = ConsoleProcess(f"sqlite:///{tmp / 'tracker.db'}", tmp / "console.log",
                          env={"ZWZX_RASA_URL": "http://127.0.0.1:9"})
    yield proc
    proc.stop()


def nlu_runs(bot, sender: str) -> int:
    if not bot.spy.exists():
        return 0
    return sum(1 for line in bot.spy.read_text(encoding="utf-8").splitlines()
               if line.split("\t")[0] == sender)


def say(bot, sender: str, text: str):
    r = requests.post(f"{bot.rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text},
                      timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def user_events(bot, sender: str):
    r = requests.get(f"{bot.rasa_url}/conversations/{sender}/tracker", timeout=30)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["event"] == "user"]


def stored_rows(bot, sender: str):
    import sqlalchemy as sa

    engine = sa.create_engine(bot.db_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(
                sa.text("SELECT data FROM events WHERE sender_id = :s AND type_name = 'user'"), {"s": sender})]
    finally:
        engine.dispose()


def wechat_params(nonce=None):
    ts = str(int(time.time()))
    nonce = nonce or uuid.uuid4().hex[:10]
    sig = hashlib.sha1("".join(sorted([TOKEN, ts, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": ts, "nonce": nonce}


def wechat_text(openid: str, content: str) -> bytes:
    return (f"<xml><ToUserName><![CDATA[{GH_ID}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{uuid.uuid4().int % 10 ** 18}</MsgId></xml>"
            ).encode("utf-8")


# ------------------------------------------------------------------ 413 on every public route
BIG = 100 * 1024  # above the 64 KB webhook limit


def routes(bot, console):
    r = bot.rasa_url
    return [
        ("REST webhook", "POST", f"{r}/webhooks/rest/webhook", BIG),
        ("REST outbox", "GET", f"{r}/webhooks/rest/outbox/someone", BIG),
        ("WeChat webhook", "POST", f"{r}/webhooks/wechat/webhook", BIG),
        ("staff API", "POST", f"{r}/webhooks/staff/tickets/1/messages", BIG),
        ("widget history", "GET", f"{r}/webhooks/widget/history/abcdefgh12", BIG),
        ("socket.io long-polling", "POST", f"{r}/socket.io/?EIO=4&transport=polling&sid=x", 9 * 2 ** 20),
        ("console login", "POST", f"{console.url}/login", 20 * 1024),
    ]


def test_every_public_route_refuses_an_oversized_body_with_413_chinese_json(bot, console):
    timings = {}
    for name, method, url, size in routes(bot, console):
        body = b"{" + b"a" * size + b"}"
        t0 = time.perf_counter()
        r = requests.request(method, url, data=body, headers={"Content-Type": "application/json"},
                             timeout=30)
        timings[name] = time.perf_counter() - t0
        assert r.status_code == 413, (name, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("application/json"), name
        assert TOO_LARGE in r.json()["error"], (name, r.text)
    print("413 latency (s):", {k: round(v, 4) for k, v in timings.items()})
    # the body is never read: refused at once (the issue asks ≤ 100 ms; generous here for a busy CI)
    assert max(timings.values()) < 1.0, timings


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(bot):
    def chunks():
        for _ in range(200):
            yield b'{"sender": "x", "message": "' + b"a" * 1024

    r = requests.post(f"{bot.rasa_url}/webhooks/rest/webhook", data=chunks(),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413 and TOO_LARGE in r.json()["error"]


def test_the_server_still_answers_after_refusals(bot):
    assert say(bot, "edge-after-" + uuid.uuid4().hex[:6], "政府债务信息会公开吗？")


# ------------------------------------------------------------------ over-long message: no NLU
def test_an_over_long_message_gets_the_polite_reply_without_nlu_and_is_stored_lean(bot):
    control = "edge-ok-" + uuid.uuid4().hex[:6]
    say(bot, control, "政府网站集约化建设有什么要求")
    assert nlu_runs(bot, control) == 1, "the spy sees NLU runs"

    sender = "edge-long-" + uuid.uuid4().hex[:6]
    text = "请问政务公开工作要点里关于财政信息公开的要求" * 100  # 2 200 characters, ~20 KB of JSON
    t0 = time.perf_counter()
    messages = say(bot, sender, text)
    elapsed = time.perf_counter() - t0
    texts = [m.get("text") for m in messages if m.get("text")]
    cards = [m["custom"] for m in messages if m.get("custom")]
    assert any("请精简" in t and "500" in t for t in texts), texts
    assert len(cards) == 1 and cards[0]["kind"] == "fallback" and cards[0]["reason"] == "too_long"
    assert nlu_runs(bot, sender) == 0, "NLU must not run for an over-long message"
    assert elapsed < 1.0, elapsed

    users = user_events(bot, sender)
    assert len(users) == 1
    assert len(users[0]["text"]) <= 200 and text.startswith(users[0]["text"])
    assert users[0]["metadata"]["zwzx_refused"]["original_length"] == len(text)
    rows = stored_rows(bot, sender)
    assert len(rows) == 1 and len(rows[0]) <= 4096, len(rows[0])

    # the conversation goes on normally afterwards
    after = say(bot, sender, "政府债务信息会公开吗？")
    assert any(m.get("custom", {}).get("kind") == "answer" for m in after), after


def test_a_message_at_the_limit_is_answered_and_stored_within_the_event_cap(bot):
    sender = "edge-500-" + uuid.uuid4().hex[:6]
    text = ("政府网站集约化建设有什么要求，财政预决算信息会公开吗？市发改局负责哪些政务公开工作？" * 20)[:500]
    assert say(bot, sender, text)
    # the NLU ran; a second time only when the words were unsure and the question's vector (its
    # first 96 characters) was computed off the event loop in between (bot/nlu/dense_prefetch.py)
    assert 1 <= nlu_runs(bot, sender) <= 2
    rows = stored_rows(bot, sender)
    assert len(rows) == 1 and len(rows[0]) <= 8192, len(rows[0])
    stored = json.loads(rows[0])
    assert stored["text"] == text  # an allowed message keeps its whole text
    assert "tokens_zh" not in stored["parse_data"]  # ... but not the tokenizer's lists


def test_a_short_message_keeps_its_parse_data(bot):
    sender = "edge-short-" + uuid.uuid4().hex[:6]
    say(bot, sender, "政府规章在哪集中公开")
    assert user_events(bot, sender)[-1]["parse_data"]["tokens_zh"]


def test_wechat_over_long_message_gets_a_passive_polite_reply_without_nlu(bot):
    openid = "oedge" + uuid.uuid4().hex[:20]
    t0 = time.perf_counter()
    r = requests.post(f"{bot.rasa_url}/webhooks/wechat/webhook", params=wechat_params(),
                      data=wechat_text(openid, "政务公开" * 200), headers={"Content-Type": "text/xml"},
                      timeout=30)
    elapsed = time.perf_counter() - t0
    assert r.status_code == 200, r.text
    content = xmltodict.parse(r.text)["xml"]["Content"]
    assert "请精简" in content and "800" in content, content
    assert elapsed < 4.0
    assert nlu_runs(bot, "wechat:" + openid) == 0
    users = user_events(bot, "wechat:" + openid)
    assert len(users) == 1 and len(users[0]["text"]) <= 200


# ------------------------------------------------------------------ slow clients
SLOW_TEXT = "请求发送超时"


def paced_request(port: int, head: bytes, pieces, give_up: float = 10.0):
    """Send ``head`` (request line + headers) on a raw socket, then each ``(at, data)`` of
    ``pieces`` at ``at`` seconds after the headers — until the server answers or closes. Returns
    (status, response headers, response body, seconds from the headers to the whole response)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=give_up)
    got = b""
    try:
        s.sendall(head)
        t0 = time.perf_counter()
        pieces = list(pieces)
        while time.perf_counter() - t0 < give_up:
            if pieces and time.perf_counter() - t0 >= pieces[0][0]:
                try:
                    s.sendall(pieces.pop(0)[1])
                except OSError:  # the server closed after answering
                    pieces = []
                continue
            wait = pieces[0][0] - (time.perf_counter() - t0) if pieces else 0.5
            s.settimeout(max(0.001, min(wait, 0.5)))
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            got += data
            if b"\r\n\r\n" in got:
                headers, body = got.split(b"\r\n\r\n", 1)
                length = [int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
        elapsed = time.perf_counter() - t0
    finally:
        s.close()
    assert b"\r\n\r\n" in got, f"no answer: {got[:200]!r}"
    headers, body = got.split(b"\r\n\r\n", 1)
    return int(headers.split()[1]), headers.decode("latin-1").lower(), body, elapsed


def post_head(path: str, length: int, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def wechat_path() -> str:
    from urllib.parse import urlencode

    return "/webhooks/wechat/webhook?" + urlencode(wechat_params())


def one_byte_a_second(body: bytes, seconds: int = 8):
    """A slowloris body: one byte now, then one more every second."""
    return [(float(i), body[i:i + 1]) for i in range(min(seconds, len(body)))]


@pytest.mark.parametrize("route", ["rest", "wechat"])
def test_a_slow_body_is_refused_with_408_chinese_json_within_a_second(bot, route):
    """Headers, then one byte per second (Sanic's idle timeout never fires: every byte resets it):
    refused by the body pace rule — the body lags more than 0.8 s behind 16 KB/s — with 408 and
    the Chinese JSON error, about a second after the headers, and the connection is closed."""
    if route == "rest":
        path, ctype = "/webhooks/rest/webhook", "application/json"
        body = json.dumps({"sender": "edge-slow-" + uuid.uuid4().hex[:6], "message": "政府债务信息会公开吗？"},
                          ensure_ascii=False).encode()
    else:
        path, ctype = wechat_path(), "text/xml"
        body = wechat_text("oslow" + uuid.uuid4().hex[:20], "政府债务信息会公开吗？")
    status, headers, reply, elapsed = paced_request(bot.port, post_head(path, len(body), ctype),
                                                    one_byte_a_second(body))
    assert status == 408, (status, reply[:200])
    assert "application/json" in headers and "connection: close" in headers, headers
    assert SLOW_TEXT in json.loads(reply.decode("utf-8"))["error"]
    assert elapsed < 1.5, elapsed  # refused 0.8 s after the headers; generous for a busy machine


@pytest.mark.parametrize("route", ["rest", "wechat"])
def test_an_honest_body_in_two_pieces_300_ms_apart_is_answered(bot, route):
    """A mobile client whose body arrives in two pieces 300 ms apart is not cut off."""
    question = "政府债务信息会公开吗？"
    if route == "rest":
        path, ctype = "/webhooks/rest/webhook", "application/json"
        body = json.dumps({"sender": "edge-2pc-" + uuid.uuid4().hex[:6], "message": question},
                          ensure_ascii=False).encode()
    else:
        path, ctype = wechat_path(), "text/xml"
        body = wechat_text("o2pc" + uuid.uuid4().hex[:20], question)
    half = len(body) // 2
    status, _, reply, elapsed = paced_request(bot.port, post_head(path, len(body), ctype),
                                              [(0.0, body[:half]), (0.3, body[half:])], give_up=30)
    assert status == 200, (status, reply[:300])
    assert elapsed >= 0.3
    if route == "rest":
        messages = json.loads(reply.decode("utf-8"))
        assert any(m.get("custom", {}).get("kind") == "answer" for m in messages), messages
    else:
        content = xmltodict.parse(reply.decode("utf-8"))["xml"]["Content"]
        assert content and SLOW_TEXT not in content, content


def test_a_body_that_stops_half_way_is_refused_after_the_longest_pause(bot):
    """60 KB of a declared 65 000-byte body at once, then nothing: the bytes that arrived would buy
    it 0.8 + 60 000 / 16 384 ≈ 4.5 s at the minimum rate, but a pause longer than 2 s ends it."""
    body = b'{"sender": "edge-stall", "message": "' + b"a" * 64_900
    status, _, reply, elapsed = paced_request(bot.port, post_head("/webhooks/rest/webhook", 65_000),
                                              [(0.0, body[:60_000])])
    assert status == 408 and SLOW_TEXT in json.loads(reply.decode("utf-8"))["error"], (status, reply[:200])
    assert 1.5 < elapsed < 3.8, elapsed


def test_the_body_pace_rule():
    """bot.ops.limits.body_due: when more of a body must have arrived, and why not."""
    from bot.ops.limits import Limits, body_due

    cfg = Limits()  # the defaults: 0.8 s grace, 16 384 bytes/s, 2 s pause, 300 s in all
    assert (cfg.body_grace, cfg.body_min_rate, cfg.body_max_gap, cfg.body_timeout) == (0.8, 16384, 2.0, 300)
    # nothing yet: 0.8 s after the headers
    assert body_due(100.0, 100.0, 0, cfg) == (100.8, "body_slow")
    # a trickle of 5 bytes keeps ~0.8 s
    assert body_due(100.0, 104.0, 5, cfg)[1] == "body_slow" and body_due(100.0, 104.0, 5, cfg)[0] < 100.81
    # 1 MB after 1.5 s (700 KB/s): 64 s of credit, so the pause rule decides: 2 s after the latest bytes
    assert body_due(100.0, 101.5, 2 ** 20, cfg) == (103.5, "body_stalled")
    # a 20 MB upload at the minimum rate would need ~21 minutes: the 300 s cap ends it
    assert body_due(100.0, 399.0, 19 * 2 ** 20, cfg) == (400.0, "body_timeout")
    # each rule can be switched off with 0
    off = Limits(body_min_rate=0, body_max_gap=0, body_timeout=0)
    assert body_due(100.0, 100.0, 0, off)[0] == float("inf")
    env = Limits.from_env({"ZWZX_BODY_GRACE_SECONDS": "2", "ZWZX_BODY_MIN_RATE": "1000",
                           "ZWZX_BODY_MAX_GAP_SECONDS": "5", "ZWZX_BODY_TIMEOUT": "60"})
    assert body_due(0.0, 0.0, 500, env) == (2.5, "body_slow")


def test_event_loop_lag_is_measured():
    import asyncio

    from bot.ops import looplag, metrics

    async def main():
        task = looplag.start(interval=0.02)
        await asyncio.sleep(0.1)
        time.sleep(0.15)  # hold the loop
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(main())
    assert looplag.max_since_start >= 0.12
    assert metrics.LOOP_LAG_MAX._value.get() >= 0.12
    assert b"zwzx_event_loop_lag_seconds_bucket" in metrics.render()
