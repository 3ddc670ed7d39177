"""The checker suite: the faithfulness checker against labelled (document, claim) pairs."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from briefing.config import Settings
from briefing.evaluation.metrics import (
    balanced_accuracy,
    reliability,
    roc_auc,
    unsupported_precision_recall,
)
from briefing.evaluation.report import EvalError, Metric, SuiteResult, jsonl_lines
from briefing.faithfulness.checker import Checker, CheckPair
from briefing.faithfulness.pairs import CheckInputError, parse_pair

__all__ = [
    "LabelledPair",
    "calibrate_blend",
    "calibration_with",
    "evaluate_checker",
    "load_labelled",
]


class LabelledPair(BaseModel):
    """A check pair with its gold label and, when the dataset has one, its kind."""

    pair: CheckPair
    label: Literal[0, 1]
    kind: str | None = None


def load_labelled(path: Path) -> list[LabelledPair]:
    """A labelled JSONL dataset; a bad line is an error naming it."""
    cases = []
    for where, line in jsonl_lines(path, "dataset"):
        try:
            pair = parse_pair(line, where)
        except CheckInputError as exc:
            raise EvalError(str(exc)) from None
        data = json.loads(line)
        label = data.get("label")
        if label not in (0, 1) or isinstance(label, bool):
            raise EvalError(f"{where}: field 'label' must be 0 or 1, got {label!r}")
        kind = data.get("kind")
        cases.append(LabelledPair(pair=pair, label=label, kind=str(kind) if kind else None))
    if not cases:
        raise EvalError(f"{path}: no cases")
    return cases


async def evaluate_checker(
    datasets: Sequence[Path], methods: Sequence[str], settings: Settings
) -> SuiteResult:
    """Balanced accuracy, ROC-AUC and unsupported precision/recall per dataset and method."""
    result = SuiteResult()
    rows = []
    kinds_rows = []
    curve_rows = []
    # Per dataset: gold labels, and each method's scores, for calibrating `auto`.
    collected: dict[str, dict[str, list[float]]] = {}
    for path in datasets:
        cases = load_labelled(path)
        name = path.stem
        collected[name] = {"labels": [float(c.label) for c in cases]}
        for method in methods:
            checker = Checker(settings, method)  # type: ignore[arg-type]
            checker.check_credentials()
            started = time.perf_counter()
            outcomes = await checker.check([c.pair for c in cases])
            elapsed = time.perf_counter() - started
            labels = [c.label for c in cases]
            scores = [o.score for o in outcomes]
            collected[name][method] = scores
            predicted = [o.label for o in outcomes]
            ba = balanced_accuracy(labels, predicted)
            auc = roc_auc(labels, scores)
            precision, recall = unsupported_precision_recall(labels, predicted)
            prefix = f"checker.{name}.{method}"
            result.metrics[f"{prefix}.balanced_accuracy"] = Metric(value=round(ba, 4))
            result.metrics[f"{prefix}.roc_auc"] = Metric(value=round(auc, 4))
            result.metrics[f"{prefix}.unsupported_precision"] = Metric(
                value=round(precision, 4), gate=False
            )
            result.metrics[f"{prefix}.unsupported_recall"] = Metric(
                value=round(recall, 4), gate=False
            )
            result.metrics[f"{prefix}.pairs_per_s"] = Metric(
                value=round(len(cases) / max(elapsed, 1e-9), 1), gate=False
            )
            # How far the score, read as P(supported), is from the share supported.
            ece, curve = reliability(labels, scores)
            result.metrics[f"{prefix}.ece"] = Metric(
                value=round(ece, 4), better="lower", gate=False
            )
            result.details.setdefault("calibration_curves", {})[f"{name}.{method}"] = [
                {"low": lo, "high": hi, "pairs": n, "mean_score": round(m, 4),
                 "supported": round(share, 4)}
                for lo, hi, n, m, share in curve
            ]  # fmt: skip
            cells = " ".join(f"{m:.2f}:{share:.2f}({n})" for _, _, n, m, share in curve)
            curve_rows.append(f"| {name} | {checker.name} | {ece:.3f} | {cells} |")
            rows.append(
                f"| {name} | {checker.name} | {len(cases)} | {ba:.3f} | {auc:.3f} | "
                f"{precision:.3f} | {recall:.3f} | {len(cases) / max(elapsed, 1e-9):.3g} |"
            )
            by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for case, outcome in zip(cases, outcomes, strict=True):
                if case.kind:
                    by_kind[case.kind][0] += int(outcome.label == case.label)
                    by_kind[case.kind][1] += 1
            if by_kind:
                cells = ", ".join(f"{k} {ok}/{n}" for k, (ok, n) in sorted(by_kind.items()))
                kinds_rows.append(f"| {name} | {checker.name} | {cells} |")
                result.details.setdefault("by_kind", {})[f"{name}.{method}"] = {
                    k: {"correct": ok, "total": n} for k, (ok, n) in sorted(by_kind.items())
                }
    result.tables.append(
        "\n".join(
            [
                "### Checker",
                "",
                "| dataset | method | pairs | balanced accuracy | ROC-AUC | precision (unsupported) | recall (unsupported) | pairs/s |",
                "|---|---|---|---|---|---|---|---|",
                *rows,
            ]
        )
    )
    result.tables.append(
        "\n".join(
            [
                "Calibration: expected calibration error (ECE, 10 equal-width bins of the "
                "score read as P(supported)), and the reliability curve as mean score : share "
                "supported (pairs) per non-empty bin:",
                "",
                "| dataset | method | ECE | curve |",
                "|---|---|---|---|",
                *curve_rows,
            ]
        )
    )
    if all("offline" in c and "judge" in c for c in collected.values()) and collected:
        weight, threshold, score = calibrate_blend(collected)
        result.details["calibration"] = {
            "judge_weight": weight,
            "threshold": threshold,
            "mean_balanced_accuracy": score,
            "calibrated_on": sorted(collected),
        }
    if "offline" in methods:
        result.tables.append(_offline_training_note())
    if kinds_rows:
        result.tables.append(
            "\n".join(
                [
                    "Correct per kind of claim:",
                    "",
                    "| dataset | method | correct/total per kind |",
                    "|---|---|---|",
                    *kinds_rows,
                ]
            )
        )
    return result


def _offline_training_note() -> str:
    """The offline model's cross-validated figures, recorded when it was trained: the figures
    above are in-sample for every dataset the model was trained on."""
    from importlib import resources

    model = json.loads(
        resources.files("briefing.faithfulness").joinpath("lexical_model.json").read_text()
    )
    cv = model.get("cv") or {}
    rows = [
        f"| {name} | {fig['ba']:.3f} | {fig['auc']:.3f} |"
        for name, fig in sorted((cv.get("datasets") or {}).items())
    ]
    trained = ", ".join(
        Path(str(d)).stem if "/" in str(d) else str(d) for d in model.get("trained_on", [])
    )
    return "\n".join(
        [
            f"The offline model ({model.get('method')}) was trained on: {trained}. Its figures "
            "above on those datasets are in-sample; cross-validated when it was trained "
            f"({cv.get('scheme', 'scheme not recorded')}):",
            "",
            "| dataset | balanced accuracy (CV) | ROC-AUC (CV) |",
            "|---|---|---|",
            *rows,
        ]
    )


def calibrate_blend(collected: dict[str, dict[str, list[float]]]) -> tuple[float, float, float]:
    """The judge weight and threshold for `auto` that maximise the mean per-dataset balanced
    accuracy of weight * judge + (1 - weight) * offline, on a grid of 0.05 steps."""
    best = (0.0, 0.5, -1.0)
    for w in range(21):
        weight = w / 20
        blended = {
            name: [
                weight * j + (1 - weight) * o for j, o in zip(d["judge"], d["offline"], strict=True)
            ]
            for name, d in collected.items()
        }
        candidates = sorted({round(s, 4) for scores in blended.values() for s in scores})
        for threshold in candidates:
            score = sum(
                balanced_accuracy(
                    [int(y) for y in collected[name]["labels"]],
                    [int(s >= threshold) for s in scores],
                )
                for name, scores in blended.items()
            ) / len(blended)
            if score > best[2] + 1e-9:
                best = (weight, threshold, round(score, 4))
    return best


def calibration_with(path: Path, judge_model: str, entry: dict[str, Any]) -> str:
    """The calibration table at `path` as JSON text, with `judge_model`'s entry set (the
    other entries kept); the caller writes it."""
    table = json.loads(path.read_text("utf-8"))
    table["judges"][judge_model] = entry
    return json.dumps(table, indent=2) + "\n"
