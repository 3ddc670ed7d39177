"""8. Comparison: `briefing compare` of 50, 200 and 1,000 sources (every sentence of every
source against all the others), offline.

Each size runs in a fresh child process (`run.py --worker compare N`), so its peak RSS is
its own. The sources are the benchmark corpus: the two seeds, then articles made of dev
documents, which share documents between them, so that many sentences have a twin or a
paraphrase elsewhere, as in a day of wire copy. Time per sentence should stay about flat as
sources grow: a statement retrieves its candidates from an index, never from all pairs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import corpus
from common import peak_rss_mib, run_worker

from briefing.config import Settings
from briefing.faithfulness.checker import Checker
from briefing.faithfulness.compare import compare_sources

NAME = "compare"
RSS_TARGET_MIB = 1024


def worker(n: int) -> dict[str, Any]:
    """One comparison of `n` sources in this process; its figures."""
    sources = corpus.sources(n)
    checker = Checker(Settings(check_method="offline", log_calls=False), "offline")
    before = peak_rss_mib()
    started = time.perf_counter()
    result = asyncio.run(compare_sources(sources, checker))
    wall = time.perf_counter() - started
    statuses = Counter(s.status for s in result.sentences)
    return {
        "sources": n,
        "sentences": len(result.sentences),
        "wall_s": round(wall, 2),
        "ms_per_sentence": round(1000 * wall / len(result.sentences), 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_before_mib": round(before, 1),
        "statuses": dict(sorted(statuses.items())),
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Each size in its own process; 1,000 sources only in the full run."""
    sizes = [50, 200] if quick else [50, 200, 1000]
    rows = []
    for n in sizes:
        done = run_worker(["--worker", NAME, str(n)], timeout_s=1800)
        if done.returncode != 0:
            raise RuntimeError(f"compare worker for {n} sources failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = rows[0]
    for row in rows:
        row["per_sentence_growth_vs_first"] = round(
            row["ms_per_sentence"] / first["ms_per_sentence"], 2
        )
        row["met"] = row["peak_rss_mib"] < RSS_TARGET_MIB
    return {"rss_target_mib": RSS_TARGET_MIB, "rows": rows, "met": all(r["met"] for r in rows)}


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    return [
        [
            "8 compare",
            f"{r['sources']:,} sources, {r['sentences']:,} sentences: {r['wall_s']:.1f} s, "
            f"{r['ms_per_sentence']:.2f} ms a sentence (× {r['per_sentence_growth_vs_first']:.2f} "
            f"of {result['rows'][0]['sources']} sources')",
            f"peak RSS {r['peak_rss_mib']:.0f} MiB",
            f"< {RSS_TARGET_MIB} MiB",
            "yes" if r["met"] else "no",
        ]
        for r in result["rows"]
    ]
