"""State the WeChat channel keeps: replay guard (nonces), de-duplication of WeChat's retries,
and per-citizen data (time of the last message, last numbered choices) in the SQL database.

The nonce cache and the de-duplication table live in the memory of the Rasa server process
(Rasa serves the channel from one process). They only need to outlive WeChat's retry window
(3 retries, 5 s apart) and the timestamp window; a restart forgets them, which at worst lets
one retry of a message that was in flight during the restart through again.
The per-citizen data is kept in SQL (table ``wechat_users``) because the 48-hour
customer-service window and the numbered choices must survive a restart.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa

from bot.db import db_url, engine_for

logger = logging.getLogger(__name__)


class NonceCache:
    """Remembers nonces seen within the timestamp window.

    A nonce may come back only with the very same message (WeChat's retry of a message it
    got no answer for, or an exact replay, both handled once by the de-duplication). A known
    nonce with any other message is a replay with a forged body and is refused.
    """

    def __init__(self, ttl: float, max_entries: int = 100_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: "OrderedDict[str, Tuple[float, str]]" = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._seen:
            nonce, (expires, _) = next(iter(self._seen.items()))
            if expires > now and len(self._seen) <= self.max_entries:
                break
            self._seen.popitem(last=False)

    def check_and_add(self, nonce: str, message_key: str, now: Optional[float] = None) -> bool:
        """True if the request may go on; records the nonce."""
        now = time.time() if now is None else now
        self._expire(now)
        seen = self._seen.get(nonce)
        if seen is not None:
            return seen[1] == message_key
        self._seen[nonce] = (now + self.ttl, message_key)
        return True


@dataclass
class Delivery:
    """One incoming WeChat message and what became of it.

    ``outcome`` is decided once: "passive" (the answer went back in the HTTP reply) or
    "api" (the HTTP reply was "success" and the answer goes through the customer-service
    API). Retries of the same message never start a second processing task.
    """

    task: "asyncio.Task"
    created: float = field(default_factory=time.time)
    outcome: Optional[str] = None
    reply: Optional[str] = None  # passive reply body (plain XML, before encryption)
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    duplicates: int = 0

    def decide(self, outcome: str) -> bool:
        if self.outcome is None:
            self.outcome = outcome
            self.decided.set()
            return True
        return False


class DedupStore:
    def __init__(self, ttl: float = 600.0, max_entries: int = 50_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: "OrderedDict[str, Delivery]" = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._items:
            key, d = next(iter(self._items.items()))
            if (d.created + self.ttl > now and len(self._items) <= self.max_entries) or not d.task.done():
                break
            self._items.popitem(last=False)

    def get(self, key: str) -> Optional[Delivery]:
        self._expire(time.time())
        return self._items.get(key)

    def add(self, key: str, delivery: Delivery) -> Delivery:
        self._items[key] = delivery
        return delivery


class UserStore:
    """Table ``wechat_users``: openid, last citizen message time, last numbered choices."""

    def __init__(self, url: Optional[str] = None):
        self.url = db_url(url)
        self._engine: Optional[sa.engine.Engine] = None
        self.meta = sa.MetaData()
        self.table = sa.Table(
            "wechat_users", self.meta,
            sa.Column("openid", sa.String(128), primary_key=True),
            sa.Column("last_message_at", sa.Float, nullable=True),
            sa.Column("choices", sa.Text, nullable=True),
            sa.Column("updated_at", sa.Float, nullable=True),
        )

    @property
    def engine(self) -> sa.engine.Engine:
        # created on first use, so merely loading the channel touches no database
        if self._engine is None:
            self._engine = engine_for(self.url)
            self.meta.create_all(self._engine)
        return self._engine

    def _upsert(self, openid: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        with self.engine.begin() as conn:
            n = conn.execute(sa.update(self.table).where(self.table.c.openid == openid).values(**values)).rowcount
            if not n:
                conn.execute(sa.insert(self.table).values(openid=openid, **values))

    def _row(self, openid: str):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.table).where(self.table.c.openid == openid)).first()

    def touch(self, openid: str, when: Optional[float] = None) -> None:
        self._upsert(openid, last_message_at=time.time() if when is None else when)

    def last_message_at(self, openid: str) -> Optional[float]:
        row = self._row(openid)
        return row.last_message_at if row is not None else None

    def set_choices(self, openid: str, choices: List[Dict[str, str]]) -> None:
        self._upsert(openid, choices=json.dumps(choices, ensure_ascii=False) if choices else None)

    def choices(self, openid: str) -> List[Dict[str, str]]:
        row = self._row(openid)
        if row is None or not row.choices:
            return []
        try:
            value = json.loads(row.choices)
        except ValueError:
            return []
        return value if isinstance(value, list) else []
