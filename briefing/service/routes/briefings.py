"""/v1/briefings: submit briefing jobs, follow them, read the finished briefings."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field

from briefing.config import EXTRACTIVE, Settings
from briefing.daily.changes import diff_briefings
from briefing.errors import ConflictError, LimitError, NotFoundError, UserError
from briefing.faithfulness.checker import Checker
from briefing.models.local import default_prompt
from briefing.models.prompts import CachedPromptLibrary
from briefing.pipeline.engines import offered_models
from briefing.pipeline.render import changes_markdown, to_markdown
from briefing.pipeline.request import BriefingOptions, BriefingRequest
from briefing.schema import Briefing, Changes
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.inputs import SourcesGiven, check_source_count, inline_source
from briefing.service.jobs import JobExecutor, wait_for_job
from briefing.store import FINAL_STATUSES, MAX_PAGE, Job, JobStatus, Store

router = APIRouter(prefix="/v1/briefings", tags=["briefings"])


class BriefingCreate(SourcesGiven):
    """A briefing to build from stored sources (`source_ids`), inline `sources` (stored like
    a POST /v1/sources one), or both."""

    model: str | None = Field(
        default=None, max_length=200, description="'extractive' or the service's model."
    )
    prompt: str | None = Field(default=None, max_length=200, description="NAME@VERSION.")
    options: BriefingOptions = Field(default_factory=BriefingOptions)


class JobPublic(BaseModel):
    """A briefing job; `result` links to the briefing once it has succeeded."""

    id: str
    status: JobStatus
    progress: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    attempts: int
    source_ids: list[str]
    model: str | None
    prompt: str | None
    title: str | None = Field(description="The briefing's title, once it has succeeded.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    location: str

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        """The public form of a stored job."""
        title = job.result.get("title") if job.result else None
        return cls(
            id=job.id,
            status=job.status,
            progress=job.progress,
            error=job.error,
            cancel_requested=job.cancel_requested,
            attempts=job.attempts,
            source_ids=job.source_ids,
            model=job.request.get("model"),
            prompt=job.request.get("prompt"),
            title=title if isinstance(title, str) else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            location=_location(job.id),
        )


class BriefingPublic(Briefing):
    """A finished briefing (the Briefing JSON contract) with its job's status fields."""

    status: JobStatus
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    """Briefing jobs newest first; `next_cursor` is null on the last page."""

    items: list[JobPublic]
    next_cursor: str | None = None


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _iso_only(value: Any) -> Any:
    # pydantic reads a bare number as Unix time; `since` is documented as ISO 8601, and a
    # client sending 0.5 more likely made a mistake than meant 1970.
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError(
            "expected an ISO 8601 date-time with a time zone, e.g. 2026-11-22T07:00:00Z"
        )
    return value


Since = Annotated[AwareDatetime | None, BeforeValidator(_iso_only)]


def _location(job_id: str) -> str:
    return f"/v1/briefings/{job_id}"


def _runner(request: Request) -> JobExecutor | None:
    runner: JobExecutor | None = getattr(request.app.state, "runner", None)
    return runner


def _public(job: Job) -> BriefingPublic | JobPublic:
    if job.status == "succeeded" and job.result is not None:
        return BriefingPublic.model_validate(
            {
                **job.result,
                "status": job.status,
                "started_at": job.started_at,
                "finished_at": job.finished_at,
            }
        )
    return JobPublic.of(job)


def resolve_request(body: BriefingCreate, settings: Settings, store: Store) -> BriefingRequest:
    """Check the request against the limits, store inline sources, resolve the defaults."""
    check_source_count(
        len(body.source_ids) + len(body.sources), settings, "max_sources_per_briefing"
    )
    model = (body.model or settings.model).strip()
    offered = offered_models(settings)
    if model.lower() == EXTRACTIVE:
        model = EXTRACTIVE
    if model not in offered:
        raise UserError(
            f"model {model!r} is not offered by this service; use one of {offered} "
            "(GET /v1/models lists them)"
        )
    # A local model's own default prompt, unless the service's settings name one.
    prompt = body.prompt or default_prompt(settings, model)
    CachedPromptLibrary(settings.prompts_dir).get(prompt)  # PromptError (422) when unknown
    source_ids = list(body.source_ids)
    for item in body.sources:
        stored, _ = store.sources.add(inline_source(item, settings))
        source_ids.append(stored.id)
    return BriefingRequest(
        source_ids=list(dict.fromkeys(source_ids)),
        model=model,
        prompt=prompt,
        options=body.options,
    )


_JOB_OR_BRIEFING = {
    "description": "The finished briefing when it succeeded, else the job",
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/BriefingPublic"},
                    {"$ref": "#/components/schemas/JobPublic"},
                ]
            }
        }
    },
}


@router.post(
    "",
    status_code=202,
    response_model=BriefingPublic | JobPublic,
    responses={200: _JOB_OR_BRIEFING, 202: {"description": "Queued (or running)"}},
)
async def create_briefing(
    body: BriefingCreate,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            allow_inf_nan=False,
            description="Seconds to wait for the briefing (max_wait_s at most).",
        ),
    ] = 0,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
    ] = None,
) -> BriefingPublic | JobPublic:
    """Queue a briefing job: 202 with the job, or 200 with the briefing once it is done."""
    if wait > settings.max_wait_s:
        raise LimitError(
            f"wait={wait:g} asked for; max_wait_s is {settings.max_wait_s}",
            limit="max_wait_s",
            maximum=settings.max_wait_s,
        )

    def submit() -> Job:
        briefing_request = resolve_request(body, settings, store)
        job, _ = store.jobs.create(
            briefing_request.model_dump(mode="json"),
            briefing_request.source_ids,
            idempotency_key=idempotency_key,
        )
        return job

    job = await run_in_threadpool(submit)
    runner = _runner(request)
    if runner is not None:
        runner.submitted(job.id)
    if wait > 0 and job.status not in FINAL_STATUSES:
        job = await wait_for_job(store, job.id, wait, runner)
    response.headers["Location"] = _location(job.id)
    response.status_code = 200 if job.status in FINAL_STATUSES else 202
    return _public(job)


@router.get("", response_model=JobPage)
def list_briefings(
    store: StoreDep,
    since: Annotated[
        Since, Query(description="Only jobs created at or after (ISO 8601, with a time zone).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: Annotated[list[JobStatus] | None, Query()] = None,
    until: Annotated[
        Since, Query(description="Only jobs created before (ISO 8601, with a time zone).")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Words of the briefing's or a source's title."),
    ] = None,
    schedule: Annotated[
        str | None, Query(max_length=200, description="Only the runs of this schedule.")
    ] = None,
    engine: Annotated[
        Literal["extractive", "llm"] | None,
        Query(description="Only briefings built by this engine."),
    ] = None,
) -> JobPage:
    """Briefing jobs newest first, without their briefings; follow `next_cursor` for more."""
    jobs, next_cursor = store.jobs.page(
        limit=limit,
        cursor=cursor,
        since=since,
        until=until,
        statuses=status,
        text=q,
        schedule=schedule,
        engine=engine,
    )
    return JobPage(items=[JobPublic.of(job) for job in jobs], next_cursor=next_cursor)


# Declared before /{job_id}, which would otherwise take "ID.md" as an id.
@router.get(
    "/{job_id}.md",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
def get_briefing_markdown(job_id: str, store: StoreDep) -> PlainTextResponse:
    """The finished briefing as Markdown; 409 while it is not (or will never be) done."""
    job = store.jobs.get(job_id)
    if job.status != "succeeded" or job.result is None:
        raise ConflictError(f"briefing {job_id} is {job.status}; Markdown exists once it succeeds")
    markdown = to_markdown(Briefing.model_validate(job.result))
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")


@router.get(
    "/{job_id}", response_model=BriefingPublic | JobPublic, responses={200: _JOB_OR_BRIEFING}
)
def get_briefing(job_id: str, store: StoreDep) -> BriefingPublic | JobPublic:
    """The briefing with its status fields once it has succeeded, else the job."""
    return _public(store.jobs.get(job_id))


def _finished_briefing(store: Store, job_id: str) -> Briefing:
    job = store.jobs.get(job_id)
    if job.status != "succeeded" or job.result is None:
        raise ConflictError(f"briefing {job_id} is {job.status}; it has no briefing yet")
    return Briefing.model_validate(job.result)


@router.get(
    "/{job_id}/changes",
    response_model=Changes,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def get_briefing_changes(
    job_id: str,
    store: StoreDep,
    settings: SettingsDep,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Another, earlier briefing to compare with; default the schedule's "
            "previous run (the changes stored with a scheduled briefing).",
        ),
    ] = None,
    format: Annotated[Literal["json", "md"], Query()] = "json",
) -> Any:
    """What changed since the schedule's previous briefing (or since `since`): new,
    updated and dropped claims, each side citing its own briefing's sources."""
    briefing = await run_in_threadpool(_finished_briefing, store, job_id)
    if since is not None:
        earlier = await run_in_threadpool(_finished_briefing, store, since)
        if briefing.created_at < earlier.created_at:
            raise UserError(
                f"briefing {since} is newer than {job_id}; 'since' must be the earlier one"
            )
        checker = Checker(settings, fallback=True)
        checker.check_credentials()
        changes = await diff_briefings(earlier, briefing, checker)
    elif briefing.changes is not None:
        changes = briefing.changes
    else:
        raise NotFoundError(
            f"briefing {job_id} has no stored changes (it is not a scheduled run, or its "
            "schedule's first); name an earlier briefing with ?since=ID"
        )
    if format == "md":
        return PlainTextResponse(
            changes_markdown(changes, briefing), media_type="text/markdown; charset=utf-8"
        )
    return changes


@router.post(
    "/{job_id}/cancel",
    response_model=JobPublic,
    responses={202: {"description": "Asked to stop; it is still running", "model": JobPublic}},
)
async def cancel_briefing(job_id: str, request: Request, store: StoreDep) -> JSONResponse:
    """Cancel a job: at once when queued, at its next step when running; a finished job is
    left as it is. 200 when the job has ended, 202 while it is still stopping."""
    job = await run_in_threadpool(store.jobs.request_cancel, job_id)
    runner = _runner(request)
    if job.status == "running" and runner is not None and runner.cancel(job_id):
        # This process runs it: the stop is immediate, so report the outcome.
        job = await wait_for_job(store, job_id, 5.0, runner)
    status = 200 if job.status in FINAL_STATUSES else 202
    return JSONResponse(JobPublic.of(job).model_dump(mode="json"), status_code=status)


async def _existing_job(job_id: str, store: StoreDep) -> Job:
    # A dependency, so an unknown id is a 404 problem before the event stream starts.
    return await run_in_threadpool(store.jobs.get, job_id)


class JobEvent(BaseModel):
    """The data of one event of GET /v1/briefings/{id}/events."""

    id: str
    status: JobStatus
    progress: dict[str, Any] | None = Field(
        description="{stage: map|condense|reduce|check, done, total} of the step running now."
    )
    error: str | None
    attempts: int
    location: str


#: How often an event stream looks at its job; progress between looks is coalesced.
_EVENT_POLL_S = 0.5


def _event(job: Job, progress: dict[str, Any] | None, sequence: int) -> ServerSentEvent:
    data = JobEvent(
        id=job.id,
        status=job.status,
        progress=progress,
        error=job.error,
        attempts=job.attempts,
        location=_location(job.id),
    )
    final = job.status in FINAL_STATUSES
    return ServerSentEvent(
        data=data,
        event="done" if final else "progress",
        id=str(sequence),
        retry=2000 if sequence == 0 else None,
    )


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `progress` events as the job's status or "
            "progress changes, then one `done` event with its final status, and the end of "
            "the stream. Data is a JobEvent."
        }
    },
)
async def briefing_events(
    request: Request,
    store: StoreDep,
    job: Annotated[Job, Depends(_existing_job)],
) -> AsyncIterator[ServerSentEvent]:
    """Follow a job: its status and progress (chunks mapped, reduce, check) until it ends."""
    runner = _runner(request)
    sequence = 0
    last: tuple[str, Any] | None = None
    while True:
        progress = job.progress
        if job.status == "running" and runner is not None:
            # This process runs it: its live progress, not the store's heartbeat-old copy.
            progress = runner.progress(job.id) or progress
        state = (job.status, progress)
        if state != last:
            yield _event(job, progress, sequence)
            sequence += 1
            last = state
        if job.status in FINAL_STATUSES:
            return
        # Another process may run the job, so the store is what is watched; this
        # process's own finishes wake the stream early.
        if runner is not None:
            await runner.changed(_EVENT_POLL_S)
        else:
            await asyncio.sleep(_EVENT_POLL_S)
        job = await run_in_threadpool(store.jobs.get, job.id)
