"""10. Cluster: jobs per minute with 1, 2 and 4 `briefing worker` processes, and POST latency.

`briefing serve` runs in celery mode (BRIEFING_EXECUTOR=celery) on a real `redis-server` and
PostgreSQL (BENCH_POSTGRES_URL: the suite drops BRIEFING_* variables; each run gets a schema
of its own). The model is the fake provider in a process of its own, a fixed
LATENCY_S a call. Each worker runs one job at a time (`--concurrency 1`), so the throughput
from 1 to 4 workers is the cluster's scaling, not a pool's.

- Throughput: JOBS one-article briefings submitted at once; jobs per minute from the first
  POST to the last job finished.
- POST /v1/briefings p50/p99 with 8 connections for the load generator's duration, while
  4 workers run the jobs it creates (the load that gave p99 0.85-1.3 s on one SQLite
  process with its embedded workers).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import corpus
import httpx
from bench_service import _loadgen
from common import API_KEY, MODEL, ROOT
from fake_provider import ProviderProcess

NAME = "cluster"
LATENCY_S = 0.5
JOBS = 40
WORKERS = (1, 2, 4)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _command() -> list[str]:
    script = Path(sys.executable).with_name("briefing")
    return [str(script)] if script.exists() else [sys.executable, "-m", "briefing.cli"]


@contextmanager
def _redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def _schema() -> Iterator[str]:
    from sqlalchemy import text

    from briefing.store import make_engine, normalise_url

    url = os.environ.get("BENCH_POSTGRES_URL")
    if not url:
        raise RuntimeError("set BENCH_POSTGRES_URL to a PostgreSQL database (.ci/postgres)")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = normalise_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


class Cluster:
    """A celery-mode service and its workers, each a child process."""

    def __init__(self, work: Path, provider: str, broker: str, database: str) -> None:
        self.work = work
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")},
            "BRIEFING_EXECUTOR": "celery",
            "BRIEFING_BROKER_URL": broker,
            "BRIEFING_DATABASE_URL": database,
            "BRIEFING_MODEL": MODEL,
            "BRIEFING_API_BASE": provider,
            "BRIEFING_API_KEY": API_KEY,
            "BRIEFING_CALL_LOG": str(work / "calls.db"),
            "XDG_DATA_HOME": str(work),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self._spawn(["serve", "--port", str(self.port), "--log-level", "warning"], "serve")
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("briefing serve was not ready within 60 s")
            time.sleep(0.1)

    def _spawn(self, args: list[str], name: str) -> None:
        log = (self.work / f"{name}-{len(self.processes)}.log").open("wb")
        self.processes.append(
            subprocess.Popen(  # noqa: S603 - our own command line
                [*_command(), *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def add_workers(self, n: int) -> None:
        for _ in range(n):
            self._spawn(["worker", "--concurrency", "1", "--log-level", "warning"], "worker")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _warm(url: str, source: dict[str, str], workers: int) -> None:
    """One job per worker first, so that no figure includes a worker's litellm import."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        made = [
            (
                await client.post("/v1/briefings", json={"sources": [{**source, "title": f"w{n}"}]})
            ).json()["id"]
            for n in range(workers)
        ]
        await _until_done(client, made, 180)


async def _until_done(
    client: httpx.AsyncClient, ids: list[str], within_s: float
) -> tuple[Counter[str], list[str]]:
    """The jobs' statuses once all ended (or `within_s` passed), and the errors of those
    that did not succeed."""
    statuses: dict[str, str] = {}
    errors: dict[str, str] = {}
    deadline = time.perf_counter() + within_s
    while time.perf_counter() < deadline:
        pending = [i for i in ids if statuses.get(i) not in ("succeeded", "failed", "cancelled")]
        if not pending:
            break
        for job_id in pending:
            body = (await client.get(f"/v1/briefings/{job_id}")).json()
            statuses[job_id] = body["status"]
            if body["status"] in ("failed", "cancelled"):
                errors[job_id] = f"{body['status']}: {body.get('error')}"
        await asyncio.sleep(0.2)
    return Counter(statuses.values()), list(errors.values())


async def _throughput(url: str, sources: list[dict[str, str]]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post("/v1/briefings", json={"sources": [s]}) for s in sources)
        )
        ids = [r.json()["id"] for r in responses if r.status_code in (200, 202)]
        counts, errors = await _until_done(client, ids, 600)
        elapsed = time.perf_counter() - started
    return {
        "jobs": len(sources),
        "succeeded": counts.get("succeeded", 0),
        "not_succeeded": errors,
        "seconds": round(elapsed, 2),
        "jobs_per_minute": round(60 * counts.get("succeeded", 0) / elapsed, 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """The measurements; see the module docstring."""
    jobs = 12 if quick else JOBS
    articles = corpus.sources(len(WORKERS) * (jobs + 4) + 1)
    texts = [{"title": a.title, "text": a.text} for a in articles]
    by_workers: dict[str, Any] = {}
    post: dict[str, Any] = {}
    with ProviderProcess(LATENCY_S) as provider, _redis() as broker:
        for n, workers in enumerate(WORKERS):
            with tempfile.TemporaryDirectory() as tmp, _schema() as database:
                cluster = Cluster(Path(tmp), provider.base_url, broker, database)
                try:
                    cluster.add_workers(workers)
                    share = texts[n * (jobs + 4) : (n + 1) * (jobs + 4)]
                    asyncio.run(_warm(cluster.url, share[0], workers))
                    by_workers[str(workers)] = asyncio.run(_throughput(cluster.url, share[4:]))
                    if workers == max(WORKERS):
                        body = Path(tmp) / "post.json"
                        body.write_text(json.dumps({"sources": [texts[-1]]}))
                        post = _loadgen(
                            f"{cluster.url}/v1/briefings", "POST", 3.0 if quick else 8.0, body
                        )
                finally:
                    cluster.stop()
    base = by_workers["1"]["jobs_per_minute"] or float("nan")
    speedup = {k: round(v["jobs_per_minute"] / base, 2) for k, v in by_workers.items()}
    return {
        "fake_latency_s": LATENCY_S,
        "workers": by_workers,
        "speedup": speedup,
        "post_briefings": post,
        "met": speedup.get("2", 0) >= 1.7
        and speedup.get("4", 0) >= 3.0
        and post.get("p99_ms", 1e9) < 200,
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    rows = []
    for workers, figures in result["workers"].items():
        rows.append(
            [
                "10 cluster",
                f"{figures['jobs']} jobs on {workers} worker(s) (celery, Redis, PostgreSQL; "
                f"fake {result['fake_latency_s'] * 1000:.0f} ms/call)",
                f"{figures['jobs_per_minute']:.0f} jobs/min ({result['speedup'][workers]:.2f}x), "
                f"{figures['succeeded']}/{figures['jobs']} succeeded",
                "≥ 1.7x at 2, ≥ 3x at 4",
                "–",
            ]
        )
    post = result["post_briefings"]
    rows.append(
        [
            "10 cluster",
            f"POST /v1/briefings while 4 workers run its jobs ({post['concurrency']} connections)",
            f"{post['requests_per_s']:.0f} req/s, p50 {post['p50_ms']:.1f} ms, "
            f"p99 {post['p99_ms']:.1f} ms",
            "p99 < 200 ms",
            "yes" if result["met"] else "no",
        ]
    )
    return rows
