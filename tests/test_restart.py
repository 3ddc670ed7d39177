"""`briefing serve` killed or stopped in the middle of a job, then started again.

The service runs as a real subprocess against a slow fake provider. Whatever happens to the
process, a submitted job ends succeeded or failed: never stuck in `running`, never run into
two jobs or two results. The kill case runs on SQLite, and on PostgreSQL when
BRIEFING_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from store_databases import BACKENDS, database_url
from test_check import SUPPORTED, _map_reduce
from test_serve import _free_port

from briefing.store import Job, Store
from briefing.testing import FakeOpenAIServer, RecordedRequest

SEED = Path(__file__).resolve().parent.parent / "seeds"
TEST_MODEL = "openai/gpt-4o-mini"
TEST_API_KEY = "sk-test-not-a-real-key"
#: Seconds the fake provider takes per call. A briefing of the seeds makes five map calls
#: (four at once) and a reduce call, so it is still running well after its first call.
LATENCY_S = 0.6
#: Short, so the lease of a killed process runs out soon; still eight heartbeats long.
LEASE_S = 2.0
FINAL = {"succeeded", "failed", "cancelled"}
#: The store's recovery and release on PostgreSQL are tested in-process (test_briefings_api);
#: the cases marked so add the process boundary, on SQLite only to keep the module short.
SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


class Served:
    """One `briefing serve` process, its client and its log file."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.log = log
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def output(self) -> str:
        """What the process has logged so far (its tail), for assertion messages."""
        return self.log.read_text("utf-8", "replace")[-4000:]

    def get(self, path: str, **params: Any) -> Any:
        """GET `path`, expecting 200, and return its JSON."""
        response = self.client.get(path, params=params)
        assert response.status_code == 200, (response.text, self.output())
        return response.json()

    def until(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], within_s: float
    ) -> dict[str, Any]:
        """GET the job until `done` holds for it; fail after `within_s` seconds."""
        deadline = time.monotonic() + within_s
        while True:
            job: dict[str, Any] = self.get(f"/v1/briefings/{job_id}")
            if done(job):
                return job
            assert self.process.poll() is None, f"the service exited\n{self.output()}"
            assert time.monotonic() < deadline, f"{job}\n{self.output()}"
            time.sleep(0.1)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database; `briefing serve` migrates it."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def provider() -> Iterator[FakeOpenAIServer]:
    """A fake provider that answers map and reduce calls correctly, `LATENCY_S` late."""
    with FakeOpenAIServer(_map_reduce([(SUPPORTED, "S1")]), latency_s=LATENCY_S) as server:
        yield server


def service_env(tmp_path: Path, database: str, provider: FakeOpenAIServer) -> dict[str, str]:
    """The BRIEFING_* variables of a process on `database` whose model is `provider`."""
    return {
        "BRIEFING_DATABASE_URL": database,
        "BRIEFING_MODEL": TEST_MODEL,
        "BRIEFING_API_BASE": provider.base_url,
        "BRIEFING_API_KEY": TEST_API_KEY,
        "BRIEFING_RETRY_INITIAL_S": "0.01",
        "BRIEFING_RETRY_MAX_S": "0.05",
        "BRIEFING_CALL_LOG": str(tmp_path / "calls.db"),
    }


@contextmanager
def serve(
    tmp_path: Path, database: str, provider: FakeOpenAIServer, **env: str
) -> Iterator[Served]:
    """Run `briefing serve` on a free port until it is ready; stop it (or find it dead) after."""
    port = _free_port()
    # The developer's BRIEFING_* variables must not change what the service runs with.
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BRIEFING_")}
    settings = {
        **service_env(tmp_path, database, provider),
        "BRIEFING_JOB_WORKERS": "1",
        "BRIEFING_JOB_LEASE_S": str(LEASE_S),
        "BRIEFING_JOB_HEARTBEAT_S": "0.25",
        "BRIEFING_JOB_POLL_S": "0.2",
        **env,
    }
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as sink:
        # A file, not a pipe: nobody reads the output while the test runs, and a full pipe
        # would block the service.
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from briefing.cli import main; main()",
                "serve",
                "--port",
                str(port),
            ],
            env={**clean, **settings},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if served.client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"the service exited\n{served.output()}"
            assert time.monotonic() < deadline, f"the service never got ready\n{served.output()}"
            time.sleep(0.1)
        yield served
    finally:
        served.client.close()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _seed_sources() -> list[dict[str, str]]:
    return [
        {"title": path.stem, "text": path.read_text("utf-8")} for path in sorted(SEED.glob("*.txt"))
    ]


def _submit_and_wait_for_the_provider(
    served: Served, provider: FakeOpenAIServer, *, calls: int = 1
) -> str:
    """Submit a briefing of the seeds; return its id once it runs with `calls` model calls out."""
    response = served.client.post("/v1/briefings", json={"sources": _seed_sources()})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    # The first job of a process imports litellm first, which takes seconds.
    served.until(
        job_id,
        lambda job: job["status"] == "running" and len(provider.requests) >= calls,
        within_s=20,
    )
    return job_id


def _stop(process: subprocess.Popen[bytes], how: signal.Signals, within_s: float) -> None:
    """Send `how` to the process and wait for it to exit."""
    process.send_signal(how)
    process.wait(timeout=within_s)


def _assert_exact_citations(briefing: dict[str, Any]) -> int:
    """Every citation quotes its source span exactly; returns how many there are."""
    texts = {source["id"]: source["text"] for source in briefing["sources"]}
    claims = [*briefing["summary"], *briefing["key_points"]]
    for topic in briefing["disagreements"]:
        claims.extend(topic["claims"])
    citations = [citation for claim in claims for citation in claim["citations"]]
    for citation in citations:
        span = texts[citation["source_id"]][citation["start"] : citation["end"]]
        assert span == citation["quote"]
    return len(citations)


def _assert_one_job_and_its_sources(served: Served, job_id: str) -> None:
    """The restart made no second job and stored no source twice."""
    jobs = served.get("/v1/briefings")
    assert [job["id"] for job in jobs["items"]] == [job_id]
    sources = served.get("/v1/sources")
    assert len(sources["items"]) == len(_seed_sources())


def _reduce_calls(requests: list[RecordedRequest]) -> int:
    return sum("write a short, neutral briefing" in r.messages[0]["content"] for r in requests)


def test_a_job_killed_mid_run_is_run_again_after_a_restart(
    tmp_path: Path, database: str, provider: FakeOpenAIServer
) -> None:
    with serve(tmp_path, database, provider) as first:
        job_id = _submit_and_wait_for_the_provider(first, provider)
        assert _reduce_calls(provider.requests) == 0  # killed before the job could finish
        _stop(first.process, signal.SIGKILL, within_s=10)
    calls_before = len(provider.requests)
    provider.latency_s = 0.1  # the run after the restart need not be slow

    with serve(tmp_path, database, provider) as second:
        # The dead process's lease runs out first (LEASE_S), then the job runs again.
        job = second.until(job_id, lambda job: job["status"] in FINAL, within_s=30)

        assert job["status"] == "succeeded", job
        assert job["id"] == job_id
        assert job["finished_at"] is not None
        assert _assert_exact_citations(job) > 0
        assert [source["title"] for source in job["sources"]] == [
            source["title"] for source in _seed_sources()
        ]
        _assert_one_job_and_its_sources(second, job_id)
    # The second run made its own calls, and exactly one briefing came of them.
    assert len(provider.requests) > calls_before
    assert _reduce_calls(provider.requests) == 1
    stored = _job_in(database, job_id)
    assert (stored.status, stored.attempts, stored.worker_id) == ("succeeded", 2, None)


@SQLITE_ONLY
def test_a_job_killed_on_its_last_attempt_fails_with_the_reason(
    tmp_path: Path, database: str, provider: FakeOpenAIServer
) -> None:
    env = {"BRIEFING_JOB_MAX_ATTEMPTS": "1"}
    with serve(tmp_path, database, provider, **env) as first:
        # Killed while it runs, before any model call: a provider call is not what counts.
        job_id = _submit_and_wait_for_the_provider(first, provider, calls=0)
        _stop(first.process, signal.SIGKILL, within_s=10)

    with serve(tmp_path, database, provider, **env) as second:
        calls_before = len(provider.requests)
        job = second.until(job_id, lambda job: job["status"] in FINAL, within_s=30)

        assert job["status"] == "failed", job
        assert "stopped during attempt 1" in job["error"]
        assert "gave up after 1 attempt(s)" in job["error"]
        assert job["attempts"] == 1
        _assert_one_job_and_its_sources(second, job_id)
    assert len(provider.requests) == calls_before  # it was not run again


@SQLITE_ONLY
def test_a_job_stopped_by_sigterm_is_requeued_and_finished_after_a_restart(
    tmp_path: Path, database: str, provider: FakeOpenAIServer
) -> None:
    env = {"BRIEFING_SHUTDOWN_GRACE_S": "0"}
    with serve(tmp_path, database, provider, **env) as first:
        job_id = _submit_and_wait_for_the_provider(first, provider)
        _stop(first.process, signal.SIGTERM, within_s=15)
        # A graceful stop: uvicorn ends the app's lifespan, then re-raises the signal.
        assert first.process.returncode in (0, -signal.SIGTERM), first.output()
        assert "shutdown: re-queueing 1 running job(s)" in first.output()
        assert "Application shutdown complete" in first.output()

    requeued = _job_in(database, job_id)
    assert (requeued.status, requeued.worker_id, requeued.attempts) == ("queued", None, 0)
    provider.latency_s = 0.1

    with serve(tmp_path, database, provider, **env) as second:
        # Queued, not running: no lease has to run out, the new worker takes it at once.
        job = second.until(job_id, lambda job: job["status"] in FINAL, within_s=20)

        assert job["status"] == "succeeded", job
        assert _assert_exact_citations(job) > 0
        _assert_one_job_and_its_sources(second, job_id)
    assert _job_in(database, job_id).attempts == 1


def _job_in(database: str, job_id: str) -> Job:
    """The job as the store holds it, read directly (no service running)."""
    store = Store(database)
    try:
        return store.jobs.get(job_id)
    finally:
        store.close()
