"""5. Service: requests/s and latency of the briefing routes, and 100 concurrent jobs.

`briefing serve` runs as a child process on a free loopback port with a new SQLite database;
its model is the fake provider (another process, 200 ms a call). The load generator is a
third process (benchmarks/loadgen.py), so client and server do not share an interpreter.

- GET /v1/briefings/{id} of a finished briefing (seed 000 as its source).
- POST /v1/briefings of one inline article, with the service's job workers off
  (BRIEFING_JOB_WORKERS=0): the figure is the API's own path (validation, storing the source
  and the job), not briefings built per second, which the model's latency decides.
- 100 briefing jobs submitted at once to a fresh service running BRIEFING_JOB_WORKERS=8:
  every one must end `succeeded`, none lost; the service's peak RSS is reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import corpus
import httpx
from common import API_KEY, BENCHMARKS, MODEL, ROOT, proc_peak_rss_mib, proc_rss_mib
from fake_provider import ProviderProcess

NAME = "service"
LATENCY_S = 0.2
JOBS = 100
JOB_WORKERS = 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Service:
    """`briefing serve` in a child process, ready when /readyz answers 200."""

    def __init__(self, workdir: Path, base_url: str, database: Path, job_workers: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRIEFING_")},
            "BRIEFING_MODEL": MODEL,
            "BRIEFING_API_BASE": base_url,
            "BRIEFING_API_KEY": API_KEY,
            "BRIEFING_DATABASE_URL": f"sqlite:///{database}",
            "BRIEFING_CALL_LOG": str(workdir / "calls.db"),
            "BRIEFING_JOB_WORKERS": str(job_workers),
            "BRIEFING_JOB_POLL_S": "0.2",
            "XDG_DATA_HOME": str(workdir),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        script = Path(sys.executable).with_name("briefing")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "briefing.cli"]
        started = time.perf_counter()
        self.log = (workdir / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            [*command, "serve", "--port", str(self.port), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = started + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"briefing serve exited; see {self.log.name}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError("briefing serve was not ready within 60 s")
            time.sleep(0.05)
        self.ready_s = time.perf_counter() - started

    def peak_rss_mib(self) -> float | None:
        """The service process's peak resident memory so far."""
        return proc_peak_rss_mib(self.process.pid)

    def rss_mib(self) -> float | None:
        """The service process's resident memory now."""
        return proc_rss_mib(self.process.pid)

    def stop(self) -> None:
        """SIGTERM, then wait for the graceful shutdown (kill after 60 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _loadgen(url: str, method: str, duration_s: float, body: Path | None = None) -> dict[str, Any]:
    args = [
        sys.executable,
        str(BENCHMARKS / "loadgen.py"),
        url,
        "--method",
        method,
        "--duration",
        str(duration_s),
        "--concurrency",
        "8",
    ]
    if body is not None:
        args += ["--body", str(body)]
    done = subprocess.run(  # noqa: S603 - our own command line
        args, capture_output=True, text=True, timeout=duration_s + 120, check=True, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def _jobs(url: str, sources: list[dict[str, str]]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=JOBS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        # Each job briefs a different article, so no two jobs are the same request.
        responses = await asyncio.gather(
            *(client.post("/v1/briefings", json={"sources": [source]}) for source in sources)
        )
        submitted_s = time.perf_counter() - started
        ids = [r.json()["id"] for r in responses if r.status_code in (200, 202)]
        statuses: dict[str, str] = {}
        deadline = started + 300
        while time.perf_counter() < deadline:
            pending = [
                i for i in ids if statuses.get(i) not in ("succeeded", "failed", "cancelled")
            ]
            if not pending:
                break
            for job_id in pending:
                statuses[job_id] = (await client.get(f"/v1/briefings/{job_id}")).json()["status"]
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - started
    counts = Counter(statuses.values())
    return {
        "jobs": JOBS,
        "accepted": len(ids),
        "submit_s": round(submitted_s, 3),
        "all_done_s": round(elapsed, 3),
        "statuses": dict(counts),
        "lost": JOBS - counts.get("succeeded", 0),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """The three measurements; see the module docstring."""
    duration = 3.0 if quick else 8.0
    seed = corpus.sources(1)[0]
    articles = corpus.sources(JOBS + 2)[2:]
    with ProviderProcess(LATENCY_S) as provider, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        body_file = work / "post.json"
        body_file.write_text(
            json.dumps({"sources": [{"title": articles[0].title, "text": articles[0].text}]})
        )
        service = Service(work, provider.base_url, work / "a.db", job_workers=2)
        try:
            made = httpx.post(
                service.url + "/v1/briefings?wait=60",
                json={"sources": [{"title": seed.title, "text": seed.text}]},
                timeout=90,
            )
            made.raise_for_status()
            briefing_id = made.json()["id"]
            get = _loadgen(f"{service.url}/v1/briefings/{briefing_id}", "GET", duration)
            get["response_bytes"] = len(made.content)
            get_peak = service.peak_rss_mib()
        finally:
            service.stop()
        service = Service(work, provider.base_url, work / "b.db", job_workers=0)
        try:
            post = _loadgen(f"{service.url}/v1/briefings", "POST", duration, body_file)
            post_peak = service.peak_rss_mib()
        finally:
            service.stop()
        service = Service(work, provider.base_url, work / "c.db", job_workers=JOB_WORKERS)
        try:
            ready_s = service.ready_s
            idle_rss = service.rss_mib()
            sources = [{"title": a.title, "text": a.text} for a in articles]
            jobs = asyncio.run(_jobs(service.url, sources))
            jobs["service_rss_idle_mib"] = idle_rss
            jobs["service_peak_rss_mib"] = service.peak_rss_mib()
            jobs["job_workers"] = JOB_WORKERS
        finally:
            service.stop()
    return {
        "fake_latency_s": LATENCY_S,
        "service_ready_s": round(ready_s, 3),
        "get_briefing": {**get, "service_peak_rss_mib": get_peak},
        "post_briefings": {**post, "service_peak_rss_mib": post_peak},
        "concurrent_jobs": jobs,
        "met": jobs["lost"] == 0,
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    get, post, jobs = result["get_briefing"], result["post_briefings"], result["concurrent_jobs"]
    return [
        [
            "5 service",
            f"GET /v1/briefings/{{id}} ({get['concurrency']} connections, "
            f"{get['response_bytes']:,} B)",
            f"{get['requests_per_s']:.0f} req/s, p50 {get['p50_ms']:.1f} ms, "
            f"p99 {get['p99_ms']:.1f} ms",
            "–",
            "–",
        ],
        [
            "5 service",
            f"POST /v1/briefings, enqueue only ({post['concurrency']} connections)",
            f"{post['requests_per_s']:.0f} req/s, p50 {post['p50_ms']:.1f} ms, "
            f"p99 {post['p99_ms']:.1f} ms",
            "–",
            "–",
        ],
        [
            "5 service",
            f"{jobs['jobs']} concurrent jobs ({jobs['job_workers']} workers, fake 200 ms/call): "
            f"all done in {jobs['all_done_s']:.1f} s, peak RSS "
            f"{jobs['service_peak_rss_mib']:.0f} MiB",
            f"{jobs['statuses'].get('succeeded', 0)}/{jobs['jobs']} succeeded",
            "all finish, none lost",
            "yes" if result["met"] else "no",
        ],
    ]
