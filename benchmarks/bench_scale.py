"""7. Scale: one briefing over 100, 300 and 1,000 sources (about a million tokens).

Each size runs in a fresh child process (`run.py --worker scale N`), so its peak RSS is its
own: the interpreter, litellm, the sources and everything the pipeline holds. litellm's
import and the tokenizer's loading happen before the clock starts (reported apart). The fake
provider answers in 50 ms (200 ms would only add waiting: 1,000 sources are about 1,600 map
calls at 4 in flight); wall / ideal is reported as in benchmark 1.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import corpus
from common import Levels, llm_settings, peak_rss_mib, run_worker
from fake_provider import ProviderProcess, text_tokens

from briefing.models.llm import litellm_module
from briefing.models.tokens import get_encoding
from briefing.pipeline.build import build_briefing
from briefing.text.segment import segment

NAME = "scale"
LATENCY_S = 0.05
RSS_TARGET_MIB = 1024


def worker(n: int) -> dict[str, Any]:
    """One briefing of `n` sources in this process; its figures."""
    started = time.perf_counter()
    # What any process pays once before its first briefing, timed apart: litellm's import
    # (seconds) and the tokenizer's tables.
    litellm_module()
    get_encoding("o200k_base")
    segment(corpus.sources(1)[0])
    warm_up_s = time.perf_counter() - started
    sources = corpus.sources(n)
    source_tokens = sum(text_tokens(s.text) for s in sources)
    before = peak_rss_mib()
    with ProviderProcess(LATENCY_S) as provider, tempfile.TemporaryDirectory() as tmp:
        settings = llm_settings(provider.base_url, Path(tmp))
        levels = Levels()
        started = time.perf_counter()
        briefing = asyncio.run(build_briefing(sources, settings, progress=levels))
        wall = time.perf_counter() - started
        stats = provider.stats()
    ideal = levels.ideal_s(LATENCY_S, settings.max_concurrency)
    return {
        "sources": n,
        "source_tokens": source_tokens,
        "calls": levels.calls,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio": round(wall / ideal, 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_build_mib": round(before, 1),
        "warm_up_s": round(warm_up_s, 3),
        "prompt_per_source_token": round(sum(stats["prompt_tokens"].values()) / source_tokens, 3),
        "claims": len(briefing.claims()),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Each size in its own process; 1,000 sources only in the full run."""
    sizes = [100, 300] if quick else [100, 300, 1000]
    rows = []
    for n in sizes:
        done = run_worker(["--worker", NAME, str(n)], timeout_s=900)
        if done.returncode != 0:
            raise RuntimeError(f"scale worker for {n} sources failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = rows[0]
    for row in rows:
        factor = row["sources"] / first["sources"]
        row["time_growth_vs_first"] = round(row["wall_s"] / first["wall_s"] / factor, 2)
        row["met"] = row["peak_rss_mib"] < RSS_TARGET_MIB
    return {
        "latency_s": LATENCY_S,
        "rss_target_mib": RSS_TARGET_MIB,
        "rows": rows,
        "met": all(r["met"] for r in rows),
    }


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    return [
        [
            "7 scale",
            f"{r['sources']:,} sources ({r['source_tokens']:,} tokens, "
            f"{sum(r['calls'].values()):,} calls): wall {r['wall_s']:.1f} s = "
            f"{r['ratio']:.2f} × ideal; time per source × {r['time_growth_vs_first']:.2f} "
            f"of {result['rows'][0]['sources']} sources'",
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            f"< {RSS_TARGET_MIB} MiB",
            "yes" if r["met"] else "no",
        ]
        for r in result["rows"]
    ]
