"""The reader's pages: the briefings, one briefing with its citations, a source at a span.

Server-rendered (Jinja2, autoescaped) so that every page reads without JavaScript; a small
script of our own opens a citation's source beside the briefing instead of on a page of its
own. With API keys configured every page needs a session (see `session`).
"""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from briefing.errors import NotFoundError, UserError
from briefing.pipeline.render import to_markdown
from briefing.schema import Briefing
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.pages.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    csrf_matches,
    new_csrf_token,
    new_session,
    session_valid,
)
from briefing.service.pages.view import briefing_view, source_view
from briefing.store import JOB_STATUSES, MAX_PAGE, Job, JobStatus, Store

__all__ = ["STATIC_DIR", "error_page", "guard", "render", "router"]

STATIC_DIR = Path(__file__).with_name("static")
PAGE_SIZE = 25

router = APIRouter(include_in_schema=False)
R = TypeVar("R", bound=Response)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

#: Scripts, styles and fetches from this origin only; no inline script or style at all, so
#: a source that smuggles markup past escaping still could not run anything.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _secure(request: Request, response: R) -> R:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


def _keys(request: Request) -> list[bytes]:
    keys: list[bytes] = request.app.state.api_keys
    return keys


def _signed_in(request: Request, settings: SettingsDep) -> bool:
    secret = settings.session_secret
    if secret is None:
        return False
    return session_valid(
        secret.get_secret_value().encode("utf-8"),
        request.cookies.get(SESSION_COOKIE),
        _keys(request),
    )


def render(
    request: Request, settings: SettingsDep, name: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf_token()
    html = _templates.get_template(name).render(
        csrf_field=CSRF_FIELD,
        csrf_token=token,
        keys_required=bool(_keys(request)),
        signed_in=_signed_in(request, settings),
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if request.cookies.get(CSRF_COOKIE) != token:
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return _secure(request, response)


def error_page(request: Request, settings: SettingsDep, status: int, message: str) -> HTMLResponse:
    return render(request, settings, "error.html", status=status, message=message)


def guard(request: Request, settings: SettingsDep) -> Response | None:
    """None when the reader may see the page; else where they must go first."""
    if not _keys(request):
        return None
    if settings.session_secret is None:
        return error_page(
            request,
            settings,
            503,
            "The API needs keys (BRIEFING_API_KEYS), so the pages need sessions, and "
            "sessions need BRIEFING_SESSION_SECRET: set it to a random string of at least "
            "32 characters and restart the service.",
        )
    if _signed_in(request, settings):
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?{_query(next=target)}", status_code=303)


def _query(**params: str) -> str:
    return urlencode(params)


def _local(target: str | None) -> str:
    """`target` when it is a path of this site, else the briefings: no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/briefings"


def _finished(store: Store, job_id: str) -> tuple[Job, Briefing | None]:
    job = store.jobs.get(job_id)
    if job.status != "succeeded" or job.result is None:
        return job, None
    return job, Briefing.model_validate(job.result)


# ------------------------------------------------------------------ pages


@router.get("/")
def home() -> RedirectResponse:
    """The briefings are the home page."""
    return RedirectResponse("/briefings", status_code=307)


def _day(value: str, name: str) -> date | None:
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{name} must be a date such as 2026-12-01, not {value!r}") from None


@router.get("/briefings", response_class=HTMLResponse)
def briefings_page(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[JobStatus | None, Query()] = None,
    q: Annotated[str, Query(max_length=200)] = "",
    schedule: Annotated[str, Query(max_length=200)] = "",
    engine: Annotated[Literal["", "extractive", "llm"], Query()] = "",
    day_from: Annotated[str, Query(alias="from", max_length=20)] = "",
    day_to: Annotated[str, Query(alias="to", max_length=20)] = "",
) -> Response:
    """The briefings, newest first, a page at a time; by title or source, schedule, engine,
    status and the days they were made on (UTC, both ends included)."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    filters = {
        "q": q.strip(),
        "schedule": schedule.strip(),
        "engine": engine,
        "status": status or "",
        "from": day_from.strip(),
        "to": day_to.strip(),
    }
    try:
        first, last = _day(day_from, "from"), _day(day_to, "to")
        jobs, next_cursor = store.jobs.page(
            limit=min(PAGE_SIZE, MAX_PAGE),
            cursor=cursor,
            statuses=[status] if status else None,
            text=filters["q"] or None,
            schedule=filters["schedule"] or None,
            engine=engine or None,
            since=None if first is None else datetime.combine(first, time(), UTC),
            until=None if last is None else datetime.combine(last + timedelta(days=1), time(), UTC),
        )
    except UserError as exc:
        return error_page(request, settings, 400, str(exc))
    rows = []
    for job in jobs:
        result = job.result or {}
        rows.append(
            {
                "id": job.id,
                "title": result.get("title") or f"Briefing of {len(job.source_ids)} source(s)",
                "status": job.status,
                "model": result.get("model") or job.request.get("model") or "",
                "schedule": job.request.get("schedule") or "",
                "sources": len(job.source_ids),
                "created_at": job.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            }
        )
    given = {k: v for k, v in filters.items() if v}
    next_href = f"/briefings?{_query(cursor=next_cursor, **given)}" if next_cursor else None
    return render(
        request,
        settings,
        "briefings.html",
        rows=rows,
        f=filters,
        filtered=bool(given),
        statuses=JOB_STATUSES,
        next_href=next_href,
    )


@router.get("/briefings/{job_id}", response_class=HTMLResponse)
def briefing_page(
    request: Request, settings: SettingsDep, store: StoreDep, job_id: str
) -> Response:
    """One briefing: summary, key points, disagreements, and every citation as a chip."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    try:
        job, briefing = _finished(store, job_id)
    except NotFoundError:
        return error_page(request, settings, 404, f"There is no briefing {job_id}.")
    if briefing is None:
        return render(request, settings, "pending.html", job=job)
    return render(request, settings, "briefing.html", b=briefing_view(briefing, job.id))


def _source(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    job_id: str,
    number: int,
    start: int | None,
    end: int | None,
    template: str,
) -> Response:
    if (redirect := guard(request, settings)) is not None:
        return redirect
    try:
        _, briefing = _finished(store, job_id)
        if briefing is None:
            raise NotFoundError(f"briefing {job_id} has not succeeded")
        view = source_view(briefing, number, start, end)
    except NotFoundError as exc:
        return error_page(request, settings, 404, str(exc))
    except UserError as exc:
        return error_page(request, settings, 400, str(exc))
    return render(request, settings, template, briefing_id=job_id, title=briefing.title, s=view)


@router.get("/briefings/{job_id}/sources/{number}", response_class=HTMLResponse)
def source_page(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    job_id: str,
    number: int,
    start: Annotated[int | None, Query(ge=0)] = None,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """Source `number` of a briefing, the cited span marked (the chips' link without JS)."""
    return _source(request, settings, store, job_id, number, start, end, "source.html")


@router.get("/briefings/{job_id}/sources/{number}/fragment", response_class=HTMLResponse)
def source_fragment(
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    job_id: str,
    number: int,
    start: Annotated[int | None, Query(ge=0)] = None,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The same source as an HTML fragment, for the pane beside the briefing."""
    return _source(request, settings, store, job_id, number, start, end, "source_pane.html")


@router.get("/briefings/{job_id}/download/{name}")
def download(
    request: Request, settings: SettingsDep, store: StoreDep, job_id: str, name: str
) -> Response:
    """The briefing as JSON or Markdown, for a reader whose browser holds no API key."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    try:
        _, briefing = _finished(store, job_id)
    except NotFoundError:
        return error_page(request, settings, 404, f"There is no briefing {job_id}.")
    if briefing is None or name not in ("briefing.json", "briefing.md"):
        return error_page(request, settings, 404, f"There is no {name} of briefing {job_id}.")
    disposition = {"Content-Disposition": f'attachment; filename="{job_id}-{name}"'}
    if name == "briefing.md":
        response: Response = PlainTextResponse(
            to_markdown(briefing), media_type="text/markdown; charset=utf-8", headers=disposition
        )
    else:
        response = Response(
            briefing.model_dump_json(indent=2),
            media_type="application/json",
            headers=disposition,
        )
    return _secure(request, response)


# ------------------------------------------------------------------ sessions


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request,
    settings: SettingsDep,
    next: Annotated[str | None, Query(max_length=2000)] = None,
) -> Response:
    """Ask for an API key once (only when keys are configured)."""
    if not _keys(request):
        return RedirectResponse(_local(next), status_code=303)
    return render(request, settings, "login.html", next=_local(next), failed=False)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    settings: SettingsDep,
    key: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/briefings",
) -> Response:
    """Open a session for a valid key; the key is checked, never stored or echoed."""
    keys = _keys(request)
    if not keys:
        return RedirectResponse(_local(next), status_code=303)
    secret = settings.session_secret
    if secret is None:
        return guard(request, settings) or error_page(request, settings, 503, "No sessions.")
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    given = key.strip().encode("utf-8")
    matched = None
    for candidate in keys:  # every key compared, without stopping early
        if hmac.compare_digest(given, candidate):
            matched = candidate
    if matched is None:
        return render(request, settings, "login.html", status=401, next=_local(next), failed=True)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        new_session(
            secret.get_secret_value().encode("utf-8"),
            matched,
            hours=settings.session_hours,
        ),
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _secure(request, response)


@router.post("/logout")
def logout(
    request: Request,
    settings: SettingsDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End the session."""
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), csrf_token):
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return _secure(request, response)
