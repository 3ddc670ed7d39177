"""Run the benchmark suite: `python benchmarks/run.py [--quick] [--only NAME[,NAME]]`.

Writes benchmarks/results/results.json (every figure, with the machine it was measured on)
and benchmarks/results/results.md (the summary table). With --only, the other benchmarks'
earlier results are kept in both files. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import common

common.clean_environment()

import bench_checker  # noqa: E402 - after the environment is cleaned
import bench_cluster  # noqa: E402
import bench_cold_start  # noqa: E402
import bench_compare  # noqa: E402
import bench_local_model  # noqa: E402
import bench_overhead  # noqa: E402
import bench_pages  # noqa: E402
import bench_scale  # noqa: E402
import bench_service  # noqa: E402
import bench_tokens  # noqa: E402

BENCHMARKS: list[ModuleType] = [
    bench_overhead,
    bench_tokens,
    bench_cold_start,
    bench_checker,
    bench_service,
    bench_local_model,
    bench_scale,
    bench_compare,
    bench_pages,
    bench_cluster,
]
BY_NAME = {b.NAME: b for b in BENCHMARKS}
RESULTS = common.BENCHMARKS / "results"


def _machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
        capture_output=True,
        text=True,
        cwd=common.ROOT,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "briefing"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=common.ROOT,
        check=False,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit + ("+uncommitted changes in briefing/" if dirty else ""),
    }


def markdown(results: dict[str, Any]) -> str:
    """The summary table of every benchmark in `results`."""
    lines = [
        "| benchmark | figure | measured | target | met |",
        "|---|---|---|---|---|",
    ]
    for bench in BENCHMARKS:
        entry = results["benchmarks"].get(bench.NAME)
        if entry is None:
            continue
        if "error" in entry:
            lines.append(f"| {bench.NAME} | – | failed: {entry['error']} | – | – |")
            continue
        for row in bench.table(entry):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    meta = results["machine"]
    header = (
        f"Measured {results['finished_at']} ({'quick' if results.get('quick') else 'full'} run, "
        f"{meta['cpus']} CPUs, load average {meta['load_average_at_start']} at start, "
        f"Python {meta['python']}, commit {meta['git_commit']}), "
        f"by `python benchmarks/run.py{' --quick' if results.get('quick') else ''}`."
    )
    return header + "\n\n" + "\n".join(lines) + "\n"


def _worker(args: list[str]) -> None:
    # Child-process entry points: measurements that need a process of their own.
    name, *rest = args
    if name == bench_scale.NAME:
        print(json.dumps(bench_scale.worker(int(rest[0]))))
        return
    if name == bench_compare.NAME:
        print(json.dumps(bench_compare.worker(int(rest[0]))))
        return
    if name == bench_local_model.NAME:
        print(json.dumps(bench_local_model.worker(rest[0], int(rest[1]))))
        return
    raise SystemExit(f"unknown worker {name!r}")


def main() -> None:
    """Run the chosen benchmarks and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and runs (a smoke run)")
    parser.add_argument(
        "--only", action="append", default=[], help="benchmark(s) to run: " + ", ".join(BY_NAME)
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    chosen = [n for item in args.only for n in item.split(",") if n] or list(BY_NAME)
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    out: Path = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    results: dict[str, Any] = {"benchmarks": {}}
    if args.only and json_path.exists():
        results = json.loads(json_path.read_text("utf-8"))
    results["machine"] = _machine()
    results["quick"] = args.quick
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            entry = BY_NAME[name].run(quick=args.quick)
        except Exception as exc:
            traceback.print_exc()
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        entry["benchmark_s"] = round(time.perf_counter() - started, 1)
        entry["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        results["benchmarks"][name] = entry
        if "error" not in entry:
            for row in BY_NAME[name].table(entry):
                print("   " + " | ".join(row), file=sys.stderr, flush=True)
        # Written after each benchmark, so an interrupted run keeps what it measured.
        json_path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    json_path.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    table = markdown(results)
    (out / "results.md").write_text(table, "utf-8")
    print(table)


if __name__ == "__main__":
    main()
