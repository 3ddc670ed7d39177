"""The store's database: one engine, its sessions, and what every repository shares.

Every public method of a repository runs in its own transaction and returns pydantic models,
never ORM rows, so nothing outlives its session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select, and_, create_engine, event, or_, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from briefing.errors import NotFoundError, StoreError, UserError
from briefing.store.tables import Base, JobRow, SourceRow

__all__ = [
    "MAX_PAGE",
    "Database",
    "DuplicateError",
    "Repository",
    "make_engine",
    "normalise_url",
    "redacted_url",
]

MAX_PAGE = 200


class DuplicateError(StoreError):
    """A write hit a unique constraint (usually a concurrent writer of the same row)."""


def describe(exc: SQLAlchemyError) -> str:
    """A database error in one line: the driver's first line, never the SQL."""
    # The first line names the driver error; the rest is SQL, which belongs in no message.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"


def normalise_url(url: str) -> URL:
    """Parse a database URL; a bare postgresql:// URL uses psycopg 3, the driver we ship."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(f"invalid database URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def redacted_url(url: str) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"


def make_engine(url: str) -> Engine:
    """An Engine for `url`; SQLite gets WAL mode, foreign keys and real transactions."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: error messages must not carry source texts or keys.
    engine = create_engine(parsed, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
            "PRAGMA synchronous=NORMAL",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write transaction takes the write lock up front, so a read-then-write (check a
        # source is unused, then delete it) cannot be overtaken by another writer.
        immediate = connection.get_execution_options().get("briefing_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """One engine and its read and write sessions; safe to share between threads."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(
            self.engine.execution_options(briefing_write=True), expire_on_commit=False
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction; database failures become StoreError."""
        try:
            with self._reads.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {describe(exc)}") from exc

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (SQLite takes its write lock at BEGIN); a unique-key clash
        is DuplicateError, so a repository can retry against the row that won."""
        try:
            with self._writes.begin() as session:
                yield session
        except IntegrityError as exc:
            raise DuplicateError(f"database integrity error: {describe(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {describe(exc)}") from exc

    def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""
        with self.read() as session:
            session.execute(text("SELECT 1"))


class Repository:
    """The reads and writes of one aggregate, over the Database its Store shares."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _read(self) -> AbstractContextManager[Session]:
        return self._db.read()

    def _write(self) -> AbstractContextManager[Session]:
        return self._db.write()


# ---------------------------------------------------------------- shared checks


def known_id(value: str, what: str) -> str:
    """`value`, or NotFoundError when no stored row could have it as its id."""
    # PostgreSQL text cannot hold NUL: such an id cannot exist, on any backend.
    if "\x00" in value:
        raise NotFoundError(f"no {what} with id {value!r}")
    return value


def check_storable(value: object, what: str) -> None:
    """Refuse text (also inside JSON) that one of the backends cannot store."""
    # PostgreSQL refuses NUL in text and in jsonb strings; refuse it on SQLite too, so both
    # backends answer alike.
    if isinstance(value, str):
        if "\x00" in value:
            raise UserError(f"{what} contains a NUL character, which cannot be stored")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, what)
            check_storable(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, what)


def check_aware(value: datetime, what: str) -> None:
    """Refuse a naive datetime: the store keeps UTC instants."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise UserError(f"{what} must carry a timezone (an aware datetime), got {value}")


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def request_hash(request: dict[str, Any]) -> str:
    """The sha256 of a request's canonical JSON (same request, same hash)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """An opaque page cursor: the last row's (created_at, id)."""
    raw = json.dumps([created_at.isoformat(), row_id]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) of a cursor; UserError for one this store did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        given = datetime.fromisoformat(stamp)
        if given.tzinfo is None or not isinstance(row_id, str) or "\x00" in row_id:
            raise ValueError(cursor)
        when = given.astimezone(UTC)  # may overflow for a forged year 1 or 9999
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError, IndexError):
        raise UserError(f"invalid cursor {cursor!r}; use a next_cursor value as given") from None
    return when, row_id


def newest_first(
    model: type[SourceRow] | type[JobRow], limit: int, cursor: str | None
) -> Select[Any]:
    """Rows of `model` newest first, after `cursor` (keyset pagination on created_at, id),
    one more than `limit` so the caller can tell whether another page follows."""
    if not 1 <= limit <= MAX_PAGE:
        raise UserError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    query = select(model).order_by(model.created_at.desc(), model.id.desc())
    if cursor is not None:
        when, row_id = decode_cursor(cursor)
        query = query.where(
            or_(model.created_at < when, and_(model.created_at == when, model.id < row_id))
        )
    return query.limit(limit + 1)


_Public = TypeVar("_Public", bound=BaseModel)


def to_public(model: type[_Public], row: Base) -> _Public:
    """The public model of a row, read while its session is open."""
    # The public models name a subset of their row's columns: read those, and nothing
    # of the row outlives its session.
    return model.model_validate({name: getattr(row, name) for name in model.model_fields})
