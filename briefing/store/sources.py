"""Stored sources: the texts briefings are made of, kept once per content."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select

from briefing.errors import ConflictError, NotFoundError, SourceError
from briefing.schema import Source
from briefing.store.database import (
    DuplicateError,
    Repository,
    check_storable,
    encode_cursor,
    known_id,
    newest_first,
    to_public,
    utc_now,
)
from briefing.store.jobs import ACTIVE_STATUSES
from briefing.store.tables import JobRow, JobSourceRow, SourceRow

__all__ = ["SourceInUseError", "SourcePage", "SourceRepository", "SourceSummary", "StoredSource"]


class SourceInUseError(ConflictError):
    """A source cannot be deleted while a queued or running job uses it."""

    def __init__(self, source_id: str, job_ids: Sequence[str]) -> None:
        super().__init__(
            f"source {source_id} is used by {len(job_ids)} briefing job(s) in progress "
            f"({', '.join(job_ids)}); delete it when they have finished"
        )
        self.source_id = source_id
        self.job_ids = list(job_ids)


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


class SourceRepository(Repository):
    """Sources by content: adding the same text twice stores it once."""

    def add(self, source: Source) -> tuple[StoredSource, bool]:
        """Store `source` unless the same text is already stored: (stored, created)."""
        for value, what in ((source.title, "source title"), (source.path, "source path")):
            if value is not None and "\x00" in value:
                raise SourceError(f"{what} contains a NUL character, which cannot be stored")
        check_storable(source.text, "source text")
        try:
            with self._write() as session:
                row = session.get(SourceRow, source.id)
                if row is not None:
                    return check_same(stored_source(row), source), False
                row = source_row(source)
                session.add(row)
                session.flush()
                return stored_source(row), True
        except DuplicateError:
            # Another writer stored the same text between our look-up and insert.
            return check_same(self.get(source.id), source), False

    def get(self, source_id: str) -> StoredSource:
        """The stored source with this id; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(SourceRow, known_id(source_id, "source"))
            if row is None:
                raise NotFoundError(f"no source with id {source_id!r}")
            return stored_source(row)

    def page(self, *, limit: int = 50, cursor: str | None = None) -> SourcePage:
        """A page of sources, newest first; pass `next_cursor` back for the next page."""
        query = newest_first(SourceRow, limit, cursor)
        with self._read() as session:
            rows = list(session.scalars(query))
        items = [_summary(row) for row in rows[:limit]]
        more = len(rows) > limit
        return SourcePage(
            items=items,
            next_cursor=encode_cursor(items[-1].created_at, items[-1].id) if more else None,
        )

    def delete(self, source_id: str) -> None:
        """Delete a source; SourceInUseError while a queued or running job uses it."""
        with self._write() as session:
            # FOR UPDATE (PostgreSQL) waits for a job being created on this source to commit,
            # so the check below sees it; SQLite's immediate transaction does the same.
            row = session.scalars(
                select(SourceRow)
                .where(SourceRow.id == known_id(source_id, "source"))
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


def stored_source(row: SourceRow) -> StoredSource:
    """The public model of a source row."""
    return to_public(StoredSource, row)


def source_row(source: Source) -> SourceRow:
    """A new row for `source`, first stored now."""
    return SourceRow(
        id=source.id,
        sha256=source.sha256,
        title=source.title,
        path=source.path,
        text=source.text,
        chars=len(source.text),
        created_at=utc_now(),
    )


def check_same(stored: StoredSource, source: Source) -> StoredSource:
    """`stored`, unless its id is taken by a different text (ConflictError)."""
    # Ids are a prefix of the hash: two different texts sharing one is astronomically
    # unlikely, but must not silently answer with the wrong text.
    if stored.sha256 != source.sha256:
        raise ConflictError(f"source id {source.id} is taken by a different text")
    return stored


def _summary(row: SourceRow) -> SourceSummary:
    return SourceSummary(
        id=row.id,
        title=row.title,
        path=row.path,
        sha256=row.sha256,
        chars=row.chars,
        created_at=row.created_at,
    )
