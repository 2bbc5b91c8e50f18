"""The staff console with two worker processes behind nginx (production profile, started by
bot.ops.cluster as `make run-prod` does: console-0 and console-1 on their own ports, nginx's
console side round-robin in front), both on one PostgreSQL database.

Nothing of a login may live in one process: the test logs in on one worker and uses the session
cookie and the CSRF token on the other (and through nginx, which alternates); logging out on one
ends the session on both; failed passwords on both count towards one lock-out. The conversation
index (bot/console/conversations.py) is shared through the database: a conversation indexed by one
worker is shown by the other without it reading the events again, and a conversation stored
later (through Rasa's own SQLTrackerStore, as a Rasa server would) is visible on both workers
without a restart.

Skipped when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable or nginx is
not installed. Ports: a block of 10 in 6200-6229; its own database zwzx_test_cw_<random> (dropped
afterwards). No Rasa server is started (the console only reads the `events` table).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import time
import uuid

import pytest
import requests

from tests.test_prod_profile import MODEL, PG_PASSWORD, PG_USER, REDIS_HOST, REDIS_PORT, pg_url, port_free, \
    services_or_skip

pytestmark = pytest.mark.timeout(300)

SUPERVISOR = ("周敏", "supervisor-pass-cw1")
AGENT = ("吴强", "agent-pass-cw12345")


def port_block(lo=6200, hi=6229, n=10):
    for base in range(lo, hi - n + 2):
        if all(port_free(p) for p in range(base, base + n)):
            return list(range(base, base + n))
    pytest.skip(f"no block of {n} free ports in {lo}-{hi}")


class Stack:
    def __init__(self, cluster, dbname):
        import sqlalchemy as sa

        from bot.console.db import Database

        self.cluster, self.dbname, self.sa = cluster, dbname, sa
        self.url = pg_url(dbname)
        self.db = Database(self.url)
        self.workers = [cluster.console_url(0), cluster.console_url(1)]
        self.nginx = cluster.console_public_url

    def write_conversation(self, sender, question, kind="answer"):
        """Events exactly as a Rasa server stores them (Rasa's SQLTrackerStore)."""
        from bot.console.demo import card, tracker_store, turn, write

        ts = tracker_store(self.url)
        try:
            asyncio.run(write(ts, {sender: turn(question, "ask_policy", 0.9, "这是回答。", card(kind),
                                                time.time())}))
        finally:
            ts.engine.dispose()

    def index_state(self):
        with self.db.engine.connect() as conn:
            return conn.execute(self.sa.text("SELECT rev, high_water FROM console_index_state WHERE id = 1")).one()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    services_or_skip()
    import sqlalchemy as sa

    from bot.console import auth
    from bot.ops.cluster import Cluster

    ports = port_block()
    dbname = f"zwzx_test_cw_{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("prod_cw")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZWZX_", "WECHAT_"))}
    env.update(ZWZX_PG_HOST="127.0.0.1", ZWZX_PG_PORT=os.environ.get("ZWZX_TEST_PG_PORT", "5432"),
               ZWZX_PG_DB=dbname, ZWZX_PG_USER=PG_USER, ZWZX_PG_PASSWORD=PG_PASSWORD, ZWZX_PG_SSLMODE="disable",
               ZWZX_REDIS_HOST=REDIS_HOST, ZWZX_REDIS_PORT=str(REDIS_PORT),
               ZWZX_REDIS_PREFIX=f"zwzxcw{uuid.uuid4().hex[:8]}",
               ZWZX_HTTP_PORT=str(ports[0]), ZWZX_ACTIONS_LB_PORT=str(ports[1]),
               ZWZX_RASA_BASE_PORT=str(ports[2]), ZWZX_ACTION_BASE_PORT=str(ports[4]),
               ZWZX_CONSOLE_HTTP_PORT=str(ports[6]), ZWZX_CONSOLE_BASE_PORT=str(ports[7]),
               ZWZX_RASA_SERVERS="2", ZWZX_ACTION_SERVERS="2", ZWZX_CONSOLE_SERVERS="2",
               ZWZX_CONSOLE_MAX_FAILURES="4", ZWZX_RUN_DIR=str(tmp / "run"), ZWZX_MODEL=str(MODEL),
               ZWZX_WIDGET_SECRET="zwzx-test-widget-secret-" + uuid.uuid4().hex)
    cluster = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", flush=True))
    s = None
    try:
        cluster.prepare()  # database + Alembic migrations, nginx config (with the console side)
        s = Stack(cluster, dbname)
        # Rasa's table, as its tracker store creates it on a server's first start
        s.write_conversation("cw-early", "政府网站集约化建设有什么要求")
        auth.create_user(s.db, SUPERVISOR[0], "supervisor", SUPERVISOR[1])
        auth.create_user(s.db, AGENT[0], "agent", AGENT[1])
        for name in cluster.console_names + ["nginx"]:
            cluster.start(name)
        cluster.wait_ready(cluster.console_names + ["nginx"], timeout=120)
        yield s
    finally:
        cluster.stop_all()
        if s is not None:
            s.db.engine.dispose()
        engine = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        finally:
            engine.dispose()


# ----------------------------------------------------------------------------- a staff member's browser
def login(base, name, password, session=None, expect_ok=True):
    s = session or requests.Session()
    page = s.get(base + "/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = s.post(base + "/login", data={"csrf_token": token, "name": name, "password": password,
                                      "next": "/conversations"}, allow_redirects=False, timeout=30)
    if expect_ok:
        assert r.status_code == 302 and r.headers["location"] == "/conversations", r.text[:300]
    s.last_response = r
    return s


def csrf_on(s, base):
    page = s.get(base + "/conversations", timeout=30)
    assert page.status_code == 200, page.text[:300]
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)


def senders(s, base, **args):
    r = s.get(base + "/api/conversations", params=args, headers={"Accept": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return {c["sender_id"] for c in r.json()["conversations"]}


def origin(base):
    return {"Origin": base}


# ----------------------------------------------------------------------------- tests
def test_session_and_csrf_of_one_worker_work_on_the_other(stack):
    a, b = stack.workers
    s = login(a, *SUPERVISOR)                                     # logged in on worker A
    token_a = csrf_on(s, a)
    assert csrf_on(s, b) == token_a                               # the same session on worker B
    # a POST on B with the token A rendered: accepted (CSRF is the session's, in PostgreSQL)
    r = s.post(b + "/conversation/tag", data={"sid": "cw-early", "tag": "答错", "csrf_token": token_a},
               headers=origin(b), allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text[:300]
    r = s.post(b + "/conversation/tag", data={"sid": "cw-early", "tag": "敏感", "csrf_token": "forged"},
               headers=origin(b), allow_redirects=False, timeout=30)
    assert r.status_code == 403 and "CSRF" in r.text
    assert "答错" in s.get(a + "/conversation", params={"sid": "cw-early"}, timeout=30).text
    # the login form's CSRF token (a cookie) from A is good for a login on B
    fresh = requests.Session()
    page = fresh.get(a + "/login", timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = fresh.post(b + "/login", data={"csrf_token": token, "name": AGENT[0], "password": AGENT[1],
                                       "next": "/conversations"}, allow_redirects=False, timeout=30)
    assert r.status_code == 302
    assert csrf_on(fresh, a)                                      # and the session it made, on A
    # logging out on B ends the session on A too
    r = s.post(b + "/logout", data={"csrf_token": token_a}, headers=origin(b), allow_redirects=False, timeout=30)
    assert r.status_code == 302
    r = s.get(a + "/conversations", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and r.headers["location"].startswith("/login")


def test_through_nginx_round_robin(stack):
    s = login(stack.nginx, *SUPERVISOR)
    token = csrf_on(s, stack.nginx)
    for i in range(8):  # nginx alternates between the workers: every request must work
        assert "cw-early" in senders(s, stack.nginx)
        r = s.post(stack.nginx + "/conversation/note", data={"sid": "cw-early", "body": f"第{i}条备注",
                                                            "csrf_token": token},
                   headers=origin(stack.nginx), allow_redirects=False, timeout=30)
        assert r.status_code == 302, (i, r.status_code, r.text[:300])
    page = s.get(stack.nginx + "/conversation", params={"sid": "cw-early"}, timeout=30).text
    assert all(f"第{i}条备注" in page for i in range(8))
    # both workers served some of them (the console access log names the upstream of each request)
    log = stack.cluster.run_dir / "logs" / "nginx-console-access.log"
    time.sleep(1.5)  # nginx flushes its access log buffer every second
    served = {line.split()[-2] for line in log.read_text().splitlines()
              if "/conversation/note" in line or "/api/conversations" in line}
    ports = stack.cluster.topology.console_ports
    assert served == {f"127.0.0.1:{p}" for p in ports}, served


def test_lock_out_counts_failures_on_both_workers(stack):
    a, b = stack.workers
    name = AGENT[0]
    for base in (a, b, a):  # ZWZX_CONSOLE_MAX_FAILURES=4
        r = login(base, name, "wrong-guess", expect_ok=False).last_response
        assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = login(b, name, "wrong-guess", expect_ok=False).last_response
    assert "锁定" in r.text
    r = login(a, name, AGENT[1], expect_ok=False).last_response  # locked on A as well
    assert r.status_code == 401 and "锁定" in r.text


def test_conversation_index_is_shared_and_new_conversations_appear_without_restart(stack):
    a, b = stack.workers
    s = login(a, *SUPERVISOR)
    stack.write_conversation("cw-new-1", "预算和决算要公开到什么程度", kind="fallback")
    assert "cw-new-1" in senders(s, a)                          # worker A reads the new events
    indexed = stack.index_state()
    assert indexed.high_water > 0
    found_b = senders(s, b)                                       # worker B: from the shared index
    assert {"cw-early", "cw-new-1"} <= found_b
    assert stack.index_state() == indexed                         # B read no event itself
    assert senders(s, b, kind="fallback") == {"cw-new-1"}         # its summary, as A built it
    # a conversation stored later: visible on both, no restart
    stack.write_conversation("cw-new-2", "疫情防控的信息谁来发布")
    assert "cw-new-2" in senders(s, b)                            # this time B reads the events
    after_b = stack.index_state()
    assert after_b.high_water > indexed.high_water
    assert "cw-new-2" in senders(s, a)
    assert stack.index_state() == after_b                         # ... and A takes B's rows
    page = s.get(a + "/conversation", params={"sid": "cw-new-2"}, timeout=30)
    assert page.status_code == 200 and "疫情防控的信息谁来发布" in page.text
    # a worker restarted later starts from the shared index, not from zero
    stack.cluster.restart("console-1", timeout=120)
    assert {"cw-early", "cw-new-1", "cw-new-2"} <= senders(s, b)
    assert stack.index_state() == after_b


def test_the_embedded_profile_keeps_one_console_on_sqlite(tmp_path):
    """make run's console (one process, SQLite) uses the same shared index code."""
    from bot.console import auth
    from bot.console.db import Database
    from bot.console.demo import ConsoleProcess, seed

    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    seed(url, day0=dt.date.today(), days=2)
    db = Database(url)
    auth.create_user(db, SUPERVISOR[0], "supervisor", SUPERVISOR[1])
    proc = ConsoleProcess(url, tmp_path / "console.log")
    try:
        s = login(proc.url, *SUPERVISOR)
        assert "demo-answer-1" in senders(s, proc.url)
        assert requests.get(proc.url + "/readyz", timeout=10).json() == {"ready": True}
    finally:
        proc.stop()
        db.engine.dispose()
