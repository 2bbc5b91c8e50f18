"""The production profile end to end: two Rasa servers and two action servers behind nginx,
one PostgreSQL database (reached through a TCP proxy this test controls) and Redis — started
by the same code as `make run-prod` (bot.ops.cluster).

Covers: readiness/metrics of every process; a conversation alternating between the two Rasa
servers keeps its context; concurrent messages of one conversation are processed in order,
none lost; a short load (sent == stored == answered); faults — an action server killed
mid-load, every action server down, a Rasa server restarted, PostgreSQL unreachable — and,
at the end, that every stored turn in the database is complete.

Skipped (with the reason) when PostgreSQL (ZWZX_TEST_PG_HOST/PORT/USER, default
127.0.0.1:5432 postgres) or Redis (127.0.0.1:6379) is not reachable or nginx is not
installed. Uses ports 5740-5799, its own database zwzx_test_<random> (dropped afterwards) and
its own Redis key prefix.
"""
import asyncio
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "zhengwu.tar.gz"
PG_HOST = os.environ.get("ZWZX_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZWZX_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ZWZX_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("ZWZX_TEST_PG_PASSWORD", "")
REDIS_HOST = os.environ.get("ZWZX_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("ZWZX_TEST_REDIS_PORT", "6379"))
PORT_BLOCKS = range(5740, 5800, 10)  # 7 ports each: nginx, actions LB, 2 Rasa, 2 actions, PG proxy

Q_WEBSITE = "政府网站集约化建设有什么要求"
FOLLOW_WHO = "那由哪个部门负责？"

pytestmark = pytest.mark.timeout(900)


# ----------------------------------------------------------------------------- helpers
def pg_url(db):
    auth = f"{PG_USER}:{PG_PASSWORD}@" if PG_PASSWORD else f"{PG_USER}@"
    return f"postgresql://{auth}{PG_HOST}:{PG_PORT}/{db}"


def services_or_skip():
    import redis
    import sqlalchemy as sa

    from bot.ops.cluster import nginx_binary

    engine = sa.create_engine(pg_url("postgres"), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({str(e).splitlines()[0]})")
    finally:
        engine.dispose()
    try:
        redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT} ({e})")
    if nginx_binary() is None:
        pytest.skip("nginx not installed (deploy/install-nginx.sh or apt-get install -y nginx)")
    if not MODEL.exists():
        pytest.fail("models/zhengwu.tar.gz missing: run make train first")


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def port_block():
    for base in PORT_BLOCKS:
        ports = list(range(base, base + 7))
        if all(port_free(p) for p in ports):
            return ports
    pytest.skip("no free block of 7 ports in 5740-5799")


def load_module():
    """bench/load.py (bench/ is not a package)."""
    name = "zwzx_bench_load"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "load.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def post(base, sender, text, timeout=60):
    return requests.post(f"{base}/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=timeout)


def card_of(messages):
    cards = [m["custom"] for m in messages if isinstance(m.get("custom"), dict) and "kind" in m["custom"]]
    assert len(cards) == 1, messages
    return cards[0]


def say(base, sender, text):
    r = post(base, sender, text)
    assert r.status_code == 200, r.text
    messages = r.json()
    texts = [m["text"] for m in messages if m.get("text")]
    assert texts, messages
    return card_of(messages), texts


def assert_clean_unavailable(r):
    assert r.status_code == 503, (r.status_code, r.text)
    body = r.json()
    assert "系统繁忙" in body["error"] and "Traceback" not in r.text
    assert r.headers.get("Retry-After")


def metrics(base):
    load = load_module()
    return load.parse_metrics(requests.get(f"{base}/metrics", timeout=10).text)


def metric_sum(cluster, name, label=""):
    total = 0.0
    for i in range(len(cluster.rasa_names)):
        for (n, labels), v in metrics(cluster.rasa_url(i)).items():
            if n == name and label in labels:
                total += v
    return total


def new_sender(tag):
    return f"t-{tag}-{uuid.uuid4().hex[:8]}"


class Profile:
    def __init__(self, cluster, proxy, dbname, prefix):
        self.cluster, self.proxy, self.dbname, self.prefix = cluster, proxy, dbname, prefix
        import sqlalchemy as sa

        self.sa = sa
        self.engine = sa.create_engine(pg_url(dbname))  # direct, not through the proxy

    @property
    def a(self):
        return self.cluster.rasa_url(0)

    @property
    def b(self):
        return self.cluster.rasa_url(1)

    @property
    def public(self):
        return self.cluster.public_url

    def events(self, sender):
        with self.engine.connect() as conn:
            rows = conn.execute(self.sa.text(
                "SELECT id, type_name, action_name, data FROM events WHERE sender_id = :s ORDER BY id"),
                {"s": sender}).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def user_texts(self, sender):
        return [d.get("text") for _, t, _, d in self.events(sender) if t == "user"]

    def count_users(self, like):
        with self.engine.connect() as conn:
            return conn.execute(self.sa.text(
                "SELECT count(*) FROM events WHERE type_name = 'user' AND sender_id LIKE :p"), {"p": like}).scalar()


def assert_turns_complete(events, strict=False):
    """Every stored user message has its bot reply stored with it — nothing half-written.
    Messages a citizen sends while the conversation is paused for 12345 staff are stored
    unanswered by design (bot/handoff) and are not counted. strict: the turn also ended
    (action_listen or a pause)."""
    turns, paused = [], False
    for _, type_name, action, data in events:
        if type_name == "user":
            turns.append({"bot": 0, "ended": False, "paused": paused})
        elif type_name == "pause":
            paused = True
            if turns:
                turns[-1]["ended"] = True
        elif type_name == "resume":
            paused = False
        elif turns and type_name == "bot":
            turns[-1]["bot"] += 1
        elif turns and type_name == "action" and action == "action_listen":
            turns[-1]["ended"] = True
    summary = [(e[1], e[2], e[3].get("text")) for e in events]
    for i, t in enumerate(turns):
        if t["paused"]:
            continue
        assert t["bot"] >= 1, (f"turn {i} has no reply: {t}", summary)
        if strict:
            assert t["ended"], (f"turn {i} did not end: {t}", summary)
    return len(turns)


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    services_or_skip()
    import redis
    import sqlalchemy as sa

    from bot.ops.cluster import Cluster
    from bot.ops.tcpproxy import TCPProxy

    ports = port_block()
    suffix = uuid.uuid4().hex[:8]
    dbname, prefix = f"zwzx_test_{suffix}", f"zwzxt{suffix}"
    # ZWZX_TEST_RUN_DIR keeps the processes' logs somewhere known (default: pytest's tmp dir)
    run_dir = Path(os.environ.get("ZWZX_TEST_RUN_DIR") or tmp_path_factory.mktemp("prod")) / suffix
    proxy = TCPProxy(ports[6], PG_HOST, PG_PORT).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZWZX_")}
    env.update(ZWZX_PG_HOST="127.0.0.1", ZWZX_PG_PORT=str(ports[6]), ZWZX_PG_DB=dbname, ZWZX_PG_USER=PG_USER,
               ZWZX_PG_PASSWORD=PG_PASSWORD, ZWZX_PG_CONNECT_TIMEOUT="3", ZWZX_PG_SSLMODE="disable",
               ZWZX_REDIS_HOST=REDIS_HOST, ZWZX_REDIS_PORT=str(REDIS_PORT), ZWZX_REDIS_DB="0", ZWZX_REDIS_PREFIX=prefix,
               ZWZX_HTTP_PORT=str(ports[0]), ZWZX_ACTIONS_LB_PORT=str(ports[1]),
               ZWZX_RASA_BASE_PORT=str(ports[2]), ZWZX_ACTION_BASE_PORT=str(ports[4]),
               ZWZX_RASA_SERVERS="2", ZWZX_ACTION_SERVERS="2", ZWZX_CONSOLE_SERVERS="0", ZWZX_RUN_DIR=str(run_dir),
               ZWZX_MODEL=str(MODEL), ZWZX_WIDGET_SECRET="zwzx-test-widget-secret-" + uuid.uuid4().hex)
    cluster = Cluster(environ=env, log=lambda m: print(f"[cluster] {m}", flush=True))
    profile = None
    try:
        cluster.start_all(timeout=600)
        profile = Profile(cluster, proxy, dbname, prefix)
        yield profile
    finally:
        cluster.stop_all()
        proxy.close()
        if profile is not None:
            profile.engine.dispose()
        engine = sa.create_engine(pg_url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        except Exception as e:  # noqa: BLE001
            print(f"could not drop {dbname}: {e}")
        finally:
            engine.dispose()
        client = redis.StrictRedis(host=REDIS_HOST, port=REDIS_PORT)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def run_load_in_thread(load, url, users, duration, metrics_urls, run_id):
    out = {}

    def target():
        out["report"] = asyncio.run(load.run_load(url, users, duration, metrics_urls=metrics_urls, run_id=run_id,
                                                  ramp_s=0.5))

    t = threading.Thread(target=target)
    t.start()
    return t, out


# ----------------------------------------------------------------------------- tests
def test_every_process_reports_ready_and_metrics(prod):
    c = prod.cluster
    for i in range(2):
        r = requests.get(f"{c.rasa_url(i)}/ready", timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["ready"] is True
        assert body["checks"]["tracker_store"] == {"ok": True, "type": "ProdSQLTrackerStore"}
        assert body["checks"]["lock_store"] == {"ok": True, "type": "AtomicRedisLockStore"}
        assert body["checks"]["model"]["ok"]
        text = requests.get(f"{c.rasa_url(i)}/metrics", timeout=10).text
        for name in ("# TYPE zwzx_messages_total counter", "# TYPE zwzx_message_latency_seconds histogram",
                     "zwzx_fallbacks_total",
                     "zwzx_handoffs_total", "zwzx_user_messages_stored_total", "zwzx_ready 1.0"):
            assert name in text
    for j in range(2):
        r = requests.get(f"{c.action_url(j)}/ready", timeout=60)
        assert r.status_code == 200 and r.json()["checks"]["knowledge_base"]["documents"] >= 1, r.text
        assert r.json()["checks"]["database"]["ok"]
        assert "zwzx_action_calls_total" in requests.get(f"{c.action_url(j)}/metrics", timeout=10).text
    assert requests.get(f"{prod.public}/nginx-health", timeout=5).status_code == 200
    # the web widget's socket.io handshake reaches a Rasa server through nginx
    r = requests.get(f"{prod.public}/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=10)
    assert r.status_code == 200 and r.text.startswith("0{") and '"sid"' in r.text, r.text[:200]
    # the public side exposes channels only: not Rasa's API, metrics or readiness
    for path in ("/conversations/x/tracker", "/metrics", "/ready", "/status"):
        r = requests.get(prod.public + path, timeout=5)
        assert r.status_code == 404 and "error" in r.json()
    # the database tables were created by the app
    tables = set(prod.sa.inspect(prod.engine).get_table_names())
    assert {"events", "handoff_tickets"} <= tables


def test_conversation_alternating_between_servers_keeps_context(prod):
    s = new_sender("alt")
    card, _ = say(prod.a, s, Q_WEBSITE)
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 12
    card, texts = say(prod.b, s, FOLLOW_WHO)
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 12, texts
    assert card["departments"][0] == "市数据资源中心"
    card, texts = say(prod.a, s, "查看全文")
    assert card["citations"][0]["item"] == 12
    card, _ = say(prod.b, s, "发改委在政务公开方面负责什么")
    assert card["departments"] == ["市发改局"]
    card, _ = say(prod.a, s, "那网信办呢")
    assert card["departments"] == ["市委网信办"] and [c["item"] for c in card["citations"]] == [12]
    assert prod.user_texts(s) == [Q_WEBSITE, FOLLOW_WHO, "查看全文", "发改委在政务公开方面负责什么", "那网信办呢"]
    # and through nginx (either server)
    s2 = new_sender("lb")
    assert say(prod.public, s2, Q_WEBSITE)[0]["citations"][0]["item"] == 12
    card, _ = say(prod.public, s2, FOLLOW_WHO)
    assert card["citations"][0]["item"] == 12 and card["departments"][0] == "市数据资源中心"


def test_concurrent_messages_of_one_conversation_are_processed_in_order(prod):
    """Ten messages of one conversation in flight at once, alternating between the two Rasa
    servers. The test holds the conversation's lock itself (a ticket in the same Redis queue)
    while it sends them, waiting after each until the server has queued it, so all ten are
    waiting together and their arrival order is known; then it releases the lock."""
    from bot.ops.lock_store import AtomicRedisLockStore

    s = new_sender("conc")
    texts = [Q_WEBSITE, FOLLOW_WHO, "查看全文", "财政预决算信息会公开吗", "那由哪个部门负责？",
             "你好", "疫情防控信息由谁发布", "有什么时间要求吗", "谢谢", "市司法局负责哪些工作"]
    lock_store = AtomicRedisLockStore(host=REDIS_HOST, port=REDIS_PORT, db=0, key_prefix=prod.prefix)
    results = [None] * len(texts)

    def send(i):
        results[i] = post(prod.a if i % 2 == 0 else prod.b, s, texts[i], timeout=120)

    held = lock_store.issue_ticket(s, 120)
    threads = []
    try:
        for i in range(len(texts)):
            t = threading.Thread(target=send, args=(i,))
            t.start()
            threads.append(t)
            deadline = time.time() + 60
            while len(lock_store.get_lock(s).tickets) < i + 2:  # our ticket + one per message
                assert time.time() < deadline, f"message {i} was not queued"
                time.sleep(0.005)
        assert all(r is None for r in results), "nothing is answered while the conversation is locked"
    finally:
        lock_store.cleanup(s, held)
    for t in threads:
        t.join(180)
    assert all(r is not None and r.status_code == 200 for r in results), [getattr(r, "text", r) for r in results]
    cards = [card_of(r.json()) for r in results]
    # none lost, stored in arrival order, each turn complete before the next message
    assert prod.user_texts(s) == texts
    assert assert_turns_complete(prod.events(s), strict=True) == len(texts)
    # order-dependent answers: each follow-up saw the turn queued just before it
    assert cards[0]["citations"][0]["item"] == 12
    assert cards[1]["citations"][0]["item"] == 12 and cards[1]["departments"][0] == "市数据资源中心"
    assert cards[2]["citations"][0]["item"] == 12
    assert cards[3]["citations"][0]["item"] == 5
    assert cards[4]["citations"][0]["item"] == 5 and cards[4]["departments"][0] == "市财政局"
    assert lock_store.get_lock(s) is None, "the queue is gone once every message is done"


def test_short_load_every_message_sent_is_stored_and_answered(prod):
    load = load_module()
    c = prod.cluster
    run_id = "smoke" + uuid.uuid4().hex[:6]
    report = asyncio.run(load.run_load(prod.public, users=16, duration=20,
                                       metrics_urls=[c.rasa_url(0), c.rasa_url(1)],
                                       action_metrics_urls=[c.action_url(0), c.action_url(1)],
                                       db_url=pg_url(prod.dbname), run_id=run_id))
    load.print_report(report)
    assert report.sent > 20
    assert report.failed == 0, report.errors
    assert report.stored == report.sent == report.answered
    assert report.busy_replies == 0
    assert report.server["messages_by_outcome"] == {"answered": report.sent}
    assert report.server["user_messages_stored"] == report.sent
    assert sum(report.server["replies_by_kind"].values()) == report.answered
    assert report.server["fallbacks"] == report.kinds.get("fallback", 0)
    assert report.server["handoffs"] == report.kinds.get("handoff", 0)
    assert report.latency_ms["p50"] <= report.latency_ms["p95"] <= report.latency_ms["p99"]
    assert report.throughput_per_s > 0
    actions = report.server["action_servers"]
    assert actions["calls"] >= report.kinds.get("answer", 0) and actions["errors"] == 0
    assert report.server["cpu_ms_per_message"] > 0


def test_action_server_killed_mid_load_gets_busy_replies_and_the_rest_carries_on(prod):
    """12 citizens talk through nginx; actions-0 is frozen (SIGSTOP) for a moment so that
    action calls are certainly in flight on it, then killed (SIGKILL)."""
    load = load_module()
    c = prod.cluster
    errors_before = metric_sum(c, "zwzx_action_server_errors_total")
    run_id = "kill" + uuid.uuid4().hex[:6]
    t, out = run_load_in_thread(load, prod.public, 12, 16, [], run_id)
    time.sleep(4)
    c.send_signal("actions-0", signal.SIGSTOP)
    time.sleep(2)
    killed_at = time.time()
    c.kill("actions-0")
    t.join(180)
    report = out["report"]
    results = report._results
    load.print_report(report)
    # nothing silent, nothing 5xx: every message got texts and exactly one answer card
    assert report.failed == 0, report.errors
    assert all(r.status == 200 for r in results)
    busy = [r for r in results if r.busy]
    assert busy, "the calls in flight on the killed server were answered 系统繁忙"
    assert all(r.kind == "fallback" for r in busy)
    assert all(r.started < killed_at for r in busy)
    # the rest carries on: normal answers after the kill, from the remaining action server
    after = [r for r in results if r.started > killed_at + 0.5]
    assert len(after) > 10 and not any(r.busy for r in after)
    assert sum(r.kind == "answer" for r in after) > 0
    # every message stored; the 系统繁忙 replies were counted
    assert prod.count_users(f"load-{run_id}-%") == report.sent
    assert metric_sum(c, "zwzx_action_server_errors_total") - errors_before == len(busy)
    print(f"系统繁忙 replies for messages in flight at the kill: {len(busy)} of {report.sent}")
    c.start("actions-0")
    c.wait_ready(["actions-0"], 120)
    c.wait_actions_reachable()


def test_every_action_server_down_gives_busy_reply_then_recovers(prod):
    c = prod.cluster
    s = new_sender("busy")
    assert say(prod.public, s, Q_WEBSITE)[0]["citations"][0]["item"] == 12
    c.kill("actions-0")
    c.kill("actions-1")
    try:
        r = post(prod.public, s, FOLLOW_WHO)
        assert r.status_code == 200, r.text
        card = card_of(r.json())
        texts = [m["text"] for m in r.json() if m.get("text")]
        assert card["kind"] == "fallback" and card.get("reason") == "system_busy"
        assert any("系统繁忙" in t and "您" in t for t in texts)
    finally:
        c.start("actions-0")
        c.start("actions-1")
        c.wait_ready(["actions-0", "actions-1"], 120)
        c.wait_actions_reachable()
    # the context survived the busy turn
    card, _ = say(prod.public, s, FOLLOW_WHO)
    assert card["kind"] == "answer" and card["citations"][0]["item"] == 12
    assert prod.user_texts(s) == [Q_WEBSITE, FOLLOW_WHO, FOLLOW_WHO]


def test_restarting_a_rasa_server_keeps_conversations(prod):
    c = prod.cluster
    s1, s2 = new_sender("rs1"), new_sender("rs2")
    assert say(prod.a, s1, Q_WEBSITE)[0]["citations"][0]["item"] == 12
    # traffic through nginx while rasa-0 goes down and comes back
    load = load_module()
    run_id = "rst" + uuid.uuid4().hex[:6]
    t, out = run_load_in_thread(load, prod.public, 4, 8, [], run_id)
    time.sleep(2)
    c.stop("rasa-0")
    card, _ = say(prod.public, s1, FOLLOW_WHO)  # served by rasa-1 from PostgreSQL
    assert card["citations"][0]["item"] == 12 and card["departments"][0] == "市数据资源中心"
    assert say(prod.public, s2, "财政预决算信息会公开吗")[0]["citations"][0]["item"] == 5
    t.join(120)
    report = out["report"]
    load.print_report(report)
    # a request nginx could not hand to the stopping server gets a clean 503, never a 500
    for r in report._results:
        assert r.answered or r.status == 503, (r.status, r.error)
    assert report.answered >= report.sent - 1
    assert prod.count_users(f"load-{run_id}-%") == report.answered
    c.start("rasa-0")
    c.wait_ready(["rasa-0"], 600)
    card, _ = say(prod.a, s1, "查看全文")  # the restarted server continues both conversations
    assert card["citations"][0]["item"] == 12
    card, _ = say(prod.a, s2, "那由哪个部门负责？")
    assert card["citations"][0]["item"] == 5 and card["departments"][0] == "市财政局"


def test_postgres_unreachable_requests_fail_cleanly_then_succeed(prod):
    c = prod.cluster
    s, fresh = new_sender("pg"), new_sender("pgnew")
    assert say(prod.a, s, Q_WEBSITE)[0]["citations"][0]["item"] == 12
    failed_before = metric_sum(c, "zwzx_messages_total", 'outcome="failed"')
    prod.proxy.down()
    try:
        assert_clean_unavailable(post(prod.a, s, FOLLOW_WHO))
        assert_clean_unavailable(post(prod.b, s, FOLLOW_WHO))
        assert_clean_unavailable(post(prod.public, s, FOLLOW_WHO))
        assert_clean_unavailable(post(prod.public, fresh, "财政预决算信息会公开吗"))
        r = requests.get(f"{prod.a}/ready", timeout=15)
        assert r.status_code == 503 and r.json()["checks"]["tracker_store"]["ok"] is False
        # nothing of the failed messages reached the database
        assert prod.user_texts(s) == [Q_WEBSITE]
        assert prod.events(fresh) == []
    finally:
        prod.proxy.up()
    assert metric_sum(c, "zwzx_messages_total", 'outcome="failed"') - failed_before == 4
    # back: the same conversation continues with its context, on either server
    card, _ = say(prod.b, s, FOLLOW_WHO)
    assert card["citations"][0]["item"] == 12 and card["departments"][0] == "市数据资源中心"
    card, _ = say(prod.a, fresh, "财政预决算信息会公开吗")
    assert card["citations"][0]["item"] == 5
    assert prod.user_texts(s) == [Q_WEBSITE, FOLLOW_WHO]
    assert assert_turns_complete(prod.events(s), strict=True) == 2
    for i in range(2):
        assert requests.get(f"{c.rasa_url(i)}/ready", timeout=15).status_code == 200


def test_every_stored_turn_is_complete(prod):
    with prod.engine.connect() as conn:
        senders = [r[0] for r in conn.execute(prod.sa.text("SELECT DISTINCT sender_id FROM events"))]
    assert len(senders) > 50
    for sender in senders:
        assert_turns_complete(prod.events(sender))
