"""Alembic environment of the project's own tables (see bot/ops/schema.py)."""
from alembic import context
import sqlalchemy as sa

from bot.ops.schema import target_metadata

config = context.config
metadata = target_metadata()


def include_object(obj, name, type_, reflected, compare_to):
    # only the project's tables: Rasa's `events` and anything else in the database are not ours
    if type_ == "table":
        return name in metadata.tables
    return True


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, include_object=include_object,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
