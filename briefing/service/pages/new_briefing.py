"""The "new briefing" form: pasted text, uploaded files and URLs in, a queued job out.

Files may be .txt, .md (UTF-8) or .html (the article is extracted); URLs go through the
guarded fetcher of the daily briefings, with its limits and address policy. The job is the
one `POST /v1/briefings` would queue; its page follows the job's progress until it opens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile

from briefing.config import Settings
from briefing.daily.articles import fetch_article, html_article
from briefing.errors import BriefingError, LimitError, NotFoundError, SourceError, UserError
from briefing.pipeline.engines import offered_models
from briefing.schema import Source
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.inputs import decode_upload, within_limits
from briefing.service.pages.routes import error_page, guard, render
from briefing.service.pages.session import CSRF_COOKIE, CSRF_FIELD, csrf_matches
from briefing.service.routes.briefings import BriefingCreate, briefing_events, resolve_request
from briefing.store import Job, Store
from briefing.text.sources import source_from_text
from briefing.urls import redact_url

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Form parts one request may carry: files and fields (starlette's own limits are 1,000).
MAX_PARTS = 50
_TEXT_SUFFIXES = {".txt", ".md", ".markdown"}
_HTML_SUFFIXES = {".html", ".htm"}
_FIELDS = ("title", "text", "urls", "model")


def _form(
    request: Request,
    settings: Settings,
    *,
    status: int = 200,
    error: str | None = None,
    given: dict[str, str] | None = None,
) -> HTMLResponse:
    models = offered_models(settings)
    given = {k: "" for k in _FIELDS} | (given or {})
    chosen = given["model"] or settings.model
    return render(
        request,
        settings,
        "new_briefing.html",
        status=status,
        error=error,
        models=models,
        chosen=chosen,
        given=given,
    )


@router.get("/briefings/new", response_class=HTMLResponse)
def new_briefing_form(request: Request, settings: SettingsDep) -> Response:
    """The form."""
    if (redirect := guard(request, settings)) is not None:
        return redirect
    return _form(request, settings)


def _upload(raw: bytes, name: str) -> Source:
    suffix = PurePath(name).suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return source_from_text(decode_upload(raw, name), path=name)
    if suffix in _HTML_SUFFIXES:
        text, meta = html_article(raw, name)
        return source_from_text(text, title=meta.title, path=name)
    raise SourceError(f"{name}: only .txt, .md and .html files can be read")


def _fetched(urls: list[str], settings: Settings) -> list[Source]:
    from briefing.daily.fetch import Fetcher  # httpx, on first use

    sources = []
    with Fetcher(settings) as fetcher:
        for url in urls:
            shown = redact_url(url)
            text, meta, final = fetch_article(fetcher, url, shown)
            sources.append(source_from_text(text, title=meta.title, path=redact_url(final)))
    return sources


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
    form = await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS)
    field = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not csrf_matches(request.cookies.get(CSRF_COOKIE), field.get(CSRF_FIELD)):
        return error_page(request, settings, 403, "The form was stale or not sent from this site.")
    given = {k: field.get(k, "") for k in _FIELDS}
    urls = [line.strip() for line in given["urls"].splitlines() if line.strip()]
    uploads = [v for v in form.getlist("files") if isinstance(v, UploadFile) and (v.filename or "")]
    try:
        count = bool(given["text"].strip()) + len(uploads) + len(urls)
        if count > settings.max_sources_per_briefing:
            # Said before any URL is fetched: each fetch may take fetch_timeout_s.
            raise LimitError(
                f"{count} sources given; a briefing takes at most "
                f"{settings.max_sources_per_briefing} (max_sources_per_briefing)",
                limit="max_sources_per_briefing",
                maximum=settings.max_sources_per_briefing,
            )
        sources = []
        if given["text"].strip():
            sources.append(source_from_text(given["text"], title=given["title"].strip() or None))
        for upload in uploads:
            name = PurePath(upload.filename or "upload.txt").name
            sources.append(_upload(await upload.read(), name))
        if urls:
            sources.extend(await run_in_threadpool(_fetched, urls, settings))
        if not sources:
            raise UserError("Give a text, a file or a URL to brief.")
        sources = [within_limits(s, settings) for s in sources]
        job = await run_in_threadpool(_queue, store, settings, sources, given["model"])
    except BriefingError as exc:
        return _form(request, settings, status=400, error=str(exc), given=given)
    runner = getattr(request.app.state, "runner", None)
    if runner is not None:
        runner.notify()
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
