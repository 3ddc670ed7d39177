"""Daily briefings in the store: API-defined schedules, one run per schedule and date, and
each run's deliveries with their retries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from briefing.errors import ConflictError, NotFoundError, StoreError
from briefing.store.database import (
    MAX_PAGE,
    DuplicateError,
    Repository,
    check_storable,
    known_id,
    to_public,
    utc_now,
)
from briefing.store.tables import DeliveryRow, ScheduleRow, ScheduleRunRow

__all__ = [
    "Delivery",
    "DeliveryRepository",
    "DeliveryStatus",
    "RunRepository",
    "RunStatus",
    "ScheduleRepository",
    "ScheduleRun",
    "StoredSchedule",
]

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


class ScheduleRepository(Repository):
    """Schedules defined through the API (file schedules are read from their file)."""

    def put(
        self, name: str, definition: dict[str, Any], *, replace: bool = True
    ) -> tuple[StoredSchedule, bool]:
        """Create or replace the API-defined schedule `name`: (stored, created).

        With `replace=False` an existing schedule is left alone: ConflictError.
        """
        check_storable(definition, "the schedule")
        now = utc_now()
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
            except DuplicateError:
                continue  # created by a concurrent writer: replace it on the second pass
        raise StoreError(f"could not store schedule {name!r}: it kept changing under us")

    def get(self, name: str) -> StoredSchedule:
        """The API-defined schedule `name`; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(ScheduleRow, known_id(name, "schedule"))
            if row is None:
                raise NotFoundError(f"no schedule named {name!r}")
            return _schedule(row)

    def all(self) -> list[StoredSchedule]:
        """Every API-defined schedule, by name."""
        with self._read() as session:
            rows = session.scalars(select(ScheduleRow).order_by(ScheduleRow.name))
            return [_schedule(row) for row in rows]

    def delete(self, name: str) -> None:
        """Delete the API-defined schedule `name` (its runs stay); NotFoundError if absent."""
        with self._write() as session:
            row = session.get(ScheduleRow, known_id(name, "schedule"))
            if row is None:
                raise NotFoundError(f"no schedule named {name!r}")
            session.delete(row)


class RunRepository(Repository):
    """Runs of schedules: one per (schedule, date), claimed under a lease."""

    def claim(
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
        now = now or utc_now()
        check_storable(owner, "the run owner")
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
            except DuplicateError:
                continue  # another process inserted the key first: look at its run
        raise StoreError(f"could not claim the run of {schedule!r} for {run_date}")

    def renew(self, run_id: str, owner: str, *, lease_s: float) -> ScheduleRun:
        """Extend the claim of a running run; ConflictError when `owner` no longer holds it."""
        with self._write() as session:
            row = self._owned_run(session, run_id, owner)
            row.lease_expires_at = utc_now() + timedelta(seconds=lease_s)
            session.flush()
            return _schedule_run(row)

    def finish(
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
        check_storable(list(warnings), "the run's warnings")
        check_storable(error, "the run's error")
        with self._write() as session:
            row = self._owned_run(session, run_id, owner)
            row.status = status
            row.finished_at = utc_now()
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

    def get(self, run_id: str) -> ScheduleRun:
        """The run with this id; NotFoundError when there is none."""
        with self._read() as session:
            row = session.get(ScheduleRunRow, known_id(run_id, "run"))
            if row is None:
                raise NotFoundError(f"no schedule run with id {run_id!r}")
            return _schedule_run(row)

    def find(self, schedule: str, run_date: date) -> ScheduleRun | None:
        """The run of `schedule` for `run_date`, if there is one."""
        with self._read() as session:
            row = session.scalars(
                select(ScheduleRunRow).where(
                    ScheduleRunRow.schedule == schedule, ScheduleRunRow.run_date == run_date
                )
            ).first()
            return _schedule_run(row) if row is not None else None

    def last(
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

    def recent(
        self, schedule: str, *, limit: int = 50, before: date | None = None
    ) -> list[ScheduleRun]:
        """Runs of `schedule`, latest date first (dates before `before` only, when given)."""
        query = select(ScheduleRunRow).where(ScheduleRunRow.schedule == schedule)
        if before is not None:
            query = query.where(ScheduleRunRow.run_date < before)
        query = query.order_by(ScheduleRunRow.run_date.desc()).limit(min(limit, MAX_PAGE))
        with self._read() as session:
            return [_schedule_run(row) for row in session.scalars(query)]


class DeliveryRepository(Repository):
    """Where each run's briefing goes, with the attempts made; failed ones are retried."""

    def add(
        self, run_id: str, position: int, kind: str, target: str, spec: dict[str, Any]
    ) -> Delivery:
        """Record a destination of a run's briefing, not yet attempted."""
        check_storable(spec, "the delivery")
        check_storable(target, "the delivery target")
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
                created_at=utc_now(),
            )
            session.add(row)
            session.flush()
            return _delivery(row)

    def finish(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> Delivery:
        """Record one attempt: delivered, pending (retried at `next_attempt_at`) or failed."""
        check_storable(error, "the delivery error")
        with self._write() as session:
            row = session.get(DeliveryRow, delivery_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id!r}")
            row.attempts += 1
            row.status = status
            row.last_error = error
            row.next_attempt_at = next_attempt_at if status == "pending" else None
            if status == "delivered":
                row.delivered_at = utc_now()
            session.flush()
            return _delivery(row)

    def claim_due(self, now: datetime, *, lease_s: float, limit: int = 20) -> list[Delivery]:
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

    def of_run(self, run_id: str) -> list[Delivery]:
        """The deliveries of a run, in the schedule's order."""
        with self._read() as session:
            rows = session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.run_id == run_id)
                .order_by(DeliveryRow.position)
            )
            return [_delivery(row) for row in rows]


def _schedule(row: ScheduleRow) -> StoredSchedule:
    return to_public(StoredSchedule, row)


def _schedule_run(row: ScheduleRunRow) -> ScheduleRun:
    return to_public(ScheduleRun, row)


def _delivery(row: DeliveryRow) -> Delivery:
    return to_public(Delivery, row)
