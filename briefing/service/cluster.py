"""Briefing jobs on a cluster: Celery workers fed through a broker (Redis), with the store as
the source of truth (`BRIEFING_EXECUTOR=celery`).

The broker only says "look at job X". Whether a job runs, who holds it and what it ended as
is the store's: a task claims its job under a lease (`JobRepository.claim`), renews it while
it runs and records the outcome with that claim, so a second delivery of the same message,
a task whose worker was killed, or one whose lease ran out cannot write a second outcome.

- `briefing.run_job(job_id)`: claims the job and builds its briefing. An LLM briefing of more
  than `map_fanout_sources` sources instead spreads its map step: a chord of
  `briefing.map_sources` tasks (each maps its share into the store's map cache, renewing the
  job's lease), then `briefing.reduce_job`, which builds the briefing with every map result
  found in the cache. A map that failed is redone by the reduce; a retried job maps only
  what is not cached yet.
- `briefing.run_schedule(name, date, scheduled_at)`: one daily run, sent by the schedulers
  of the `briefing serve` processes instead of running it there (`ScheduleSender`). Sends
  of one (schedule, date) are fenced in Redis, so N services send one message; the store's
  (schedule, date) key still decides who runs, whatever arrives twice.
- A sweeper in every worker (and in `briefing serve`) gives jobs back that a dead worker
  left running (lease expired) and sends them again, and sends again jobs still queued
  `job_requeue_s` after their last message (a broker restarted without its queue).

Messages are acknowledged late (after the task), and a worker that dies takes no message
with it: Redis hands unacknowledged ones out again after the visibility timeout, and the
sweeper does sooner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from briefing.config import Settings
from briefing.daily.runs import RUN_LEASE_S, run_schedule, runnable_schedule
from briefing.daily.schedules import Schedule
from briefing.errors import BriefingError, ConflictError, NotFoundError, StoreError
from briefing.models.ratelimit import WindowLimiter
from briefing.pipeline.build import map_ahead
from briefing.pipeline.request import BriefingRequest, job_settings
from briefing.schema import Usage
from briefing.service.jobs import JobRunner, job_sources
from briefing.store import Job, Store, map_cache_of
from briefing.urls import redact_url

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "MAP_TASK",
    "REDUCE_TASK",
    "RUN_TASK",
    "SCHEDULE_TASK",
    "CeleryExecutor",
    "RedisCounters",
    "ScheduleSender",
    "Sweeper",
    "celery_app",
    "run_worker",
]

log = logging.getLogger("briefing.cluster")

RUN_TASK = "briefing.run_job"
MAP_TASK = "briefing.map_sources"
REDUCE_TASK = "briefing.reduce_job"
SCHEDULE_TASK = "briefing.run_schedule"
QUEUE = "briefing"
#: How long sending one message may take before the broker counts as down (the job stays
#: queued in the store; the sweeper sends it once the broker is back).
SEND_TIMEOUT_S = 5.0


def _broker(settings: Settings) -> str:
    if settings.broker_url is None:
        raise BriefingError("executor=celery needs BRIEFING_BROKER_URL")
    return settings.broker_url.get_secret_value()


def celery_app(settings: Settings) -> Celery:
    """The Celery application of `settings`' broker, with the briefing tasks registered."""
    from celery import Celery

    broker = _broker(settings)
    app = Celery("briefing", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged once it has run; a worker killed mid-task gives its
        # message back (the store's lease decides who may still finish the job).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=False,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options={
            # Past a job's lease many times over: a message redelivered while its job
            # still runs costs one look at the store and is dropped.
            "visibility_timeout": max(300, int(settings.job_lease_s * 10)),
            "socket_timeout": SEND_TIMEOUT_S,
            "socket_connect_timeout": SEND_TIMEOUT_S,
        },
        result_backend_transport_options={
            "socket_timeout": SEND_TIMEOUT_S,
            "socket_connect_timeout": SEND_TIMEOUT_S,
        },
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    app.task(name=RUN_TASK, bind=False, ignore_result=True)(run_job)
    app.task(name=MAP_TASK, bind=False)(map_sources)
    app.task(name=REDUCE_TASK, bind=False, ignore_result=True)(reduce_job)
    app.task(name=SCHEDULE_TASK, bind=False, ignore_result=True)(run_daily)
    return app


def send_run(app: Celery, job_id: str) -> bool:
    """Send `briefing.run_job(job_id)`; False (logged) when the broker cannot be reached."""
    try:
        app.send_task(RUN_TASK, args=[job_id], queue=QUEUE, retry=False)
    except Exception as exc:  # kombu raises a family of transport errors
        log.warning("job %s: not sent to the broker (%s); the sweeper sends it later",
                    job_id, type(exc).__name__)  # fmt: skip
        return False
    return True


# ---------------------------------------------------------------- shared rate limits


#: Adds a request to a model's window if it fits: KEYS = requests key, tokens key;
#: ARGV = tokens, rpm, tpm, ttl seconds. Atomic in Redis, so workers cannot both take the
#: last slot. Mirrors `briefing.models.ratelimit.fits`.
_TAKE = """
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local tokens, rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rpm > 0 and requests + 1 > rpm then return 0 end
if tpm > 0 and used > 0 and used + tokens > tpm then return 0 end
redis.call('INCR', KEYS[1])
redis.call('INCRBY', KEYS[2], tokens)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


class RedisCounters:
    """A rate limiter's counts and pauses in Redis: one budget for every worker."""

    def __init__(self, url: str, *, prefix: str = "briefing:limits") -> None:
        import redis

        self.client = redis.Redis.from_url(
            url, socket_timeout=SEND_TIMEOUT_S, socket_connect_timeout=SEND_TIMEOUT_S
        )
        self.prefix = prefix
        self._take = self.client.register_script(_TAKE)

    def paused_for(self, model: str) -> float:
        try:
            left = int(self.client.pttl(f"{self.prefix}:pause:{model}"))
        except Exception as exc:
            # A broker that is down must not stop the model calls: limits lapse meanwhile.
            log.warning("rate limits not read (%s)", type(exc).__name__)
            return 0.0
        return left / 1000 if left > 0 else 0.0

    def set_pause(self, model: str, seconds: float) -> None:
        key = f"{self.prefix}:pause:{model}"
        ms = max(1, int(seconds * 1000))
        try:
            # GT: a longer pause already set stays.
            if not self.client.set(key, "1", px=ms, nx=True):
                left = int(self.client.pttl(key))
                if left < ms:
                    self.client.pexpire(key, ms)
        except Exception as exc:
            log.warning("pause not shared (%s)", type(exc).__name__)

    def take(self, model: str, window: int, tokens: int, rpm: int, tpm: int) -> bool:
        base = f"{self.prefix}:{model}:{window}"
        try:
            return bool(self._take(keys=[f"{base}:requests", f"{base}:tokens"],
                                   args=[tokens, rpm, tpm, 600]))  # fmt: skip
        except Exception as exc:
            log.warning("rate limits not counted (%s)", type(exc).__name__)
            return True

    def close(self) -> None:
        self.client.close()


def shared_limiter(settings: Settings) -> WindowLimiter:
    """The cluster's limiter: the settings' limits and the providers' Retry-After pauses,
    counted in the broker's Redis."""
    return WindowLimiter(
        RedisCounters(_broker(settings)),
        rpm=settings.rate_limit_rpm,
        tpm=settings.rate_limit_tpm,
    )


# ---------------------------------------------------------------- worker-process state


@dataclass
class _Process:
    """What one worker process keeps between tasks: its settings, store, runner and app."""

    pid: int
    settings: Settings
    store: Store
    runner: JobRunner
    app: Celery

    def holder(self) -> str:
        """A worker id for one claim: host, process and a nonce, so that a redelivered
        message in this same process is not mistaken for the claim that came first."""
        return f"{socket.gethostname()}:{self.pid}:{uuid.uuid4().hex[:8]}"


_state: _Process | None = None
_state_lock = threading.Lock()


def _process() -> _Process:
    """This process's state, made after the fork (a pool child must not share its
    parent's database connections)."""
    global _state
    with _state_lock:
        if _state is None or _state.pid != os.getpid():
            settings = Settings()
            store = Store(settings.store_url)
            runner = JobRunner(store, settings, limiter=shared_limiter(settings))
            runner.open()
            _state = _Process(os.getpid(), settings, store, runner, celery_app(settings))
        return _state


def _request(job: Job) -> BriefingRequest:
    return BriefingRequest.model_validate(job.request)


def _fans_out(settings: Settings, request: BriefingRequest) -> bool:
    return (
        not settings.is_extractive
        and settings.map_cache
        and len(request.source_ids) > settings.map_fanout_sources
    )


# ---------------------------------------------------------------- tasks


def run_job(job_id: str) -> str:
    """Claim job `job_id` and run it here, or spread its map step over the workers."""
    state = _process()
    settings, store = state.settings, state.store
    holder = state.holder()
    job = store.jobs.claim(holder, lease_s=settings.job_lease_s, job_id=job_id)
    if job is None:
        # Finished, cancelled, or held by another worker: this message was a repeat.
        return "not queued"
    try:
        request = _request(job)
        built = job_settings(settings, request)
    except Exception:
        # The runner records the readable reason; the build fails the same way there.
        asyncio.run(state.runner.run_claimed(job, holder=holder))
        return "failed"
    if not _fans_out(built, request):
        asyncio.run(state.runner.run_claimed(job, holder=holder))
        return "ran"
    from celery import chord

    size = built.map_fanout_sources
    shares = [request.source_ids[n : n + size] for n in range(0, len(request.source_ids), size)]
    store.jobs.heartbeat(
        job_id,
        holder,
        lease_s=settings.job_lease_s,
        progress={"stage": "map", "done": 0, "total": len(shares)},
    )
    app = state.app
    header = [app.signature(MAP_TASK, args=[job_id, holder, share]) for share in shares]
    chord(header)(app.signature(REDUCE_TASK, args=[job_id, holder]))
    log.info("job %s: map step spread over %d task(s)", job_id, len(shares))
    return "fanned out"


@contextmanager
def _leased(
    store: Store, settings: Settings, job_id: str, holder: str
) -> Iterator[threading.Event]:
    """Renew the job's lease every heartbeat while the block runs; the event is set when
    the claim was lost (or the job cancelled), so the block can stop early."""
    lost = threading.Event()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(settings.job_heartbeat_s):
            try:
                job = store.jobs.heartbeat(job_id, holder, lease_s=settings.job_lease_s)
            except (ConflictError, NotFoundError):
                lost.set()
                return
            except StoreError as exc:
                log.warning("job %s: heartbeat failed: %s", job_id, exc)
                continue
            if job.cancel_requested:
                lost.set()
                return

    thread = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        done.set()
        thread.join(timeout=5)


def map_sources(job_id: str, holder: str, source_ids: list[str]) -> dict[str, Any]:
    """Map one share of a job's sources into the map cache. Never raises: a share that
    failed is mapped again by the reduce (nothing of it is cached)."""
    state = _process()
    settings, store = state.settings, state.store
    try:
        job = store.jobs.get(job_id)
    except NotFoundError:
        return {"usage": {}, "warnings": []}
    if job.status != "running" or job.worker_id != holder:
        return {"usage": {}, "warnings": []}  # an older claim's chord: the job moved on
    try:
        built = job_settings(settings, _request(job))
        cache = map_cache_of(store, built)
        if cache is None:
            return {"usage": {}, "warnings": []}
        sources = job_sources(store, source_ids)
        with _leased(store, settings, job_id, holder) as lost:

            async def main() -> tuple[int, Usage, list[str]]:
                work = asyncio.ensure_future(
                    map_ahead(
                        sources,
                        built,
                        cache,
                        call_log=state.runner.recorder,
                        limiter=state.runner.limiter,
                    )
                )
                while not work.done():
                    await asyncio.wait({work}, timeout=0.5)
                    if lost.is_set():
                        work.cancel()
                return await work

            found, usage, warnings = asyncio.run(main())
    except (asyncio.CancelledError, Exception) as exc:
        log.warning("job %s: a map share of %d source(s) failed: %s", job_id, len(source_ids), exc)
        return {"usage": {}, "warnings": [f"a map share failed on a worker: {exc}"]}
    log.info("job %s: mapped %d source(s), %d claim(s)", job_id, len(sources), found)
    return {"usage": usage.model_dump(), "warnings": warnings}


def reduce_job(shares: list[dict[str, Any]], job_id: str, holder: str) -> str:
    """The chord's end: build the briefing (every cached map is a hit) and record it."""
    state = _process()
    try:
        job = state.store.jobs.get(job_id)
    except NotFoundError:
        return "gone"
    if job.status != "running" or job.worker_id != holder:
        return "not held"
    usage = Usage()
    for share in shares or []:
        if isinstance(share, dict) and share.get("usage"):
            usage += Usage.model_validate(share["usage"])
    asyncio.run(state.runner.run_claimed(job, holder=holder, extra_usage=usage))
    return "reduced"


def run_daily(name: str, day: str, scheduled_at: str) -> str:
    """Run schedule `name` for `day` (ISO date) here, unless the date has a run already."""
    state = _process()
    try:
        schedule = runnable_schedule(name, state.store, state.settings)
    except BriefingError as exc:
        # Deleted since it fired, or refused by this worker's settings: nothing to retry.
        log.error("daily run %s %s not run: %s", name, day, exc)
        return "not run"
    outcome = run_schedule(
        schedule,
        state.store,
        state.settings,
        run_date=date.fromisoformat(day),
        scheduled_at=datetime.fromisoformat(scheduled_at),
        limiter=state.runner.limiter,
    )
    level = logging.WARNING if outcome.status == "failed" else logging.INFO
    line = "; ".join(part.strip() for part in outcome.message.splitlines())
    log.log(level, "daily run: %s", line)
    return outcome.status


# ---------------------------------------------------------------- sweeper


class Sweeper:
    """Gives back what dead workers left running and resends what the broker lost, every
    half lease (on a thread of its own)."""

    def __init__(self, store: Store, settings: Settings, app: Celery) -> None:
        self.store = store
        self.settings = settings
        self.app = app
        self.every_s = max(0.2, min(settings.job_lease_s, settings.job_requeue_s) / 2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> int:
        """One pass; returns how many messages were sent."""
        sent = 0
        for job in self.store.jobs.recover(max_attempts=self.settings.job_max_attempts):
            log.info("job %s was left running by a stopped worker: now %s", job.id, job.status)
            if job.status == "queued":
                sent += send_run(self.app, job.id)
        for job_id in self.store.jobs.stale_queued(self.settings.job_requeue_s):
            sent += send_run(self.app, job_id)
        return sent

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.every_s):
                try:
                    self.sweep()
                except StoreError as exc:
                    log.warning("sweep failed: %s", exc)
                except Exception:
                    log.exception("sweep failed")

        self._thread = threading.Thread(target=loop, name="briefing-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


# ---------------------------------------------------------------- the service's side


class ScheduleSender:
    """A scheduler's `dispatch` on a cluster: sends a daily run to the workers once.

    Before sending, it takes `briefing:firing:<name>:<date>` in Redis for one run lease (SET
    NX): of N services firing the same schedule one sends, and a scheduler's later looks at
    a date that has no run yet (its message lost with a broker that restarted) send again
    only once that has run out, not every tick while the message waits in the queue.
    """

    def __init__(self, settings: Settings, app: Celery, *, fence_s: float = RUN_LEASE_S) -> None:
        self.settings = settings
        self.app = app
        self.fence_s = fence_s

    def __call__(self, schedule: Schedule, day: date, scheduled_at: datetime) -> bool:
        key = f"briefing:firing:{schedule.name}:{day.isoformat()}"
        try:
            client = _redis(self.settings)
            try:
                if not client.set(key, socket.gethostname(), nx=True, ex=int(self.fence_s)):
                    return False  # sent by this or another service within the fence
                self.app.send_task(
                    SCHEDULE_TASK,
                    args=[schedule.name, day.isoformat(), scheduled_at.isoformat()],
                    queue=QUEUE,
                    retry=False,
                )
            finally:
                client.close()
        except Exception as exc:  # redis' and kombu's transport errors
            log.warning("%s %s: not sent to the workers (%s); sent again at a later tick",
                        schedule.name, day, type(exc).__name__)  # fmt: skip
            with suppress(Exception):
                _forget(self.settings, key)
            return False
        return True


def _redis(settings: Settings) -> Any:
    """A client of the broker's Redis that gives up as soon as a send would."""
    import redis

    return redis.Redis.from_url(
        _broker(settings), socket_timeout=SEND_TIMEOUT_S, socket_connect_timeout=SEND_TIMEOUT_S
    )


def _forget(settings: Settings, key: str) -> None:
    """Drop a fence whose message never left, so the next tick may send it."""
    client = _redis(settings)
    try:
        client.delete(key)
    finally:
        client.close()


class CeleryExecutor:
    """`briefing serve` in celery mode: queues jobs for the workers, runs none itself."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.app = celery_app(settings)
        self.sweeper = Sweeper(store, settings, self.app)
        #: The daily scheduler's `dispatch`: its runs go to the workers too.
        self.send_schedule = ScheduleSender(settings, self.app)

    async def start(self) -> None:
        self.sweeper.start()

    async def stop(self) -> None:
        await asyncio.to_thread(self.sweeper.stop)

    def submitted(self, job_id: str) -> None:
        # Sent off the event loop; a broker that is down delays the job, never the POST.
        threading.Thread(
            target=send_run, args=(self.app, job_id), name=f"send-{job_id}", daemon=True
        ).start()

    def cancel(self, job_id: str) -> bool:
        return False

    def queue_depth(self) -> float:
        """Messages waiting on the broker's queue; NaN when it cannot be asked."""
        try:
            client = _redis(self.settings)
            try:
                # Kombu keeps a queue's priorities in keys of their own beside its name.
                keys = [QUEUE, *(f"{QUEUE}\x06\x16{p}" for p in (3, 6, 9))]
                return float(sum(int(client.llen(key)) for key in keys))
            finally:
                client.close()
        except Exception:
            return float("nan")

    def jobs(self, status: str) -> float:
        """The store's jobs in `status` across the cluster; NaN when it cannot be read."""
        try:
            return float(self.store.jobs.count(status))  # type: ignore[arg-type]
        except StoreError:
            return float("nan")

    def progress(self, job_id: str) -> dict[str, Any] | None:
        return None

    async def changed(self, within_s: float) -> None:
        await asyncio.sleep(min(within_s, 0.25))


def run_worker(settings: Settings, *, concurrency: int, pool: str, loglevel: str) -> None:
    """Run a Celery worker of the briefing tasks here (blocks until it is stopped)."""
    from celery import signals

    app = celery_app(settings)
    sweeper: list[Sweeper] = []

    def _ready(**_: Any) -> None:
        # Started once the pool's processes exist, so that none is forked with it running.
        store = Store(settings.store_url)
        sweeper.append(Sweeper(store, settings, app))
        sweeper[0].start()

    def _shutdown(**_: Any) -> None:
        for one in sweeper:
            one.stop()
            one.store.close()

    signals.worker_ready.connect(_ready, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)

    log.info("worker on %s, %d process(es)", redact_url(_broker(settings)), concurrency)
    app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--queues={QUEUE}",
            f"--hostname=briefing@{socket.gethostname()}.{os.getpid()}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
