"""The schedules' pages: every schedule with its next and last run, one schedule's runs with
their briefings and deliveries, and "run now".

They read what `/v1/schedules` serves (secrets in URLs and webhook headers hidden the same
way) and run a schedule as `POST /v1/schedules/{name}/run` does.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from briefing.daily.collectors import describe
from briefing.errors import BriefingError, NotFoundError
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.pages.routes import error_page, guard, render
from briefing.service.pages.session import CSRF_COOKIE, csrf_matches
from briefing.service.routes.schedules import (
    RunOutcomePublic,
    get_schedule,
    list_runs,
    list_schedules,
    run_now,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
RUNS_SHOWN = 30


def page_link(api_link: str | None) -> str | None:
    """The page of a briefing the API links to as /v1/briefings/{id}."""
    if api_link is None:
        return None
    return "/briefings/" + api_link.rsplit("/", 1)[-1]


@router.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    """Every schedule, from the file and from the API, with its next and last run."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    try:
        page = list_schedules(store, settings)
    except BriefingError as exc:
        return error_page(request, settings, 500, str(exc))
    return render(request, settings, "schedules.html", schedules=page.items, link=page_link)


def _schedule_page(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    name: str,
    *,
    before: str | None = None,
    outcome: RunOutcomePublic | None = None,
    status: int = 200,
) -> Response:
    try:
        earlier = date.fromisoformat(before) if before else None
    except ValueError:
        return error_page(
            request, settings, 400, f"before must be a date such as 2026-12-01, not {before!r}"
        )
    try:
        schedule = get_schedule(name, store, settings)
        runs = list_runs(name, store, settings, limit=RUNS_SHOWN, before=earlier)
    except NotFoundError:
        return error_page(request, settings, 404, f"There is no schedule {name!r}.")
    except BriefingError as exc:
        return error_page(request, settings, 400, str(exc))
    return render(
        request,
        settings,
        "schedule.html",
        status=status,
        s=schedule,
        runs=runs.items,
        next_before=runs.next_before,
        outcome=outcome,
        link=page_link,
        describe=describe,
    )


@router.get("/schedules/{name}", response_class=HTMLResponse)
def schedule_page(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    name: str,
    before: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    """One schedule: its definition, its runs (latest first) and a "run now" button."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    return _schedule_page(request, settings, store, name, before=before)


@router.post("/schedules/{name}/run", response_class=HTMLResponse)
async def run_schedule_now(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    name: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    force: Annotated[bool, Form()] = False,
) -> Response:
    """Run the schedule for today and show the outcome above its runs."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    try:
        outcome = await run_in_threadpool(run_now, name, store, settings, None, force)
    except NotFoundError:
        return error_page(request, settings, 404, f"There is no schedule {name!r}.")
    except BriefingError as exc:
        return error_page(request, settings, 400, str(exc))
    return _schedule_page(request, settings, store, name, outcome=outcome)
