"""What the benchmarks share: settings aimed at the fake provider, timing, memory, medians."""

from __future__ import annotations

import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from briefing.config import Settings

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
#: A model litellm knows (128k window, JSON-schema support), aimed at the fake provider.
MODEL = "openai/gpt-4o-mini"
#: Key-shaped, so litellm's key check passes; never sent anywhere but 127.0.0.1.
API_KEY = "sk-benchmark-not-a-real-key"


def clean_environment() -> None:
    """Drop BRIEFING_* variables of the caller's shell: the benchmarks use the defaults."""
    for name in list(os.environ):
        if name.upper().startswith("BRIEFING_"):
            del os.environ[name]
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def llm_settings(base_url: str, workdir: Path, **overrides: Any) -> Settings:
    """Default settings with the model at the fake provider and the call log in `workdir`."""
    values: dict[str, Any] = {
        "model": MODEL,
        "api_base": base_url,
        "api_key": API_KEY,
        "call_log": workdir / "calls.db",
        **overrides,
    }
    return Settings(**values)


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else math.nan


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent's
    memory at fork across exec, so a child of a large process would report the parent's.
    """
    peak = proc_peak_rss_mib(os.getpid())
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a live process, MiB; None where /proc lacks it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def proc_rss_mib(pid: int) -> float | None:
    """Current resident memory (VmRSS) of a live process, MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Levels:
    """The LLM stages of one briefing, as its progress reports them: stage -> calls."""

    calls: dict[str, int] = field(default_factory=dict)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != "check":
            self.calls[stage] = max(total, self.calls.get(stage, 0))

    def ideal_s(self, latency_s: float, concurrency: int) -> float:
        """The chain of calls that cannot overlap: each level waits for the one before, and
        a level of k calls takes ceil(k / concurrency) latencies."""
        return sum(math.ceil(k / concurrency) for k in self.calls.values() if k) * latency_s


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def run_worker(args: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run `python benchmarks/run.py <args>` as a child process (a clean memory measurement)."""
    return subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, str(BENCHMARKS / "run.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        check=False,
    )
