"""The one SQL database behind everything: Rasa's tracker store, handoff tickets, console
and channel tables. ``ZWZX_DB_URL`` (default ``sqlite:///build/tracker.db``; PostgreSQL in
production). Engines are made here, once per URL, with the same SQLite settings everywhere."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Dict, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB_URL = "sqlite:///build/tracker.db"


def db_url(url: Optional[str] = None) -> str:
    """``url`` or ZWZX_DB_URL or the default; relative SQLite paths are taken from the
    repository root so every process finds the same file."""
    url = url or os.environ.get("ZWZX_DB_URL") or DEFAULT_DB_URL
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            path = ROOT / path
        path.parent.mkdir(parents=True, exist_ok=True)
        url = str(parsed.set(database=str(path)))
    return url


_engines: Dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """A shared engine for ``url``. SQLite: WAL journal and a 30 s busy timeout, because the
    Rasa server, the action server and the console write to the same file; a file's connections
    are kept open (``QueuePool``, SQLAlchemy 2.0's default for SQLite files) instead of SQLAlchemy
    1.4's ``NullPool``, which opened a connection and set the pragmas again for every use
    (~0.5 ms of the handoff check each message makes)."""
    with _engines_lock:
        if url in _engines:
            return _engines[url]
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            in_memory = not parsed.database or parsed.database == ":memory:" or "mode=memory" in url
            pool = {} if in_memory else {"poolclass": sa.pool.QueuePool}
            engine = sa.create_engine(url, future=True, **pool,
                                      connect_args={"timeout": 30, "check_same_thread": False})

            @sa.event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()
        else:
            engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        _engines[url] = engine
        return engine


class Tables:
    """A set of tables (one MetaData) created on first use. Several processes may start at
    once and race to create them; the loser retries."""

    def __init__(self, metadata: sa.MetaData, url: Optional[str] = None):
        self.metadata = metadata
        self.url = db_url(url)
        self.engine = engine_for(self.url)
        self._ready = False
        self._lock = threading.Lock()

    def ensure_tables(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            for attempt in range(5):
                try:
                    self.metadata.create_all(self.engine, checkfirst=True)
                    break
                except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as e:
                    logger.debug("create tables, attempt %s: %s", attempt, e)
                    time.sleep(0.2 * (attempt + 1))
            else:
                self.metadata.create_all(self.engine, checkfirst=True)
            self._ready = True

    def begin(self):
        self.ensure_tables()
        return self.engine.begin()

    def connect(self):
        self.ensure_tables()
        return self.engine.connect()
