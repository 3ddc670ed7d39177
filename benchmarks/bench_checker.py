"""4. Checker throughput: pairs per second of the offline method on each dev dataset.

Each run uses a new Checker, so indexing every document is counted (a Checker reuses the
index of a document it has seen, as `briefing check` does within one file).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from common import ROOT, median

from briefing.config import Settings
from briefing.evaluation import load_labelled
from briefing.faithfulness.checker import Checker

NAME = "checker"
DATASETS = [
    ROOT / "evals" / "datasets" / "seeds_claims.jsonl",
    *sorted((ROOT / "evals" / "datasets" / "summac-dev").glob("*.jsonl")),
]


def run(quick: bool = False) -> dict[str, Any]:
    """Median pairs/s over several runs per dataset, offline method."""
    runs = 1 if quick else 3
    settings = Settings(check_method="offline", log_calls=False)
    # Loads the stored lexical model once, as a running process has.
    asyncio.run(Checker(settings, "offline").check([load_labelled(DATASETS[0])[0].pair]))
    rows = []
    for path in DATASETS:
        pairs = [case.pair for case in load_labelled(path)]
        times = []
        for _ in range(runs):
            checker = Checker(settings, "offline")
            started = time.perf_counter()
            asyncio.run(checker.check(pairs))
            times.append(time.perf_counter() - started)
        documents = len({p.document for p in pairs})
        chars = sum(len(d) for d in {p.document for p in pairs})
        rows.append(
            {
                "dataset": str(path.relative_to(ROOT)),
                "pairs": len(pairs),
                "documents": documents,
                "mean_document_chars": round(chars / documents),
                "runs": runs,
                "seconds_median": round(median(times), 3),
                "pairs_per_s": round(len(pairs) / median(times), 1),
            }
        )
    return {"method": checker.name, "rows": rows}


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table (no target: the figure is reported)."""
    return [
        [
            "4 checker",
            f"offline ({result['method']}) on {r['dataset'].split('/')[-1]}: {r['pairs']} pairs, "
            f"{r['documents']} documents of {r['mean_document_chars']:,} chars",
            f"{r['pairs_per_s']:,.0f} pairs/s",
            "–",
            "–",
        ]
        for r in result["rows"]
    ]
