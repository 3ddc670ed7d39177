"""The scheduler of the daily briefings inside the service: firing, catching up, two services.

The decisions of which run is due use an injected clock, so they do not depend on the hour
the tests run at; APScheduler's timers keep the real time. Cases that touch the store run on
SQLite, and again on PostgreSQL when BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from news_site import NewsSite
from store_databases import BACKENDS, POSTGRES_ENV, database_url
from test_serve import _free_port

from briefing.config import Settings
from briefing.daily.runs import RunOutcome, run_schedule
from briefing.daily.scheduler import DailyScheduler
from briefing.daily.schedules import Schedule, due_run, load_schedules, next_run
from briefing.store import ScheduleRun, Store
from briefing.store.migrations import upgrade

SEED = Path(__file__).resolve().parent.parent / "seeds"
#: The clock of most cases: a Thursday morning, after the 07:00 runs.
NOW = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
TODAY = date(2026, 3, 12)

SCHEDULES = """\
[[schedule]]
name = "news"
cron = "{cron}"
sources = [{{ kind = "folder", path = "news/" }}]
deliver = [{{ kind = "store" }}, {{ kind = "dir", path = "out/" }}]
"""


@pytest.fixture(autouse=True)
def _no_briefing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name, raising=False)


class World:
    """A database, a schedules file over a copy of the seeds, and schedulers on them."""

    def __init__(self, url: str, folder: Path, stack: ExitStack) -> None:
        self.url = url
        self.folder = folder
        self.out = folder / "out"
        self.file = folder / "briefings.toml"
        self._stack = stack
        self.store = self.new_store()
        self.write("0 7 * * *")

    def write(self, cron: str) -> None:
        """Write the schedules file: schedule `news` with `cron` (UTC)."""
        self.file.write_text(SCHEDULES.format(cron=cron), encoding="utf-8")

    @property
    def schedule(self) -> Schedule:
        """Schedule `news` of the file."""
        [schedule] = load_schedules(self.file)
        return schedule

    def new_store(self) -> Store:
        """A store of its own on the database, as another process has."""
        store = Store(self.url)
        self._stack.callback(store.close)
        return store

    def settings(self, **overrides: Any) -> Settings:
        """Settings with the schedules file and a call log in the test's folder."""
        values: dict[str, Any] = {
            "database_url": self.url,
            "call_log": self.folder / "calls.db",
            "schedules_file": self.file,
            "shutdown_grace_s": 10,
            **overrides,
        }
        return Settings(**values)

    def scheduler(
        self, clock: Callable[[], datetime] | None = lambda: NOW, **overrides: Any
    ) -> DailyScheduler:
        """A scheduler on a store of its own; stopped at the end of the test."""
        tick_s = overrides.pop("tick_s", 60.0)
        scheduler = DailyScheduler(
            self.new_store(), self.settings(**overrides), tick_s=tick_s, clock=clock
        )
        self._stack.callback(scheduler.stop)
        return scheduler

    def runs(self) -> list[ScheduleRun]:
        """Every run of `news`, latest date first."""
        return self.store.runs.recent("news")

    def until_finished(self, day: date, within_s: float = 20) -> ScheduleRun:
        """Wait until the run of `news` for `day` has ended."""
        deadline = time.monotonic() + within_s
        while True:
            run = self.store.runs.find("news", day)
            if run is not None and run.status != "running":
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.02)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A migrated database of each backend, with `news` (07:00 UTC daily) in the file."""
    shutil.copytree(SEED, tmp_path / "news")
    with ExitStack() as stack:
        url = stack.enter_context(database_url(request.param, tmp_path))
        upgrade(url)
        yield World(url, tmp_path, stack)


def _briefing_jobs(store: Store) -> int:
    jobs, _ = store.jobs.page(limit=50)
    return len(jobs)


# ---------------------------------------------------------------- once per date


def test_two_schedulers_firing_together_run_the_date_once(world: World) -> None:
    schedulers = [world.scheduler(), world.scheduler()]
    for scheduler in schedulers:
        scheduler.reload()
    barrier = threading.Barrier(2)
    outcomes: list[RunOutcome | None] = []

    def fire(scheduler: DailyScheduler) -> None:
        barrier.wait(timeout=5)
        outcomes.append(scheduler.run_due("news"))

    threads = [threading.Thread(target=fire, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(o.status for o in outcomes if o is not None) == ["skipped", "succeeded"]
    [run] = world.runs()
    assert (run.run_date, run.status, run.scheduled_at) == (
        TODAY,
        "succeeded",
        datetime(2026, 3, 12, 7, 0, tzinfo=UTC),
    )
    assert _briefing_jobs(world.store) == 1
    assert (world.out / f"news-{TODAY}.md").is_file()


def test_two_services_starting_together_catch_up_once(world: World) -> None:
    schedulers = [world.scheduler(), world.scheduler()]

    threads = [threading.Thread(target=s.start) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    run = world.until_finished(TODAY)
    for scheduler in schedulers:
        assert scheduler.wait_idle(20)

    assert run.status == "succeeded"
    assert len(world.runs()) == 1
    assert _briefing_jobs(world.store) == 1


# ---------------------------------------------------------------- missed runs


def test_only_the_latest_missed_run_runs_at_start_up_and_only_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # The last run was on Monday; the service was down until Thursday morning.
    before = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
    run_schedule(world.schedule, world.store, world.settings(), now=before, scheduled_at=before)
    first = world.scheduler()
    first.reload()
    assert first.missed() == ["news"]

    with caplog.at_level(logging.INFO, logger="briefing.scheduler"):
        first.start()
        run = world.until_finished(TODAY)
        assert first.wait_idle(10)

    # Thursday's, with its scheduled time; Tuesday and Wednesday do not pile up.
    assert [r.run_date for r in world.runs()] == [TODAY, date(2026, 3, 9)]
    assert run.scheduled_at == datetime(2026, 3, 12, 7, 0, tzinfo=UTC)
    assert run.status == "empty"  # the seeds were briefed on Monday
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("daily run:")]
    assert "news 2026-03-12: nothing new since" in line
    first.stop()

    second = world.scheduler()
    second.reload()
    assert second.missed() == []
    second.start()
    assert second.wait_idle(5)
    assert len(world.runs()) == 2


def test_a_run_left_by_a_process_that_died_is_taken_over(world: World) -> None:
    taken, claimed = world.store.runs.claim(
        "news", TODAY, "dead-host:1:x", lease_s=60, now=NOW - timedelta(hours=2)
    )
    assert claimed
    assert taken.status == "running"
    scheduler = world.scheduler()

    scheduler.start()
    run = world.until_finished(TODAY)

    assert (run.id, run.status, run.attempt) == (taken.id, "succeeded", 2)


def test_a_run_still_held_by_another_process_is_left_alone(world: World) -> None:
    world.store.runs.claim("news", TODAY, "busy-host:1:x", lease_s=3600, now=NOW)
    scheduler = world.scheduler()
    scheduler.reload()

    assert scheduler.missed() == []


def test_an_api_schedule_does_not_catch_up_times_before_it_existed(world: World) -> None:
    definition = world.schedule.model_dump(mode="json")
    definition["name"] = "from-api"
    definition["sources"] = [{"kind": "folder", "path": str(world.folder / "news")}]
    definition["deliver"] = [{"kind": "store"}]
    world.store.schedules.put("from-api", definition)  # created now, in real time
    real = datetime.now(UTC)
    scheduler = world.scheduler(clock=lambda: real, schedule_roots=str(world.folder))
    scheduler.reload()

    # The file's schedule of the same cron missed its run; the API's did not exist then.
    assert set(scheduler.schedules) == {"news", "from-api"}
    assert scheduler.missed() == ["news"]


# ---------------------------------------------------------------- timers and ticks


def test_each_schedule_gets_a_timer_at_its_next_scheduled_time(world: World) -> None:
    world.write("30 6 * * 1-5")
    before = datetime.now(UTC)
    # Its latest time has run, so no catch-up fires the timer now.
    due = due_run(world.schedule, before)
    assert due is not None
    run, _ = world.store.runs.claim("news", due[0], "elsewhere", lease_s=60)
    world.store.runs.finish(run.id, "elsewhere", "empty")
    scheduler = world.scheduler(clock=None)

    scheduler.start()

    expected = next_run(world.schedule, before)
    assert scheduler.next_run_time("news") == expected
    assert scheduler.next_run_time("other") is None


def test_the_tick_reloads_the_schedules_another_process_changed(world: World) -> None:
    scheduler = world.scheduler(tick_s=0.1, clock=None)
    scheduler.start()
    assert set(scheduler.schedules) == {"news"}

    # Another process: a new file schedule and a changed cron.
    world.write("15 5 * * *")
    deadline = time.monotonic() + 5
    while scheduler.schedules["news"].schedule.cron != "15 5 * * *":
        assert time.monotonic() < deadline, "the tick did not reload the file"
        time.sleep(0.05)

    assert scheduler.next_run_time("news") == next_run(world.schedule, datetime.now(UTC))


def test_the_tick_retries_failed_deliveries(world: World) -> None:
    world.out.write_text("a file where the folder should be", encoding="utf-8")
    now = [NOW]
    scheduler = world.scheduler(clock=lambda: now[0])
    scheduler.reload()
    outcome = scheduler.run_due("news")
    assert outcome is not None
    assert outcome.run is not None
    dir_delivery = world.store.deliveries.of_run(outcome.run.id)[1]
    assert (dir_delivery.kind, dir_delivery.status) == ("dir", "pending")

    world.out.unlink()
    now[0] = NOW + timedelta(minutes=2)  # past its next attempt
    scheduler.tick()

    retried = world.store.deliveries.of_run(outcome.run.id)[1]
    assert (retried.status, retried.attempts) == ("delivered", 2)
    assert (world.out / f"news-{TODAY}.md").is_file()


def test_schedules_that_may_not_run_here_get_no_timer(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    outside = world.schedule.model_dump(mode="json")
    outside["name"] = "outside"
    outside["sources"] = [{"kind": "folder", "path": str(world.folder / "news")}]
    world.store.schedules.put("outside", outside)  # not through the API: it would refuse
    twice = {**outside, "name": "news"}
    world.store.schedules.put("news", twice)  # the file defines `news` too
    scheduler = world.scheduler(schedule_roots=str(world.out))

    with caplog.at_level(logging.ERROR, logger="briefing.scheduler"):
        scheduler.reload()
        scheduler.reload()

    assert scheduler.schedules == {}
    messages = sorted(r.getMessage() for r in caplog.records)
    assert len(messages) == 2  # once each, not at every reload
    assert messages[0].startswith("news: defined both in")
    assert messages[1].startswith("outside: not run here: sources.0.folder.path:")


def test_a_schedules_file_that_breaks_keeps_its_previous_schedules(world: World) -> None:
    scheduler = world.scheduler()
    scheduler.reload()
    world.file.write_text("[[schedule]]\nname = 'news'\n", encoding="utf-8")

    scheduler.reload()

    assert scheduler.schedules["news"].schedule.cron == "0 7 * * *"


# ---------------------------------------------------------------- stopping


def test_stop_waits_a_bounded_time_and_starts_nothing_after(world: World) -> None:
    with NewsSite() as site:
        site.serve_fixture("/slow", "council.html", delay_s=1.5)
        world.file.write_text(
            f'[[schedule]]\nname = "news"\ncron = "0 7 * * *"\n'
            f'sources = [{{ kind = "url", url = "{site.url("/slow")}" }}]\n',
            encoding="utf-8",
        )
        scheduler = world.scheduler(fetch_allow_private=True)
        scheduler.reload()
        running = threading.Thread(target=scheduler.run_due, args=("news",))
        running.start()
        deadline = time.monotonic() + 5
        while scheduler.running == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)

        started = time.monotonic()
        scheduler.stop(timeout_s=0.2)
        assert 0.15 < time.monotonic() - started < 1.0  # it waited, within its bound
        assert scheduler.run_due("news") is None  # stopping: nothing new starts
        running.join(timeout=10)

    assert world.until_finished(TODAY).status == "succeeded"
    scheduler.stop(timeout_s=5)  # idle now: returns at once


# ---------------------------------------------------------------- in `briefing serve`


def test_serve_catches_up_a_run_due_earlier_today(tmp_path: Path) -> None:
    shutil.copytree(SEED, tmp_path / "news")
    now = datetime.now(UTC)
    earlier = now - timedelta(minutes=1)
    schedules = tmp_path / "briefings.toml"
    schedules.write_text(
        SCHEDULES.format(cron=f"{earlier.minute} {earlier.hour} * * *"), encoding="utf-8"
    )
    # Just after midnight this is yesterday's run: the date is the scheduled time's.
    due = due_run(load_schedules(schedules)[0], now)
    assert due is not None
    expected = tmp_path / "out" / f"news-{due[0].isoformat()}.md"
    port = _free_port()
    command = [sys.executable, "-c", "from briefing.cli import main; main()"]
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
    env.update(
        BRIEFING_DATABASE_URL=f"sqlite:///{tmp_path / 'served.db'}",
        BRIEFING_SCHEDULES=str(schedules),
        BRIEFING_CALL_LOG=str(tmp_path / "calls.db"),
    )
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            last_run: dict[str, Any] | None = None
            while not expected.is_file() or (last_run or {}).get("status") != "succeeded":
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(log.read_text("utf-8", "replace"))
                time.sleep(0.1)
                try:
                    listed = httpx.get(f"http://127.0.0.1:{port}/v1/schedules", timeout=5)
                except httpx.TransportError:
                    continue  # not listening yet
                [news] = listed.json()["items"]
                last_run = news["last_run"]
        finally:
            process.terminate()
            process.wait(timeout=20)
    assert last_run is not None
    assert last_run["run_date"] == due[0].isoformat()
    text = log.read_text("utf-8", "replace")
    assert "news: catching up its latest missed run" in text
    assert f"daily run: news {due[0].isoformat()}: briefing" in text
