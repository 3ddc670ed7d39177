"""CPU time of checking a briefing of the seeds offline, beyond building it.

Run from the repository root: `python benchmarks/check_cost.py`. Prints one line per run;
quote the median. The first run includes loading the stored offline model.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from briefing.config import Settings
from briefing.faithfulness.checker import Checker
from briefing.faithfulness.claims import check_briefing
from briefing.pipeline.build import load_sources
from briefing.pipeline.extractive import build_extractive


def main(runs: int = 5) -> None:
    """Build the extractive seed briefing, then time only its check, `runs` times."""
    sources = load_sources(sorted(Path("seeds").glob("*.txt")))
    settings = Settings(check_method="offline", log_calls=False)
    for run in range(runs):
        briefing = build_extractive(sources, settings)
        cpu, wall = time.process_time(), time.perf_counter()
        asyncio.run(check_briefing(briefing, Checker(settings), "flag"))
        print(
            f"run {run}: {len(briefing.claims())} claims checked, "
            f"CPU {time.process_time() - cpu:.3f} s, wall {time.perf_counter() - wall:.3f} s"
        )


if __name__ == "__main__":
    main()
