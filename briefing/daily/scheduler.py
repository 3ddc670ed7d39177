"""The daily briefings inside the service: each schedule runs at its time, in this process.

`DailyScheduler` gives every schedule (of the schedules file and of the store) an APScheduler
job with the schedule's trigger. A firing runs the schedule's latest due run on a thread of
its own (`run_schedule` blocks). The store's (schedule, date) key decides who runs: a second
service on the same database fires too, finds the date taken and does nothing, so two
services never run a schedule twice for a day.

At start-up each schedule's latest scheduled time is looked at once: when its date has no
run (or one left running by a process that died), it runs now. Only that latest one runs,
so days missed while the service was down do not pile up. An API schedule does not catch
up a time from before it was created.

Every `tick_s` (a minute) the scheduler retries due deliveries and reads the schedules
again, so a change made through the API of another process takes effect; this process's
API reloads at once. A schedules file that no longer reads keeps its previous schedules,
and a database that is down keeps the API's: the scheduler logs and carries on.

On a cluster (`dispatch` given) a firing runs nowhere here: it is handed to `dispatch`,
which sends it to the workers (`briefing.service.cluster`). There the (schedule, date) key
still decides who runs; every tick also hands over again each schedule whose date has no
run yet, or only one whose worker died, since a broker can lose what it was sent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from briefing.config import Settings
from briefing.daily.runs import (
    DefinedSchedule,
    RunOutcome,
    api_schedules,
    retry_deliveries,
    run_schedule,
)
from briefing.daily.schedules import (
    Schedule,
    describe_problems,
    due_run,
    load_schedules,
    trigger,
    untrusted_problems,
)
from briefing.errors import BriefingError, ConfigError
from briefing.store import Store

__all__ = ["DailyScheduler", "Dispatch"]

log = logging.getLogger("briefing.scheduler")

#: How late a firing may still run (a suspended machine, a busy process); the run keeps the
#: scheduled time's date whatever the delay. Later than this, the next start-up catches up.
MISFIRE_GRACE = timedelta(days=1)
_JOB_PREFIX = "schedule:"
_TICK_JOB = "tick"


#: Hands the run of a schedule for (date, scheduled time) to someone else to carry out;
#: True when it was sent, False when it was not (already sent, or nowhere to send it).
Dispatch = Callable[[Schedule, date, datetime], bool]


def _job_id(name: str) -> str:
    return _JOB_PREFIX + name


class DailyScheduler:
    """Runs the schedules of the file and of the store at their times, in this process.

    `clock` (aware datetimes) stands for the current time in the decisions of which run is
    due; APScheduler's timers keep the real time. With `dispatch` the runs are carried out
    elsewhere (see the module docstring).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        tick_s: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.store = store
        self.settings = settings
        self.tick_s = tick_s
        self._clock = clock or (lambda: datetime.now(UTC))
        self._dispatch = dispatch
        self._scheduler: Any = BackgroundScheduler(
            timezone=UTC,
            executors={"default": _daemon_executor()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
        )
        self._defined: dict[str, DefinedSchedule] = {}
        self._reload_lock = threading.Lock()
        self._reported: set[str] = set()
        self._state = threading.Condition()
        self._active = 0
        self._stopping = False
        self._started = False

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Load the schedules, start their timers, and run each one's missed run now."""
        from apscheduler.jobstores.base import JobLookupError

        self.reload()
        self._scheduler.start()
        self._started = True
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.tick_s,
            id=_TICK_JOB,
            name="retry deliveries, reload schedules",
        )
        for name in self.missed():
            log.info("%s: catching up its latest missed run", name)
            # Fired now by its own job, so it cannot overlap a regular firing of the same
            # schedule (max_instances=1); the run itself works out the date again. The job
            # is gone only when a reload has just removed the schedule.
            with contextlib.suppress(JobLookupError):
                self._scheduler.modify_job(_job_id(name), next_run_time=datetime.now(UTC))

    def stop(self, timeout_s: float | None = None) -> None:
        """Start no more runs; wait up to `timeout_s` (shutdown_grace_s) for running ones.

        A run still going after that is left to finish on its daemon thread or to die
        with the process; its claim then runs out and the next start-up takes it over.
        """
        with self._state:
            self._stopping = True
        if self._started:
            self._started = False
            self._scheduler.shutdown(wait=False)
        timeout = self.settings.shutdown_grace_s if timeout_s is None else timeout_s
        with self._state:
            if not self._state.wait_for(lambda: self._active == 0, timeout):
                log.info("shutdown: %d daily run(s) still running", self._active)

    @property
    def running(self) -> int:
        """How many runs this scheduler has in progress."""
        with self._state:
            return self._active

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no run is in progress; False when `timeout_s` passed first."""
        with self._state:
            return self._state.wait_for(lambda: self._active == 0, timeout_s)

    # ------------------------------------------------------------ schedules

    @property
    def schedules(self) -> dict[str, DefinedSchedule]:
        """The schedules this scheduler runs, by name."""
        return dict(self._defined)

    def next_run_time(self, name: str) -> datetime | None:
        """When the timer of schedule `name` fires next (UTC); None when it has none."""
        job = self._scheduler.get_job(_job_id(name)) if self._started else None
        when: datetime | None = getattr(job, "next_run_time", None)
        return when.astimezone(UTC) if when is not None else None

    def reload(self) -> None:
        """Read the schedules again (file and store) and set the timers to match."""
        with self._reload_lock:
            wanted = self._wanted()
            for name in self._defined.keys() - wanted.keys():
                self._scheduler.remove_job(_job_id(name))
                log.info("%s: no longer scheduled here", name)
            for name, defined in wanted.items():
                old = self._defined.get(name)
                schedule = defined.schedule
                if old is None:
                    self._scheduler.add_job(
                        self._fire,
                        trigger(schedule),
                        args=[name],
                        id=_job_id(name),
                        name=f"daily briefing {name}",
                    )
                    log.info("%s: scheduled (%s, %s)", name, schedule.cron, schedule.timezone)
                elif (old.schedule.cron, old.schedule.timezone) != (
                    schedule.cron,
                    schedule.timezone,
                ):
                    self._scheduler.reschedule_job(_job_id(name), trigger=trigger(schedule))
                    log.info("%s: rescheduled (%s, %s)", name, schedule.cron, schedule.timezone)
            # A firing looks its schedule up here, so other changes apply at the next run.
            self._defined = wanted

    def _wanted(self) -> dict[str, DefinedSchedule]:
        """The schedules to run: what reads now, the previous ones of what does not."""
        notes: set[str] = set()
        path = self.settings.schedules_file
        try:
            from_file = [DefinedSchedule(s, "file") for s in load_schedules(path)] if path else []
        except ConfigError as exc:
            notes.add(f"schedules file unusable, its previous schedules kept: {exc}")
            from_file = [d for d in self._defined.values() if d.origin == "file"]
        try:
            from_api = api_schedules(self.store)
        except BriefingError as exc:
            notes.add(f"API schedules not read, the previous ones kept: {exc}")
            from_api = [d for d in self._defined.values() if d.origin == "api"]
        file_names = {d.name for d in from_file}
        twice = file_names & {d.name for d in from_api}
        wanted = {d.name: d for d in from_file if d.name not in twice}
        for name in sorted(twice):
            notes.add(
                f"{name}: defined both in {path} and through the API, so neither runs; "
                "delete one of them"
            )
        for defined in from_api:
            if defined.name in twice:
                continue
            problems = untrusted_problems(defined.schedule, self.settings)
            if problems:
                reasons = describe_problems(problems)
                notes.add(f"{defined.name}: not run here: {reasons}")
                continue
            wanted[defined.name] = defined
        # Each problem is logged when it appears, not at every reload while it lasts.
        for note in sorted(notes - self._reported):
            log.error("%s", note)
        self._reported = notes
        return wanted

    # ------------------------------------------------------------ runs

    def missed(self) -> list[str]:
        """Schedules whose latest scheduled time has no run for its date, or only a run
        left running by a process that died."""
        now = self._clock()
        found = []
        for name, defined in self._defined.items():
            due = due_run(defined.schedule, now)
            if due is None:
                continue
            day, scheduled_at = due
            if defined.created_at is not None and scheduled_at < defined.created_at:
                continue  # it did not exist then: nothing was missed
            try:
                run = self.store.runs.find(name, day)
            except BriefingError as exc:
                log.warning("%s: cannot tell whether %s ran: %s", name, day, exc)
                continue
            abandoned = (
                run is not None
                and run.status == "running"
                and (run.lease_expires_at is None or run.lease_expires_at <= now)
            )
            if run is None or abandoned:
                found.append(name)
        return found

    def run_due(self, name: str) -> RunOutcome | None:
        """Run schedule `name` for its latest scheduled time, unless that date has a run.

        What a firing does. None when the scheduler is stopping, does not know the name, or
        the schedule has no scheduled time yet.
        """
        defined = self._defined.get(name)
        if defined is None:
            return None
        with self._state:
            if self._stopping:
                return None
            self._active += 1
        try:
            return self._run(defined.schedule)
        finally:
            with self._state:
                self._active -= 1
                self._state.notify_all()

    def _run(self, schedule: Schedule) -> RunOutcome | None:
        now = self._clock()
        due = due_run(schedule, now)
        if due is None:
            return None
        day, scheduled_at = due
        if self._dispatch is not None:
            if self._dispatch(schedule, day, scheduled_at):
                log.info("%s %s: sent to the workers", schedule.name, day)
            return None
        try:
            outcome = run_schedule(
                schedule,
                self.store,
                self.settings,
                run_date=day,
                now=now,
                scheduled_at=scheduled_at,
            )
        except BriefingError as exc:  # the claim itself failed: the database is down
            log.warning("%s %s: not run: %s", schedule.name, day, exc)
            return None
        level = logging.WARNING if outcome.status == "failed" else logging.INFO
        # One line per run, the deliveries included, so a log search finds it whole.
        line = "; ".join(part.strip() for part in outcome.message.splitlines())
        log.log(level, "daily run: %s", line)
        return outcome

    def _fire(self, name: str) -> None:
        self.run_due(name)

    def tick(self) -> None:
        """Retry the deliveries that are due, then read the schedules again."""
        if self._stopping:
            return
        try:
            for delivery in retry_deliveries(self.store, self.settings, now=self._clock()):
                log.info(
                    "redelivery of run %s to %s %s: %s",
                    delivery.run_id,
                    delivery.kind,
                    delivery.target,
                    delivery.status,
                )
        except BriefingError as exc:
            log.warning("deliveries not retried: %s", exc)
        self.reload()
        if self._dispatch is not None:
            # What the broker lost (or a dead worker left) is sent again; `dispatch` sends
            # a date once per run lease, so a message still queued is not multiplied.
            for name in self.missed():
                self.run_due(name)


def _daemon_executor() -> Any:
    """An APScheduler executor that runs each firing on a daemon thread of its own.

    A pool's threads are joined when the interpreter exits, so a long run would hold up
    the service's shutdown past its grace period; a daemon thread does not.
    """
    from apscheduler.executors.base import BaseExecutor, run_job

    class DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            def work() -> None:
                try:
                    events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
                except BaseException as exc:
                    self._run_job_error(job.id, exc, exc.__traceback__)
                else:
                    self._run_job_success(job.id, events)

            threading.Thread(target=work, name=f"briefing-{job.id}", daemon=True).start()

    return DaemonThreadExecutor()
