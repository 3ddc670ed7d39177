"""Eval reports: suites of named metrics, the regression gate against a baseline, Markdown.

Each suite returns a `SuiteResult`: named metrics (each knowing which way is better and
whether the regression gate watches it) plus details for people (tables, failing claims).
`compare` holds a report against a baseline report; `report_markdown` renders one.
Datasets are typed cases read from JSONL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from briefing.errors import UserError

__all__ = [
    "EvalError",
    "Metric",
    "Report",
    "SuiteResult",
    "compare",
    "jsonl_lines",
    "load_jsonl_models",
    "load_report",
    "report_markdown",
]

Better = Literal["higher", "lower"]


class EvalError(UserError):
    """An eval dataset or baseline that cannot be used."""


class Metric(BaseModel):
    """One measured figure."""

    value: float
    better: Better = "higher"
    gate: bool = True


class SuiteResult(BaseModel):
    """What one suite measured."""

    metrics: dict[str, Metric] = Field(default_factory=dict)
    not_measured: dict[str, str] = Field(
        default_factory=dict,
        description="Metric-name prefixes that could not be measured this run, with why; "
        "the gate does not count their absence.",
    )
    details: dict[str, Any] = Field(default_factory=dict)
    tables: list[str] = Field(default_factory=list, description="Markdown, for people.")


class Report(BaseModel):
    """A full eval run: every suite's metrics, details and tables."""

    created_at: str = Field(
        default_factory=lambda: (
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        )
    )
    version: str
    suites: dict[str, SuiteResult] = Field(default_factory=dict)

    def metrics(self) -> dict[str, Metric]:
        """Every metric of every suite, by its full name."""
        return {name: m for suite in self.suites.values() for name, m in suite.metrics.items()}


def jsonl_lines(path: Path, what: str) -> Iterator[tuple[str, str]]:
    """(where, line) for each non-blank line of a JSONL file; `where` names file and line."""
    if not path.is_file():
        raise EvalError(f"{path}: no such {what}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"{path} line {number}", line


def load_jsonl_models(path: Path, model: type[BaseModel]) -> list[Any]:
    """Typed records from a JSONL file; a bad line is an error naming it."""
    out = []
    for where, line in jsonl_lines(path, "file"):
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "line"
            raise EvalError(f"{where}: {loc}: {first['msg']}") from None
    return out


def load_report(path: Path) -> Report:
    """A report written by `briefing eval`."""
    try:
        return Report.model_validate_json(path.read_text("utf-8"))
    except FileNotFoundError:
        raise EvalError(f"{path}: no such baseline report") from None
    except ValidationError as exc:
        raise EvalError(f"{path}: not an eval report ({exc.errors()[0]['msg']})") from None


def compare(report: Report, baseline: Report, tolerance: float) -> list[str]:
    """Regressions: gated baseline metrics that got worse by more than `tolerance`, or vanished
    from a suite that ran."""
    now = report.metrics()
    ran = set(report.suites)
    excused = [prefix for suite in report.suites.values() for prefix in suite.not_measured]
    problems = []
    for name, old in sorted(baseline.metrics().items()):
        if not old.gate or name.split(".", 1)[0] not in ran:
            continue
        new = now.get(name)
        if new is None and any(name.startswith(prefix) for prefix in excused):
            continue
        if new is None:
            problems.append(f"{name}: in the baseline ({old.value:g}) but not measured now")
            continue
        worse = old.value - new.value if old.better == "higher" else new.value - old.value
        if worse > tolerance:
            problems.append(
                f"{name}: {new.value:g}, was {old.value:g} ({old.better} is better, "
                f"tolerance {tolerance:g})"
            )
    return problems


def report_markdown(report: Report, regressions: Sequence[str] | None = None) -> str:
    """The report as Markdown: a table per suite, then the gate's verdict."""
    lines = [f"# Eval report ({report.created_at}, briefing {report.version})", ""]
    for suite in report.suites.values():
        for table in suite.tables:
            lines += [table, ""]
        for prefix, why in suite.not_measured.items():
            lines += [f"Not measured: `{prefix}*`: {why}", ""]
    if regressions is not None:
        lines += ["### Regression gate", ""]
        lines += [f"- REGRESSION {r}" for r in regressions] or ["No metric fell beyond tolerance."]
    return "\n".join(lines).rstrip() + "\n"
