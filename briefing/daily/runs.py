"""Daily briefings: run one schedule for one date — collect, brief what is new, deliver.

A run is keyed by (schedule, date) in the store, so two processes (two services, or a
service and a cron job) never run the same schedule twice for a date: the second one finds
the key taken and says so. `--force` replaces a finished run. A run holds a lease that it
renews while it works; a run whose process died is taken over once the lease runs out.

Deliveries are recorded one by one. A failed one is retried later (`retry_deliveries`,
which the service's scheduler and every `briefing daily run` call), from the briefing kept
in the store, so a receiver that is down loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from briefing.config import EXTRACTIVE, Settings
from briefing.daily.changes import diff_briefings
from briefing.daily.collectors import collect
from briefing.daily.delivery import (
    DeliverySpec,
    DirDelivery,
    StoreDelivery,
    WebhookDelivery,
    deliver_dir,
    deliver_webhook,
    spec_fingerprint,
    stored_spec,
)
from briefing.daily.schedules import (
    Schedule,
    describe_problems,
    load_schedules,
    untrusted_problems,
)
from briefing.errors import (
    BriefingError,
    ConfigError,
    ConflictError,
    DeliveryError,
    NotFoundError,
    StoreError,
)
from briefing.faithfulness.checker import Checker
from briefing.models.local import default_prompt
from briefing.models.ratelimit import RateLimiter
from briefing.pipeline.build import build_briefing
from briefing.pipeline.request import BriefingRequest, job_settings
from briefing.schema import Briefing, Source
from briefing.store import Delivery, ScheduleRun, Store, map_cache_of
from briefing.urls import redact_url

__all__ = [
    "REDELIVERY_DELAYS",
    "DefinedSchedule",
    "RunOutcome",
    "api_schedules",
    "find_schedule",
    "previous_briefing",
    "retry_deliveries",
    "run_schedule",
    "runnable_schedule",
    "schedules_of",
]

log = logging.getLogger("briefing.daily")

#: Runs looked back over for the previous briefing to compare with.
_LOOKBACK_RUNS = 31
#: How long a run's claim lasts without renewal; renewed every third of it while it works.
RUN_LEASE_S = 120.0
#: Pauses before the later attempts of a failed delivery; after the last, it stays failed.
REDELIVERY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)

Outcome = Literal["succeeded", "empty", "failed", "skipped"]


@dataclass
class RunOutcome:
    """What one `run_schedule` call did, with a line for the person who asked."""

    schedule: str
    run_date: date
    status: Outcome
    message: str
    run: ScheduleRun | None = None
    briefing: Briefing | None = None
    deliveries: list[Delivery] = field(default_factory=list)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- finding schedules


Origin = Literal["file", "api"]


@dataclass(frozen=True)
class DefinedSchedule:
    """A schedule and where it is defined: the schedules file, or the API (with its times)."""

    schedule: Schedule
    origin: Origin
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def name(self) -> str:
        """The schedule's name."""
        return self.schedule.name


def api_schedules(store: Store) -> list[DefinedSchedule]:
    """The schedules defined through the API, by name; a definition that no longer
    validates is logged and left out."""
    found = []
    for stored in store.schedules.all():
        try:
            schedule = Schedule.model_validate(stored.definition)
        except ValidationError as exc:
            log.error("stored schedule %s is not valid any more: %s", stored.name, exc)
            continue
        found.append(DefinedSchedule(schedule, "api", stored.created_at, stored.updated_at))
    return found


def schedules_of(
    settings: Settings, store: Store | None, config: Path | None = None
) -> list[Schedule]:
    """The schedules of the file (`config`, else BRIEFING_SCHEDULES) and of the store.

    A name defined in both is an error: which one runs must never be a guess.
    """
    path = config or settings.schedules_file
    schedules = load_schedules(path) if path is not None else []
    if store is not None:
        named = {schedule.name for schedule in schedules}
        for defined in api_schedules(store):
            if defined.name in named:
                raise ConfigError(
                    f"schedule {defined.name!r} is defined both in {path} and through the "
                    "API; delete one of them"
                )
            schedules.append(defined.schedule)
    return schedules


def find_schedule(schedules: list[Schedule], name: str) -> Schedule:
    """The schedule called `name`, or NotFoundError listing the known names."""
    for schedule in schedules:
        if schedule.name == name:
            return schedule
    known = ", ".join(sorted(s.name for s in schedules)) or "none"
    raise NotFoundError(f"no schedule named {name!r} (known: {known})")


def runnable_schedule(name: str, store: Store, settings: Settings) -> Schedule:
    """Schedule `name` as a service runs it: from the schedules file, or from the API when
    this process's settings allow all it reads, writes and uses.

    What a worker of the cluster looks up before it runs a firing sent to it, so that it
    runs nothing the sending service's scheduler would not. NotFoundError when the name is
    defined nowhere (deleted since it fired); ConfigError when it is defined twice or
    refused here.
    """
    found = find_schedule(schedules_of(settings, store), name)
    if any(d.name == name for d in api_schedules(store)):
        problems = untrusted_problems(found, settings)
        if problems:
            reasons = describe_problems(problems)
            raise ConfigError(f"schedule {name!r} is not run here: {reasons}")
    return found


# ---------------------------------------------------------------- one run


class _Lease:
    """Renews a run's claim on a thread of its own while the run works."""

    def __init__(self, store: Store, run_id: str, owner: str) -> None:
        self.store, self.run_id, self.owner = store, run_id, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{run_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew(self) -> None:
        while not self._stop.wait(RUN_LEASE_S / 3):
            try:
                self.store.runs.renew(self.run_id, self.owner, lease_s=RUN_LEASE_S)
            except StoreError as exc:
                log.warning("run %s: could not renew its claim: %s", self.run_id, exc)


def run_schedule(
    schedule: Schedule,
    store: Store,
    settings: Settings,
    *,
    run_date: date | None = None,
    force: bool = False,
    now: datetime | None = None,
    scheduled_at: datetime | None = None,
    limiter: RateLimiter | None = None,
) -> RunOutcome:
    """Run `schedule` once for `run_date` (today in its time zone by default).

    Returns without doing anything when the date already has a run (unless `force`) or
    another process is running it. Failures of single sources become warnings; a failure
    of the briefing itself fails the run, with the reason recorded.
    """
    now = now or datetime.now(UTC)
    day = run_date or now.astimezone(schedule.zone).date()
    owner = _worker_id()
    run, claimed = store.runs.claim(
        schedule.name,
        day,
        owner,
        lease_s=RUN_LEASE_S,
        force=force,
        scheduled_at=scheduled_at,
        now=now,
    )
    if not claimed:
        if run.status == "running":
            message = (
                f"{schedule.name} {day}: already running elsewhere ({run.owner}); nothing done"
            )
        else:
            message = (
                f"{schedule.name} {day}: already ran ({run.status} at "
                f"{_when(run.finished_at)}); nothing done — use --force to run it again"
            )
        return RunOutcome(schedule.name, day, "skipped", message, run=run)
    with _Lease(store, run.id, owner):
        try:
            return _run(schedule, store, settings, run, owner, now, limiter)
        except BriefingError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: recorded, so the run is not left "running"
            log.exception("run %s of %s failed unexpectedly", run.id, schedule.name)
            error = f"internal error ({type(exc).__name__}); the log has the details"
        message = f"{schedule.name} {day}: failed: {error}"
        try:
            finished = store.runs.finish(run.id, owner, "failed", error=error)
        except ConflictError:
            # The claim ran out and another process took the run over: it records the end.
            return RunOutcome(schedule.name, day, "failed", f"{message} (claim lost)", run=run)
        return RunOutcome(schedule.name, day, "failed", message, run=finished)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else "an unknown time"


def _run(
    schedule: Schedule,
    store: Store,
    settings: Settings,
    run: ScheduleRun,
    owner: str,
    now: datetime,
    limiter: RateLimiter | None,
) -> RunOutcome:
    day = run.run_date
    collection = collect(
        schedule.sources, store, settings, base_dir=schedule.base_dir or Path.cwd(), now=now
    )
    start = now - schedule.window_delta
    # Items the previous day's run already briefed are not new again, however the windows
    # of the two runs overlap.
    previous = store.runs.last(schedule.name, before=day)
    if previous is not None and previous.collected_until is not None:
        start = max(start, previous.collected_until)
    if schedule.scope == "all":
        fresh = list(collection.items)
    else:
        fresh = [c for c in collection.items if start < c.item.first_seen_at <= now]
    warnings = [f"source failed: {error}" for error in collection.errors]
    log.info(
        "%s %s: %d item(s) collected, %d new in the window, %d source(s) failed",
        schedule.name,
        day,
        len(collection.items),
        len(fresh),
        len(collection.errors),
    )
    if not fresh and not schedule.empty_day_note:
        finished = store.runs.finish(
            run.id, owner, "empty", window_start=start, collected_until=now, warnings=warnings
        )
        message = f"{schedule.name} {day}: nothing new since {_when(start)}; no briefing"
        if warnings:
            message += f" ({len(warnings)} source(s) failed: see the run's warnings)"
        return RunOutcome(schedule.name, day, "empty", message, run=finished)

    job_id = uuid.uuid4().hex
    source_ids = [c.source.id for c in fresh]
    prompt = schedule.prompt or default_prompt(settings, schedule.model)
    if fresh:
        request = BriefingRequest(
            source_ids=source_ids, model=schedule.model, prompt=prompt, options=schedule.options
        )
        briefing = asyncio.run(
            _brief(schedule, store, settings, request, [c.source for c in fresh], day, limiter)
        )
        briefing = briefing.model_copy(
            update={"id": job_id, "warnings": [*briefing.warnings, *warnings]}
        )
    else:
        briefing = _empty_note(schedule, day, job_id, start, warnings)
    stored_request = {
        "source_ids": source_ids,
        "model": schedule.model if fresh else EXTRACTIVE,
        "prompt": prompt,
        "options": schedule.options.model_dump(mode="json"),
        "schedule": schedule.name,
        "run_date": day.isoformat(),
    }
    store.jobs.add_finished(
        job_id,
        stored_request,
        source_ids,
        result=briefing.model_dump(mode="json"),
    )
    deliveries = [
        store.deliveries.add(
            run.id, position, spec.kind, _target(schedule, spec), _stored_spec(schedule, spec)
        )
        for position, spec in enumerate(schedule.deliver)
    ]
    deliveries = [
        _attempt(store, settings, delivery, briefing, schedule.name, day, now, [schedule])
        for delivery in deliveries
    ]
    finished = store.runs.finish(
        run.id,
        owner,
        "succeeded",
        job_id=job_id,
        items=len(fresh),
        window_start=start,
        collected_until=now,
        warnings=warnings,
    )
    failed = [d for d in deliveries if d.status != "delivered"]
    message = f"{schedule.name} {day}: briefing {job_id} of {len(fresh)} new item(s)"
    for delivery in deliveries:
        where = "" if delivery.kind == "store" else f" {delivery.target}"
        message += f"\n  {delivery.kind}{where}: {delivery.status}"
        if delivery.last_error:
            message += f" ({delivery.last_error})"
    if failed:
        message += "\n  failed deliveries are retried later; the briefing is kept in the store"
    return RunOutcome(
        schedule.name,
        day,
        "succeeded",
        message,
        run=finished,
        briefing=briefing,
        deliveries=deliveries,
    )


async def _brief(
    schedule: Schedule,
    store: Store,
    settings: Settings,
    request: BriefingRequest,
    sources: list[Source],
    day: date,
    limiter: RateLimiter | None,
) -> Briefing:
    """The run's briefing, with what changed since the schedule's previous briefing."""
    built = await build_briefing(
        sources,
        job_settings(settings, request),
        map_cache=map_cache_of(store, settings),
        limiter=limiter,
    )
    previous = previous_briefing(store, schedule.name, day)
    if previous is None:
        return built
    checker = Checker(settings, fallback=True)
    changes = await diff_briefings(previous, built, checker)
    return built.model_copy(
        update={"changes": changes, "warnings": [*built.warnings, *checker.warnings]}
    )


def previous_briefing(store: Store, schedule: str, day: date) -> Briefing | None:
    """The briefing of the schedule's latest successful run before `day`, if one is kept;
    a day's note that nothing was new is no briefing to compare with."""
    for run in store.runs.recent(schedule, before=day, limit=_LOOKBACK_RUNS):
        if run.status != "succeeded" or run.job_id is None:
            continue
        try:
            result = store.jobs.get(run.job_id).result
        except NotFoundError:
            continue
        if result is None:
            continue
        briefing = Briefing.model_validate(result)
        if briefing.sources:
            return briefing
    return None


def _empty_note(
    schedule: Schedule, day: date, job_id: str, start: datetime, warnings: list[str]
) -> Briefing:
    return Briefing(
        id=job_id,
        title=f"{schedule.name} {day.isoformat()}: nothing new",
        engine="extractive",
        model=EXTRACTIVE,
        prompt=None,
        sources=[],
        summary=[],
        key_points=[],
        warnings=[f"no new items since {_when(start)}", *warnings],
    )


# ---------------------------------------------------------------- delivery


def _target(schedule: Schedule, spec: DeliverySpec) -> str:
    if isinstance(spec, DirDelivery):
        return str(schedule.resolve_path(spec.path))
    if isinstance(spec, WebhookDelivery):
        return redact_url(str(spec.url))
    return "store"


def _stored_spec(schedule: Schedule, spec: DeliverySpec) -> dict[str, Any]:
    # Folders are kept absolute: a retry may run in another working directory. A webhook's
    # URL and headers are kept redacted: a retry finds the whole spec in the schedule.
    if isinstance(spec, DirDelivery):
        spec = spec.model_copy(update={"path": str(schedule.resolve_path(spec.path))})
    return stored_spec(spec)


def _spec_of(delivery: Delivery, name: str, schedules: Sequence[Schedule]) -> DeliverySpec:
    """The spec to deliver with: the stored one, or, where the store keeps it redacted,
    the schedule's spec with the same fingerprint; DeliveryError when that is gone."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[DeliverySpec] = TypeAdapter(DeliverySpec)
    data = dict(delivery.spec)
    fingerprint = data.pop("fingerprint", None)
    spec = adapter.validate_python(data)
    if fingerprint is None or spec_fingerprint(spec) == fingerprint:
        return spec
    for schedule in schedules:
        if schedule.name != name:
            continue
        for candidate in schedule.deliver:
            if isinstance(candidate, DirDelivery):
                path = str(schedule.resolve_path(candidate.path))
                candidate = candidate.model_copy(update={"path": path})
            if spec_fingerprint(candidate) == fingerprint:
                return candidate
    raise DeliveryError(
        f"{delivery.kind} {delivery.target}: the schedule no longer has this delivery "
        "(it was changed or removed); not retried",
        target=delivery.target,
        retryable=False,
    )


def _deliver(
    settings: Settings, spec: DeliverySpec, briefing: Briefing, schedule: str, day: date
) -> None:
    if isinstance(spec, DirDelivery):
        deliver_dir(briefing, spec, schedule_name=schedule, run_date=day, base_dir=None)
    elif isinstance(spec, WebhookDelivery):
        deliver_webhook(briefing, spec, schedule_name=schedule, run_date=day, settings=settings)
    else:
        assert isinstance(spec, StoreDelivery)  # the job row written before is the delivery


def _attempt(
    store: Store,
    settings: Settings,
    delivery: Delivery,
    briefing: Briefing,
    schedule: str,
    day: date,
    now: datetime,
    schedules: Sequence[Schedule],
) -> Delivery:
    try:
        spec = _spec_of(delivery, schedule, schedules)
        _deliver(settings, spec, briefing, schedule, day)
    except DeliveryError as exc:
        retry = delivery.attempts < len(REDELIVERY_DELAYS) and exc.retryable
        next_at = now + REDELIVERY_DELAYS[delivery.attempts] if retry else None
        log.warning("delivery %s to %s failed: %s", delivery.id, delivery.target, exc)
        return store.deliveries.finish(
            delivery.id, "pending" if retry else "failed", error=str(exc), next_attempt_at=next_at
        )
    return store.deliveries.finish(delivery.id, "delivered")


def retry_deliveries(
    store: Store,
    settings: Settings,
    *,
    now: datetime | None = None,
    schedules: Sequence[Schedule] | None = None,
) -> list[Delivery]:
    """Try again every failed delivery that is due; returns them as they ended.

    A webhook's secrets are not in the store: its spec is found again among `schedules`
    (default: those of the settings' schedules file and of the store).
    """
    now = now or datetime.now(UTC)
    done = []
    known: Sequence[Schedule] | None = schedules
    for delivery in store.deliveries.claim_due(now, lease_s=RUN_LEASE_S):
        if known is None:
            try:
                known = schedules_of(settings, store)
            except ConfigError as exc:
                log.warning("deliveries not retried: %s", exc)
                known = []
        run = store.runs.get(delivery.run_id)
        if run.job_id is None:
            continue
        result = store.jobs.get(run.job_id).result
        if result is None:
            continue
        briefing = Briefing.model_validate(result)
        done.append(
            _attempt(store, settings, delivery, briefing, run.schedule, run.run_date, now, known)
        )
    return done
