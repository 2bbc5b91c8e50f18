"""Handoff building blocks without servers: working hours (fixed clock), the ticket/staff store
on real SQLite and PostgreSQL (atomic accept under concurrency), transcript/summary/outbox,
the delivery registry and the staff CLI."""
import asyncio
import datetime as dt
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bot.handoff import delivery
from bot.handoff.config import HandoffConfig, describe_moment, load_config
from bot.handoff.conversation import outbox, summarize, transcript
from bot.handoff.store import HandoffStore, StoreError, db_url

ROOT = Path(__file__).resolve().parents[1]
CST = ZoneInfo("Asia/Shanghai")
from tests.servers import PG_URL  # noqa: E402


def at(y, m, d, hh, mm=0):
    return dt.datetime(y, m, d, hh, mm, tzinfo=CST)


# ------------------------------------------------------------------ working hours
@pytest.fixture(scope="module")
def hours():
    return load_config(ROOT / "handoff.yml").hours


@pytest.mark.parametrize("when,open_", [
    (at(2026, 11, 23, 8, 29), False),   # Monday, before opening
    (at(2026, 11, 23, 8, 30), True),
    (at(2026, 11, 23, 11, 59), True),
    (at(2026, 11, 23, 12, 0), False),   # lunch break
    (at(2026, 11, 23, 14, 29), False),
    (at(2026, 11, 23, 14, 30), True),
    (at(2026, 11, 27, 17, 29), True),   # Friday afternoon
    (at(2026, 11, 27, 17, 30), False),
    (at(2026, 11, 28, 10, 0), False),   # Saturday
    (at(2026, 10, 1, 10, 0), False),    # National Day (Thursday), holiday list
    (at(2026, 10, 10, 10, 0), True),    # Saturday made a working day (调休)
    (dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.timezone.utc), True),   # 09:00 in Shanghai
    (dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.timezone.utc), False),  # 18:00 in Shanghai
])
def test_working_hours(hours, when, open_):
    assert hours.is_open(when) is open_


def test_next_open(hours):
    assert hours.next_open(at(2026, 11, 27, 18, 0)) == at(2026, 11, 30, 8, 30)   # Fri evening → Mon
    assert hours.next_open(at(2026, 11, 23, 12, 30)) == at(2026, 11, 23, 14, 30)  # lunch → afternoon
    assert hours.next_open(at(2026, 11, 23, 9, 15)) == at(2026, 11, 23, 9, 15)    # open now
    assert hours.next_open(at(2026, 9, 30, 18, 0)) == at(2026, 10, 8, 8, 30)      # over the holiday


def test_describe(hours):
    assert hours.describe() == "周一至周五 08:30-12:00、14:30-17:30（法定节假日除外）"
    now = at(2026, 11, 27, 18, 0)
    assert describe_moment(at(2026, 11, 30, 8, 30), now) == "11月30日（周一）08:30"
    assert describe_moment(at(2026, 11, 28, 8, 30), now) == "明天 08:30"


def test_describe_moment_in_the_hours_zone_whatever_the_server_clock(hours):
    """A server clock in UTC (23:50 Beijing = 15:50 UTC) still says 明天 08:30, not 明天 00:30."""
    now_utc = at(2026, 12, 7, 23, 50).astimezone(dt.timezone.utc)
    nxt = hours.next_open(now_utc)
    assert describe_moment(nxt, now_utc) == "明天 08:30"
    # Friday 20:00 Beijing is still Friday in UTC; the next opening is Monday morning in Beijing
    assert describe_moment(hours.next_open(at(2026, 11, 27, 20, 0).astimezone(dt.timezone.utc)),
                           at(2026, 11, 27, 20, 0).astimezone(dt.timezone.utc)) == "11月30日（周一）08:30"


def test_config_from_dict_and_reload(tmp_path):
    cfg = HandoffConfig.from_dict({"triggers": {"failed_turns": 3, "negative_feedback": 1},
                                   "working_hours": {"weekdays": [6, 7], "periods": [["09:00", "10:00"]]}})
    assert (cfg.failed_turns, cfg.negative_feedback) == (3, 1)
    assert cfg.hours.is_open(at(2026, 11, 28, 9, 30)) and not cfg.hours.is_open(at(2026, 11, 23, 9, 30))
    assert HandoffConfig.from_dict({}).failed_turns == 2  # defaults
    path = tmp_path / "handoff.yml"
    path.write_text("triggers: {failed_turns: 4}\n", encoding="utf-8")
    assert load_config(path).failed_turns == 4
    path.write_text("triggers: {failed_turns: 5}\n", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert load_config(path).failed_turns == 5  # re-read when the file changes
    assert load_config(tmp_path / "missing.yml").failed_turns == 2


def test_cancel_phrases():
    cfg = load_config(ROOT / "handoff.yml")
    assert cfg.is_cancel_phrase("取消") and cfg.is_cancel_phrase(" 不用了！") and cfg.is_cancel_phrase("算了，不用了")
    assert not cfg.is_cancel_phrase("取消低保资格要什么条件") and not cfg.is_cancel_phrase("")


# ------------------------------------------------------------------------ store
from tests.servers import pg_available as _pg_available  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        yield HandoffStore(f"sqlite:///{tmp_path / 'handoff.db'}")
        return
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    schema = f"handoff_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    s = HandoffStore(f"{PG_URL}?options=-csearch_path%3D{schema}")
    try:
        yield s
    finally:
        s.engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_ticket_lifecycle(store):
    t = store.create_ticket("citizen-1", "rest", "requested", "市民最近的问题：“低保”。", now=1000.0)
    assert t["status"] == "waiting" and t["created_at"] == 1000.0 and t["assignee"] is None
    assert set(t) == {"id", "sender_id", "channel", "reason", "status", "created_at", "accepted_at",
                      "closed_at", "assignee", "summary", "rating"}
    second = store.create_ticket("citizen-2", "wechat", "complaint")
    assert store.queue_position(t["id"]) == 1 and store.queue_position(second["id"]) == 2
    assert store.open_ticket_for("citizen-1")["id"] == t["id"]
    assert store.accept(t["id"], "李四") is True
    assert store.accept(t["id"], "王五") is False            # already taken
    got = store.get_ticket(t["id"])
    assert got["status"] == "active" and got["assignee"] == "李四" and got["accepted_at"]
    assert store.queue_position(second["id"]) == 1 and store.queue_position(t["id"]) == 0
    assert store.set_rating(t["id"], 5) is False              # only closed tickets are rated
    assert store.close(t["id"], "active") is True
    assert store.close(t["id"], "active") is False            # closing twice changes nothing
    assert store.open_ticket_for("citizen-1") is None
    assert store.set_rating(t["id"], 4) is True and store.get_ticket(t["id"])["rating"] == 4
    with pytest.raises(StoreError):
        store.set_rating(t["id"], 6)
    assert store.cancel(second["id"]) is True and store.cancel(second["id"]) is False
    assert store.get_ticket(second["id"])["status"] == "cancelled"
    cb = store.create_ticket("citizen-3", "rest", "repeated_fallback", status="callback",
                             phone="13812345678", callback_time="工作日上午")
    assert cb["phone"] == "13812345678" and cb["callback_time"] == "工作日上午"
    assert [x["id"] for x in store.list_tickets(["callback"])] == [cb["id"]]
    assert store.get_ticket(99999) is None
    with pytest.raises(StoreError):
        store.create_ticket("x", "rest", "bored")


def test_exactly_one_of_concurrent_accepts_wins(store):
    ticket = store.create_ticket("citizen-race", "rest", "requested")
    store.ensure_tables()
    barrier = threading.Barrier(8)
    results = []

    def grab(name):
        barrier.wait()
        results.append((name, store.accept(ticket["id"], name)))

    threads = [threading.Thread(target=grab, args=(f"agent-{i}",)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    winners = [name for name, ok in results if ok]
    assert len(winners) == 1 and len(results) == 8
    assert store.get_ticket(ticket["id"])["assignee"] == winners[0]


def test_staff_accounts(store):
    token = store.add_staff("张三", "agent")
    assert len(token) >= 32
    assert store.authenticate(token) == {"name": "张三", "role": "agent"}
    assert store.authenticate(token + "x") is None and store.authenticate("") is None
    with store.engine.connect() as conn:  # only the hash is stored
        stored = conn.execute(sa.text("SELECT token_hash FROM staff")).scalar()
    assert token not in stored and len(stored) == 64
    with pytest.raises(StoreError):
        store.add_staff("张三", "agent")
    with pytest.raises(StoreError):
        store.add_staff("赵六", "admin")
    new = store.rotate_token("张三")
    assert store.authenticate(token) is None and store.authenticate(new)["name"] == "张三"
    store.deactivate_staff("张三")
    assert store.authenticate(new) is None


def test_sqlite_uses_wal_and_relative_paths_are_from_the_repo(tmp_path):
    s = HandoffStore(f"sqlite:///{tmp_path / 'wal.db'}")
    s.ensure_tables()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert db_url("sqlite:///build/tracker.db") == f"sqlite:///{ROOT / 'build' / 'tracker.db'}"


def test_cli_add_staff_prints_the_token_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), ZWZX_DB_URL=url)
    run = subprocess.run([sys.executable, "-m", "bot.handoff", "add-staff", "陈七", "--role", "supervisor"],
                         env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    token = run.stdout.strip()
    assert HandoffStore(url).authenticate(token) == {"name": "陈七", "role": "supervisor"}
    again = subprocess.run([sys.executable, "-m", "bot.handoff", "add-staff", "陈七"],
                           env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert again.returncode == 1 and "已存在" in again.stderr and not again.stdout.strip()


# ------------------------------------------------------------ conversation views
EVENTS = [
    {"event": "action", "name": "action_listen", "timestamp": 1.0},
    {"event": "user", "text": "财政预算会公开吗", "timestamp": 2.0, "parse_data": {"intent": {"name": "ask_policy"}}},
    {"event": "bot", "text": "做好财政信息公开……", "timestamp": 3.0, "data": {}},
    {"event": "bot", "text": None, "timestamp": 3.1, "data": {"custom": {"kind": "answer", "citations": [
        {"doc": "ningxiang-2021", "item": 5, "label": "第（五）项 做好财政信息公开",
         "doc_title": "宁乡市2021年政务公开工作要点"}]}}},
    {"event": "user", "text": "转人工", "timestamp": 4.0, "parse_data": {"intent": {"name": "request_human"}}},
    {"event": "pause", "timestamp": 4.5},
    {"event": "user", "text": "我还想问低保", "timestamp": 5.0, "parse_data": {"intent": {"name": "ask_policy"}}},
    {"event": "user", "text": "EXTERNAL: reminder", "timestamp": 5.5, "metadata": {"is_external": True}},
    {"event": "bot", "text": "您好，我是李四", "timestamp": 6.0, "metadata": {"from": "staff", "staff": "李四"}},
    {"event": "resume", "timestamp": 7.0},
    {"event": "bot", "text": "人工服务已结束", "timestamp": 7.5, "metadata": {"from": "bot", "push": True},
     "data": {"buttons": [{"title": "5分", "payload": "/rate"}]}},
]


def test_transcript_in_order_with_speakers():
    assert transcript(EVENTS) == [
        {"from": "citizen", "text": "财政预算会公开吗", "time": 2.0},
        {"from": "bot", "text": "做好财政信息公开……", "time": 3.0},
        {"from": "citizen", "text": "转人工", "time": 4.0},
        {"from": "citizen", "text": "我还想问低保", "time": 5.0},
        {"from": "staff", "text": "您好，我是李四", "time": 6.0, "staff": "李四"},
        {"from": "bot", "text": "人工服务已结束", "time": 7.5},
    ]


def test_outbox_since():
    assert [m["from"] for m in outbox(EVENTS)] == ["staff", "bot"]
    assert outbox(EVENTS, since=6.0) == [{"text": "人工服务已结束", "from": "bot", "time": 7.5,
                                          "buttons": [{"title": "5分", "payload": "/rate"}]}]
    assert outbox(EVENTS, since=7.5) == []


def test_summary_has_questions_and_cited_items():
    s = summarize(EVENTS)
    assert "“财政预算会公开吗”" in s and "“我还想问低保”" in s and "转人工" not in s
    assert "《宁乡市2021年政务公开工作要点》第（五）项 做好财政信息公开" in s
    assert summarize([]) == "市民直接要求人工服务，未提出具体问题。机器人未引用任何条目。"
    assert len(summarize(EVENTS * 50, questions=100)) <= 500


# ---------------------------------------------------------------- delivery hook
def test_delivery_registry_reports_every_failure():
    sent = []

    async def ok(sender, text, staff):
        sent.append((sender, text, staff))
        return True

    async def refuses(sender, text, staff):
        return False

    async def broken(sender, text, staff):
        raise ConnectionError("down")

    try:
        delivery.register("t-ok", ok)
        delivery.register("t-no", refuses)
        delivery.register("t-err", broken)
        assert asyncio.run(delivery.deliver("t-ok", "c", "您好", "李四")) == (True, None)
        assert sent == [("c", "您好", "李四")]
        for channel in ("t-no", "t-err", "t-missing"):
            ok_, detail = asyncio.run(delivery.deliver(channel, "c", "您好", "李四"))
            assert ok_ is False and detail and channel in detail
    finally:
        for name in ("t-ok", "t-no", "t-err"):
            delivery.unregister(name)
