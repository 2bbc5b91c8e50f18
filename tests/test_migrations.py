"""Alembic migrations of the project's own tables (migrations/, bot/ops/schema.py): an empty
SQLite and an empty PostgreSQL database upgraded to head equal the models; a PostgreSQL database
created by the code before migrations (tables made on first use, with rows, plus Rasa's events)
is stamped and upgraded without losing anything; upgrading twice is a no-op. PostgreSQL tests
skip when 127.0.0.1:5432 is not reachable; each uses its own database, dropped afterwards."""
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.ops.schema import BASELINE, target_metadata, upgrade
from tests.servers import PG_URL, pg_available

OWNED = set(target_metadata().tables)


def differences(url):
    md = target_metadata()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={
                "include_object": lambda o, n, t, r, c: t != "table" or n in md.tables,
                "compare_type": True})
            return compare_metadata(ctx, md), ctx.get_current_revision(), set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def head():
    from alembic.script import ScriptDirectory

    from bot.ops.schema import config

    return ScriptDirectory.from_config(config("sqlite://")).get_current_head()


def test_empty_sqlite_to_head_equals_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert upgrade(url) == head()
    diff, rev, tables = differences(url)
    assert diff == [] and rev == head() and OWNED <= tables
    assert upgrade(url) == head()  # again: nothing to do


@pytest.fixture
def pg_db():
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable ({PG_URL})")
    name = f"zwzx_test_mig_{uuid.uuid4().hex[:8]}"
    base = sa.engine.make_url(PG_URL)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(base.set(database=name))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_empty_postgresql_to_head_equals_the_models(pg_db):
    assert upgrade(pg_db) == head()
    diff, rev, tables = differences(pg_db)
    assert diff == [] and rev == head()
    assert tables == OWNED | {"alembic_version"}   # Rasa's events table is not ours to create


def test_postgresql_created_by_the_old_code_is_stamped_and_keeps_its_rows(pg_db):
    from rasa.core.tracker_store import SQLTrackerStore

    from bot.channels.wechat_store import UserStore
    from bot.handoff.store import HandoffStore

    # what the code before migrations did: create tables on first use (here: not the console's)
    store = HandoffStore(pg_db)
    ticket = store.create_ticket("citizen-old", "rest", "requested")
    token = store.add_staff("老员工")
    UserStore(pg_db).touch("o-old")
    engine = sa.create_engine(pg_db)
    SQLTrackerStore.Base.metadata.create_all(engine)
    engine.dispose()
    diff, rev, tables = differences(pg_db)
    assert rev is None and "console_users" not in tables and diff

    assert upgrade(pg_db) == head()
    diff, rev, tables = differences(pg_db)
    assert diff == [] and rev == head() and OWNED <= tables and "events" in tables
    store = HandoffStore(pg_db)
    assert store.get_ticket(ticket["id"] if isinstance(ticket, dict) else ticket)["sender_id"] == "citizen-old"
    assert store.authenticate(token)["name"] == "老员工"
    assert UserStore(pg_db).last_message_at("o-old") is not None
    assert upgrade(pg_db) == head()


def test_baseline_is_the_first_revision():
    from alembic.script import ScriptDirectory

    from bot.ops.schema import config

    revs = list(ScriptDirectory.from_config(config("sqlite://")).walk_revisions())
    assert revs[-1].revision == BASELINE and revs[-1].down_revision is None
