"""3. Cold start: `briefing --help` and `briefing build seeds/*.txt` as whole processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, median

NAME = "cold_start"
HELP_TARGET_S = 0.3
BUILD_TARGET_S = 1.5


def _briefing_command() -> list[str]:
    # The console script installed beside this interpreter, as a user runs it.
    script = Path(sys.executable).with_name("briefing")
    return [str(script)] if script.exists() else [sys.executable, "-m", "briefing.cli"]


def _time(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - started


def run(quick: bool = False) -> dict[str, Any]:
    """Median wall time of each command over several runs (after one unmeasured run)."""
    runs = 3 if quick else 9
    seeds = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "seeds").glob("*.txt"))]
    command = _briefing_command()
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh data dir: nothing cached from earlier runs but the OS's file cache.
        env = {**os.environ, "XDG_DATA_HOME": tmp, "XDG_CACHE_HOME": tmp}
        results = {}
        for name, args, target in [
            ("help", [*command, "--help"], HELP_TARGET_S),
            ("build_seeds_extractive", [*command, "build", *seeds], BUILD_TARGET_S),
        ]:
            _time(args, env)  # warms the OS file cache, as on a machine in use
            times = [_time(args, env) for _ in range(runs)]
            results[name] = {
                "command": " ".join(["briefing", *args[len(command) :]]),
                "runs": runs,
                "median_s": round(median(times), 3),
                "all_s": [round(t, 3) for t in times],
                "target_s": target,
                "met": median(times) <= target,
            }
    return {"commands": results, "met": all(r["met"] for r in results.values())}


def table(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the summary table."""
    return [
        [
            "3 cold start",
            f"`{r['command']}` (median of {r['runs']})",
            f"{r['median_s']:.3f} s",
            f"≤ {r['target_s']} s",
            "yes" if r["met"] else "no",
        ]
        for r in result["commands"].values()
    ]
