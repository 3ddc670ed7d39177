"""Briefing jobs: queued, claimed under a lease, finished once; and their briefings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from briefing.errors import ConflictError, NotFoundError, UserError
from briefing.store.database import (
    DuplicateError,
    Repository,
    check_storable,
    encode_cursor,
    known_id,
    newest_first,
    request_hash,
    utc_now,
)
from briefing.store.tables import JobRow, JobSourceRow, SourceRow

__all__ = [
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "JOB_STATUSES",
    "Job",
    "JobRepository",
    "JobStatus",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
#: Jobs in these states still need their sources.
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")
#: Jobs in these states will not change again.
FINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")


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


class JobRepository(Repository):
    """Jobs and the briefings they produced; a job is claimed by one worker at a time."""

    def create(
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
        digest = request_hash(request)
        check_storable(request, "the job request")
        check_storable(idempotency_key, "the idempotency key")
        check_storable(kind, "the job kind")
        wanted = [known_id(s, "source") for s in dict.fromkeys(source_ids)]
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
                now = utc_now()
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
        except DuplicateError:
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

    def get(self, job_id: str) -> Job:
        """The job with this id; NotFoundError when there is none."""
        with self._read() as session:
            return _job(session, self._job_row(session, job_id))

    def claim(self, worker_id: str, *, lease_s: float, job_id: str | None = None) -> Job | None:
        """Move the oldest queued job (or the job `job_id`, if it is queued) to running for
        `worker_id`; None when there is none to claim."""
        check_storable(worker_id, "the worker id")
        with self._write() as session:
            # SKIP LOCKED lets several workers claim different jobs at once on PostgreSQL.
            query = select(JobRow).where(JobRow.status == "queued")
            if job_id is not None:
                query = query.where(JobRow.id == job_id)
            row = session.scalars(
                query.order_by(JobRow.created_at, JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            now = utc_now()
            row.status = "running"
            row.attempts += 1
            row.worker_id = worker_id
            row.started_at = now
            row.lease_expires_at = now + timedelta(seconds=lease_s)
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def finish(
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
        if status not in FINAL_STATUSES:
            raise UserError(f"{status!r} is not a final status; use one of {FINAL_STATUSES}")
        check_storable(result, "the job result")
        check_storable(error, "the job error")
        check_storable(progress, "the job progress")
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status in FINAL_STATUSES:
                raise ConflictError(f"job {job_id} has already finished ({row.status})")
            if worker_id is not None and row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = utc_now()
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
        check_storable(progress, "the job progress")
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status != "running" or row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = utc_now()
            row.lease_expires_at = now + timedelta(seconds=lease_s)
            if progress is not None:
                row.progress = progress
            row.updated_at = now
            session.flush()
            return _job(session, row)

    def release(self, job_id: str, worker_id: str) -> Job:
        """Give a running job back to the queue (its worker is shutting down); ConflictError
        when `worker_id` no longer holds it.

        The claim does not count as an attempt: the job did not fail, its worker stopped.
        A job whose cancellation was asked for is cancelled instead.
        """
        with self._write() as session:
            row = self._job_row(session, job_id)
            if row.status != "running" or row.worker_id != worker_id:
                raise ConflictError(f"job {job_id} is no longer held by worker {worker_id}")
            now = utc_now()
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

    def count(self, status: JobStatus) -> int:
        """How many jobs are in `status` now."""
        with self._read() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(JobRow).where(JobRow.status == status)
                )
                or 0
            )

    def stale_queued(self, older_than_s: float, *, limit: int = 500) -> list[str]:
        """Ids of jobs queued and untouched for `older_than_s` seconds, oldest first; each is
        touched, so that of several processes asking at once only one gets it (a broker
        that lost a job's message is sent it again by one of them)."""
        now = utc_now()
        with self._write() as session:
            rows = list(
                session.scalars(
                    select(JobRow)
                    .where(JobRow.status == "queued")
                    .where(JobRow.updated_at < now - timedelta(seconds=older_than_s))
                    .order_by(JobRow.created_at, JobRow.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.updated_at = now
            session.flush()
            return [row.id for row in rows]

    def request_cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop; a finished one is left."""
        with self._write() as session:
            row = self._job_row(session, job_id)
            now = utc_now()
            if row.status == "queued":
                row.status = "cancelled"
                row.finished_at = now
                row.error = "cancelled before it started"
            if row.status in ACTIVE_STATUSES or row.status == "cancelled":
                row.cancel_requested = True
                row.updated_at = now
            session.flush()
            return _job(session, row)

    def recover(self, *, max_attempts: int, now: datetime | None = None) -> list[Job]:
        """Jobs left running by a dead worker (lease expired): queued again, or failed
        once they have been tried `max_attempts` times. Returns the jobs changed."""
        now = now or utc_now()
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

    def page(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: Sequence[JobStatus] | None = None,
        text: str | None = None,
        schedule: str | None = None,
        engine: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first, and the cursor of the next page.

        Only those created in [`since`, `until`), in `statuses`, whose briefing's title or one
        of whose sources' titles holds `text` (any case), that a run of `schedule` made, or
        whose briefing came from `engine` (a job not finished has no engine yet).
        """
        query = newest_first(JobRow, limit, cursor)
        if any("\x00" in (v or "") for v in (text, schedule, engine)):
            # Nothing stored holds NUL (check_storable), and PostgreSQL cannot compare it.
            return [], None
        for name, when in (("since", since), ("until", until)):
            if when is not None and when.tzinfo is None:
                raise UserError(f"{name} must carry a timezone (e.g. 2026-01-01T00:00:00Z)")
        if since is not None:
            query = query.where(JobRow.created_at >= since)
        if until is not None:
            query = query.where(JobRow.created_at < until)
        if statuses:
            query = query.where(JobRow.status.in_(list(statuses)))
        if text and text.strip():
            needle = text.strip().lower()
            titled = func.lower(JobRow.result["title"].as_string()).contains(
                needle, autoescape=True
            )
            by_source = exists().where(
                JobSourceRow.job_id == JobRow.id,
                SourceRow.id == JobSourceRow.source_id,
                func.lower(SourceRow.title).contains(needle, autoescape=True),
            )
            query = query.where(or_(titled, by_source))
        if schedule:
            query = query.where(JobRow.request["schedule"].as_string() == schedule)
        if engine:
            query = query.where(JobRow.result["engine"].as_string() == engine)
        with self._read() as session:
            rows = list(session.scalars(query))
            jobs = [_job(session, row) for row in rows[:limit]]
        more = len(rows) > limit
        return jobs, encode_cursor(jobs[-1].created_at, jobs[-1].id) if more else None

    @staticmethod
    def _job_row(session: Session, job_id: str) -> JobRow:
        row = session.get(JobRow, known_id(job_id, "job"))
        if row is None:
            raise NotFoundError(f"no job with id {job_id!r}")
        return row

    def add_finished(
        self,
        job_id: str,
        request: dict[str, Any],
        source_ids: Sequence[str],
        *,
        result: dict[str, Any],
        kind: str = "briefing",
    ) -> Job:
        """Record a briefing built outside the job queue (a daily run) as a succeeded job."""
        check_storable(request, "the job request")
        check_storable(result, "the briefing")
        now = utc_now()
        with self._write() as session:
            row = JobRow(
                id=job_id,
                kind=kind,
                status="succeeded",
                request=request,
                request_sha256=request_hash(request),
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
