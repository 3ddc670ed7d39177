"""The FastAPI application: `create_app(settings)` wires the store, routes and middleware."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from briefing import __version__
from briefing.config import Settings
from briefing.daily.scheduler import DailyScheduler, Dispatch
from briefing.service import pages, problems
from briefing.service.deps import ApiKeyDep
from briefing.service.jobs import JobExecutor, JobRunner
from briefing.service.metrics import ServiceMetrics
from briefing.service.middleware import BodyLimit, RequestContext
from briefing.service.routes import (
    briefings,
    check,
    compare,
    health,
    metrics,
    models,
    prompts,
    schedules,
    sources,
)
from briefing.store import Store


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, run_jobs: bool = True
) -> FastAPI:
    """The service over `settings` (from the environment when None) and `store`.

    With `run_jobs` (and `settings.job_workers` above 0) the app's lifespan runs a worker
    that builds queued briefings; without it jobs wait for a process that does. With
    `settings.executor == "celery"` it only sends them to the cluster's workers. With
    `run_jobs` and `settings.scheduler` it also runs the daily-briefing schedules.
    Migrations are not run here: `briefing serve` runs them before it starts the app, and
    /readyz reports a database that is behind.
    """
    settings = settings or Settings()
    owned = store is None
    store = store or Store(settings.store_url)
    service_metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner: JobExecutor | None = None
        dispatch: Dispatch | None = None  # daily runs: here, unless on a cluster
        if run_jobs and settings.executor == "celery":
            from briefing.service.cluster import CeleryExecutor

            # The workers run the jobs; this process queues them and sweeps up after
            # workers that died.
            runner = CeleryExecutor(store, settings)
            dispatch = runner.send_schedule
            if not getattr(app.state, "watching_cluster", False):
                service_metrics.watch_cluster(runner.queue_depth, runner.jobs)
                app.state.watching_cluster = True
        elif run_jobs and settings.job_workers > 0:
            runner = JobRunner(store, settings, metrics=service_metrics)
        if runner is not None:
            await runner.start()
        app.state.runner = runner
        daily = (
            DailyScheduler(store, settings, dispatch=dispatch)
            if run_jobs and settings.scheduler
            else None
        )
        app.state.scheduler = daily
        try:
            if daily is not None:
                await asyncio.to_thread(daily.start)
            yield
        finally:
            stopping = []
            if daily is not None:
                stopping.append(asyncio.to_thread(daily.stop))
            if runner is not None:
                stopping.append(runner.stop())
            # Side by side, so daily runs and jobs share one grace period.
            await asyncio.gather(*stopping)
            if owned:  # a store handed in belongs to the caller
                store.close()

    app = FastAPI(
        title="briefing",
        version=__version__,
        summary="Grounded briefings: every claim cites the exact source span it rests on.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = service_metrics
    # Encoded once; deps.require_api_key compares request keys against these.
    app.state.api_keys = [key.encode("utf-8") for key in settings.api_key_list]

    problems.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    v1 = APIRouter(dependencies=[ApiKeyDep])
    for module in (sources, briefings, check, compare, prompts, models, schedules):
        v1.include_router(module.router)
    app.include_router(v1)
    pages.install(app)

    # Added last runs first: the request id exists before the body limit can refuse.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestContext, metrics=service_metrics)
    return app
