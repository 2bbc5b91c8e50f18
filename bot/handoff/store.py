"""Handoff tickets and staff accounts, in the same SQL database as the tracker store.

SQLAlchemy Core (1.4) so the same code runs on SQLite (default, WAL mode) and PostgreSQL.
Tables are created on first use. State changes that two people could race for (accepting a
ticket, closing it, cancelling it) are single conditional UPDATEs: exactly one of two
concurrent accepts changes a row, the other sees rowcount 0.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from typing import Any, Dict, Iterable, List, Optional

import sqlalchemy as sa

from bot.db import Tables, db_url  # noqa: F401  (db_url re-exported for callers)

STATUSES = ("waiting", "active", "callback", "closed", "cancelled")
OPEN_STATUSES = ("waiting", "active")          # the conversation is paused
REASONS = ("requested", "complaint", "repeated_fallback", "negative_feedback")
ROLES = ("agent", "supervisor")

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

tickets = sa.Table(
    "handoff_tickets", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False, default="rest"),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("accepted_at", sa.Float),
    sa.Column("closed_at", sa.Float),
    sa.Column("assignee", sa.String(64)),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("rating", sa.Integer),
    sa.Column("phone", sa.String(20)),
    sa.Column("callback_time", sa.String(100)),
)

staff = sa.Table(
    "staff", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", sa.Float, nullable=False),
)


class StoreError(Exception):
    """A request the store refuses (duplicate staff name, bad role, …); message in Chinese."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def ticket_json(row: Any) -> Dict[str, Any]:
    r = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
    out = {k: r.get(k) for k in ("id", "sender_id", "channel", "reason", "status", "created_at",
                                 "accepted_at", "closed_at", "assignee", "summary", "rating")}
    for optional in ("phone", "callback_time"):
        if r.get(optional) is not None:
            out[optional] = r[optional]
    return out


class HandoffStore:
    def __init__(self, url: Optional[str] = None):
        self._tables = Tables(metadata, url)
        self.url = self._tables.url
        self.engine = self._tables.engine
        self.ensure_tables = self._tables.ensure_tables
        self._begin = self._tables.begin
        self._connect = self._tables.connect

    # ---------------------------------------------------------------- tickets
    def create_ticket(self, sender_id: str, channel: str, reason: str, summary: str = "",
                      status: str = "waiting", phone: Optional[str] = None,
                      callback_time: Optional[str] = None, now: Optional[float] = None) -> Dict[str, Any]:
        if reason not in REASONS:
            raise StoreError(f"未知的转人工原因：{reason}")
        if status not in ("waiting", "callback"):
            raise StoreError(f"新工单的状态只能是 waiting 或 callback，而不是 {status}")
        values = dict(sender_id=sender_id, channel=channel or "rest", reason=reason, status=status,
                      created_at=now if now is not None else time.time(), summary=summary or "",
                      phone=phone, callback_time=callback_time)
        with self._begin() as conn:
            result = conn.execute(tickets.insert().values(**values))
            ticket_id = result.inserted_primary_key[0]
        return self.get_ticket(ticket_id)

    def get_ticket(self, ticket_id: int) -> Optional[Dict[str, Any]]:
        with self._connect() as conn:
            row = conn.execute(tickets.select().where(tickets.c.id == ticket_id)).first()
        return ticket_json(row) if row is not None else None

    def list_tickets(self, statuses: Optional[Iterable[str]] = None, sender_id: Optional[str] = None,
                     limit: int = 500) -> List[Dict[str, Any]]:
        query = tickets.select()
        if statuses:
            query = query.where(tickets.c.status.in_(list(statuses)))
        if sender_id is not None:
            query = query.where(tickets.c.sender_id == sender_id)
        query = query.order_by(tickets.c.id).limit(limit)
        with self._connect() as conn:
            return [ticket_json(r) for r in conn.execute(query)]

    def open_ticket_for(self, sender_id: str) -> Optional[Dict[str, Any]]:
        """The newest waiting or active ticket of a conversation (it is paused while one exists)."""
        query = (tickets.select()
                 .where(tickets.c.sender_id == sender_id, tickets.c.status.in_(OPEN_STATUSES))
                 .order_by(tickets.c.id.desc()).limit(1))
        with self._connect() as conn:
            row = conn.execute(query).first()
        return ticket_json(row) if row is not None else None

    def queue_position(self, ticket_id: int) -> int:
        """1 for the first waiting ticket; 0 when the ticket is not waiting."""
        with self._connect() as conn:
            status = conn.execute(sa.select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar()
            if status != "waiting":
                return 0
            return int(conn.execute(sa.select(sa.func.count()).select_from(tickets).where(
                tickets.c.status == "waiting", tickets.c.id <= ticket_id)).scalar())

    def _transition(self, ticket_id: int, from_statuses: Iterable[str], **values) -> bool:
        with self._begin() as conn:
            result = conn.execute(tickets.update()
                                  .where(tickets.c.id == ticket_id, tickets.c.status.in_(list(from_statuses)))
                                  .values(**values))
            return result.rowcount == 1

    def accept(self, ticket_id: int, staff_name: str, now: Optional[float] = None) -> bool:
        """waiting → active, assigned to `staff_name`. False when someone else was first."""
        return self._transition(ticket_id, ["waiting"], status="active", assignee=staff_name,
                                accepted_at=now if now is not None else time.time())

    def close(self, ticket_id: int, from_status: str, closed_by: Optional[str] = None,
              now: Optional[float] = None) -> bool:
        values: Dict[str, Any] = dict(status="closed", closed_at=now if now is not None else time.time())
        if closed_by and from_status != "active":
            values["assignee"] = closed_by  # who handled a callback or cleared a waiting ticket
        return self._transition(ticket_id, [from_status], **values)

    def cancel(self, ticket_id: int, now: Optional[float] = None) -> bool:
        """waiting → cancelled (the citizen withdrew the request)."""
        return self._transition(ticket_id, ["waiting"], status="cancelled",
                                closed_at=now if now is not None else time.time())

    def set_rating(self, ticket_id: int, rating: int) -> bool:
        if not 1 <= int(rating) <= 5:
            raise StoreError("评分必须是1到5之间的整数")
        return self._transition(ticket_id, ["closed"], rating=int(rating))

    # ------------------------------------------------------------------ staff
    def add_staff(self, name: str, role: str = "agent") -> str:
        """Create a staff account; returns the token (only its hash is stored)."""
        name = (name or "").strip()
        if not name or len(name) > 64:
            raise StoreError("工作人员名称不能为空，且不超过64个字符")
        if role not in ROLES:
            raise StoreError(f"角色必须是 {' 或 '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        try:
            with self._begin() as conn:
                conn.execute(staff.insert().values(name=name, role=role, token_hash=hash_token(token),
                                                   active=True, created_at=time.time()))
        except sa.exc.IntegrityError:
            raise StoreError(f"工作人员“{name}”已存在") from None
        return token

    def rotate_token(self, name: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._begin() as conn:
            result = conn.execute(staff.update().where(staff.c.name == name)
                                  .values(token_hash=hash_token(token), active=True))
        if result.rowcount != 1:
            raise StoreError(f"没有名为“{name}”的工作人员")
        return token

    def deactivate_staff(self, name: str) -> None:
        with self._begin() as conn:
            result = conn.execute(staff.update().where(staff.c.name == name).values(active=False))
        if result.rowcount != 1:
            raise StoreError(f"没有名为“{name}”的工作人员")

    def authenticate(self, token: Optional[str]) -> Optional[Dict[str, Any]]:
        if not token:
            return None
        with self._connect() as conn:
            row = conn.execute(staff.select().where(staff.c.token_hash == hash_token(token),
                                                    staff.c.active.is_(True))).first()
        return {"name": row.name, "role": row.role} if row is not None else None

    def list_staff(self) -> List[Dict[str, Any]]:
        with self._connect() as conn:
            return [{"name": r.name, "role": r.role, "active": bool(r.active), "created_at": r.created_at}
                    for r in conn.execute(staff.select().order_by(staff.c.id))]


_stores: Dict[str, HandoffStore] = {}
_stores_lock = threading.Lock()


def get_store(url: Optional[str] = None) -> HandoffStore:
    """One store (engine) per database URL and process."""
    resolved = db_url(url)
    with _stores_lock:
        store = _stores.get(resolved)
        if store is None:
            store = _stores[resolved] = HandoffStore(resolved)
        return store
