"""The "new briefing" form: pasted text, uploaded files and URLs in (see `gather`), a
queued job out. The job is the one `POST /v1/briefings` would queue; its page follows the
job's progress until it opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from briefing.config import Settings
from briefing.errors import BriefingError, NotFoundError
from briefing.pipeline.engines import offered_models
from briefing.schema import Source
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.pages.gather import gather, read_form
from briefing.service.pages.routes import error_page, guard, render
from briefing.service.routes.briefings import BriefingCreate, briefing_events, resolve_request
from briefing.store import Job, Store

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

_FIELDS = ("title", "text", "urls", "model")


def _form(
    request: Request,
    settings: Settings,
    *,
    status: int = 200,
    error: str | None = None,
    given: dict[str, str] | None = None,
) -> HTMLResponse:
    given = {k: "" for k in _FIELDS} | (given or {})
    return render(
        request,
        settings,
        "new_briefing.html",
        status=status,
        error=error,
        models=offered_models(settings),
        chosen=given["model"] or settings.model,
        given=given,
    )


@router.get("/briefings/new", response_class=HTMLResponse)
def new_briefing_form(request: Request, settings: SettingsDep) -> Response:
    """The form."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    return _form(request, settings)


def _queue(store: Store, settings: Settings, sources: list[Source], model: str) -> Job:
    ids = [store.sources.add(s)[0].id for s in sources]
    resolved = resolve_request(BriefingCreate(source_ids=ids, model=model or None), settings, store)
    job, _ = store.jobs.create(resolved.model_dump(mode="json"), resolved.source_ids)
    return job


@router.post("/briefings/new", response_class=HTMLResponse)
async def create_from_form(request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    """Queue the briefing the form describes and open its page; the form again, with what
    was given and what is wrong, when it cannot be."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    form = await read_form(request)
    if not form.trusted:
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    given = {k: form.field(k) for k in _FIELDS}
    try:
        sources = await gather(
            form,
            settings,
            limit="max_sources_per_briefing",
        )
        job = await run_in_threadpool(_queue, store, settings, sources, given["model"])
    except BriefingError as exc:
        return _form(request, settings, status=400, error=str(exc), given=given)
    runner = getattr(request.app.state, "runner", None)
    if runner is not None:
        runner.submitted(job.id)
    return RedirectResponse(f"/briefings/{job.id}", status_code=303)


def _job_for_events(request: Request, job_id: str, store: StoreDep, settings: SettingsDep) -> Job:
    if guard(request, settings) is not None:
        raise HTTPException(status_code=401, detail="sign in first: /login")
    try:
        return store.jobs.get(job_id)
    except NotFoundError:
        raise HTTPException(status_code=404, detail=f"no briefing {job_id}") from None


@router.get("/briefings/{job_id}/events", response_class=EventSourceResponse)
async def page_events(
    request: Request,
    store: StoreDep,
    job: Annotated[Job, Depends(_job_for_events)],
) -> AsyncIterator[ServerSentEvent]:
    """The job's progress for its page: the events of /v1/briefings/{id}/events, under the
    page session instead of the API key."""
    async for event in briefing_events(request, store, job):
        yield event
