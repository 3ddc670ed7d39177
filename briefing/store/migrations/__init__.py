"""Alembic migrations of the store, shipped inside the package and run programmatically.

Migrations are append-only: never edit one that has been released; add the next revision.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from briefing.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

__all__ = ["current_revision", "head_revision", "is_current", "upgrade"]

#: Alembic keeps the running migration in module globals: one upgrade per process at a time.
_UPGRADE_LOCK = threading.Lock()


def _config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "briefing.store:migrations")
    # env.py runs on this engine rather than reading a URL from an ini file.
    config.attributes["engine"] = engine
    return config


@functools.cache  # the packaged scripts do not change while the process runs
def head_revision() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StoreError("no migrations are packaged")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise StoreError(f"database unreachable: {type(exc).__name__}: {first}") from exc


def is_current(engine: Engine) -> bool:
    """True when every packaged migration has been applied."""
    return current_revision(engine) == head_revision()


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> str:
    """Apply the migrations up to `revision` (default: all); returns the revision reached."""
    from alembic import command
    from sqlalchemy.exc import SQLAlchemyError

    from briefing.store import make_engine

    owned = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with _UPGRADE_LOCK:
            command.upgrade(_config(engine), revision)
        reached = current_revision(engine)
    except SQLAlchemyError as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]  # the SQL stays out
        raise StoreError(f"migration failed: {type(exc).__name__}: {first}") from exc
    finally:
        if owned:
            engine.dispose()
    return reached or "base"
