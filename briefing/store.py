"""The persistent store: sources and briefing jobs in SQLite or PostgreSQL (SQLAlchemy 2).

The schema is owned by the Alembic migrations in ``briefing/migrations``; the models here
must match them (a test compares the two). Every public method runs in its own transaction
and returns pydantic models, never ORM rows, so nothing outlives its session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Select,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from briefing.errors import ConflictError, NotFoundError, SourceError, StoreError, UserError
from briefing.sources import Source

__all__ = [
    "ACTIVE_STATUSES",
    "JOB_STATUSES",
    "Delivery",
    "DeliveryStatus",
    "FetchState",
    "Item",
    "Job",
    "JobStatus",
    "RunStatus",
    "ScheduleRun",
    "SourceInUseError",
    "SourcePage",
    "SourceSummary",
    "Store",
    "StoredSchedule",
    "StoredSource",
    "make_engine",
    "normalise_url",
    "redacted_url",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
#: Jobs in these states still need their sources.
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")
_FINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")
MAX_PAGE = 200


class SourceInUseError(ConflictError):
    """A source cannot be deleted while a queued or running job uses it."""

    def __init__(self, source_id: str, job_ids: Sequence[str]) -> None:
        super().__init__(
            f"source {source_id} is used by {len(job_ids)} briefing job(s) in progress "
            f"({', '.join(job_ids)}); delete it when they have finished"
        )
        self.source_id = source_id
        self.job_ids = list(job_ids)


class _DuplicateError(StoreError):
    """A write hit a unique constraint (usually a concurrent writer of the same row)."""


def _describe(exc: SQLAlchemyError) -> str:
    # The first line names the driver error; the rest is SQL, which belongs in no message.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}"


# ---------------------------------------------------------------- schema


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_JSON = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: _JSON,
    }


class SourceRow(Base):
    """A stored source; `id` is the content-hash id of `briefing.sources`."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    chars: Mapped[int]
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_sources_created_at_id", "created_at", "id"),)


class JobRow(Base):
    """A unit of background work (a briefing to build) and everything needed to resume it.

    `worker_id` and `lease_expires_at` let a worker claim a job and let a restarted service
    find jobs whose worker died; `attempts` counts claims, so a job that keeps killing its
    worker can be failed instead of retried forever.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]]
    request_sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    progress: Mapped[dict[str, Any] | None]
    attempts: Mapped[int]
    cancel_requested: Mapped[bool]
    worker_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_created_at_id", "created_at", "id"),
    )


class JobSourceRow(Base):
    """Which sources a job reads; a source is not deleted under an active job."""

    __tablename__ = "job_sources"

    job_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    # A finished briefing embeds its sources' text, so deleting a source later only
    # removes the reference.
    source_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_job_sources_source_id", "source_id"),)


class ItemRow(Base):
    """A collected source: where and when it was first seen, and the metadata found there.

    One row per content (the source id), so the same text found again, in the same place
    or another, is not new. Deleting the source deletes its item: a text deleted on purpose
    is collected afresh (and is new again) if it is still where it was found.
    """

    __tablename__ = "items"

    source_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True
    )
    origin: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime]
    title: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_items_first_seen_at_source_id", "first_seen_at", "source_id"),)


class FetchStateRow(Base):
    """What the last fetch of a URL returned, for conditional requests next time.

    `source_id` is the source the page gave (null once that source is deleted, so the next
    fetch asks unconditionally); `entries` are a feed's entries at its last fetch.
    """

    __tablename__ = "fetch_state"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("sources.id", ondelete="SET NULL")
    )
    entries: Mapped[list[dict[str, Any]] | None] = mapped_column(_JSON)
    fetched_at: Mapped[datetime]

    __table_args__ = (Index("ix_fetch_state_source_id", "source_id"),)


class ScheduleRow(Base):
    """A schedule defined through the API (file schedules are read from their file)."""

    __tablename__ = "schedules"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ScheduleRunRow(Base):
    """One run of a schedule for one date; the unique key is what makes a run once a day.

    `owner` and `lease_expires_at` are the claim of the process running it, so a run left
    running by a process that died can be taken over; `collected_until` is where the next
    run's window starts at the earliest.
    """

    __tablename__ = "schedule_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    schedule: Mapped[str] = mapped_column(String(64))
    run_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int]
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("jobs.id", ondelete="SET NULL")
    )
    items: Mapped[int]
    window_start: Mapped[datetime | None]
    collected_until: Mapped[datetime | None]
    warnings: Mapped[list[str]] = mapped_column(_JSON)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('running', 'succeeded', 'empty', 'failed')",
            name="ck_schedule_runs_status",
        ),
        UniqueConstraint("schedule", "run_date", name="uq_schedule_runs_schedule_run_date"),
        Index("ix_schedule_runs_job_id", "job_id"),
    )


class DeliveryRow(Base):
    """One destination of a run's briefing, with its attempts; failed ones are retried."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("schedule_runs.id", ondelete="CASCADE")
    )
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_deliveries_status"
        ),
        UniqueConstraint("run_id", "position", name="uq_deliveries_run_id_position"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )


# ---------------------------------------------------------------- public models


class StoredSource(Source):
    """A source as stored, with the time it was first added."""

    created_at: datetime


class SourceSummary(BaseModel):
    """A source without its text, as listed."""

    id: str
    title: str
    path: str | None
    sha256: str
    chars: int
    created_at: datetime


class SourcePage(BaseModel):
    """One page of sources, newest first; `next_cursor` is null on the last page."""

    items: list[SourceSummary]
    next_cursor: str | None = None


class Item(BaseModel):
    """A collected source's record: where (`origin`: URL or file path) and when it was first
    seen, with the title, author and publication time found there."""

    source_id: str
    origin: str
    first_seen_at: datetime
    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None


class FetchState(BaseModel):
    """The validators (ETag, Last-Modified) and result of the last fetch of a URL."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    source_id: str | None = None
    entries: list[dict[str, Any]] | None = None
    fetched_at: datetime


RunStatus = Literal["running", "succeeded", "empty", "failed"]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class StoredSchedule(BaseModel):
    """A schedule defined through the API, as stored (`definition` is a Schedule's JSON)."""

    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ScheduleRun(BaseModel):
    """One run of a schedule for one date."""

    id: str
    schedule: str
    run_date: date
    status: RunStatus
    attempt: int
    owner: str | None
    lease_expires_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    job_id: str | None
    items: int
    window_start: datetime | None
    collected_until: datetime | None
    warnings: list[str]
    error: str | None


class Delivery(BaseModel):
    """One destination of a run's briefing and how delivering it went."""

    id: str
    run_id: str
    position: int
    kind: str
    target: str
    spec: dict[str, Any]
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


class Job(BaseModel):
    """A job as stored."""

    id: str
    kind: str
    status: JobStatus
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    progress: dict[str, Any] | None = None
    attempts: int = 0
    cancel_requested: bool = False
    idempotency_key: str | None = None
    source_ids: list[str] = Field(default_factory=list)
    worker_id: str | None = None
    lease_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


# ---------------------------------------------------------------- engine


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


def _known_id(value: str, what: str) -> str:
    # PostgreSQL text cannot hold NUL: such an id cannot exist, on any backend.
    if "\x00" in value:
        raise NotFoundError(f"no {what} with id {value!r}")
    return value


def _storable(value: object, what: str) -> None:
    # PostgreSQL refuses NUL in text and in jsonb strings; refuse it on SQLite too, so both
    # backends answer alike.
    if isinstance(value, str):
        if "\x00" in value:
            raise UserError(f"{what} contains a NUL character, which cannot be stored")
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, what)
            _storable(item, what)
    elif isinstance(value, list | tuple):
        for item in value:
            _storable(item, what)


def _now() -> datetime:
    return datetime.now(UTC)


def _request_hash(request: dict[str, Any]) -> str:
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
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


def _newest_first(
    model: type[SourceRow] | type[JobRow], limit: int, cursor: str | None
) -> Select[Any]:
    """Rows of `model` newest first, after `cursor` (keyset pagination on created_at, id),
    one more than `limit` so the caller can tell whether another page follows."""
    if not 1 <= limit <= MAX_PAGE:
        raise UserError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    query = select(model).order_by(model.created_at.desc(), model.id.desc())
    if cursor is not None:
        when, row_id = _decode_cursor(cursor)
        query = query.where(
            or_(model.created_at < when, and_(model.created_at == when, model.id < row_id))
        )
    return query.limit(limit + 1)


# ---------------------------------------------------------------- the store


class Store:
    """Sources and jobs in one database; safe to share between threads."""

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
    def _read(self) -> Iterator[Session]:
        try:
            with self._reads.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from exc

    @contextmanager
    def _write(self) -> Iterator[Session]:
        try:
            with self._writes.begin() as session:
                yield session
        except IntegrityError as exc:
            raise _DuplicateError(f"database integrity error: {_describe(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_describe(exc)}") from exc

    def ping(self) -> None:
        """Raise StoreError when the database cannot be reached."""
        with self._read() as session:
            session.execute(text("SELECT 1"))

    # ------------------------------------------------------------ sources

    def add_source(self, source: Source) -> tuple[StoredSource, bool]:
        """Store `source` unless the same text is already stored: (stored, created)."""
        for value, what in ((source.title, "source title"), (source.path, "source path")):
            if value is not None and "\x00" in value:
                raise SourceError(f"{what} contains a NUL character, which cannot be stored")
        _storable(source.text, "source text")
        try:
            with self._write() as session:
                row = session.get(SourceRow, source.id)
                if row is not None:
                    return _check_same(_stored(row), source), False
                row = _source_row(source)
                session.add(row)
                session.flush()
                return _stored(row), True
        except _DuplicateError:
            # Another writer stored the same text between our look-up and insert.
            return _check_same(self.get_source(source.id), source), False

    def get_source(self, source_id: str) -> StoredSource:
        """The stored source with this id; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(SourceRow, _known_id(source_id, "source"))
            if row is None:
                raise NotFoundError(f"no source with id {source_id!r}")
            return _stored(row)

    def list_sources(self, *, limit: int = 50, cursor: str | None = None) -> SourcePage:
        """A page of sources, newest first; pass `next_cursor` back for the next page."""
        query = _newest_first(SourceRow, limit, cursor)
        with self._read() as session:
            rows = list(session.scalars(query))
        items = [_summary(row) for row in rows[:limit]]
        more = len(rows) > limit
        return SourcePage(
            items=items,
            next_cursor=_encode_cursor(items[-1].created_at, items[-1].id) if more else None,
        )

    def delete_source(self, source_id: str) -> None:
        """Delete a source; SourceInUseError while a queued or running job uses it."""
        with self._write() as session:
            # FOR UPDATE (PostgreSQL) waits for a job being created on this source to commit,
            # so the check below sees it; SQLite's immediate transaction does the same.
            row = session.scalars(
                select(SourceRow)
                .where(SourceRow.id == _known_id(source_id, "source"))
                .with_for_update()
            ).first()
            if row is None:
                raise NotFoundError(f"no source with id {source_id!r}")
            busy = list(
                session.scalars(
                    select(JobRow.id)
                    .join(JobSourceRow, JobSourceRow.job_id == JobRow.id)
                    .where(JobSourceRow.source_id == source_id)
                    .where(JobRow.status.in_(ACTIVE_STATUSES))
                    .order_by(JobRow.created_at)
                )
            )
            if busy:
                raise SourceInUseError(source_id, busy)
            session.delete(row)

    # ------------------------------------------------------------ collected items

    def record_item(
        self,
        source: Source,
        *,
        origin: str,
        seen_at: datetime,
        title: str | None = None,
        author: str | None = None,
        published_at: datetime | None = None,
    ) -> tuple[Item, bool]:
        """Store a collected source (unless stored) and its item (unless recorded): (item, new).

        An item already recorded comes back unchanged, first_seen_at and all: the same text
        found again, anywhere, is not new.
        """
        _aware(seen_at, "seen_at")
        if published_at is not None:
            _aware(published_at, "published_at")
        for value, what in (
            (source.title, "source title"),
            (source.path, "source path"),
            (origin, "item origin"),
            (title, "item title"),
            (author, "item author"),
        ):
            if value is not None and "\x00" in value:
                raise SourceError(f"{what} contains a NUL character, which cannot be stored")
        _storable(source.text, "source text")
        for attempt in range(2):
            try:
                with self._write() as session:
                    row = session.get(SourceRow, source.id)
                    if row is None:
                        session.add(_source_row(source))
                    else:
                        _check_same(_stored(row), source)
                    item = session.get(ItemRow, source.id)
                    if item is not None:
                        return _item(item), False
                    item = ItemRow(
                        source_id=source.id,
                        origin=origin,
                        first_seen_at=seen_at,
                        title=title,
                        author=author,
                        published_at=published_at,
                    )
                    session.add(item)
                    session.flush()
                    return _item(item), True
            except _DuplicateError:
                # A concurrent collector stored the same text first: the retry finds its rows.
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_item(self, source_id: str) -> Item:
        """The item of this source; NotFoundError when it was never collected."""
        with self._read() as session:
            row = session.get(ItemRow, _known_id(source_id, "item"))
            if row is None:
                raise NotFoundError(f"no collected item with source id {source_id!r}")
            return _item(row)

    def list_items(
        self,
        since: datetime,
        until: datetime,
        *,
        source_ids: Sequence[str] | None = None,
    ) -> list[Item]:
        """Items first seen in [since, until), oldest first; only those of `source_ids` if given."""
        _aware(since, "since")
        _aware(until, "until")
        query = (
            select(ItemRow)
            .where(ItemRow.first_seen_at >= since, ItemRow.first_seen_at < until)
            .order_by(ItemRow.first_seen_at, ItemRow.source_id)
        )
        if source_ids is not None:
            wanted = [s for s in dict.fromkeys(source_ids) if "\x00" not in s]
            query = query.where(ItemRow.source_id.in_(wanted))
        with self._read() as session:
            return [_item(row) for row in session.scalars(query)]

    def get_fetch_state(self, url: str) -> FetchState | None:
        """What the last fetch of `url` (normalised) returned; None when it was never fetched."""
        key = _fetch_key(url)
        with self._read() as session:
            row = session.get(FetchStateRow, key)
            return None if row is None else _fetch_state(row)

    def put_fetch_state(self, state: FetchState) -> FetchState:
        """Record the last fetch of `state.url` (normalised), replacing what was there."""
        key = _fetch_key(state.url)
        _aware(state.fetched_at, "fetched_at")
        for value, what in (
            (state.etag, "etag"),
            (state.last_modified, "last_modified"),
            (state.entries, "feed entries"),
        ):
            _storable(value, what)
        for attempt in range(2):
            try:
                with self._write() as session:
                    if state.source_id is not None and (
                        session.get(SourceRow, _known_id(state.source_id, "source")) is None
                    ):
                        raise NotFoundError(f"no source with id {state.source_id!r}")
                    row = session.get(FetchStateRow, key)
                    if row is None:
                        row = FetchStateRow(url=key)
                        session.add(row)
                    row.etag = state.etag
                    row.last_modified = state.last_modified
                    row.source_id = state.source_id
                    row.entries = state.entries
                    row.fetched_at = state.fetched_at
                    session.flush()
                    return _fetch_state(row)
            except _DuplicateError:
                # A concurrent writer inserted this URL first: the retry updates its row.
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------ jobs

    def create_job(
        self,
        request: dict[str, Any],
        source_ids: Sequence[str],
        *,
        idempotency_key: str | None = None,
        kind: str = "briefing",
    ) -> tuple[Job, bool]:
        """Queue a job on stored sources: (job, created).

        With an idempotency key already used for the same request, the existing job comes
        back (created False); for a different request, ConflictError.
        """
        digest = _request_hash(request)
        _storable(request, "the job request")
        _storable(idempotency_key, "the idempotency key")
        _storable(kind, "the job kind")
        wanted = [_known_id(s, "source") for s in dict.fromkeys(source_ids)]
        try:
            with self._write() as session:
                if idempotency_key is not None:
                    existing = session.scalars(
                        select(JobRow).where(JobRow.idempotency_key == idempotency_key)
                    ).first()
                    if existing is not None:
                        return _same_request(_job(session, existing), existing, digest), False
                found = set(session.scalars(select(SourceRow.id).where(SourceRow.id.in_(wanted))))
                if missing := [s for s in wanted if s not in found]:
                    raise NotFoundError(f"no source with id {', '.join(map(repr, missing))}")
                now = _now()
                row = JobRow(
                    id=str(uuid.uuid4()),
                    kind=kind,
                    status="queued",
                    request=request,
                    request_sha256=digest,
                    idempotency_key=idempotency_key,
                    attempts=0,
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                session.add_all(JobSourceRow(job_id=row.id, source_id=s) for s in wanted)
                session.flush()
                return _job(session, row), True
        except _DuplicateError:
            if idempotency_key is None:
                raise
            # A concurrent request with the same key won the race: answer with its job.
            with self._read() as session:
                existing = session.scalars(
                    select(JobRow).where(JobRow.idempotency_key == idempotency_key)
                ).first()
                if existing is None:
                    raise
                return _same_request(_job(session, existing), existing, digest), False

    def get_job(self, job_id: str) -> Job:
        """The job with this id; NotFoundError when there is none."""
        with self._read() as session:
            return _job(session, self._job_row(session, job_id))

    def claim_job(self, worker_id: str, *, lease_s: float) -> Job | None:
        """Move the oldest queued job to running for `worker_id`; None when none is queued."""
        _storable(worker_id, "the worker id")
        with self._write() as session:
            # SKIP LOCKED lets several workers claim different jobs at once on PostgreSQL.
            row = session.scalars(
                select(JobRow)
                .where(JobRow.status == "queued")
                .order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            now = _now()
            row.status = "running"
            row.attempts += 1
            row.worker_id = worker_id
            row.started_at = now
            row.lease_expires_at = now + timedelta(seconds=lease_s)
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def finish_job(
        self,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        worker_id: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        """Record a job's final status (and last progress); ConflictError when it has
        already finished.

        With `worker_id`, only that worker's claim may finish the job: a worker whose lease
        ran out (and whose job went to another worker) gets ConflictError instead.
        """
        if status not in _FINAL_STATUSES:
            raise UserError(f"{status!r} is not a final status; use one of {_FINAL_STATUSES}")
        _storable(result, "the job result")
        _storable(error, "the job error")
        _storable(progress, "the job progress")
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status in _FINAL_STATUSES:
                raise ConflictError(f"job {job_id} has already finished ({row.status})")
            if worker_id is not None and row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = _now()
            row.status = status
            row.result = result
            row.error = error
            if progress is not None:
                row.progress = progress
            row.worker_id = None
            row.lease_expires_at = None
            row.finished_at = now
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def heartbeat(
        self,
        job_id: str,
        worker_id: str,
        *,
        lease_s: float,
        progress: dict[str, Any] | None = None,
    ) -> Job:
        """Extend a running job's lease (and record progress); ConflictError if not held.

        The returned job's `cancel_requested` tells the worker to stop.
        """
        _storable(progress, "the job progress")
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status != "running" or row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = _now()
            row.lease_expires_at = now + timedelta(seconds=lease_s)
            if progress is not None:
                row.progress = progress
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def release_job(self, job_id: str, worker_id: str) -> Job:
        """Give a running job back to the queue (its worker is shutting down); ConflictError
        when `worker_id` no longer holds it.

        The claim does not count as an attempt: the job did not fail, its worker stopped.
        A job whose cancellation was asked for is cancelled instead.
        """
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status != "running" or row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = _now()
            if row.cancel_requested:
                row.status, row.error, row.finished_at = "cancelled", "cancelled", now
            else:
                row.status = "queued"
                row.attempts = max(0, row.attempts - 1)
                row.started_at = None
            row.worker_id = None
            row.lease_expires_at = None
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop; a finished one is left."""
        with self._write() as session:
            row = self._job_row(session, job_id)
            now = _now()
            if row.status == "queued":
                row.status = "cancelled"
                row.finished_at = now
                row.error = "cancelled before it started"
            if row.status in ACTIVE_STATUSES or row.status == "cancelled":
                row.cancel_requested = True
                row.updated_at = now
            session.flush()
            return _job(session, row)

    def recover_jobs(self, *, max_attempts: int, now: datetime | None = None) -> list[Job]:
        """Jobs left running by a dead worker (lease expired): queued again, or failed
        once they have been tried `max_attempts` times. Returns the jobs changed."""
        now = now or _now()
        with self._write() as session:
            rows = list(
                session.scalars(
                    select(JobRow)
                    .where(JobRow.status == "running")
                    .where(JobRow.lease_expires_at < now)
                    .order_by(JobRow.created_at)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                lost = f"worker {row.worker_id} stopped during attempt {row.attempts}"
                if row.cancel_requested:
                    row.status, row.error = "cancelled", f"cancelled; {lost}"
                    row.finished_at = now
                elif row.attempts >= max_attempts:
                    row.status = "failed"
                    row.error = f"{lost}; gave up after {row.attempts} attempt(s)"
                    row.finished_at = now
                else:
                    row.status = "queued"
                row.worker_id = None
                row.lease_expires_at = None
                row.updated_at = now
            session.flush()
            return [_job(session, row) for row in rows]

    def list_jobs(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        since: datetime | None = None,
        statuses: Sequence[JobStatus] | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first (created at or after `since`), and the cursor of the next page."""
        query = _newest_first(JobRow, limit, cursor)
        if since is not None:
            if since.tzinfo is None:
                raise UserError("since must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
            query = query.where(JobRow.created_at >= since)
        if statuses:
            query = query.where(JobRow.status.in_(list(statuses)))
        with self._read() as session:
            rows = list(session.scalars(query))
            jobs = [_job(session, row) for row in rows[:limit]]
        more = len(rows) > limit
        return jobs, _encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None

    @staticmethod
    def _job_row(session: Session, job_id: str) -> JobRow:
        row = session.get(JobRow, _known_id(job_id, "job"))
        if row is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return row

    # ------------------------------------------------------------ schedules (daily briefings)

    def put_schedule(
        self, name: str, definition: dict[str, Any], *, replace: bool = True
    ) -> tuple[StoredSchedule, bool]:
        """Create or replace the API-defined schedule `name`: (stored, created).

        With `replace=False` an existing schedule is left alone: ConflictError.
        """
        _storable(definition, "the schedule")
        now = _now()
        for _ in range(2):
            try:
                with self._write() as session:
                    row = session.get(ScheduleRow, name, with_for_update=True)
                    created = row is None
                    if row is not None and not replace:
                        raise ConflictError(f"a schedule named {name!r} already exists")
                    if row is None:
                        row = ScheduleRow(name=name, created_at=now)
                        session.add(row)
                    row.definition = definition
                    row.updated_at = now
                    session.flush()
                    return _schedule(row), created
            except _DuplicateError:
                continue  # created by a concurrent writer: replace it on the second pass
        raise StoreError(f"could not store schedule {name!r}: it kept changing under us")

    def get_schedule(self, name: str) -> StoredSchedule:
        """The API-defined schedule `name`; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(ScheduleRow, _known_id(name, "schedule"))
            if row is None:
                raise NotFoundError(f"no schedule named {name!r}")
            return _schedule(row)

    def list_schedules(self) -> list[StoredSchedule]:
        """Every API-defined schedule, by name."""
        with self._read() as session:
            rows = session.scalars(select(ScheduleRow).order_by(ScheduleRow.name))
            return [_schedule(row) for row in rows]

    def delete_schedule(self, name: str) -> None:
        """Delete the API-defined schedule `name` (its runs stay); NotFoundError if absent."""
        with self._write() as session:
            row = session.get(ScheduleRow, _known_id(name, "schedule"))
            if row is None:
                raise NotFoundError(f"no schedule named {name!r}")
            session.delete(row)

    def claim_run(
        self,
        schedule: str,
        run_date: date,
        owner: str,
        *,
        lease_s: float,
        force: bool = False,
        scheduled_at: datetime | None = None,
        now: datetime | None = None,
    ) -> tuple[ScheduleRun, bool]:
        """Take the run of `schedule` for `run_date`: (run, claimed).

        Not claimed when the date has a finished run (unless `force`) or a run whose
        claim has not run out. A run whose process died (claim expired) is taken over.
        """
        now = now or _now()
        _storable(owner, "the run owner")
        for _ in range(2):
            try:
                with self._write() as session:
                    row = session.scalars(
                        select(ScheduleRunRow)
                        .where(
                            ScheduleRunRow.schedule == schedule,
                            ScheduleRunRow.run_date == run_date,
                        )
                        .with_for_update()
                    ).first()
                    if row is None:
                        row = ScheduleRunRow(
                            id=uuid.uuid4().hex, schedule=schedule, run_date=run_date, attempt=0
                        )
                        session.add(row)
                    else:
                        held = row.lease_expires_at is not None and row.lease_expires_at > now
                        if (row.status == "running" and held) or (
                            row.status != "running" and not force
                        ):
                            return _schedule_run(row), False
                        session.execute(delete(DeliveryRow).where(DeliveryRow.run_id == row.id))
                    row.status = "running"
                    row.attempt += 1
                    row.owner = owner
                    row.lease_expires_at = now + timedelta(seconds=lease_s)
                    row.scheduled_at = scheduled_at
                    row.started_at = now
                    row.finished_at = None
                    row.job_id = None
                    row.items = 0
                    row.window_start = None
                    row.collected_until = None
                    row.warnings = []
                    row.error = None
                    session.flush()
                    return _schedule_run(row), True
            except _DuplicateError:
                continue  # another process inserted the key first: look at its run
        raise StoreError(f"could not claim the run of {schedule!r} for {run_date}")

    def renew_run(self, run_id: str, owner: str, *, lease_s: float) -> ScheduleRun:
        """Extend the claim of a running run; ConflictError when `owner` no longer holds it."""
        with self._write() as session:
            row = self._owned_run(session, run_id, owner)
            row.lease_expires_at = _now() + timedelta(seconds=lease_s)
            session.flush()
            return _schedule_run(row)

    def finish_run(
        self,
        run_id: str,
        owner: str,
        status: Literal["succeeded", "empty", "failed"],
        *,
        job_id: str | None = None,
        items: int = 0,
        window_start: datetime | None = None,
        collected_until: datetime | None = None,
        warnings: Sequence[str] = (),
        error: str | None = None,
    ) -> ScheduleRun:
        """Record how a run ended; ConflictError when `owner` no longer holds it."""
        _storable(list(warnings), "the run's warnings")
        _storable(error, "the run's error")
        with self._write() as session:
            row = self._owned_run(session, run_id, owner)
            row.status = status
            row.finished_at = _now()
            row.lease_expires_at = None
            row.job_id = job_id
            row.items = items
            row.window_start = window_start
            row.collected_until = collected_until
            row.warnings = list(warnings)
            row.error = error
            session.flush()
            return _schedule_run(row)

    @staticmethod
    def _owned_run(session: Session, run_id: str, owner: str) -> ScheduleRunRow:
        row = session.get(ScheduleRunRow, run_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no schedule run with id {run_id!r}")
        if row.status != "running" or row.owner != owner:
            raise ConflictError(
                f"run {run_id} of {row.schedule} for {row.run_date} is no longer held by this "
                f"process (now {row.status})"
            )
        return row

    def get_run(self, run_id: str) -> ScheduleRun:
        """The run with this id; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(ScheduleRunRow, _known_id(run_id, "run"))
            if row is None:
                raise NotFoundError(f"no schedule run with id {run_id!r}")
            return _schedule_run(row)

    def find_run(self, schedule: str, run_date: date) -> ScheduleRun | None:
        """The run of `schedule` for `run_date`, if there is one."""
        with self._read() as session:
            row = session.scalars(
                select(ScheduleRunRow).where(
                    ScheduleRunRow.schedule == schedule, ScheduleRunRow.run_date == run_date
                )
            ).first()
            return _schedule_run(row) if row is not None else None

    def last_run(
        self, schedule: str, *, before: date | None = None, finished: bool = True
    ) -> ScheduleRun | None:
        """The latest run of `schedule` (before `before`; with `finished`, only runs that
        succeeded or found nothing new)."""
        query = select(ScheduleRunRow).where(ScheduleRunRow.schedule == schedule)
        if before is not None:
            query = query.where(ScheduleRunRow.run_date < before)
        if finished:
            query = query.where(ScheduleRunRow.status.in_(("succeeded", "empty")))
        with self._read() as session:
            row = session.scalars(query.order_by(ScheduleRunRow.run_date.desc()).limit(1)).first()
            return _schedule_run(row) if row is not None else None

    def list_runs(
        self, schedule: str, *, limit: int = 50, before: date | None = None
    ) -> list[ScheduleRun]:
        """Runs of `schedule`, latest date first (dates before `before` only, when given)."""
        query = select(ScheduleRunRow).where(ScheduleRunRow.schedule == schedule)
        if before is not None:
            query = query.where(ScheduleRunRow.run_date < before)
        query = query.order_by(ScheduleRunRow.run_date.desc()).limit(min(limit, MAX_PAGE))
        with self._read() as session:
            return [_schedule_run(row) for row in session.scalars(query)]

    def add_finished_job(
        self,
        job_id: str,
        request: dict[str, Any],
        source_ids: Sequence[str],
        *,
        result: dict[str, Any],
        kind: str = "briefing",
    ) -> Job:
        """Record a briefing built outside the job queue (a daily run) as a succeeded job."""
        _storable(request, "the job request")
        _storable(result, "the briefing")
        now = _now()
        with self._write() as session:
            row = JobRow(
                id=job_id,
                kind=kind,
                status="succeeded",
                request=request,
                request_sha256=_request_hash(request),
                idempotency_key=None,
                result=result,
                error=None,
                progress=None,
                attempts=1,
                cancel_requested=False,
                worker_id=None,
                lease_expires_at=None,
                created_at=now,
                updated_at=now,
                started_at=now,
                finished_at=now,
            )
            session.add(row)
            session.flush()
            for source_id in dict.fromkeys(source_ids):
                session.add(JobSourceRow(job_id=job_id, source_id=source_id))
            session.flush()
            return _job(session, row)

    def add_delivery(
        self, run_id: str, position: int, kind: str, target: str, spec: dict[str, Any]
    ) -> Delivery:
        """Record a destination of a run's briefing, not yet attempted."""
        _storable(spec, "the delivery")
        _storable(target, "the delivery target")
        with self._write() as session:
            row = DeliveryRow(
                id=uuid.uuid4().hex,
                run_id=run_id,
                position=position,
                kind=kind,
                target=target,
                spec=spec,
                status="pending",
                attempts=0,
                last_error=None,
                next_attempt_at=None,
                delivered_at=None,
                created_at=_now(),
            )
            session.add(row)
            session.flush()
            return _delivery(row)

    def finish_delivery(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> Delivery:
        """Record one attempt: delivered, pending (retried at `next_attempt_at`) or failed."""
        _storable(error, "the delivery error")
        with self._write() as session:
            row = session.get(DeliveryRow, delivery_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id!r}")
            row.attempts += 1
            row.status = status
            row.last_error = error
            row.next_attempt_at = next_attempt_at if status == "pending" else None
            if status == "delivered":
                row.delivered_at = _now()
            session.flush()
            return _delivery(row)

    def claim_due_deliveries(
        self, now: datetime, *, lease_s: float, limit: int = 20
    ) -> list[Delivery]:
        """Pending deliveries due by `now`, pushed `lease_s` ahead so no other process takes
        them while this one tries."""
        with self._write() as session:
            rows = list(
                session.scalars(
                    select(DeliveryRow)
                    .where(
                        DeliveryRow.status == "pending",
                        DeliveryRow.next_attempt_at.is_not(None),
                        DeliveryRow.next_attempt_at <= now,
                    )
                    .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.next_attempt_at = now + timedelta(seconds=lease_s)
            session.flush()
            return [_delivery(row) for row in rows]

    def list_deliveries(self, run_id: str) -> list[Delivery]:
        """The deliveries of a run, in the schedule's order."""
        with self._read() as session:
            rows = session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.run_id == run_id)
                .order_by(DeliveryRow.position)
            )
            return [_delivery(row) for row in rows]


_Public = TypeVar("_Public", bound=BaseModel)


def _public(model: type[_Public], row: Base) -> _Public:
    # The public models name a subset of their row's columns: read those, and nothing
    # of the row outlives its session.
    return model.model_validate({name: getattr(row, name) for name in model.model_fields})


def _stored(row: SourceRow) -> StoredSource:
    return _public(StoredSource, row)


def _source_row(source: Source) -> SourceRow:
    return SourceRow(
        id=source.id,
        sha256=source.sha256,
        title=source.title,
        path=source.path,
        text=source.text,
        chars=len(source.text),
        created_at=_now(),
    )


def _item(row: ItemRow) -> Item:
    return _public(Item, row)


def _fetch_state(row: FetchStateRow) -> FetchState:
    return _public(FetchState, row)


def _fetch_key(url: str) -> str:
    from briefing.fetch import canonical_url  # the store needs no HTTP client otherwise

    key = canonical_url(url)
    if not key or "\x00" in key:
        raise UserError(f"invalid URL {url!r}")
    return key


def _aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise UserError(f"{what} must carry a timezone (an aware datetime), got {value}")


def _summary(row: SourceRow) -> SourceSummary:
    return SourceSummary(
        id=row.id,
        title=row.title,
        path=row.path,
        sha256=row.sha256,
        chars=row.chars,
        created_at=row.created_at,
    )


def _check_same(stored: StoredSource, source: Source) -> StoredSource:
    # Ids are a prefix of the hash: two different texts sharing one is astronomically
    # unlikely, but must not silently answer with the wrong text.
    if stored.sha256 != source.sha256:
        raise ConflictError(f"source id {source.id} is taken by a different text")
    return stored


def _same_request(job: Job, row: JobRow, digest: str) -> Job:
    if row.request_sha256 != digest:
        raise ConflictError(
            f"idempotency key {row.idempotency_key!r} was used for a different request "
            f"(job {row.id}); use a new key"
        )
    return job


def _job(session: Session, row: JobRow) -> Job:
    source_ids = list(
        session.scalars(select(JobSourceRow.source_id).where(JobSourceRow.job_id == row.id))
    )
    # The request lists the sources in the order the briefing uses them.
    order = {s: i for i, s in enumerate(row.request.get("source_ids") or [])}
    source_ids.sort(key=lambda s: (order.get(s, len(order)), s))
    return Job(
        id=row.id,
        kind=row.kind,
        status=row.status,  # type: ignore[arg-type]  # the CHECK constraint guarantees it
        request=row.request,
        result=row.result,
        error=row.error,
        progress=row.progress,
        attempts=row.attempts,
        cancel_requested=row.cancel_requested,
        idempotency_key=row.idempotency_key,
        source_ids=source_ids,
        worker_id=row.worker_id,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _schedule(row: ScheduleRow) -> StoredSchedule:
    return _public(StoredSchedule, row)


def _schedule_run(row: ScheduleRunRow) -> ScheduleRun:
    return _public(ScheduleRun, row)


def _delivery(row: DeliveryRow) -> Delivery:
    return _public(Delivery, row)
