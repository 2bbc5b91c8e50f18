"""Issue 16: the retention task deletes or anonymises conversations idle longer than N days
(python -m bot.ops.retention), on Rasa's own `events` table and the tickets table."""
import json
import time

import sqlalchemy as sa

from bot.ops import retention

DAY = 86400


def make_db(tmp_path):
    from rasa.core.tracker_store import SQLTrackerStore

    url = f"sqlite:///{tmp_path / 'tracker.db'}"
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "tracker.db"))  # creates `events`
    store.engine.dispose()
    engine = sa.create_engine(url)
    now = time.time()

    def add(sender, age_days, events):
        with engine.begin() as conn:
            for i, ev in enumerate(events):
                ts = now - age_days * DAY + i
                ev = dict(ev, timestamp=ts)
                conn.execute(sa.text("INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data)"
                                     " VALUES (:s, :t, :ts, :i, :a, :d)"),
                             dict(s=sender, t=ev["event"], ts=ts, i=(ev.get("parse_data") or {}).get("intent", {}).get("name"),
                                  a=ev.get("name"), d=json.dumps(ev)))

    turn = [{"event": "user", "text": "我的电话是13812345678，请回电",
             "parse_data": {"intent": {"name": "request_callback", "confidence": 0.9},
                            "entities": [{"entity": "phone", "value": "13812345678"}], "text": "x"},
             "metadata": {"wechat": {"openid": "oABC"}}},
            {"event": "slot", "name": "callback_phone", "value": "13812345678"},
            {"event": "bot", "text": "好的，我们将拨打 13812345678 回电。", "data": {}, "metadata": {}}]
    add("old-citizen", 200, turn)
    add("new-citizen", 10, turn)
    add("mixed-citizen", 300, turn)
    add("mixed-citizen", 5, turn)  # active recently: kept whole
    from bot.handoff.store import get_store

    tickets = get_store(url)
    tickets.create_ticket("old-citizen", "rest", "requested", summary="回电 13812345678", status="callback",
                          phone="13812345678")
    return url, engine


def rows(engine, sender):
    with engine.connect() as conn:
        return [json.loads(r[0]) for r in conn.execute(
            sa.text("SELECT data FROM events WHERE sender_id = :s ORDER BY id"), {"s": sender})]


def test_delete_old_conversations(tmp_path):
    url, engine = make_db(tmp_path)
    dry = retention.run(url, days=180, dry_run=True)
    assert dry["conversations"] == 1 and dry["rows"]["events"] == 3
    assert rows(engine, "old-citizen")  # a dry run changes nothing
    report = retention.run(url, days=180)
    assert report["conversations"] == 1 and report["rows"]["events"] == 3
    assert rows(engine, "old-citizen") == []
    assert len(rows(engine, "new-citizen")) == 3 and len(rows(engine, "mixed-citizen")) == 6
    assert report["rows"]["handoff_tickets"] == 1
    assert retention.run(url, days=180)["conversations"] == 0  # safe to repeat


def test_anonymise_old_conversations(tmp_path):
    url, engine = make_db(tmp_path)
    report = retention.run(url, days=180, anonymise=True)
    assert report["conversations"] == 1
    assert rows(engine, "old-citizen") == []
    anon = retention.anon_id("old-citizen")
    events = rows(engine, anon)
    assert len(events) == 3
    dump = json.dumps(events, ensure_ascii=False)
    assert "13812345678" not in dump and "oABC" not in dump and "回电" not in events[0]["text"]
    assert events[0]["parse_data"]["intent"]["name"] == "request_callback"  # statistics still work
    assert len(rows(engine, "new-citizen")) == 3
    with engine.connect() as conn:
        ticket = conn.execute(sa.text("SELECT sender_id, summary, phone FROM handoff_tickets")).one()
    assert ticket[0] == anon and "13812345678" not in (ticket[1] or "") and ticket[2] is None
    assert retention.run(url, days=180, anonymise=True)["conversations"] == 0


def test_cli_prints_a_report(tmp_path, capsys):
    url, _ = make_db(tmp_path)
    assert retention.main(["--days", "180", "--db-url", url, "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["conversations"] == 1 and out["dry_run"] is True


def test_console_index_forgets_what_retention_removed(tmp_path):
    """The console's conversation index (shared by its workers, in the database) holds the
    citizens' texts too: anonymising resets it, and a worker that had read it — and one that
    had not — show the anonymised conversation, never the old texts."""
    from bot.console.conversations import ConversationIndex
    from bot.console.db import Database

    url, engine = make_db(tmp_path)
    db = Database(url)
    worker_a = ConversationIndex(db)
    assert "我的电话是13812345678，请回电" in [t.text for t in worker_a.get("old-citizen").turns]
    report = retention.run(url, days=180, anonymise=True)
    assert report["console_index"] == "reset"
    worker_b = ConversationIndex(db)
    for worker in (worker_a, worker_b):
        assert worker.get("old-citizen") is None
        anon = worker.get(retention.anon_id("old-citizen"))
        assert [t.text for t in anon.turns] == [retention.ANON_TEXT]
        assert {c.sender_id for c in worker.all()} == {"new-citizen", "mixed-citizen",
                                                       retention.anon_id("old-citizen")}
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT sender_id, summary FROM console_conv_index")).all())
    assert set(stored) == {"new-citizen", "mixed-citizen", retention.anon_id("old-citizen")}
    assert "13812345678" not in stored[retention.anon_id("old-citizen")]
    retention.run(url, days=180)  # delete: gone from the index of both workers
    assert worker_a.get(retention.anon_id("old-citizen")) is None
    db.engine.dispose()
