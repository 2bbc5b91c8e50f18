"""SQL tracker store with a validated in-process cache of recent conversations.

Rasa's ``SQLTrackerStore.retrieve`` re-reads and re-parses every event of the current session on
each message (SQL query, ``json.loads`` and event deserialisation per row): about a third of a
turn's CPU in bench/profile_turn.py. This store keeps, for the most recently used conversations,
the stored rows of the current session as event objects, and answers ``retrieve`` from them.

The database stays the only source of truth:

* Every ``retrieve`` first asks the database for the conversation's row count and highest row
  id (one indexed query). The cache is used only when both equal what this process last read or
  wrote; anything written by another process (a second Rasa server, a script, a deletion) makes
  them differ and the conversation is re-read from the database exactly as Rasa reads it.
* ``save`` is Rasa's (same rows, one commit per turn); the rows it inserted are appended to the
  cache entry only after the commit succeeded. A failed commit drops the entry.
* The session filter is Rasa's: the rows whose timestamp is at or after the latest
  ``session_started`` row, in id order.

So a retrieve returns the same tracker as Rasa's store would, and nothing is kept that is not
in the database. ``retrieve_full_tracker`` (all sessions; staff views, history) is not cached.

Cheaper database work, same rows:

* SQLite connections are kept open (a ``QueuePool``, SQLAlchemy 2.0's default for SQLite files)
  instead of SQLAlchemy 1.4's ``NullPool``, which opened and closed a connection for every
  session: ~0.15 ms each, two sessions a message.
* ``save`` inserts the turn's rows with one Core ``INSERT`` (executemany) instead of ORM objects
  and a unit-of-work flush, and checks the cache entry against the database once, after the
  insert and in its transaction (see ``save``), instead of a stamp query before it.
* A conversation with no rows yet is remembered too (count 0), so its first save needs no count.

The cache is bounded twice, least recently used conversations first: at most
``max_cached_conversations`` conversations and at most ``max_cached_rows`` rows in all (a cached
row, an event object with its parse data, takes ~1.5 KB: 128 conversations of 10 turns ≈ 11 000
rows ≈ 17 MB). A conversation that falls out is read from the database at its next message, as
Rasa reads it, so the bounds change CPU on such a message, never a reply. Both can be set in the
``tracker_store`` section of endpoints.yml. (Before, the only bound was 2000 conversations: a
Rasa server kept every conversation of its last hours, 38-59 MB after bench/run.py's load and
up to ~300 MB for 2000 conversations of 10 turns; docs/benchmarks.md, "Serving memory,
2026-12-06".)
"""
from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Text, Tuple

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import Event, SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONVERSATIONS = 128
DEFAULT_MAX_ROWS = 12_000


def event_row(sender_id: Text, event: Event) -> Dict[Text, Any]:
    """The column values of the ``events`` row Rasa's SQLTrackerStore.save writes for one event
    — a user event kept lean (bot.ops.limits.lean_event_data: no token lists of long texts, at
    most ZWZX_MAX_EVENT_BYTES)."""
    from bot.ops.limits import lean_event_data

    data, _ = lean_event_data(event.as_dict())
    return dict(
        sender_id=sender_id,
        type_name=event.type_name,
        timestamp=data.get("timestamp"),
        intent_name=data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
        action_name=data.get("name"),
        data=json.dumps(data),
    )


def event_record(store: SQLTrackerStore, sender_id: Text, event: Event) -> Any:
    """:func:`event_row` as the store's ORM object (``SQLEvent``)."""
    return store.SQLEvent(**event_row(sender_id, event))


def pooled_sqlite_engine(engine: Any) -> Any:
    """``engine`` itself, or for a SQLite file behind SQLAlchemy 1.4's ``NullPool`` (a new
    connection for every session) an engine on the same URL that keeps its connections open
    (``QueuePool``, usable from any thread, as SQLAlchemy 2.0 makes it by default)."""
    url = engine.url
    if (url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:"
            or "mode=memory" in str(url) or not isinstance(engine.pool, sa.pool.NullPool)):
        return engine
    return sa.create_engine(url, poolclass=sa.pool.QueuePool, connect_args={"check_same_thread": False})


@dataclass
class _Row:
    timestamp: Optional[float]
    type_name: Text
    event: Event


@dataclass
class _Entry:
    count: int            # rows of this sender in the database (all sessions)
    max_id: Optional[int]  # highest row id of this sender
    rows: List[_Row] = field(default_factory=list)  # rows of the latest session and after

    @property
    def stamp(self) -> Tuple[int, Optional[int]]:
        return self.count, self.max_id

    def _session_rows(self) -> List[_Row]:
        starts = [r.timestamp for r in self.rows
                  if r.type_name == SessionStarted.type_name and r.timestamp is not None]
        if not starts:
            return self.rows
        start = max(starts)
        return [r for r in self.rows if r.timestamp is not None and r.timestamp >= start]

    def session_events(self) -> List[Event]:
        return [r.event for r in self._session_rows()]

    def prune(self) -> None:
        """Forget rows before the latest session start (the latest start only moves forward)."""
        self.rows = list(self._session_rows())


class CachedSQLTrackerStore(SQLTrackerStore):
    """Rasa's SQLTrackerStore whose ``retrieve`` is served from a validated cache."""

    def __init__(self, *args: Any, max_cached_conversations: int = DEFAULT_MAX_CONVERSATIONS,
                 max_cached_rows: int = DEFAULT_MAX_ROWS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pooled = pooled_sqlite_engine(self.engine)
        if pooled is not self.engine:
            self.engine.dispose()
            self.engine = pooled
            self.sessionmaker = sa.orm.session.sessionmaker(bind=self.engine)
        self.max_cached_conversations = int(max_cached_conversations)
        self.max_cached_rows = int(max_cached_rows)
        self._cache: "OrderedDict[Text, _Entry]" = OrderedDict()
        table = self.SQLEvent.__tablename__
        self._stamp_sql = sa.text(f"SELECT count(id), max(id) FROM {table} WHERE sender_id = :sender_id")
        self._stamp_after_sql = sa.text(f"SELECT count(id), max(id), count(CASE WHEN id > :before THEN 1 END) "
                                        f"FROM {table} WHERE sender_id = :sender_id")
        self.hits = 0
        self.misses = 0

    # -- helpers -------------------------------------------------------------------------
    def _stamp(self, session: Any, sender_id: Text) -> Tuple[int, Optional[int]]:
        # Plain SQL: building the same ORM query costs more than running it.
        count, max_id = session.execute(self._stamp_sql, {"sender_id": sender_id}).one()
        return int(count or 0), max_id

    @property
    def cached_rows(self) -> int:
        return sum(len(e.rows) for e in self._cache.values())

    def _remember(self, sender_id: Text, entry: _Entry) -> None:
        """Cache ``entry`` as the most recently used, then drop the least recently used entries
        while either bound is exceeded (``entry`` last: a conversation longer than the row bound
        is not cached at all)."""
        self._cache[sender_id] = entry
        self._cache.move_to_end(sender_id)
        while len(self._cache) > self.max_cached_conversations:
            self._cache.popitem(last=False)
        rows = self.cached_rows
        while self._cache and rows > self.max_cached_rows:
            rows -= len(self._cache.popitem(last=False)[1].rows)

    def _tracker(self, sender_id: Text, events: List[Event]) -> Optional[DialogueStateTracker]:
        if not (self.domain and events):
            return None
        return DialogueStateTracker.from_events(sender_id, events, self.domain.slots)

    # -- reads ---------------------------------------------------------------------------
    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        with self.session_scope() as session:
            count, max_id = self._stamp(session, sender_id)
            entry = self._cache.get(sender_id)
            if entry is not None and entry.stamp == (count, max_id):
                self.hits += 1
                self._cache.move_to_end(sender_id)
                return self._tracker(sender_id, entry.session_events())
            self.misses += 1
            # The stamp is read before the rows: a write in between makes the stamp stale, so
            # the next retrieve misses again instead of trusting rows it never saw.
            records = self._event_query(session, sender_id, fetch_events_from_all_sessions=False).all()
            rows = [_Row(r.timestamp, r.type_name, Event.from_parameters(json.loads(r.data)))
                    for r in records]
        rows = [r for r in rows if r.event is not None]
        # also a conversation with no rows yet (count 0): its first save then takes the fast path
        self._remember(sender_id, _Entry(count, max_id, rows))
        return self._tracker(sender_id, [r.event for r in rows])

    # -- write ---------------------------------------------------------------------------
    def _insert(self, session: Any, sender_id: Text, events: List[Event]) -> List[Dict[Text, Any]]:
        rows = [event_row(sender_id, event) for event in events]
        if rows:
            session.execute(self.SQLEvent.__table__.insert(), rows)
        return rows

    def _stamp_after_insert(self, session: Any, sender_id: Text, before: Optional[int]) -> Tuple[int, Optional[int], int]:
        """Row count, highest id and rows with an id above ``before`` of this sender, read in
        the insert's transaction (SQLite holds the write lock from the insert to the commit)."""
        count, max_id, newer = session.execute(self._stamp_after_sql,
                                               {"sender_id": sender_id, "before": before or 0}).one()
        return int(count or 0), max_id, int(newer or 0)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """SQLTrackerStore.save (same rows, one commit), then the cache entry follows.

        With a cache entry the unsaved events are the tracker's events after the entry's rows of
        the latest session (Rasa counts them in the database). Whether the entry still was the
        database is checked after the insert, in the same transaction: the conversation must
        have the entry's rows plus exactly the rows just inserted (count, and rows above the
        entry's highest id). Otherwise another writer got in since the retrieve: the insert is
        rolled back and done Rasa's way (count the stored rows, insert the rest), and the entry
        is dropped."""
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        entry = self._cache.pop(sender_id, None)  # back in only once the commit succeeded
        with self.session_scope() as session:
            rows: List[Dict[Text, Any]] = []
            events: List[Event] = []
            stamp = None
            if entry is not None:
                stored = len(entry._session_rows())
                events = list(itertools.islice(tracker.events, stored, len(tracker.events)))
                rows = self._insert(session, sender_id, events)
                count, max_id, newer = self._stamp_after_insert(session, sender_id, entry.max_id)
                if count == entry.count + len(rows) and newer == len(rows) \
                        and (rows or max_id == entry.max_id):
                    stamp = (count, max_id)
                else:
                    session.rollback()
                    entry = None
            if entry is None:
                self._insert(session, sender_id, list(self._additional_events(session, tracker)))
            session.commit()
        if entry is None or stamp is None:
            return
        if rows:
            # the cache holds what the database holds (a lean user event is re-read from its row)
            entry.rows.extend(
                _Row(row["timestamp"], row["type_name"],
                     event if event.type_name != "user" else
                     (Event.from_parameters(json.loads(row["data"])) or event))
                for row, event in zip(rows, events))
            entry.count, entry.max_id = stamp
            entry.prune()
        self._remember(sender_id, entry)
        logger.debug(f"Tracker with sender_id '{sender_id}' stored to database")
