"""The console's tables, in the same SQL database as Rasa's tracker store and the handoff
tickets (ZWZX_DB_URL, default sqlite:///build/tracker.db; PostgreSQL in production).

SQLAlchemy Core 1.4, created on first use. Rasa's own `events` table is only read, never
created or written here (see conversations.py).
"""
from __future__ import annotations

import logging
import threading
from typing import Dict, Optional

import sqlalchemy as sa

from bot.db import Tables
from bot.db import db_url as resolve_db_url

logger = logging.getLogger(__name__)

metadata = sa.MetaData()

# Console accounts. `name` is the same name as the handoff `staff` row of the same person
# (bot/handoff/store.py); staff_token is that person's staff-API token, which the console uses
# server-side to call the handoff API on the person's behalf (never sent to the browser).
users = sa.Table(
    "console_users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("staff_token", sa.String(255)),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("first_failed_at", sa.Float),
    sa.Column("locked_until", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_login_at", sa.Float),
)

sessions = sa.Table(
    "console_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),      # sha256 of the cookie value
    sa.Column("user_id", sa.Integer, nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(255)),
)

audit = sa.Table(
    "console_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False),          # user name, or "-" for anonymous
    sa.Column("action", sa.String(64), nullable=False, index=True),
    sa.Column("target", sa.String(255)),
    sa.Column("detail", sa.Text),                                # JSON
    sa.Column("ip", sa.String(64)),
)

tags = sa.Table(
    "console_tags", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("event_id", sa.Integer),                           # NULL: the whole conversation
    sa.Column("tag", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("sender_id", "event_id", "tag", name="uq_console_tag"),
)

notes = sa.Table(
    "console_notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sender_id", sa.String(255), nullable=False, index=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

reviewed = sa.Table(
    "console_reviewed", metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("reviewed_by", sa.String(64), nullable=False),
    sa.Column("reviewed_at", sa.Float, nullable=False),
)

# The conversation index (bot/console/conversations.py), shared by every console worker: one
# summary per conversation, built incrementally from Rasa's `events` by whichever worker sees new
# events first, and `rev` (the index revision that last wrote it) so that each worker copies only
# the rows changed since it last looked. Derived data: deleting these rows only costs a rebuild.
conversation_index = sa.Table(
    "console_conv_index", metadata,
    sa.Column("sender_id", sa.String(255), primary_key=True),
    sa.Column("rev", sa.BigInteger, nullable=False, index=True),
    sa.Column("summary", sa.Text, nullable=False),              # JSON (conversations.summary_json)
)

# One row (id 1): how far the shared index has read `events`. Writers take it FOR UPDATE, so
# index updates are serialised across workers and revisions are committed in order.
index_state = sa.Table(
    "console_index_state", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("generation", sa.Integer, nullable=False),        # bumped by a reset (retention)
    sa.Column("rev", sa.BigInteger, nullable=False),
    sa.Column("high_water", sa.BigInteger, nullable=False),     # largest events.id read
    sa.Column("seen_recent", sa.Text, nullable=False),          # JSON: ids read within the rescan window
    sa.Column("n_read", sa.BigInteger, nullable=False),         # events read (to notice deletions)
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Rasa's tracker-store table, declared here only to read it (schema of
# rasa.core.tracker_store.SQLTrackerStore.SQLEvent). Never created by the console.
events_meta = sa.MetaData()
events = sa.Table(
    "events", events_meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("type_name", sa.String(255), nullable=False),
    sa.Column("timestamp", sa.Float),
    sa.Column("intent_name", sa.String(255)),
    sa.Column("action_name", sa.String(255)),
    sa.Column("data", sa.Text),
)


class Database(Tables):
    """One engine per URL; the console tables are created on first use."""

    def __init__(self, url: Optional[str] = None):
        super().__init__(metadata, url)

    def has_events_table(self) -> bool:
        return sa.inspect(self.engine).has_table("events")


_dbs: Dict[str, Database] = {}
_dbs_lock = threading.Lock()


def get_db(url: Optional[str] = None) -> Database:
    resolved = resolve_db_url(url)
    with _dbs_lock:
        db = _dbs.get(resolved)
        if db is None:
            db = _dbs[resolved] = Database(resolved)
        return db
