"""Jobs on a cluster: `briefing serve` queues on a real Redis, `briefing worker` processes run
the jobs, a real PostgreSQL is the store.

Workers are killed with SIGKILL mid-job and Redis is restarted mid-run (losing its queue):
every job still ends succeeded, once. Needs `redis-server` (Debian's package) and
BRIEFING_TEST_POSTGRES_URL; with BRIEFING_REQUIRE_REDIS set (CI) a missing server fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from store_databases import database_url
from test_corroboration import _responder
from test_restart import Served, serve, service_env
from test_serve import _free_port

from briefing.config import Settings
from briefing.store import Job, Store
from briefing.store.migrations import upgrade
from briefing.testing import FakeOpenAIServer

REQUIRE_ENV = "BRIEFING_REQUIRE_REDIS"
LEASE_S = 3.0
FINAL = {"succeeded", "failed", "cancelled"}


def _redis_or_skip() -> str:
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set, but redis-server is not installed")
        pytest.skip("cluster tests skipped: redis-server is not installed")
    return found


class RedisServer:
    """A redis-server on a loopback port, without persistence: a restart loses its queue."""

    def __init__(self, binary: str, port: int, log: Path) -> None:
        self.binary, self.port, self.log = binary, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "redis-server never answered PING"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(_redis_or_skip(), _free_port(), tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL schema (a cluster cannot share SQLite)."""
    with database_url("postgresql", tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def provider() -> Iterator[FakeOpenAIServer]:
    """Map and reduce answers that cite what they were shown, 0.3 s a call."""
    with FakeOpenAIServer(_responder, latency_s=0.3) as server:
        yield server


def _env(
    database: str, redis: RedisServer, provider: FakeOpenAIServer, tmp_path: Path
) -> dict[str, str]:
    return {
        **service_env(tmp_path, database, provider),
        "BRIEFING_EXECUTOR": "celery",
        "BRIEFING_BROKER_URL": redis.url,
        "BRIEFING_JOB_LEASE_S": str(LEASE_S),
        "BRIEFING_JOB_HEARTBEAT_S": "0.3",
        "BRIEFING_JOB_REQUEUE_S": "2",
        "BRIEFING_MAP_FANOUT_SOURCES": "2",
    }


class Workers:
    """`briefing worker` processes, each the leader of its own process group."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
        log = self.tmp_path / f"worker-{len(self.processes)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-c", "from briefing.cli import main; main()", "worker",
                 "--concurrency", str(concurrency)],
                env={**clean, **self.env},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL to the worker and its pool: the machine died mid-job."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(
            p.read_text("utf-8", "replace")[-3000:]
            for p in sorted(self.tmp_path.glob("worker-*.log"))
        )

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@contextmanager
def cluster(
    tmp_path: Path, database: str, redis: RedisServer, provider: FakeOpenAIServer, workers: int
) -> Iterator[tuple[Served, Workers]]:
    env = _env(database, redis, provider, tmp_path)
    pool = Workers(env, tmp_path)
    try:
        for _ in range(workers):
            pool.start()
        with serve(tmp_path, database, provider, **env) as served:
            yield served, pool
    finally:
        pool.stop_all()


def _source(n: int) -> dict[str, str]:
    return {
        "title": f"Report {n}",
        "text": f"Harbour report number {n}.\nThe harbour bridge reopened on Friday after "
        f"{n + 2} months of repairs.\nThe ferry to the island carried {100 + n} passengers "
        "on Sunday.",
    }


def _submit(served: Served, sources: list[dict[str, str]]) -> str:
    response = served.client.post("/v1/briefings", json={"sources": sources})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def _jobs(database: str, ids: list[str]) -> list[Job]:
    store = Store(database)
    try:
        return [store.jobs.get(i) for i in ids]
    finally:
        store.close()


def _wait_all(database: str, ids: list[str], within_s: float, pool: Workers) -> list[Job]:
    deadline = time.monotonic() + within_s
    while True:
        jobs = _jobs(database, ids)
        if all(j.status in FINAL for j in jobs):
            return jobs
        counts: dict[str, int] = {}
        for job in jobs:
            counts[job.status] = counts.get(job.status, 0) + 1
        assert time.monotonic() < deadline, f"{counts}\n{pool.logs()}"
        time.sleep(0.2)


def _group(pgid: int) -> set[int]:
    """The pids of a process group (the worker and its pool's processes)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            out.add(int(entry.name))
    return out


def _assert_succeeded_once(jobs: list[Job]) -> None:
    for job in jobs:
        assert job.status == "succeeded", (job.id, job.status, job.error)
        assert job.result is not None
        assert job.result["id"] == job.id
        assert job.worker_id is None
        assert job.lease_expires_at is None
        for claim in [*job.result["summary"], *job.result["key_points"]]:
            texts = {s["id"]: s["text"] for s in job.result["sources"]}
            for c in claim["citations"]:
                assert texts[c["source_id"]][c["start"] : c["end"]] == c["quote"]


def test_fifty_jobs_on_three_workers_one_killed_mid_job(
    tmp_path: Path, database: str, redis: RedisServer, provider: FakeOpenAIServer
) -> None:
    with cluster(tmp_path, database, redis, provider, workers=3) as (served, pool):
        ids = [_submit(served, [_source(n)]) for n in range(50)]
        victim = pool.processes[0]
        # Kill the first worker while it holds a job (its pool's pids are in the holder).
        deadline = time.monotonic() + 60
        held: list[str] = []
        while not held:
            pids = {str(p) for p in _group(victim.pid)}
            held = [
                j.id
                for j in _jobs(database, ids)
                if j.status == "running" and j.worker_id and j.worker_id.split(":")[1] in pids
            ]
            assert time.monotonic() < deadline, f"the first worker never ran a job\n{pool.logs()}"
            time.sleep(0.05)
        pool.kill(victim)
        jobs = _wait_all(database, ids, 120, pool)
    _assert_succeeded_once(jobs)
    by_id = {j.id: j for j in jobs}
    # The jobs the dead worker held were run again elsewhere: a second claim, one outcome.
    for job_id in held:
        assert by_id[job_id].attempts == 2, by_id[job_id]
    assert "no longer held" not in pool.logs()


def test_jobs_finish_when_redis_restarts_mid_run(
    tmp_path: Path, database: str, redis: RedisServer, provider: FakeOpenAIServer
) -> None:
    with cluster(tmp_path, database, redis, provider, workers=2) as (served, pool):
        ids = [_submit(served, [_source(n)]) for n in range(20)]
        deadline = time.monotonic() + 60
        while sum(j.status == "succeeded" for j in _jobs(database, ids)) < 3:
            assert time.monotonic() < deadline, pool.logs()
            time.sleep(0.1)
        redis.stop()  # SIGKILL, no persistence: the queued messages are gone
        time.sleep(1.0)
        redis.start()
        # Submitted while the workers reconnect: still run.
        ids += [_submit(served, [_source(n)]) for n in range(20, 25)]
        jobs = _wait_all(database, ids, 120, pool)
    _assert_succeeded_once(jobs)


def test_a_large_briefing_maps_on_several_workers_then_reduces_once(
    tmp_path: Path, database: str, redis: RedisServer, provider: FakeOpenAIServer
) -> None:
    with cluster(tmp_path, database, redis, provider, workers=2) as (served, pool):
        sources = [_source(n) for n in range(5)]
        body = {"sources": sources}
        key = {"Idempotency-Key": "five-reports"}
        first = served.client.post("/v1/briefings", json=body, headers=key)
        again = served.client.post("/v1/briefings", json=body, headers=key)
        assert first.status_code == again.status_code == 202, (first.text, again.text)
        job_id = first.json()["id"]
        # The same key and request: the same job, queued once, run once.
        assert again.json()["id"] == job_id
        [job] = _wait_all(database, [job_id], 90, pool)
        metrics = served.client.get("/metrics").text
    # Cluster-wide gauges: nothing left on the broker, no job running anywhere.
    assert "briefing_queue_depth 0.0" in metrics
    assert 'briefing_cluster_jobs{status="running"} 0.0' in metrics
    assert 'briefing_cluster_jobs{status="queued"} 0.0' in metrics
    _assert_succeeded_once([job])
    assert job.result is not None
    usage = job.result["usage"]
    # Three map shares (2 + 2 + 1 sources) ran ahead; the reduce found all five in the
    # cache and made the only other call.
    assert usage["cache_hits"] == 5
    reduces = [r for r in provider.requests if "<claims>" in r.messages[-1]["content"]]
    assert len(reduces) == 1
    maps = len(provider.requests) - len(reduces)
    assert usage["calls"] == maps + 1
    cited = {c["source_id"] for claim in job.result["key_points"] for c in claim["citations"]}
    assert len(cited) >= 4


def test_celery_mode_refuses_sqlite_and_a_missing_broker(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql:// URL; a SQLite file cannot be shared"):
        Settings(
            executor="celery",
            broker_url="redis://127.0.0.1:1/0",
            database_url=f"sqlite:///{tmp_path / 'x.db'}",
        )
    with pytest.raises(ValueError, match="executor=celery needs broker_url"):
        Settings(executor="celery", database_url="postgresql://u:p@127.0.0.1/x")


def test_a_worker_without_celery_mode_says_what_to_set(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
    done = subprocess.run(
        [sys.executable, "-c", "from briefing.cli import main; main()", "worker"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "set BRIEFING_EXECUTOR=celery" in done.stderr


SCHEDULES = """\
[[schedule]]
name = "news"
cron = "0 0 * * *"
sources = [{ kind = "folder", path = "news/" }]
deliver = [{ kind = "store" }]
"""


def test_daily_runs_are_sent_once_by_two_services_and_run_on_a_worker(
    tmp_path: Path, database: str, redis: RedisServer, provider: FakeOpenAIServer
) -> None:
    """Two services' schedulers fire the same run: one message goes out; a broker that
    loses it gets it again at the next tick; a worker, not a service, runs it, once."""
    from briefing.daily.scheduler import DailyScheduler
    from briefing.daily.schedules import Schedule
    from briefing.service.cluster import ScheduleSender, celery_app

    shutil.copytree(Path(__file__).resolve().parent.parent / "seeds", tmp_path / "news")
    schedules = tmp_path / "briefings.toml"
    schedules.write_text(SCHEDULES, encoding="utf-8")
    env = {**_env(database, redis, provider, tmp_path), "BRIEFING_SCHEDULES": str(schedules)}
    settings = Settings(
        database_url=database,
        executor="celery",
        broker_url=redis.url,
        schedules_file=schedules,
        call_log=tmp_path / "calls.db",
        shutdown_grace_s=5,
    )
    sent: list[bool] = []
    sender = ScheduleSender(settings, celery_app(settings))

    def counting(schedule: Schedule, day: date, scheduled_at: datetime) -> bool:
        ok = sender(schedule, day, scheduled_at)
        sent.append(ok)
        return ok

    stores = [Store(database) for _ in range(2)]
    schedulers = [DailyScheduler(s, settings, dispatch=counting) for s in stores]
    pool = Workers(env, tmp_path)
    today = datetime.now(UTC).date()
    try:
        for scheduler in schedulers:
            scheduler.start()  # each catches up today's 00:00 run: both fire
        deadline = time.monotonic() + 20
        while len(sent) < 2:
            assert time.monotonic() < deadline, sent
            time.sleep(0.05)
        assert sorted(sent) == [False, True]
        for scheduler in schedulers:
            scheduler.tick()  # no run yet, but the message is on its way: not sent again
        assert sent.count(True) == 1
        assert stores[0].runs.find("news", today) is None  # no service ran it

        # The broker restarts empty, message and fence gone: the next tick sends it again.
        redis.stop()
        redis.start()
        schedulers[1].tick()
        assert sent.count(True) == 2

        worker = pool.start()
        deadline = time.monotonic() + 60
        while True:
            run = stores[0].runs.find("news", today)
            if run is not None and run.status != "running":
                break
            assert time.monotonic() < deadline, pool.logs()
            time.sleep(0.2)
        assert run.status == "succeeded", (run.status, run.error, pool.logs())
        # Run by a process of the worker's pool (owner = host:pid:nonce), not by this one.
        assert run.owner is not None
        assert int(run.owner.split(":")[1]) in _group(worker.pid) - {os.getpid()}
        assert len(stores[0].runs.recent("news")) == 1
        assert run.job_id is not None
        result = stores[0].jobs.get(run.job_id).result
        assert result is not None
        assert result["key_points"]
        for scheduler in schedulers:
            scheduler.tick()  # the date has its run: nothing more is sent
        assert sent.count(True) == 2
    finally:
        for scheduler in schedulers:
            scheduler.stop(timeout_s=5)
        pool.stop_all()
        for store in stores:
            store.close()
