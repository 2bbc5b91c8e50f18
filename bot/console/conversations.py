"""Conversations read from Rasa's tracker store (`events` table), summarised for listing,
filtering, dashboards and the unanswered-questions view.

The index is built incrementally: each refresh reads only events no console worker has read yet
(by id), so a request costs a few cheap queries once the index is warm. It is kept in the
database (console_conv_index, console_index_state), shared by every console worker, with a copy
of the rows in each worker (see ConversationIndex). A conversation is one sender_id.

A *turn* is one citizen message and what the bot answered to it: the first answer card
(`data.custom` of a bot event) after the message gives the turn's kind, citations and
departments; a later 👍/👎 (`/feedback{"feedback": "up|down"}`) rates the latest turn
that has a card.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bot.console.db import Database, conversation_index, events, index_state
from bot.user_display import OfferedButtons

logger = logging.getLogger(__name__)

CARD_KINDS = ("answer", "clarify", "handoff", "out_of_scope", "chitchat", "fallback")
KIND_LABELS = {"answer": "已回答", "clarify": "澄清", "handoff": "转人工", "out_of_scope": "超出范围",
               "chitchat": "闲聊", "fallback": "未能回答"}
FEEDBACK_INTENT = "feedback"
EXTERNAL_PREFIX = "EXTERNAL: "
RESCAN_WINDOW = 1000  # ids below the high-water mark re-checked for late commits (PostgreSQL)


def local_tz() -> ZoneInfo:
    return ZoneInfo(os.environ.get("ZWZX_TZ") or "Asia/Shanghai")


def local_dt(ts: Optional[float], tz: Optional[ZoneInfo] = None) -> Optional[dt.datetime]:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(float(ts), tz or local_tz())


def fmt_ts(ts: Optional[float]) -> str:
    d = local_dt(ts)
    return d.strftime("%Y-%m-%d %H:%M:%S") if d else ""


def item_key(doc: Any, item: Any) -> str:
    return f"{doc}#{item}"


def _json(raw: Optional[str]) -> Dict[str, Any]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def feedback_value(data: Dict[str, Any]) -> Optional[str]:
    """'up' / 'down' for a 👍/👎 user event, None for any other event."""
    if data.get("event") != "user":
        return None
    parse = data.get("parse_data") or {}
    intent = (parse.get("intent") or {}).get("name")
    text = data.get("text") or ""
    if intent != FEEDBACK_INTENT and not text.startswith("/" + FEEDBACK_INTENT):
        return None
    for ent in parse.get("entities") or []:
        if ent.get("entity") == "feedback" and ent.get("value") in ("up", "down"):
            return ent["value"]
    m = re.search(r'"feedback"\s*:\s*"(up|down)"', text)
    return m.group(1) if m else None


def is_external(data: Dict[str, Any]) -> bool:
    text = data.get("text") or ""
    return bool((data.get("metadata") or {}).get("is_external")) or text.startswith(EXTERNAL_PREFIX)


def card_of(data: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if data.get("event") != "bot":
        return None
    custom = (data.get("data") or {}).get("custom")
    if isinstance(custom, dict) and custom.get("kind"):
        return custom
    return None


def is_staff_message(data: Dict[str, Any]) -> bool:
    return data.get("event") == "bot" and (data.get("metadata") or {}).get("from") == "staff"


@dataclass
class Turn:
    event_id: int
    sender_id: str
    ts: float
    text: str
    intent: Optional[str]
    confidence: Optional[float]
    channel: Optional[str]
    kind: Optional[str] = None
    items: List[Tuple[str, str]] = field(default_factory=list)   # (key, label)
    departments: List[str] = field(default_factory=list)
    feedback: Optional[str] = None

    @property
    def is_payload(self) -> bool:
        return self.text.startswith("/")


@dataclass
class Conversation:
    sender_id: str
    first_ts: float = 0.0
    last_ts: float = 0.0
    n_citizen: int = 0
    n_bot: int = 0
    n_staff: int = 0
    channels: Set[str] = field(default_factory=set)
    intents: Set[str] = field(default_factory=set)
    kinds: Set[str] = field(default_factory=set)
    items: Dict[str, str] = field(default_factory=dict)          # key → label
    departments: Set[str] = field(default_factory=set)
    feedback_up: int = 0
    feedback_down: int = 0
    min_confidence: Optional[float] = None
    turns: List[Turn] = field(default_factory=list)
    _rated_turn: Optional[int] = None  # index in turns of the latest turn with a card

    @property
    def first_question(self) -> str:
        for t in self.turns:
            if not t.is_payload and t.text.strip():
                return t.text
        return self.turns[0].text if self.turns else ""

    def citizen_texts(self) -> Iterable[str]:
        return (t.text for t in self.turns)

    def add(self, event_id: int, data: Dict[str, Any]) -> None:
        ts = float(data.get("timestamp") or 0.0)
        kind = data.get("event")
        if kind not in ("user", "bot"):
            return
        if kind == "user" and is_external(data):
            return
        if ts:
            self.first_ts = ts if not self.first_ts else min(self.first_ts, ts)
            self.last_ts = max(self.last_ts, ts)
        if kind == "user":
            fb = feedback_value(data)
            channel = data.get("input_channel")
            if channel:
                self.channels.add(channel)
            if fb is not None:
                if fb == "up":
                    self.feedback_up += 1
                else:
                    self.feedback_down += 1
                if self._rated_turn is not None:
                    self.turns[self._rated_turn].feedback = fb
                return
            parse = data.get("parse_data") or {}
            intent = (parse.get("intent") or {}).get("name")
            conf = (parse.get("intent") or {}).get("confidence")
            conf = float(conf) if isinstance(conf, (int, float)) else None
            text = data.get("text") or ""
            self.n_citizen += 1
            if intent:
                self.intents.add(intent)
            if conf is not None and not text.startswith("/"):
                self.min_confidence = conf if self.min_confidence is None else min(self.min_confidence, conf)
            self.turns.append(Turn(event_id, self.sender_id, ts, text, intent, conf, channel))
            return
        # bot event
        if is_staff_message(data):
            self.n_staff += 1
            return
        card = card_of(data)
        if data.get("text"):
            self.n_bot += 1
        if card is None:
            return
        kind_name = str(card.get("kind"))
        self.kinds.add(kind_name)
        citations = [c for c in card.get("citations") or [] if isinstance(c, dict)]
        keys = []
        for c in citations:
            if c.get("doc") is None or c.get("item") is None:
                continue
            key = item_key(c.get("doc"), c.get("item"))
            label = c.get("label") or c.get("title") or key
            self.items[key] = label
            keys.append((key, label))
        depts = [str(d) for d in card.get("departments") or [] if d]
        self.departments.update(depts)
        if self.turns and self.turns[-1].kind is None:
            turn = self.turns[-1]
            turn.kind, turn.items, turn.departments = kind_name, keys, depts
            self._rated_turn = len(self.turns) - 1


# ------------------------------------------------------------------ the shared index
def summary_json(conv: Conversation) -> str:
    """A conversation's summary as stored in console_conv_index (everything `Conversation.add`
    builds, so a worker can continue it with later events)."""
    return json.dumps({
        "v": 1, "first_ts": conv.first_ts, "last_ts": conv.last_ts, "n_citizen": conv.n_citizen,
        "n_bot": conv.n_bot, "n_staff": conv.n_staff, "channels": sorted(conv.channels),
        "intents": sorted(conv.intents), "kinds": sorted(conv.kinds), "items": conv.items,
        "departments": sorted(conv.departments), "feedback_up": conv.feedback_up,
        "feedback_down": conv.feedback_down, "min_confidence": conv.min_confidence,
        "rated_turn": conv._rated_turn,
        "turns": [[t.event_id, t.ts, t.text, t.intent, t.confidence, t.channel, t.kind,
                   [list(i) for i in t.items], t.departments, t.feedback] for t in conv.turns],
    }, ensure_ascii=False, separators=(",", ":"))


def summary_from_json(sender_id: str, raw: str) -> Conversation:
    d = json.loads(raw)
    conv = Conversation(sender_id, first_ts=d["first_ts"], last_ts=d["last_ts"], n_citizen=d["n_citizen"],
                        n_bot=d["n_bot"], n_staff=d["n_staff"], channels=set(d["channels"]),
                        intents=set(d["intents"]), kinds=set(d["kinds"]), items=dict(d["items"]),
                        departments=set(d["departments"]), feedback_up=d["feedback_up"],
                        feedback_down=d["feedback_down"], min_confidence=d["min_confidence"])
    conv._rated_turn = d.get("rated_turn")
    conv.turns = [Turn(t[0], sender_id, t[1], t[2], t[3], t[4], t[5], t[6], [tuple(i) for i in t[7]], t[8], t[9])
                  for t in d["turns"]]
    return conv


BATCH_EVENTS = 5000        # events read per index transaction (bounds how long the state row is held)
DELETION_CHECK_SECONDS = 60.0


class ConversationIndex:
    """All conversations of the tracker store, kept up to date by `refresh()`.

    The index lives in the database (tables console_conv_index and console_index_state,
    bot/console/db.py), not in one process: every console worker — several processes behind
    nginx in the production profile — reads and extends the same index. `refresh()`

    1. looks for events no worker has read yet (ids above the shared high-water mark, plus ids
       within RESCAN_WINDOW below it that were committed late — PostgreSQL hands out ids before
       commit); if there are any, it takes the state row (FOR UPDATE; SQLite: the write lock),
       adds them to the summaries of their conversations and writes those rows with a new
       revision — in batches of BATCH_EVENTS, so no worker waits long for another;
    2. copies into this worker's `conversations` the rows whose revision is newer than the
       last one it copied (a cache of the shared rows, replaced whenever a row changes).

    A conversation stored through any Rasa server is therefore visible on every worker at its
    next request, without a restart. Events deleted behind the index's back (retention resets
    the index itself, see :func:`reset_index`) are noticed by comparing how many events the
    index has read with how many are left, at most every DELETION_CHECK_SECONDS per worker;
    the index is then rebuilt.
    """

    def __init__(self, db: Database):
        self.db = db
        self.conversations: Dict[str, Conversation] = {}   # this worker's copy of the shared rows
        self.rev = 0                                        # newest revision copied
        self.generation: Optional[int] = None
        self._has_events = False
        self._last_deletion_check = 0.0
        self._lock = threading.Lock()

    # -------------------------------------------------------------- shared state
    def _state(self, conn) -> Any:
        return conn.execute(sa.select(index_state).where(index_state.c.id == 1)).first()

    def _ensure_state(self) -> None:
        with self.db.engine.connect() as conn:
            if self._state(conn) is not None:
                return
        try:
            with self.db.engine.begin() as conn:
                conn.execute(index_state.insert().values(id=1, generation=1, rev=0, high_water=0,
                                                         seen_recent="[]", n_read=0, updated_at=time.time()))
        except sa.exc.IntegrityError:
            pass  # another worker created it first

    @staticmethod
    def _unread(conn, state) -> Tuple[List[int], int]:
        """(ids of events not read yet in ascending order — at most BATCH_EVENTS —, how many
        ids at or below the high-water mark are unread: late commits)."""
        seen = set(json.loads(state.seen_recent or "[]"))
        low = max(0, int(state.high_water) - RESCAN_WINDOW)
        rows = conn.execute(sa.select(events.c.id).where(events.c.id > low).order_by(events.c.id)
                            .limit(BATCH_EVENTS + RESCAN_WINDOW + 1))
        unread = [r[0] for r in rows if r[0] > 0 and r[0] not in seen]
        late = sum(1 for i in unread if i <= state.high_water)
        return unread[:BATCH_EVENTS], late

    def _lock_state(self, conn) -> Any:
        """Take the state row for this transaction (serialises writers across processes)."""
        if conn.dialect.name == "postgresql":
            # the profile's statement timeout (PGOPTIONS) is for citizens' requests; a worker may
            # wait for another worker's batch a little longer
            conn.execute(sa.text("SET LOCAL statement_timeout = '60s'"))
        conn.execute(index_state.update().where(index_state.c.id == 1).values(updated_at=time.time()))
        return self._state(conn)

    def _write_batch(self) -> bool:
        """Read the next batch of unread events into the shared index; False when none were left."""
        with self.db.engine.begin() as conn:
            state = self._lock_state(conn)
            new_ids, _late = self._unread(conn, state)
            if not new_ids:
                return False
            convs: Dict[str, Conversation] = {}
            rows = conn.execute(
                sa.select(events.c.id, events.c.sender_id, events.c.data)
                .where(events.c.id.in_(new_ids), events.c.type_name.in_(["user", "bot"]))
                .order_by(events.c.id)).all()
            senders = sorted({r.sender_id for r in rows})
            for i in range(0, len(senders), 500):
                chunk = senders[i:i + 500]
                for r in conn.execute(sa.select(conversation_index.c.sender_id, conversation_index.c.summary)
                                      .where(conversation_index.c.sender_id.in_(chunk))):
                    convs[r.sender_id] = summary_from_json(r.sender_id, r.summary)
            existing = set(convs)
            for row in rows:
                conv = convs.get(row.sender_id)
                if conv is None:
                    conv = convs[row.sender_id] = Conversation(row.sender_id)
                conv.add(row.id, _json(row.data))
            rev = int(state.rev) + (1 if convs else 0)
            for sid, conv in convs.items():
                values = {"rev": rev, "summary": summary_json(conv)}
                if sid in existing:
                    conn.execute(conversation_index.update().where(conversation_index.c.sender_id == sid)
                                 .values(**values))
                else:
                    conn.execute(conversation_index.insert().values(sender_id=sid, **values))
            high_water = max(int(state.high_water), new_ids[-1])
            seen = {i for i in json.loads(state.seen_recent or "[]") + new_ids if i > high_water - RESCAN_WINDOW}
            conn.execute(index_state.update().where(index_state.c.id == 1).values(
                rev=rev, high_water=high_water, seen_recent=json.dumps(sorted(seen)),
                n_read=int(state.n_read) + len(new_ids), updated_at=time.time()))
            return True

    def _deleted_behind_our_back(self, conn, state, late: int) -> bool:
        present = conn.execute(sa.select(sa.func.count()).select_from(events)
                               .where(events.c.id <= state.high_water)).scalar() or 0
        return present - late < int(state.n_read)

    def refresh(self) -> None:
        with self._lock:
            if not self._has_events:
                # Rasa creates the table on its first start; until then there is nothing to read
                self._has_events = self.db.has_events_table()
                if not self._has_events:
                    return
            self.db.ensure_tables()
            self._ensure_state()
            now = time.time()
            deleted = False
            with self.db.engine.connect() as conn:
                state = self._state(conn)
                unread, late = self._unread(conn, state)
                if now - self._last_deletion_check >= DELETION_CHECK_SECONDS:
                    self._last_deletion_check = now
                    deleted = self._deleted_behind_our_back(conn, state, late)
            if deleted:
                with self.db.engine.begin() as conn:
                    locked = self._lock_state(conn)
                    if (locked.generation, locked.n_read) == (state.generation, state.n_read):
                        logger.info("console index: events were deleted; rebuilding the index")
                        reset_index(conn)
            if unread or deleted:
                while self._write_batch():
                    pass
            self._copy_changes()

    def _copy_changes(self) -> None:
        with self.db.engine.connect() as conn:
            generation = conn.execute(sa.select(index_state.c.generation)
                                      .where(index_state.c.id == 1)).scalar()
            if generation != self.generation:  # reset (retention, deletions): start over
                self.conversations, self.rev, self.generation = {}, 0, generation
            rows = conn.execute(sa.select(conversation_index.c.sender_id, conversation_index.c.rev,
                                          conversation_index.c.summary)
                                .where(conversation_index.c.rev > self.rev)).all()
        for r in rows:
            self.conversations[r.sender_id] = summary_from_json(r.sender_id, r.summary)
            self.rev = max(self.rev, int(r.rev))

    def all(self) -> List[Conversation]:
        self.refresh()
        return [c for c in self.conversations.values() if c.turns or c.n_bot or c.n_staff]

    def get(self, sender_id: str) -> Optional[Conversation]:
        self.refresh()
        return self.conversations.get(sender_id)


def reset_index(conn) -> None:
    """Empty the shared index in this transaction (every worker rebuilds it from `events` at its
    next refresh). For changes to `events` the index cannot notice by itself: retention's
    anonymising rewrites texts and conversation ids in place."""
    if not sa.inspect(conn).has_table(index_state.name):
        return
    # the state row first: it is the writers' lock
    conn.execute(index_state.update().where(index_state.c.id == 1).values(
        generation=index_state.c.generation + 1, high_water=0, seen_recent="[]", n_read=0,
        updated_at=time.time()))
    conn.execute(conversation_index.delete())


_indexes: Dict[str, ConversationIndex] = {}
_indexes_lock = threading.Lock()


def get_index(db: Database) -> ConversationIndex:
    """This process's handle on the shared index of `db` (one per database URL)."""
    with _indexes_lock:
        idx = _indexes.get(db.url)
        if idx is None:
            idx = _indexes[db.url] = ConversationIndex(db)
        return idx


# ------------------------------------------------------------------ transcript
def load_transcript(db: Database, sender_id: str) -> List[Dict[str, Any]]:
    """Every message of a conversation in order, for the transcript page:
    {"id", "who": citizen|bot|staff|card|feedback, "ts", "time", ...}."""
    if not db.has_events_table():
        return []
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.id, events.c.data)
                            .where(events.c.sender_id == sender_id,
                                   events.c.type_name.in_(["user", "bot"]))
                            .order_by(events.c.id)).all()
    out: List[Dict[str, Any]] = []
    last_card: Optional[Dict[str, Any]] = None
    offered = OfferedButtons()  # what a payload shows as: the title the bot offered (as the widget)
    for row in rows:
        data = _json(row.data)
        offered.add_event(data)
        ts = data.get("timestamp")
        base = {"id": row.id, "ts": ts, "time": fmt_ts(ts)}
        if data.get("event") == "user":
            if is_external(data):
                continue
            fb = feedback_value(data)
            if fb is not None:
                out.append(dict(base, who="feedback", value=fb))
                if last_card is not None:
                    last_card["feedback"] = fb
                continue
            parse = data.get("parse_data") or {}
            intent = parse.get("intent") or {}
            entities = [{"entity": e.get("entity"), "value": e.get("value"),
                         "extractor": e.get("extractor")}
                        for e in parse.get("entities") or [] if isinstance(e, dict)]
            text = data.get("text") or ""
            out.append(dict(base, who="citizen", text=text,
                            display=offered.display(text, (data.get("metadata") or {}).get("display")),
                            intent=intent.get("name"), confidence=intent.get("confidence"),
                            entities=entities, channel=data.get("input_channel")))
        elif is_staff_message(data):
            out.append(dict(base, who="staff", text=data.get("text") or "",
                            staff=(data.get("metadata") or {}).get("staff")))
        else:
            # One bot event may carry text, buttons and a card together (e.g. the domain's
            # utter_out_of_scope): the text and buttons first, then the card, all shown.
            card = card_of(data)
            buttons = (data.get("data") or {}).get("buttons") or []
            buttons = [b for b in buttons if isinstance(b, dict)]
            if data.get("text") or buttons:
                out.append(dict(base, who="bot", text=data.get("text") or "", buttons=buttons))
            if card is not None:
                item = dict(base, who="card", kind=card.get("kind"),
                            kind_label=KIND_LABELS.get(str(card.get("kind")), card.get("kind")),
                            citations=[c for c in card.get("citations") or [] if isinstance(c, dict)],
                            departments=card.get("departments") or [],
                            candidates=card.get("candidates") or [],
                            ticket=card.get("ticket"), feedback=None)
                out.append(item)
                last_card = item
    return out
