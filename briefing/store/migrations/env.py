"""Alembic environment: runs the migrations on the engine handed over by `upgrade`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from briefing.store.database import make_engine
from briefing.store.tables import Base

config = context.config
engine = config.attributes.get("engine")
owned = engine is None
if engine is None:  # the alembic command line, with sqlalchemy.url set in its config
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")

#: Any fixed number: the PostgreSQL advisory lock that serialises concurrent migrators.
_MIGRATION_LOCK = 0x62726965

try:
    # briefing_write makes SQLite take its write lock at BEGIN, so two processes that
    # start at once migrate one after the other instead of both creating tables.
    with engine.connect().execution_options(briefing_write=True) as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite alters tables by copying them; batch mode does that for us.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Held to the end of the transaction; the second migrator then finds the
                # schema current and does nothing.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            context.run_migrations()
        # SQLAlchemy 2 connections do not autocommit; the migration transaction above is
        # the connection's own, so commit it explicitly.
        connection.commit()
finally:
    if owned:
        engine.dispose()
