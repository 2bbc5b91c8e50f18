"""Conversations read from Rasa's tracker store (`events` table), summarised for listing,
filtering, dashboards and the unanswered-questions view.

The index is built incrementally: each refresh reads only events it has not seen (by id), so a
request costs one cheap query once the index is warm. A conversation is one sender_id.

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
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from bot.console.db import Database, events
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


class ConversationIndex:
    """All conversations of the tracker store, kept up to date by `refresh()`."""

    def __init__(self, db: Database):
        self.db = db
        self.conversations: Dict[str, Conversation] = {}
        self.high_water = 0
        self.seen_recent: Set[int] = set()
        self._has_events = False
        self._lock = threading.Lock()

    def refresh(self) -> None:
        with self._lock:
            if not self._has_events:
                # Rasa creates the table on its first start; until then there is nothing to read
                self._has_events = self.db.has_events_table()
                if not self._has_events:
                    return
            low = max(0, self.high_water - RESCAN_WINDOW)
            with self.db.engine.connect() as conn:
                ids = [r[0] for r in conn.execute(sa.select(events.c.id).where(events.c.id > low))]
                new_ids = sorted(i for i in ids if i not in self.seen_recent and i > 0)
                for chunk_start in range(0, len(new_ids), 2000):
                    chunk = new_ids[chunk_start:chunk_start + 2000]
                    rows = conn.execute(
                        sa.select(events.c.id, events.c.sender_id, events.c.type_name, events.c.data)
                        .where(events.c.id.in_(chunk), events.c.type_name.in_(["user", "bot"]))
                        .order_by(events.c.id))
                    for row in rows:
                        conv = self.conversations.get(row.sender_id)
                        if conv is None:
                            conv = self.conversations[row.sender_id] = Conversation(row.sender_id)
                        conv.add(row.id, _json(row.data))
            if new_ids:
                self.seen_recent.update(new_ids)
                self.high_water = max(self.high_water, new_ids[-1])
            floor = self.high_water - RESCAN_WINDOW
            self.seen_recent = {i for i in self.seen_recent if i > floor}

    def all(self) -> List[Conversation]:
        self.refresh()
        return [c for c in self.conversations.values() if c.turns or c.n_bot or c.n_staff]

    def get(self, sender_id: str) -> Optional[Conversation]:
        self.refresh()
        return self.conversations.get(sender_id)


_indexes: Dict[str, ConversationIndex] = {}
_indexes_lock = threading.Lock()


def get_index(db: Database) -> ConversationIndex:
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
