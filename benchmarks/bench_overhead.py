"""1. Overhead over the critical path: wall time of a briefing / the chain of model calls.

The fake provider (another process, on 127.0.0.1) takes a fixed latency per call. The ideal
time is what the model alone forces: each stage (map, every condense level, reduce) waits for
the one before it, and a stage of k calls takes ceil(k / max_concurrency) latencies. Whatever
the wall time adds to that is the project's: segmentation, chunking, rendering, litellm and
HTTP, validation, the call log and the offline check of every claim.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import corpus
from common import Levels, llm_settings, median
from fake_provider import ProviderProcess

from briefing.pipeline.build import build_briefing
from briefing.schema import Source

NAME = "overhead"
TARGET = 1.05  # issue 20; 1.10 before it
#: A provider's latency per call. BENCH_OVERHEAD_LATENCY_S sets another (a hosted model
#: takes seconds): the work done while calls are out hides in a longer wait.
LATENCY_S = float(os.environ.get("BENCH_OVERHEAD_LATENCY_S", "0.2"))


async def _bare_call_ms(base_url: str, calls: int = 10) -> float:
    """Median time of one map-sized request straight through httpx: the fake provider's
    latency plus what loopback HTTP and the fake itself add, with no project code."""
    import httpx

    body = {
        "model": "fake",
        "messages": [
            {"role": "system", "content": "You extract factual claims from a source text."},
            {"role": "user", "content": "[S1] " + "The council met on Monday. " * 150},
        ],
    }
    times = []
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(calls):
            started = time.perf_counter()
            (await client.post(base_url + "/chat/completions", json=body)).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return median(times)


async def _one(sources: list[Source], settings: Any) -> tuple[float, Levels, Any]:
    levels = Levels()
    started = time.perf_counter()
    briefing = await build_briefing(sources, settings, progress=levels)
    return time.perf_counter() - started, levels, briefing


def run(quick: bool = False) -> dict[str, Any]:
    """Wall / ideal for 1, 10 and 100 sources, median of several warm runs each."""
    sizes = [(1, 3), (10, 3), (100, 1)] if quick else [(1, 7), (10, 5), (100, 3)]
    with ProviderProcess(LATENCY_S) as provider, tempfile.TemporaryDirectory() as tmp:
        settings = llm_settings(provider.base_url, Path(tmp))
        result = asyncio.run(_measure(provider, settings, sizes))
    return result


async def _measure(
    provider: ProviderProcess, settings: Any, sizes: list[tuple[int, int]]
) -> dict[str, Any]:
    # One event loop for every run, as in a service. The first run imports litellm and
    # opens its HTTP client; it is reported, not counted.
    rows = []
    first_s, _, _ = await _one(corpus.sources(1), settings)
    floor_ms = await _bare_call_ms(provider.base_url)
    provider.stats()
    for n, runs in sizes:
        sources = corpus.sources(n)
        walls, ratios, ideals = [], [], []
        levels = Levels()
        stats: dict[str, Any] = {}
        for _ in range(runs):
            wall, levels, briefing = await _one(sources, settings)
            ideal = levels.ideal_s(LATENCY_S, settings.max_concurrency)
            walls.append(wall)
            ideals.append(ideal)
            ratios.append(wall / ideal)
            stats = provider.stats()
        rows.append(
            {
                "sources": n,
                "runs": runs,
                "calls": levels.calls,
                "ideal_s": round(median(ideals), 3),
                "wall_s_median": round(median(walls), 3),
                "wall_s_all": [round(w, 3) for w in walls],
                "ratio_median": round(median(ratios), 3),
                "overhead_s_median": round(median(walls) - median(ideals), 3),
                "claims": len(briefing.claims()),
                "provider_calls": stats.get("calls", {}),
                "met": median(ratios) <= TARGET,
            }
        )
    return {
        "latency_s": LATENCY_S,
        "max_concurrency": settings.max_concurrency,
        "first_run_in_process_s": round(first_s, 3),
        "bare_http_call_ms": round(floor_ms, 1),
        "target_ratio": TARGET,
        "rows": rows,
        "met": all(r["met"] for r in rows),
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table: benchmark, figure, value, target, met."""
    return [
        [
            "1 overhead",
            f"wall / ideal, {r['sources']} source(s) ({sum(r['calls'].values())} calls, "
            f"ideal {r['ideal_s']:.2f} s at {result['latency_s'] * 1000:.0f} ms a call)",
            f"{r['ratio_median']:.3f} (wall {r['wall_s_median']:.2f} s)",
            f"≤ {TARGET:.2f}",
            "yes" if r["met"] else "no",
        ]
        for r in result["rows"]
    ]
