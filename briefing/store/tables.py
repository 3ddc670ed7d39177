"""The store's tables (SQLAlchemy 2 declarative models).

The schema is owned by the Alembic migrations in ``briefing/store/migrations``; these models
must match them (a test compares the two). Nothing outside the store sees a row: the
repositories hand out pydantic models.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "DeliveryRow",
    "FetchStateRow",
    "ItemRow",
    "JobRow",
    "JobSourceRow",
    "MapCacheRow",
    "ScheduleRow",
    "ScheduleRunRow",
    "SourceRow",
    "UTCDateTime",
]


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


class MapCacheRow(Base):
    """The map step's claims of one source, under the key of everything that made them
    (`briefing.pipeline.mapcache`); written once, never changed."""

    __tablename__ = "map_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64))
    claims: Mapped[list[Any]] = mapped_column(_JSON)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_map_cache_created_at", "created_at"),)
