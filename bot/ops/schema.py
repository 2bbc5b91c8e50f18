"""Schema of the project's own tables, migrated with Alembic (migrations/).

    python -m bot.ops.schema upgrade [URL]   # to the newest revision (default URL: ZWZX_DB_URL)
    python -m bot.ops.schema current [URL]
    python -m bot.ops.schema revision -m "add column x" [URL]   # autogenerate a new revision

Tables: handoff (``handoff_tickets``, ``staff``), console (``console_*``), WeChat
(``wechat_users``) — :func:`target_metadata` collects their SQLAlchemy definitions. Rasa's
``events`` table stays Rasa's (created by its tracker store; never part of a migration).

``upgrade`` handles the three cases a deployment can be in:
* empty database → every revision runs (baseline creates the tables);
* database created by the code before Alembic (project tables present, no ``alembic_version``)
  → stamped as the baseline revision (its tables are exactly the baseline's), then upgraded;
* database already under Alembic → the missing revisions run.
Several servers may run it at once: on PostgreSQL it takes an advisory lock for the duration.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "migrations"
BASELINE = "0001_baseline"
ADVISORY_LOCK_ID = 0x7A777A78  # "zwzx"
logger = logging.getLogger(__name__)


def target_metadata() -> sa.MetaData:
    """One MetaData with every table the project owns (copies of the packages' definitions)."""
    from bot.channels.wechat_store import UserStore
    from bot.console.db import metadata as console
    from bot.handoff.store import metadata as handoff

    out = sa.MetaData()
    for md in (handoff, console, UserStore("sqlite://").meta):
        for table in md.tables.values():
            table.to_metadata(out)
    return out


def config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _url(url: Optional[str]) -> str:
    if url:
        return url
    from bot.db import db_url

    return db_url(None)


def upgrade(url: Optional[str] = None, revision: str = "head") -> str:
    """Migrate the database to `revision`; returns the revision it is at afterwards."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    url = _url(url)
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_ID})
            try:
                tables = set(sa.inspect(conn).get_table_names())
                owned = set(target_metadata().tables)
                cfg = config(url)
                cfg.attributes["connection"] = conn
                if "alembic_version" not in tables and tables & owned:
                    logger.info("tables created before migrations (%s): stamping %s",
                                ", ".join(sorted(tables & owned)), BASELINE)
                    # the old code created tables on first use: add any it had not created yet
                    target_metadata().create_all(conn, checkfirst=True)
                    command.stamp(cfg, BASELINE)
                command.upgrade(cfg, revision)
                current = MigrationContext.configure(conn).get_current_revision()
                if conn.in_transaction():
                    conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_ID})
                    if conn.in_transaction():
                        conn.commit()
    finally:
        engine.dispose()
    return current or ""


def main(argv=None) -> int:
    from alembic import command

    p = argparse.ArgumentParser(prog="python -m bot.ops.schema")
    p.add_argument("command", choices=["upgrade", "current", "revision"])
    p.add_argument("url", nargs="?")
    p.add_argument("-m", "--message", default="change")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    url = _url(args.url)
    if args.command == "upgrade":
        print(upgrade(url))
    elif args.command == "current":
        command.current(config(url))
    else:
        command.revision(config(url), message=args.message, autogenerate=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
