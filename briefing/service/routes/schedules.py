"""/v1/schedules: the daily-briefing schedules, their runs, and running one now.

Schedules come from two places: the schedules file (BRIEFING_SCHEDULES), which the operator
writes and the API only reads, and the API, which keeps them in the store. The file is
trusted; a schedule from the API may only use files inside BRIEFING_SCHEDULE_ROOTS and the
models this service offers (`untrusted_problems`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator

from briefing.config import Settings
from briefing.daily.runs import DefinedSchedule, RunOutcome, api_schedules, run_schedule
from briefing.daily.scheduler import DailyScheduler
from briefing.daily.schedules import Schedule, load_schedules, next_run, untrusted_problems
from briefing.errors import BriefingError, ConfigError, ConflictError, NotFoundError, UserError
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.surrogates import reject_lone_surrogates
from briefing.store import (
    MAX_PAGE,
    Delivery,
    DeliveryStatus,
    RunStatus,
    ScheduleRun,
    Store,
)
from briefing.urls import HIDDEN, redact_headers, redact_url

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: What a secret-bearing value (a webhook header's, a URL's credentials) is shown as.
_HIDDEN = HIDDEN


def _iso_date(value: Any) -> Any:
    # pydantic reads "0" as 1970-01-01 (a Unix time); a date here is YYYY-MM-DD only.
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


# ---------------------------------------------------------------- models


class ScheduleCreate(Schedule):
    """A schedule to create or replace: the fields of a `[[schedule]]` table of the file."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)


class RunLink(BaseModel):
    """The latest run of a schedule, in short."""

    id: str
    run_date: date
    status: RunStatus
    finished_at: datetime | None
    briefing: str | None = Field(description="/v1/briefings/{id} of its briefing, if any.")


class SchedulePublic(Schedule):
    """A schedule with where it is defined, when it runs next and how it last ran.

    Secrets are not shown: webhook header values and credentials in URLs read `***`.
    """

    origin: Literal["file", "api"] = Field(
        description="'file': the schedules file, read-only here; 'api': defined through the API."
    )
    next_run_at: datetime = Field(description="The next scheduled time, UTC.")
    last_run: RunLink | None
    created_at: datetime | None = Field(description="When it was created (API schedules).")
    updated_at: datetime | None = Field(description="When it last changed (API schedules).")
    location: str


class SchedulePage(BaseModel):
    """Every schedule: the file's in its order, then the API's by name."""

    items: list[SchedulePublic]


class DeliveryPublic(BaseModel):
    """One destination of a run's briefing and how delivering it went."""

    kind: str
    target: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When a pending one is tried again.")
    delivered_at: datetime | None


class RunPublic(BaseModel):
    """One run of a schedule for one date, with its deliveries."""

    id: str
    schedule: str
    run_date: date
    status: RunStatus
    attempt: int
    scheduled_at: datetime | None
    started_at: datetime
    finished_at: datetime | None
    items: int = Field(description="New items the briefing was built from.")
    window_start: datetime | None
    collected_until: datetime | None
    warnings: list[str]
    error: str | None
    briefing: str | None = Field(description="/v1/briefings/{id} of its briefing, if any.")
    deliveries: list[DeliveryPublic]


class RunPage(BaseModel):
    """Runs of a schedule, latest date first; pass `next_before` as `before` for more."""

    items: list[RunPublic]
    next_before: date | None = None


class RunOutcomePublic(BaseModel):
    """What running a schedule now did: succeeded, empty (nothing new), failed, or skipped
    (the date has a run already, or another process is running it)."""

    schedule: str
    run_date: date
    status: Literal["succeeded", "empty", "failed", "skipped"]
    message: str
    run: RunPublic | None


# ---------------------------------------------------------------- helpers


def _location(name: str) -> str:
    return f"/v1/schedules/{name}"


def _briefing_link(job_id: str | None) -> str | None:
    return f"/v1/briefings/{job_id}" if job_id else None


def _file_schedules(settings: Settings) -> list[DefinedSchedule]:
    if settings.schedules_file is None:
        return []
    try:
        return [DefinedSchedule(s, "file") for s in load_schedules(settings.schedules_file)]
    except ConfigError as exc:
        # The operator's file is broken: a fault of the service, not of the request (500,
        # logged with the reason).
        raise BriefingError(f"the schedules file cannot be used: {exc}") from None


def _in_file(settings: Settings, name: str) -> DefinedSchedule | None:
    return next((d for d in _file_schedules(settings) if d.name == name), None)


def _in_store(store: Store, name: str) -> DefinedSchedule | None:
    try:
        stored = store.schedules.get(name)
    except NotFoundError:
        return None
    schedule = Schedule.model_validate(stored.definition)
    return DefinedSchedule(schedule, "api", stored.created_at, stored.updated_at)


def _find(settings: Settings, store: Store, name: str) -> DefinedSchedule:
    found = _in_file(settings, name) or _in_store(store, name)
    if found is None:
        raise NotFoundError(f"no schedule named {name!r}")
    return found


def _hide_secrets(definition: dict[str, Any]) -> dict[str, Any]:
    shown = dict(definition)
    shown["sources"] = [
        {**s, "url": redact_url(s["url"])} if "url" in s else s for s in definition["sources"]
    ]
    deliver = []
    for spec in definition["deliver"]:
        if spec.get("kind") == "webhook":
            spec = {
                **spec,
                "url": redact_url(spec["url"]),
                "headers": redact_headers(spec.get("headers", {})),
            }
        deliver.append(spec)
    shown["deliver"] = deliver
    return shown


def _public(defined: DefinedSchedule, store: Store, now: datetime) -> SchedulePublic:
    schedule = defined.schedule
    last = store.runs.last(schedule.name, finished=False)
    return SchedulePublic.model_validate(
        {
            **_hide_secrets(schedule.model_dump(mode="json")),
            "origin": defined.origin,
            "next_run_at": next_run(schedule, now),
            "last_run": None
            if last is None
            else RunLink(
                id=last.id,
                run_date=last.run_date,
                status=last.status,
                finished_at=last.finished_at,
                briefing=_briefing_link(last.job_id),
            ),
            "created_at": defined.created_at,
            "updated_at": defined.updated_at,
            "location": _location(schedule.name),
        }
    )


def _delivery(delivery: Delivery) -> DeliveryPublic:
    return DeliveryPublic.model_validate(delivery, from_attributes=True)


def _run(run: ScheduleRun, store: Store) -> RunPublic:
    return RunPublic(
        id=run.id,
        schedule=run.schedule,
        run_date=run.run_date,
        status=run.status,
        attempt=run.attempt,
        scheduled_at=run.scheduled_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        items=run.items,
        window_start=run.window_start,
        collected_until=run.collected_until,
        warnings=run.warnings,
        error=run.error,
        briefing=_briefing_link(run.job_id),
        deliveries=[_delivery(d) for d in store.deliveries.of_run(run.id)],
    )


def _admit(schedule: Schedule, settings: Settings, where: tuple[str, ...] = ("body",)) -> None:
    """422 naming each field of an API schedule this service will not run."""
    problems = untrusted_problems(schedule, settings)
    if problems:
        raise RequestValidationError(
            [{"loc": (*where, *loc), "msg": msg, "type": "value_error"} for loc, msg in problems]
        )


def _reload(request: Request) -> None:
    # This process's scheduler picks the change up now; others do at their next tick.
    scheduler: DailyScheduler | None = getattr(request.app.state, "scheduler", None)
    if scheduler is not None:
        scheduler.reload()


def _store(
    body: ScheduleCreate, settings: Settings, store: Store, *, replace: bool
) -> tuple[DefinedSchedule, bool]:
    if _in_file(settings, body.name) is not None:
        raise ConflictError(
            f"schedule {body.name!r} is defined in the schedules file, which the API cannot "
            "change" + ("" if replace else "; choose another name")
        )
    schedule = Schedule.model_validate(body.model_dump(mode="json"))
    _admit(schedule, settings)
    stored, created = store.schedules.put(
        schedule.name, schedule.model_dump(mode="json"), replace=replace
    )
    return DefinedSchedule(schedule, "api", stored.created_at, stored.updated_at), created


# ---------------------------------------------------------------- routes


@router.get("", response_model=SchedulePage)
def list_schedules(store: StoreDep, settings: SettingsDep) -> SchedulePage:
    """Every schedule, from the file and from the API, with its next and last run."""
    now = datetime.now(UTC)
    defined = _file_schedules(settings) + api_schedules(store)
    return SchedulePage(items=[_public(d, store, now) for d in defined])


@router.post("", status_code=201, response_model=SchedulePublic)
def create_schedule(
    body: ScheduleCreate,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
) -> SchedulePublic:
    """Create a schedule; 409 when the name is taken (through the API or in the file)."""
    defined, _ = _store(body, settings, store, replace=False)
    _reload(request)
    response.headers["Location"] = _location(defined.name)
    return _public(defined, store, datetime.now(UTC))


@router.get("/{name}", response_model=SchedulePublic)
def get_schedule(name: str, store: StoreDep, settings: SettingsDep) -> SchedulePublic:
    """One schedule with its next and last run."""
    return _public(_find(settings, store, name), store, datetime.now(UTC))


@router.put(
    "/{name}",
    response_model=SchedulePublic,
    responses={201: {"description": "Created", "model": SchedulePublic}},
)
def put_schedule(
    name: str,
    body: ScheduleCreate,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
) -> SchedulePublic:
    """Create or replace a schedule (201 or 200); 409 for one of the schedules file."""
    if body.name != name:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "name"),
                    "msg": "must be the schedule's name in the path",
                    "type": "value_error",
                }
            ]
        )
    defined, created = _store(body, settings, store, replace=True)
    _reload(request)
    if created:
        response.status_code = 201
        response.headers["Location"] = _location(name)
    return _public(defined, store, datetime.now(UTC))


def _merge(target: Any, patch: Any) -> Any:
    """JSON Merge Patch (RFC 7396): objects merge key by key, null removes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _keep_hidden(merged: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Put the stored secrets back where the patch repeats them as GET shows them: a URL in
    its redacted form, a header whose value is hidden. A client can GET, edit and PATCH."""

    def restore(spec: Any, olds: list[Any]) -> Any:
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            return spec
        same = [o for o in olds if isinstance(o, dict) and o.get("kind") == spec.get("kind")
                and isinstance(o.get("url"), str) and redact_url(o["url"]) == spec["url"]]  # fmt: skip
        if not same:
            return spec
        old = same[0]
        spec = {**spec, "url": old["url"]} if spec["url"] != old["url"] else spec
        headers = spec.get("headers")
        if isinstance(headers, dict):
            kept = old.get("headers") or {}
            spec["headers"] = {k: kept.get(k, v) if v == _HIDDEN else v for k, v in headers.items()}
        return spec

    out = dict(merged)
    for field in ("sources", "deliver"):
        if isinstance(out.get(field), list):
            olds = stored.get(field) or []
            out[field] = [restore(spec, olds) for spec in out[field]]
    return out


@router.patch(
    "/{name}",
    response_model=SchedulePublic,
    openapi_extra={
        "requestBody": {
            "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
            "description": "The fields to change (JSON Merge Patch); the rest stay.",
        }
    },
)
async def patch_schedule(
    name: str, request: Request, store: StoreDep, settings: SettingsDep
) -> SchedulePublic:
    """Change some fields of a schedule defined through the API (JSON Merge Patch): the
    others, hidden headers and URLs as GET shows them included, keep their stored values."""
    try:
        patch = await request.json()
    except ValueError:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "expected a JSON object", "type": "json_invalid"}]
        ) from None
    if not isinstance(patch, dict):
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "expected a JSON object", "type": "dict_type"}]
        )
    return await run_in_threadpool(_patch, name, patch, request, store, settings)


def _patch(
    name: str, patch: dict[str, Any], request: Request, store: Store, settings: Settings
) -> SchedulePublic:
    if _in_file(settings, name) is not None:
        raise ConflictError(
            f"schedule {name!r} is defined in the schedules file, which the API cannot change"
        )
    stored = store.schedules.get(name)
    if patch.get("name", name) != name:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "name"),
                    "msg": "a schedule cannot be renamed",
                    "type": "value_error",
                }
            ]
        )
    merged = _keep_hidden(_merge(stored.definition, patch), stored.definition)
    try:
        body = ScheduleCreate.model_validate(merged)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    defined, _ = _store(body, settings, store, replace=True)
    _reload(request)
    return _public(defined, store, datetime.now(UTC))


@router.delete("/{name}", status_code=204, response_class=Response)
def delete_schedule(name: str, request: Request, store: StoreDep, settings: SettingsDep) -> None:
    """Delete a schedule defined through the API (its runs stay); 409 for a file one."""
    try:
        # Before the file is looked at: a name in both places is resolved by deleting the
        # API's copy.
        store.schedules.delete(name)
    except NotFoundError:
        if _in_file(settings, name) is not None:
            raise ConflictError(
                f"schedule {name!r} is defined in the schedules file; edit the file to remove it"
            ) from None
        raise
    _reload(request)


@router.get("/{name}/runs", response_model=RunPage)
def list_runs(
    name: str,
    store: StoreDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    before: Annotated[IsoDate | None, Query(description="Only runs of earlier dates.")] = None,
) -> RunPage:
    """Runs of a schedule (a deleted one's too), latest date first, with their deliveries."""
    runs = store.runs.recent(name, limit=limit, before=before)
    if not runs:
        _find(settings, store, name)  # 404 for a name that never existed
    return RunPage(
        items=[_run(run, store) for run in runs],
        next_before=runs[-1].run_date if len(runs) == limit else None,
    )


@router.post("/{name}/run", response_model=RunOutcomePublic)
def run_now(
    name: str,
    store: StoreDep,
    settings: SettingsDep,
    run_date: Annotated[
        IsoDate | None,
        Query(alias="date", description="The run's date; today in the schedule's time zone."),
    ] = None,
    force: Annotated[bool, Query(description="Run again even if the date has a run.")] = False,
) -> RunOutcomePublic:
    """Run a schedule once now and wait for the outcome; a date that has a run is skipped
    unless `force`."""
    defined = _find(settings, store, name)
    if defined.origin == "api":
        problems = untrusted_problems(defined.schedule, settings)
        if problems:  # the settings changed since it was stored
            raise UserError(
                f"schedule {name!r} cannot run here: "
                + "; ".join(".".join(map(str, loc)) + f": {msg}" for loc, msg in problems)
            )
    outcome: RunOutcome = run_schedule(
        defined.schedule, store, settings, run_date=run_date, force=force
    )
    return RunOutcomePublic(
        schedule=outcome.schedule,
        run_date=outcome.run_date,
        status=outcome.status,
        message=outcome.message,
        run=_run(outcome.run, store) if outcome.run is not None else None,
    )
