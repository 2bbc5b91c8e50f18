"""State the WeChat channel keeps: replay guard (nonces), de-duplication of WeChat's retries,
and per-citizen data (time of the last message, last numbered choices) in the SQL database.

Nonces and de-duplication claims live in a :class:`bot.ops.shared_state.SharedState`: process
memory in the embedded profile (one Rasa server), Redis in the production profile, so a retry
or a replay that nginx sends to another Rasa server is recognised there too. They only need to
outlive WeChat's retry window (3 retries, 5 s apart) and the timestamp window (TTL keys).
The per-citizen data is kept in SQL (table ``wechat_users``) because the 48-hour
customer-service window and the numbered choices must survive a restart.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa

from bot.db import db_url, engine_for
from bot.ops.shared_state import SharedState

logger = logging.getLogger(__name__)


class NonceCache:
    """Remembers nonces seen within the timestamp window (in this process; the channel uses
    :class:`ReplayGuard`, the same rule on the shared store).

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


PROCESSING = "processing:"   # + owner id: being answered by the server that claimed it
PASSIVE = "passive:"         # + the passive reply XML (plain, before encryption; may be empty)
API = "api"                  # the answer goes (went) through the customer-service API


class ReplayGuard:
    """NonceCache's rule on a shared store, so every server knows every nonce of the window."""

    def __init__(self, state: SharedState, namespace: str, ttl: float):
        self.state, self.namespace, self.ttl = state, namespace, ttl

    async def check_and_add(self, nonce: str, message_key: str) -> bool:
        current = await self.state.add(f"{self.namespace}:nonce:{nonce}", message_key, self.ttl)
        return current is None or current == message_key


class MessageClaims:
    """What became of each incoming message, on a shared store (Redis in the production profile).

    Key ``<ns>:msg:<MsgId>``: ``processing:<owner>`` while the server that claimed it is
    answering, then decided once (compare-and-set) as ``passive:<xml>`` (the answer went back in
    the HTTP reply; a retry gets the same reply) or ``api`` (the HTTP reply was "success"; the
    owner sends the answer through the customer-service API). The owner keeps
    ``<ns>:alive:<owner>`` alive (``lease`` seconds, renewed) while it is processing; a retry
    that finds the claim of an owner that died takes the message over.
    """

    def __init__(self, state: SharedState, namespace: str, ttl: float, lease: float = 6.0):
        self.state, self.namespace, self.ttl, self.lease = state, namespace, ttl, lease

    def _msg(self, key: str) -> str:
        return f"{self.namespace}:msg:{key}"

    def _alive(self, value: str) -> str:
        return f"{self.namespace}:alive:{value[len(PROCESSING):]}"

    async def claim(self, key: str) -> Tuple[bool, str]:
        """(True, my claim) for the first request of a message, else (False, current value)."""
        value = PROCESSING + uuid.uuid4().hex
        await self.state.set(self._alive(value), "1", self.lease)
        current = await self.state.add(self._msg(key), value, self.ttl)
        if current is None:
            return True, value
        await self.state.delete(self._alive(value))
        return False, current

    async def renew(self, value: str) -> None:
        await self.state.set(self._alive(value), "1", self.lease)

    async def owner_alive(self, value: str) -> bool:
        return await self.state.exists(self._alive(value))

    async def current(self, key: str) -> Optional[str]:
        return await self.state.get(self._msg(key))

    async def decide(self, key: str, expected: str, outcome: str) -> bool:
        return await self.state.compare_and_set(self._msg(key), expected, outcome, self.ttl)

    async def take_over(self, key: str, dead: str) -> Optional[str]:
        value = PROCESSING + uuid.uuid4().hex
        await self.state.set(self._alive(value), "1", self.lease)
        if await self.state.compare_and_set(self._msg(key), dead, value, self.ttl):
            return value
        await self.state.delete(self._alive(value))
        return None


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
