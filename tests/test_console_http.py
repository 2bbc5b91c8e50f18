"""The staff console over real HTTP: a `python -m bot.console serve` subprocess on a SQLite
tracker store seeded through Rasa's SQLTrackerStore. Auth (no page or API without login,
session expiry, lock-out), CSRF, roles, audit, masking of exports, escaping."""
import json
import socket
import re
import time
from urllib.parse import urlparse, parse_qs

import pytest
import requests
import sqlalchemy as sa

from bot.console import auth
from bot.console.db import Database, audit, sessions, tags, users
from bot.console.demo import ConsoleProcess, seed

SUPERVISOR = ("王芳", "supervisor-pass-1")
AGENT = ("李明", "agent-pass-12345")


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console_http")
    url = f"sqlite:///{tmp / 'tracker.db'}"
    seed(url)
    db = Database(url)
    auth.create_user(db, SUPERVISOR[0], "supervisor", SUPERVISOR[1])
    auth.create_user(db, AGENT[0], "agent", AGENT[1])
    auth.create_user(db, "赵六", "agent", "zhaoliu-pass-1")
    # a port bound for the whole module and never listened on: connections are refused, and no
    # server started meanwhile (other tests, other people's benchmarks) can take it
    hold = socket.socket()
    hold.bind(("127.0.0.1", 0))
    dead_rasa = f"http://127.0.0.1:{hold.getsockname()[1]}"
    proc = ConsoleProcess(url, tmp / "console.log", env={"ZWZX_CONSOLE_MAX_FAILURES": "3",
                                                         "ZWZX_RASA_URL": dead_rasa})
    proc.db = db
    yield proc
    proc.stop()
    hold.close()
    db.engine.dispose()


def login(console, name, password, expect_ok=True) -> requests.Session:
    s = requests.Session()
    page = s.get(console.url + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(console.url + "/login", data={"csrf_token": token, "name": name, "password": password,
                                             "next": "/conversations"}, allow_redirects=False)
    if expect_ok:
        assert r.status_code == 302, r.text[:500]
        assert r.headers["location"] == "/conversations"
    s.last_response = r
    return s


def csrf_of(s: requests.Session, console) -> str:
    page = s.get(console.url + "/conversations")
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)


def audit_rows(console, action):
    with console.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(audit).where(audit.c.action == action)
                                                         .order_by(audit.c.id))]


PAGES = ["/", "/conversations", "/conversations?kind=handoff", "/conversation?sid=demo-answer-1", "/dashboard",
         "/gaps", "/audit", "/queue", "/kb/item?doc=ningxiang-2021&item=12"]
APIS = ["/api/conversations", "/api/queue", "/api/queue/1/transcript"]
POSTS = ["/export", "/conversation/tag", "/conversation/note", "/conversation/reviewed", "/gaps/export",
         "/api/queue/1/accept", "/api/queue/1/messages", "/api/queue/1/close", "/logout"]


@pytest.mark.parametrize("cookie", [None, "forged-session-value"])
def test_nothing_reachable_without_login(console, cookie):
    s = requests.Session()
    if cookie:
        s.cookies.set("zwzx_console", cookie)
    for path in PAGES:
        r = s.get(console.url + path, allow_redirects=False)
        assert r.status_code == 302, path
        loc = urlparse(r.headers["location"])
        assert loc.path == "/login" and parse_qs(loc.query)["next"] == [path], path
    for path in APIS:
        r = s.get(console.url + path, allow_redirects=False)
        assert r.status_code == 401, path
        assert "登录" in r.json()["error"]
    for path in POSTS:
        r = s.post(console.url + path, data={"sid": "demo-answer-1", "tag": "答错"}, allow_redirects=False)
        assert r.status_code == 401, path
    with console.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 0
    # the login page and static files are public
    assert s.get(console.url + "/login").status_code == 200
    assert s.get(console.url + "/static/console.css").status_code == 200


def test_login_cookie_flags_and_security_headers(console):
    s = login(console, *SUPERVISOR)
    set_cookie = s.last_response.headers["set-cookie"]
    session_part = [p for p in set_cookie.split(", zwzx") if p.startswith("zwzx_console=")][0]
    assert "HttpOnly" in session_part and "SameSite=Strict" in session_part
    assert "Secure" not in session_part  # plain http here; Secure behind https / ZWZX_CONSOLE_SECURE_COOKIE
    r = s.get(console.url + "/conversations")
    assert r.status_code == 200 and "会话记录" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_wrong_password_and_unknown_user_look_the_same(console):
    a = login(console, AGENT[0], "wrong-password", expect_ok=False).last_response
    b = login(console, "没有这个人", "wrong-password", expect_ok=False).last_response
    assert a.status_code == b.status_code == 401
    assert "用户名或密码错误" in a.text and "用户名或密码错误" in b.text
    assert "zwzx_console=" not in a.headers.get("set-cookie", "").replace("zwzx_console_login=", "")
    login(console, *AGENT)  # resets the failure count


def test_lock_out_after_repeated_failures(console):
    name, password = "赵六", "zhaoliu-pass-1"
    for _ in range(2):
        r = login(console, name, "bad-guess", expect_ok=False).last_response
        assert "用户名或密码错误" in r.text
    r = login(console, name, "bad-guess", expect_ok=False).last_response
    assert r.status_code == 401 and "锁定" in r.text
    # the right password is refused while locked
    r = login(console, name, password, expect_ok=False).last_response
    assert r.status_code == 401 and "锁定" in r.text
    assert len([a for a in audit_rows(console, "login_failed") if a["actor"] == name]) >= 4
    # 15 minutes later (moved in the database) the account opens again
    with console.db.engine.begin() as conn:
        conn.execute(users.update().where(users.c.name == name).values(locked_until=time.time() - 1))
    login(console, name, password)


def test_csrf_is_required_on_every_post(console):
    s = login(console, *AGENT)
    token = csrf_of(s, console)
    data = {"sid": "demo-answer-1", "tag": "答错"}
    for bad in ({}, {"csrf_token": "wrong"}):
        r = s.post(console.url + "/conversation/tag", data=dict(data, **bad), allow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text
    r = s.post(console.url + "/api/queue/1/accept", headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403
    r = s.post(console.url + "/logout", allow_redirects=False)
    assert r.status_code == 403
    # a cross-site form post is refused even with a valid token
    r = s.post(console.url + "/conversation/tag", data=dict(data, csrf_token=token),
               headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert r.status_code == 403
    with console.db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tags)).scalar() == 0
    assert audit_rows(console, "csrf_rejected")
    # the login form has its own token too
    r = requests.post(console.url + "/login", data={"name": AGENT[0], "password": AGENT[1]}, allow_redirects=False)
    assert r.status_code == 403
    # with the token it works
    r = s.post(console.url + "/conversation/tag", data=dict(data, csrf_token=token), allow_redirects=False)
    assert r.status_code == 302
    r = s.post(console.url + "/conversation/tag", data=dict(data, csrf_token=token, remove="1"),
               allow_redirects=False)
    assert r.status_code == 302


def test_agents_cannot_reach_supervisor_actions(console):
    s = login(console, *AGENT)
    token = csrf_of(s, console)
    assert "待改进问题" not in s.get(console.url + "/conversations").text
    for path in ("/gaps", "/audit"):
        r = s.get(console.url + path)
        assert r.status_code == 403 and "班长" in r.text
    r = s.post(console.url + "/gaps/export", data={"csrf_token": token, "intent": "ask_x", "turn": "1"})
    assert r.status_code == 403
    r = s.post(console.url + "/export", data={"csrf_token": token, "format": "csv", "unmasked": "1", "q": "身份证"})
    assert r.status_code == 403 and "未脱敏" in r.text
    denied = audit_rows(console, "export_unmasked_denied")
    assert denied and denied[-1]["actor"] == AGENT[0]
    # agents may export, masked
    r = s.post(console.url + "/export", data={"csrf_token": token, "format": "csv", "q": "身份证"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "13812345678" not in r.text and "138****5678" in r.text
    assert "43012419900307001X" not in r.text


def test_supervisor_unmasked_export_is_audited(console):
    s = login(console, *SUPERVISOR)
    token = csrf_of(s, console)
    r = s.post(console.url + "/export", data={"csrf_token": token, "format": "jsonl", "unmasked": "1",
                                              "q": "身份证"})
    assert r.status_code == 200
    records = [json.loads(line) for line in r.text.splitlines()]
    assert len(records) == 1 and records[0]["masked"] is False
    assert "43012419900307001X" in records[0]["messages"][0]["text"]
    entry = audit_rows(console, "export_unmasked")[-1]
    assert entry["actor"] == SUPERVISOR[0]
    assert json.loads(entry["detail"])["filters"] == {"q": "身份证"}
    assert s.get(console.url + "/audit").status_code == 200
    page = s.get(console.url + "/gaps")
    assert page.status_code == 200 and "我家门口的路灯坏了找谁修" in page.text
    turn_ids = re.findall(r'name="turn" value="(\d+)"', page.text)
    assert len(turn_ids) >= 3
    r = s.post(console.url + "/gaps/export", data={"csrf_token": token, "intent": "ask_streetlight",
                                                   "turn": turn_ids})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.text.startswith('version: "3.1"\nnlu:\n- intent: ask_streetlight\n  examples: |\n')
    assert r.text.count("\n    - ") == len(turn_ids)
    assert "13812345678" not in r.text
    assert json.loads(audit_rows(console, "export_nlu")[-1]["detail"]) == {"messages": len(turn_ids)}
    r = s.post(console.url + "/gaps/export", data={"csrf_token": token, "intent": "坏名字", "turn": turn_ids})
    assert r.status_code == 400 and "意图名" in r.text


def test_session_expiry_and_logout(console):
    s = login(console, *AGENT)
    assert s.get(console.url + "/conversations", allow_redirects=False).status_code == 200
    with console.db.engine.begin() as conn:  # 31 minutes without a request
        conn.execute(sessions.update().values(last_seen=time.time() - 31 * 60)
                     .where(sessions.c.user_id == sa.select(users.c.id).where(users.c.name == AGENT[0])
                            .scalar_subquery()))
    r = s.get(console.url + "/conversations", allow_redirects=False)
    assert r.status_code == 302 and r.headers["location"].startswith("/login")
    assert s.get(console.url + "/api/conversations").status_code == 401
    # absolute lifetime: an active but 13-hour-old session ends too
    s = login(console, *AGENT)
    with console.db.engine.begin() as conn:
        conn.execute(sessions.update().values(created_at=time.time() - 13 * 3600))
    assert s.get(console.url + "/conversations", allow_redirects=False).status_code == 302
    # logout ends the session on the server, not only the cookie
    s = login(console, *AGENT)
    cookie = s.cookies.get("zwzx_console")
    token = csrf_of(s, console)
    r = s.post(console.url + "/logout", data={"csrf_token": token}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/login"
    replay = requests.get(console.url + "/conversations", cookies={"zwzx_console": cookie}, allow_redirects=False)
    assert replay.status_code == 302


def test_disabled_account_cannot_log_in(console):
    auth.create_user(console.db, "临时工", "agent", "temporary-pass-1")
    s = login(console, "临时工", "temporary-pass-1")
    auth.set_active(console.db, "临时工", False)
    assert s.get(console.url + "/conversations", allow_redirects=False).status_code == 302
    r = login(console, "临时工", "temporary-pass-1", expect_ok=False).last_response
    assert r.status_code == 401 and "停用" in r.text


def test_citizen_markup_is_shown_as_text(console):
    s = login(console, *AGENT)
    for path in ("/conversation?sid=demo-xss-1", "/conversations"):
        html = s.get(console.url + path).text
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(" in html


def test_tag_note_review_over_http(console):
    s = login(console, *AGENT)
    token = csrf_of(s, console)
    sid = "demo-fallback-2"
    r = s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": sid, "tag": "知识库缺失"})
    assert r.status_code == 200 and "知识库缺失" in r.text
    s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": sid, "tag": "答错",
                                                    "custom_tag": "路灯报修"})
    s.post(console.url + "/conversation/note", data={"csrf_token": token, "sid": sid,
                                                     "body": "<b>需补充</b>路灯报修渠道"})
    r = s.post(console.url + "/conversation/reviewed", data={"csrf_token": token, "sid": sid, "value": "1"})
    assert "已复核（李明" in r.text
    assert "&lt;b&gt;需补充&lt;/b&gt;" in r.text
    listing = s.get(console.url + "/api/conversations", params={"tag": "路灯报修"}).json()
    assert [c["sender_id"] for c in listing["conversations"]] == [sid]
    assert listing["conversations"][0]["reviewed"] is True
    assert s.get(console.url + "/api/conversations", params={"tag": "知识库缺失", "reviewed": "no"}).json()["total"] == 0
    # a message-level tag: on the message, and only on messages of this conversation
    from bot.console.conversations import ConversationIndex
    event_id = ConversationIndex(console.db).get(sid).turns[0].event_id
    r = s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": sid, "tag": "答错",
                                                        "event_id": str(event_id)})
    assert r.status_code == 200 and r.url.endswith(f"#m{event_id}")
    msg_html = r.text.split(f'id="m{event_id}"')[1].split('class="msg ')[0]
    assert "答错" in msg_html
    other_event = ConversationIndex(console.db).get("demo-answer-1").turns[0].event_id
    r = s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": sid, "tag": "答错",
                                                        "event_id": str(other_event)})
    assert r.status_code == 400
    r = s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": sid, "custom_tag": "a b<"})
    assert r.status_code == 400 and "标签" in r.text
    r = s.post(console.url + "/conversation/tag", data={"csrf_token": token, "sid": "no-such", "tag": "答错"})
    assert r.status_code == 404
    actions = {(a["action"], a["target"]) for a in audit_rows(console, "tag") + audit_rows(console, "note")
               + audit_rows(console, "reviewed") + audit_rows(console, "view_conversation")}
    assert {("tag", sid), ("note", sid), ("reviewed", sid), ("view_conversation", sid)} <= actions


def test_bad_input_gets_a_chinese_4xx(console):
    s = login(console, *AGENT)
    r = s.get(console.url + "/conversations", params={"date_from": "昨天"})
    assert r.status_code == 400 and "YYYY-MM-DD" in r.text
    r = s.get(console.url + "/api/conversations", params={"kind": "weird"})
    assert r.status_code == 400 and "未知的回答类型" in r.json()["error"]
    assert s.get(console.url + "/conversation", params={"sid": "nobody"}).status_code == 404
    assert s.get(console.url + "/kb/item", params={"doc": "x", "item": "1"}).status_code == 404
    assert s.get(console.url + "/no/such/page").status_code == 404
    token = csrf_of(s, console)
    r = s.post(console.url + "/api/queue/abc/accept", headers={"X-CSRF-Token": token})
    assert r.status_code == 404
    r = s.post(console.url + "/api/queue/1/messages", headers={"X-CSRF-Token": token}, data="not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def test_queue_reports_an_unreachable_bot_server(console):
    s = login(console, *AGENT)
    r = s.get(console.url + "/api/queue")
    assert r.status_code == 502 and "无法连接机器人服务" in r.json()["error"]
    assert s.get(console.url + "/queue").status_code == 200


def test_filters_and_dashboard_pages(console):
    s = login(console, *AGENT)
    r = s.get(console.url + "/api/conversations", params={"kind": "handoff"})
    assert {c["sender_id"] for c in r.json()["conversations"]} == {"demo-handoff-1", "demo-pii-1"}
    r = s.get(console.url + "/conversations", params={"kind": "fallback", "q": "路灯"})
    assert r.text.count('class="conv-link"') == 3
    r = s.get(console.url + "/dashboard")
    assert r.status_code == 200 and r.text.count("<svg") >= 6 and "回答类型占比" in r.text
    r = s.get(console.url + "/kb/item", params={"doc": "ningxiang-2021", "item": "12"})
    assert r.status_code == 200 and "全面推行政府网站集约化建设" in r.text


def test_secure_cookie_behind_an_https_proxy(console, tmp_path):
    """With ZWZX_CONSOLE_PROXIES=1 the console trusts X-Forwarded-Proto/-For from its proxy:
    cookies get the Secure flag on https and the audit log has the client's address."""
    proxied = ConsoleProcess(console.db.url, tmp_path / "proxied.log", env={"ZWZX_CONSOLE_PROXIES": "1"})
    try:
        headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        page = requests.get(proxied.url + "/login", headers=headers)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = requests.post(proxied.url + "/login", headers=headers, cookies={"zwzx_console_login": token},
                          data={"csrf_token": token, "name": AGENT[0], "password": AGENT[1]},
                          allow_redirects=False)
        assert r.status_code == 302
        session_part = [p for p in r.headers["set-cookie"].split(", zwzx") if p.startswith("zwzx_console=")][0]
        assert "Secure" in session_part and "HttpOnly" in session_part
        assert audit_rows(console, "login")[-1]["ip"] == "203.0.113.9"
    finally:
        proxied.stop()
