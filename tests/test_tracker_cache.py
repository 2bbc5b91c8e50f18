"""The cached SQL tracker store returns what Rasa's SQLTrackerStore returns, on the same database,
and notices writes made by anyone else (another process, a deletion)."""
import asyncio
import time

import pytest
import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (ActionExecuted, BotUttered, SessionStarted, SlotSet,
                                     UserUttered)
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

from bot.ops.tracker_cache import CachedSQLTrackerStore
from tests.servers import ROOT

DOMAIN = Domain.load(str(ROOT / "domain.yml"))


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def stores(tmp_path):
    db = str(tmp_path / "tracker.db")
    cached = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    plain = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    return cached, plain


def state(tracker):
    return tracker.current_state(EventVerbosity.ALL) if tracker else None


def turn(tracker, text, slot_value=None, ts=None):
    ts = ts or time.time()
    tracker.update(UserUttered(text, {"name": "ask_policy", "confidence": 0.9},
                               parse_data={"text": text, "intent": {"name": "ask_policy", "confidence": 0.9},
                                           "entities": []}, timestamp=ts))
    tracker.update(ActionExecuted("action_answer", timestamp=ts + 0.01))
    if slot_value is not None:
        tracker.update(SlotSet("current_item", slot_value, timestamp=ts + 0.02))
    tracker.update(BotUttered("好的，您好", timestamp=ts + 0.03))
    tracker.update(ActionExecuted("action_listen", timestamp=ts + 0.04))


def new_session(tracker, ts):
    tracker.update(ActionExecuted("action_session_start", timestamp=ts))
    tracker.update(SessionStarted(timestamp=ts + 0.001))
    tracker.update(ActionExecuted("action_listen", timestamp=ts + 0.002))


def one_turn_conversation(store, sid, text, slot_value=None):
    """A conversation with a session start and one turn, saved through `store`."""
    tracker = DialogueStateTracker(sid, DOMAIN.slots)
    new_session(tracker, time.time() - 10)
    turn(tracker, text, slot_value=slot_value)
    run(store.save(tracker))


def test_cached_retrieve_equals_rasa_retrieve_over_turns_and_sessions(stores):
    cached, plain = stores
    sid = "cache-equal"
    assert run(cached.retrieve(sid)) is None
    tracker = DialogueStateTracker(sid, DOMAIN.slots)
    t0 = time.time() - 100
    new_session(tracker, t0)
    run(cached.save(tracker))
    for i in range(6):
        tracker = run(cached.retrieve(sid))
        turn(tracker, f"问题{i}", slot_value=float(i), ts=t0 + 1 + i)
        if i == 3:  # a new session inside the same conversation
            new_session(tracker, t0 + 4.5)
        run(cached.save(tracker))
        assert state(run(cached.retrieve(sid))) == state(run(plain.retrieve(sid)))
    assert cached.hits >= 6
    final = run(cached.retrieve(sid))
    assert final.get_slot("current_item") == 5.0
    # only the latest session's events, as Rasa returns them
    assert [e.text for e in final.events if isinstance(e, UserUttered)] == ["问题4", "问题5"]


def test_write_by_another_store_is_seen(stores):
    cached, plain = stores
    sid = "cache-foreign-write"
    one_turn_conversation(cached, sid, "第一问", slot_value=1.0)
    run(cached.retrieve(sid))  # now cached
    other = run(plain.retrieve(sid))   # e.g. a second Rasa server on the same database
    turn(other, "第二问", slot_value=2.0)
    run(plain.save(other))
    seen = run(cached.retrieve(sid))
    assert seen.get_slot("current_item") == 2.0
    assert state(seen) == state(run(plain.retrieve(sid)))


def test_deleted_conversation_is_not_served_from_cache(stores):
    cached, _ = stores
    sid = "cache-deleted"
    one_turn_conversation(cached, sid, "要删除的问题")
    assert run(cached.retrieve(sid)) is not None
    with cached.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE sender_id = :s"), {"s": sid})
    assert run(cached.retrieve(sid)) is None


def test_failed_save_keeps_nothing_that_is_not_in_the_database(stores, monkeypatch):
    cached, plain = stores
    sid = "cache-failed-save"
    one_turn_conversation(cached, sid, "第一问", slot_value=1.0)
    tracker = run(cached.retrieve(sid))
    turn(tracker, "第二问", slot_value=2.0)

    def broken_commit(self):
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(sa.orm.Session, "commit", broken_commit)
    with pytest.raises(sa.exc.OperationalError):
        run(cached.save(tracker))
    monkeypatch.undo()
    after = run(cached.retrieve(sid))
    assert after.get_slot("current_item") == 1.0
    assert state(after) == state(run(plain.retrieve(sid)))


def test_cache_is_bounded(tmp_path):
    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "t.db"),
                                  max_cached_conversations=3)
    for i in range(5):
        tracker = DialogueStateTracker(f"bounded-{i}", DOMAIN.slots)
        new_session(tracker, time.time())
        run(store.save(tracker))
        run(store.retrieve(f"bounded-{i}"))
    assert len(store._cache) == 3
    assert run(store.retrieve("bounded-0")) is not None  # evicted, read from the database


def _rows(store, sid):
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT sender_id, type_name, timestamp, intent_name, action_name, data FROM events "
            "WHERE sender_id = :s ORDER BY id"), {"s": sid})]


def test_rows_written_are_rasas_rows(tmp_path):
    """The same turns saved through our store and through Rasa's give the same rows."""
    cached = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "ours.db"))
    plain = SQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "rasa.db"))
    sid = "same-rows"
    t0 = time.time() - 100
    for store in (cached, plain):
        tracker = DialogueStateTracker(sid, DOMAIN.slots)
        new_session(tracker, t0)
        run(store.save(tracker))
        for i in range(4):
            tracker = run(store.retrieve(sid))
            turn(tracker, f"问题{i}", slot_value=float(i) if i % 2 else None, ts=t0 + 1 + i)
            run(store.save(tracker))
            run(store.save(tracker))  # nothing new: nothing written
    assert _rows(cached, sid) == _rows(plain, sid)
    assert len(_rows(cached, sid)) == 3 + 4 * 5 - 2


def test_sqlite_connections_are_pooled(tmp_path):
    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "pool.db"))
    assert isinstance(store.engine.pool, sa.pool.QueuePool)
    one_turn_conversation(store, "pooled", "问题")
    assert run(store.retrieve("pooled")) is not None
    assert store.engine.pool.checkedin() >= 1  # kept open for the next session


def test_write_by_another_store_before_the_insert_drops_the_entry(stores, monkeypatch):
    """Another writer gets in between our retrieve and our save's insert: the check after the
    insert sees it, the save is done Rasa's way, the entry is not kept and the next retrieve
    reads the rows."""
    cached, plain = stores
    sid = "cache-race"
    one_turn_conversation(cached, sid, "第一问", slot_value=1.0)
    tracker = run(cached.retrieve(sid))
    turn(tracker, "第二问", slot_value=2.0)
    original = CachedSQLTrackerStore._insert
    calls = []

    def foreign_write_then_insert(self, session, sender_id, events):
        if not calls:  # another process commits just before our insert
            with plain.engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                     "VALUES (:s, 'slot', :t, :d)"),
                             {"s": sid, "t": time.time(),
                              "d": '{"event": "slot", "name": "current_item", "value": 9.0, "timestamp": %f}'
                                   % time.time()})
        calls.append(len(events))
        return original(self, session, sender_id, events)

    monkeypatch.setattr(CachedSQLTrackerStore, "_insert", foreign_write_then_insert)
    run(cached.save(tracker))
    assert len(calls) == 2  # the checked insert was rolled back and done again Rasa's way
    monkeypatch.undo()
    assert sid not in cached._cache
    seen = run(cached.retrieve(sid))
    assert state(seen) == state(run(plain.retrieve(sid)))
    assert 9.0 in [e.value for e in seen.events if isinstance(e, SlotSet)]  # the foreign row is seen


def test_rows_deleted_before_a_save_are_handled_as_rasa(tmp_path):
    """Rows deleted between retrieve and save (retention, a staff tool) make the check fail:
    the save then writes what Rasa's store writes in the same case, with or without new events."""
    t0 = time.time() - 50
    for with_new_turn in (False, True):
        results = []
        for name, cls in (("ours", CachedSQLTrackerStore), ("rasa", SQLTrackerStore)):
            store = cls(DOMAIN, dialect="sqlite", db=str(tmp_path / f"{name}-{with_new_turn}.db"))
            sid = "deleted-before-save"
            tracker = DialogueStateTracker(sid, DOMAIN.slots)
            new_session(tracker, t0)
            turn(tracker, "第一问", slot_value=1.0, ts=t0 + 1)
            run(store.save(tracker))
            tracker = run(store.retrieve(sid))
            if with_new_turn:
                turn(tracker, "第二问", slot_value=2.0, ts=t0 + 2)
            with store.engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM events WHERE sender_id = :s AND type_name = 'bot'"), {"s": sid})
            run(store.save(tracker))
            results.append(([r[1:] for r in _rows(store, sid)], state(run(store.retrieve(sid)))))
        assert results[0] == results[1], with_new_turn


def test_first_save_of_a_new_conversation_is_cached(stores):
    cached, plain = stores
    sid = "cache-new"
    assert run(cached.retrieve(sid)) is None
    assert cached._cache[sid].count == 0
    tracker = DialogueStateTracker(sid, DOMAIN.slots)
    new_session(tracker, time.time() - 5)
    turn(tracker, "第一问")
    run(cached.save(tracker))
    assert cached._cache[sid].count == len(tracker.events)
    hits = cached.hits
    assert state(run(cached.retrieve(sid))) == state(run(plain.retrieve(sid)))
    assert cached.hits == hits + 1


def test_cache_is_bounded_by_rows_least_recently_used_first(tmp_path):
    """At most max_cached_rows rows in all: the least recently used conversations go first, and
    a conversation that went is read from the database as Rasa's store reads it."""
    db = str(tmp_path / "rows.db")
    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db, max_cached_conversations=100,
                                  max_cached_rows=40)
    plain = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    sids = [f"rows-{i}" for i in range(8)]
    for n, sid in enumerate(sids):
        tracker = DialogueStateTracker(sid, DOMAIN.slots)
        new_session(tracker, time.time() - 10)
        for k in range(n % 3 + 1):
            turn(tracker, f"问题{k}", slot_value=float(k))
        run(store.save(tracker))
        for _ in range(2):  # the next message of the conversation
            tracker = run(store.retrieve(sid))
            turn(tracker, "还有吗")
            run(store.save(tracker))
            assert store.cached_rows <= 40 and len(store._cache) <= 100
            assert sid in store._cache  # the conversation of the message is kept
    kept = list(store._cache)
    assert kept == sids[-len(kept):] and 1 < len(kept) < len(sids)
    for sid in sids:
        assert state(run(store.retrieve(sid))) == state(run(plain.retrieve(sid)))
        assert store.cached_rows <= 40


def test_a_conversation_longer_than_the_row_bound_is_not_cached(tmp_path):
    db = str(tmp_path / "long.db")
    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=db, max_cached_rows=10)
    plain = SQLTrackerStore(DOMAIN, dialect="sqlite", db=db)
    tracker = DialogueStateTracker("long-1", DOMAIN.slots)
    new_session(tracker, time.time() - 10)
    for k in range(4):
        turn(tracker, f"问题{k}")
    run(store.save(tracker))
    assert store.cached_rows == 0 and not store._cache
    got = run(store.retrieve("long-1"))
    assert state(got) == state(run(plain.retrieve("long-1")))
    turn(got, "再问一个")
    run(store.save(got))
    assert store.cached_rows == 0
    assert state(run(store.retrieve("long-1"))) == state(run(plain.retrieve("long-1")))


def test_default_bounds_and_endpoints_settings(tmp_path):
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import EndpointConfig

    from bot.ops import tracker_cache

    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "d.db"))
    assert (store.max_cached_conversations, store.max_cached_rows) == (128, 12_000)
    assert (tracker_cache.DEFAULT_MAX_CONVERSATIONS, tracker_cache.DEFAULT_MAX_ROWS) == (128, 12_000)
    configured = TrackerStore.create(EndpointConfig(type="bot.ops.tracker_cache.CachedSQLTrackerStore",
                                                    dialect="sqlite", db=str(tmp_path / "e.db"),
                                                    max_cached_conversations=7, max_cached_rows=99), DOMAIN)
    store = getattr(configured, "_tracker_store", configured)  # Rasa may wrap it
    assert (store.max_cached_conversations, store.max_cached_rows) == (7, 99)
