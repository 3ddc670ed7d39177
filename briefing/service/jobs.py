"""Briefing jobs: what a queued job asks for, and the in-process worker that runs them.

Jobs live in the store, so they outlive the process. A `JobRunner` claims queued jobs up to
its concurrency limit, builds each briefing on a thread of its own (the extractive engine and
the offline checker are CPU-bound and must not stall the service's event loop), renews the
job's lease while it runs, and records the result or a readable reason for the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from briefing.config import Settings
from briefing.errors import BriefingError, ConflictError, LLMError, NotFoundError, StoreError
from briefing.models.calllog import CallLog, CallRecorder, CallRecorders
from briefing.models.llm import litellm_module
from briefing.models.ratelimit import RateLimiter, local_limiter
from briefing.pipeline.build import build_briefing
from briefing.pipeline.request import BriefingRequest, job_settings
from briefing.schema import Briefing, Source, Usage
from briefing.service.metrics import ServiceMetrics
from briefing.store import FINAL_STATUSES, Job, Store, map_cache_of

__all__ = [
    "JobExecutor",
    "JobRunner",
    "job_sources",
    "wait_for_job",
]

log = logging.getLogger("briefing.jobs")


def _reason(exc: BaseException) -> str:
    """A failure reason for the job's `error`: readable by the client who submitted it."""
    if isinstance(exc, LLMError):
        return f"the model provider failed: {exc}"
    if isinstance(exc, BriefingError):
        return str(exc)
    # A bug: the client gets the kind, the log gets the traceback.
    return f"internal error ({type(exc).__name__}); the service log has the details"


def job_sources(store: Store, source_ids: list[str]) -> list[Source]:
    """A job's stored sources, in its order, as the pipeline takes them."""
    return [Source.model_validate(store.sources.get(s).model_dump()) for s in source_ids]


class JobExecutor(Protocol):
    """What the service asks of whoever runs its jobs: this process (`JobRunner`) or a
    cluster's workers (`briefing.service.cluster.CeleryExecutor`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submitted(self, job_id: str) -> None:
        """A job was just queued: run it soon."""

    def cancel(self, job_id: str) -> bool:
        """Stop the job now if this process runs it; False leaves it to its worker, which
        sees the store's cancel request at its next heartbeat."""

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """Live progress of a job this process runs; None: read the store's."""

    async def changed(self, within_s: float) -> None:
        """Return when some job may have changed, or after `within_s` seconds."""


class _Stopped(Exception):
    """The build was stopped from outside (cancelled, shutdown, lease lost)."""


StopReason = Literal["cancel", "shutdown", "lost"]


@dataclass
class _Run:
    """One job this process is running, shared between its supervisor and its build thread."""

    job: Job
    #: The worker id the job is claimed under (the runner's own, or a cluster task's).
    holder: str
    #: Usage spent on this job elsewhere (its map step on other workers).
    extra_usage: Usage | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.monotonic)
    progress: dict[str, Any] | None = None
    stop_reason: StopReason | None = None
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task[Briefing] | None = None
    supervisor: asyncio.Task[None] | None = None

    def report(self, stage: str, done: int, total: int) -> None:
        """The pipeline's progress callback (called on the build thread)."""
        self.progress = {"stage": stage, "done": done, "total": total}

    def stop(self, reason: StopReason) -> None:
        """Cancel the build's task, from any thread; the first reason given wins."""
        with self.lock:
            if self.stop_reason is None:
                self.stop_reason = reason
            if self.loop is not None and self.task is not None:
                # RuntimeError: the build's loop has already closed, so it is done.
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self.task.cancel)


class JobRunner:
    """Runs queued briefing jobs of `store` in this process, `settings.job_workers` at once."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        worker_id: str | None = None,
        metrics: ServiceMetrics | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        # One budget for every job of the process (a cluster passes one shared by all).
        self.limiter = limiter or local_limiter(settings.rate_limit_rpm, settings.rate_limit_tpm)
        self.settings = settings
        self.metrics = metrics
        # Host and pid say which process held a job that was left running.
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._warm: asyncio.Task[Any] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._call_log: CallLog | None = None
        self._recorder: CallRecorder | None = None

    @property
    def running(self) -> list[str]:
        """Ids of the jobs this process is running now."""
        return list(self._runs)

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """The live progress of a job this process runs (the store's copy lags a heartbeat)."""
        run = self._runs.get(job_id)
        return dict(run.progress) if run is not None and run.progress is not None else None

    def open(self) -> None:
        """The build threads and the call log; `start` calls it, and a cluster worker that
        hands in claimed jobs (`run_claimed`) calls it alone."""
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, self.settings.job_workers), thread_name_prefix="briefing-job"
        )
        # One call log for every job of the process (it is thread-safe), beside the metrics.
        recorders: list[CallRecorder] = []
        if self.settings.log_calls:
            self._call_log = CallLog(self.settings.call_log_path)
            recorders.append(self._call_log)
        if self.metrics is not None:
            recorders.append(self.metrics)
        self._recorder = CallRecorders(*recorders) if recorders else None

    @property
    def recorder(self) -> CallRecorder | None:
        """Where this runner's model calls are recorded (after `open`)."""
        return self._recorder

    async def run_claimed(
        self, job: Job, *, holder: str | None = None, extra_usage: Usage | None = None
    ) -> None:
        """Run a job already claimed (by `holder`, default this runner) to its end: its
        lease renewed meanwhile, its result or failure recorded once."""
        self.open()
        run = _Run(job, holder or self.worker_id, extra_usage)
        self._runs[job.id] = run
        self._count_running()
        run.supervisor = asyncio.current_task()
        await self._supervise(run)

    async def start(self) -> None:
        """Recover jobs a dead process left running, then start claiming queued jobs."""
        self.open()
        await self._recover()
        self._loop_task = asyncio.create_task(self._claim_loop(), name="briefing-job-claims")
        if not self.settings.is_extractive or self.settings.model_list:
            # litellm takes seconds to import; do it now, beside the first requests, rather
            # than in front of the first job's first model call.
            self._warm = asyncio.create_task(asyncio.to_thread(litellm_module), name="warm-up")

    def notify(self) -> None:
        """Look for queued jobs now (a job was just submitted), not at the next poll."""
        self._wake.set()

    def submitted(self, job_id: str) -> None:
        """A job was just queued: claim it now, not at the next poll."""
        self.notify()

    def cancel(self, job_id: str) -> bool:
        """Stop the job if this process runs it; True when it does."""
        run = self._runs.get(job_id)
        if run is None:
            return False
        run.stop("cancel")
        return True

    async def stop(self) -> None:
        """Stop claiming; let running jobs finish within the grace period, re-queue the rest."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        runs = list(self._runs.values())
        tasks = [run.supervisor for run in runs if run.supervisor is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
            if pending:
                log.info("shutdown: re-queueing %d running job(s)", len(pending))
                for run in runs:
                    run.stop("shutdown")
                # The builds see the cancellation at their next await; a thread stuck in
                # CPU-bound work is not waited for, its job is released below regardless.
                _, pending = await asyncio.wait(pending, timeout=5.0)
                for task in pending:
                    task.cancel()
                for run in list(self._runs.values()):
                    await self._release(run)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._call_log is not None and not self._runs:
            self._call_log.close()

    # ------------------------------------------------------------ internals

    async def _recover(self) -> None:
        try:
            changed = await asyncio.to_thread(
                self.store.jobs.recover, max_attempts=self.settings.job_max_attempts
            )
        except StoreError as exc:
            log.warning("could not recover abandoned jobs: %s", exc)
            return
        for job in changed:
            log.info("job %s was left running by a stopped worker: now %s", job.id, job.status)
        if changed:
            self._announce()

    async def _claim_loop(self) -> None:
        # Leases of a process that died after this one started run out while it runs, so
        # recovery repeats, not only at start.
        next_recovery = time.monotonic() + self.settings.job_lease_s
        while not self._stopping:
            try:
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + self.settings.job_lease_s
                    await self._recover()
                while len(self._runs) < self.settings.job_workers and not self._stopping:
                    job = await asyncio.to_thread(
                        self.store.jobs.claim, self.worker_id, lease_s=self.settings.job_lease_s
                    )
                    if job is None:
                        break
                    run = _Run(job, self.worker_id)
                    self._runs[job.id] = run
                    self._count_running()
                    run.supervisor = asyncio.create_task(self._supervise(run), name=job.id)
            except StoreError as exc:
                log.warning("could not claim jobs: %s", exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.job_poll_s)

    async def _supervise(self, run: _Run) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._build, run)
        job_id = run.job.id
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=self.settings.job_heartbeat_s)
                if not future.done():
                    await self._heartbeat(run)
            try:
                briefing = future.result()
            except _Stopped:
                await self._stopped(run)
                return
            except Exception as exc:
                if not isinstance(exc, BriefingError):
                    log.exception("job %s failed unexpectedly", job_id)
                await self._finish(run, "failed", error=_reason(exc))
                return
            update: dict[str, Any] = {"id": job_id}
            if run.extra_usage is not None:
                update["usage"] = briefing.usage + run.extra_usage
            result = briefing.model_copy(update=update).model_dump(mode="json")
            await self._finish(run, "succeeded", result=result)
        finally:
            self._runs.pop(job_id, None)
            self._count_running()
            self._announce()
            self._wake.set()  # a slot is free

    def _build(self, run: _Run) -> Briefing:
        """Build the job's briefing on this (executor) thread, in an event loop of its own."""
        try:
            request = BriefingRequest.model_validate(run.job.request)
        except ValidationError as exc:
            raise BriefingError(f"the job's stored request is not valid: {exc}") from None
        sources = job_sources(self.store, request.source_ids)
        settings = job_settings(self.settings, request)

        async def main() -> Briefing:
            with run.lock:
                if run.stop_reason is not None:
                    raise _Stopped(run.stop_reason)
                run.loop = asyncio.get_running_loop()
                run.task = asyncio.current_task()
            return await build_briefing(
                sources,
                settings,
                progress=run.report,
                call_log=self._recorder,
                map_cache=map_cache_of(self.store, settings),
                limiter=self.limiter,
            )

        try:
            return asyncio.run(main())
        except asyncio.CancelledError:
            if run.stop_reason is None:
                # Nobody asked it to stop: a failure, not a cancellation the client chose.
                raise BriefingError("the build was cancelled from inside the pipeline") from None
            raise _Stopped(run.stop_reason) from None

    async def _heartbeat(self, run: _Run) -> None:
        try:
            job = await asyncio.to_thread(
                self.store.jobs.heartbeat,
                run.job.id,
                run.holder,
                lease_s=self.settings.job_lease_s,
                progress=run.progress,
            )
        except ConflictError:
            # The lease ran out and another worker took the job: this run's result would
            # be a duplicate, so it stops without writing anything.
            log.warning("job %s: lost its claim; stopping this run", run.job.id)
            run.stop("lost")
            return
        except StoreError as exc:
            log.warning("job %s: heartbeat failed: %s", run.job.id, exc)
            return
        if job.cancel_requested:
            run.stop("cancel")

    async def _stopped(self, run: _Run) -> None:
        if run.stop_reason == "shutdown":
            await self._release(run)
        elif run.stop_reason == "cancel":
            await self._finish(run, "cancelled", error="cancelled while running")

    async def _finish(
        self,
        run: _Run,
        status: Literal["succeeded", "failed", "cancelled"],
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        try:
            await asyncio.to_thread(
                self.store.jobs.finish,
                run.job.id,
                status,
                result=result,
                error=error,
                worker_id=run.holder,
                progress=run.progress,
            )
        except (ConflictError, NotFoundError) as exc:
            log.warning("job %s: result not recorded: %s", run.job.id, exc)
        except StoreError as exc:
            # The lease runs out and recovery re-runs the job: late, but not lost.
            log.error("job %s: could not record its %s result: %s", run.job.id, status, exc)
        else:
            log.info("job %s %s", run.job.id, status)
            if self.metrics is not None:
                self.metrics.job_finished(status, time.monotonic() - run.started)

    async def _release(self, run: _Run) -> None:
        try:
            await asyncio.to_thread(self.store.jobs.release, run.job.id, run.holder)
        except (ConflictError, NotFoundError):
            pass  # finished or taken over meanwhile: nothing left to give back
        except StoreError as exc:
            log.error("job %s: could not re-queue it: %s", run.job.id, exc)
        self._runs.pop(run.job.id, None)
        self._count_running()

    def _count_running(self) -> None:
        if self.metrics is not None:
            self.metrics.jobs_running.set(len(self._runs))

    def _announce(self) -> None:
        # Wakes every waiter at once; each then reads its job's state from the store.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self, within_s: float) -> None:
        """Return when some job of this process finished, or after `within_s` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within_s)


async def wait_for_job(
    store: Store, job_id: str, within_s: float, runner: JobExecutor | None = None
) -> Job:
    """The job once it has finished, or as it stands after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        job = await asyncio.to_thread(store.jobs.get, job_id)
        remaining = deadline - time.monotonic()
        if job.status in FINAL_STATUSES or remaining <= 0:
            return job
        # Another process may run the job, so the store is polled as well as this
        # process's own notifications awaited.
        if runner is not None:
            await runner.changed(min(remaining, 0.5))
        else:
            await asyncio.sleep(min(remaining, 0.2))
