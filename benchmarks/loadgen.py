"""A small HTTP load generator, run as its own process by the service benchmark.

`python benchmarks/loadgen.py URL --method GET --duration 8 --concurrency 8 [--body FILE]`
keeps `concurrency` requests in flight on keep-alive connections for `duration` seconds
(after a short unmeasured warm-up), then prints one JSON object: requests, requests/s,
latency percentiles in milliseconds and the count of each status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def load(
    url: str, method: str, body: bytes | None, duration_s: float, concurrency: int, warmup_s: float
) -> dict[str, Any]:
    """Drive `url` and measure it; see the module docstring."""
    headers = {"content-type": "application/json"} if body is not None else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        started = time.perf_counter()
        measure_from = started + warmup_s
        stop_at = measure_from + duration_s

        async def worker() -> None:
            while True:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                try:
                    response = await client.request(method, url, content=body, headers=headers)
                    status = str(response.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                done = time.perf_counter()
                if sent >= measure_from:
                    latencies.append(done - sent)
                    statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - measure_from
    latencies.sort()
    return {
        "method": method,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 3),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 2),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        "statuses": dict(statuses),
    }


def main() -> None:
    """Parse arguments, run, print the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", type=Path, help="file whose bytes are sent as a JSON body")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    body = args.body.read_bytes() if args.body else None
    result = asyncio.run(
        load(args.url, args.method, body, args.duration, args.concurrency, args.warmup)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
