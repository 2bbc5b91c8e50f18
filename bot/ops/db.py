"""Database and tables of the production profile, created by the app (never by hand).

    python -m bot.ops.db migrate   # create the database if missing, then every table
    python -m bot.ops.db check     # PostgreSQL and Redis reachable, tables present
    python -m bot.ops.db ping      # only: do the PostgreSQL and Redis servers answer? (exit 0/1)

* The database (ZWZX_PG_DB) is created through the maintenance database
  (ZWZX_PG_MAINTENANCE_DB, default ``postgres``) when it does not exist and the user may
  create databases; otherwise a DBA creates it once (``CREATE DATABASE zwzx OWNER ...``).
* Rasa's ``events`` table comes from Rasa's own SQLTrackerStore metadata (the Rasa servers
  also create it on start; doing it here first avoids N servers racing for it).
* The project's own tables (handoff tickets / staff, console, wechat_users) are migrated with
  Alembic to the newest revision (bot/ops/schema.py, migrations/; a database created before
  migrations is stamped as the baseline first). The packages still create missing tables on
  first use (embedded profile without a migration run).

Safe to run on every start, from several hosts at once (``checkfirst`` for Rasa's table, a
PostgreSQL advisory lock around the Alembic upgrade).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from typing import Any, Dict, List, Mapping, Optional

import sqlalchemy as sa

from bot.ops import schema
from bot.ops.settings import db_url, env

logger = logging.getLogger(__name__)

# (module, attribute) of SQLAlchemy MetaData objects created in the profile's database
APP_METADATA = [("bot.handoff.store", "metadata"), ("bot.console.db", "metadata")]
DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseError(RuntimeError):
    pass


def _engine(url: str, **kwargs: Any) -> sa.engine.Engine:
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


def ensure_database(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Create ZWZX_PG_DB if it does not exist. Returns True when it was created."""
    name = env("ZWZX_PG_DB", environ)
    if not DB_NAME_RE.match(name):
        raise DatabaseError(f"ZWZX_PG_DB '{name}' is not a plain database name (letters, digits, _)")
    target = _engine(db_url(environ))
    try:
        with target.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return False
    except sa.exc.OperationalError as e:
        if "does not exist" not in str(e):
            raise DatabaseError(f"cannot connect to PostgreSQL: {str(e).splitlines()[0]}") from e
    finally:
        target.dispose()
    maint = _engine(db_url(environ, database=env("ZWZX_PG_MAINTENANCE_DB", environ)),
                    isolation_level="AUTOCOMMIT")
    try:
        with maint.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if exists:
                return False
            try:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            except sa.exc.ProgrammingError as e:
                if "already exists" in str(e):  # another host created it just now
                    return False
                raise DatabaseError(f"cannot create database {name}: {str(e).splitlines()[0]}") from e
        logger.info("created database %s", name)
        return True
    finally:
        maint.dispose()


def app_metadata() -> List[Any]:
    out = []
    for module, attr in APP_METADATA:
        try:
            md = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            logger.warning("no tables from %s.%s (%s)", module, attr, e)
            continue
        out.append((f"{module}.{attr}", md))
    return out


def migrate(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Create the database (if needed) and all tables; returns what exists afterwards."""
    from rasa.core.tracker_store import SQLTrackerStore

    created = ensure_database(environ)
    engine = _engine(db_url(environ))
    try:
        SQLTrackerStore.Base.metadata.create_all(engine, checkfirst=True)
        sources = ["rasa.events"]
        # the project's own tables: Alembic (migrations/, bot/ops/schema.py)
        revision = schema.upgrade(db_url(environ))
        sources.append(f"alembic:{revision}")
        tables = sorted(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return {"database": env("ZWZX_PG_DB", environ), "created": created, "metadata": sources, "tables": tables}


def check(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    import redis

    out: Dict[str, Any] = {}
    engine = _engine(db_url(environ))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        tables = set(sa.inspect(engine).get_table_names())
        out["postgresql"] = {"ok": "events" in tables, "tables": sorted(tables)}
    except Exception as e:  # noqa: BLE001
        out["postgresql"] = {"ok": False, "error": str(e).splitlines()[0]}
    finally:
        engine.dispose()
    try:
        r = redis.StrictRedis(host=env("ZWZX_REDIS_HOST", environ), port=int(env("ZWZX_REDIS_PORT", environ)),
                              db=int(env("ZWZX_REDIS_DB", environ)), password=env("ZWZX_REDIS_PASSWORD", environ) or None,
                              socket_timeout=3, socket_connect_timeout=3)
        r.ping()
        out["redis"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        out["redis"] = {"ok": False, "error": str(e)}
    out["ok"] = all(v["ok"] for v in out.values() if isinstance(v, dict))
    return out


def ping(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Are the servers there at all (maintenance database, Redis)? For `make test`."""
    import redis

    out: Dict[str, Any] = {}
    engine = _engine(db_url(environ, database=env("ZWZX_PG_MAINTENANCE_DB", environ)))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        out["postgresql"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        out["postgresql"] = {"ok": False, "error": str(e).splitlines()[0]}
    finally:
        engine.dispose()
    try:
        redis.StrictRedis(host=env("ZWZX_REDIS_HOST", environ), port=int(env("ZWZX_REDIS_PORT", environ)),
                          password=env("ZWZX_REDIS_PASSWORD", environ) or None,
                          socket_timeout=3, socket_connect_timeout=3).ping()
        out["redis"] = {"ok": True}
    except Exception as e:  # noqa: BLE001
        out["redis"] = {"ok": False, "error": str(e)}
    out["ok"] = out["postgresql"]["ok"] and out["redis"]["ok"]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    import json

    parser = argparse.ArgumentParser(prog="python -m bot.ops.db", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["migrate", "check", "ping"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = {"migrate": migrate, "check": check, "ping": ping}[args.command]()
    except DatabaseError as e:
        print(f"错误：{e}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
