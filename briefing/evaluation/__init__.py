"""The eval harness: measure the checker, the briefings, and resistance to injected text.

One module per suite (`checker`, `comparison`, `briefings`, `adversarial`); `report` holds what every
suite returns, the regression gate and the Markdown report; `metrics` the figures.
"""

from __future__ import annotations

from briefing.evaluation.adversarial import AdversarialCase, evaluate_adversarial
from briefing.evaluation.briefings import KeyFact, covers, evaluate_briefings
from briefing.evaluation.checker import (
    LabelledPair,
    calibrate_blend,
    calibration_with,
    evaluate_checker,
    load_labelled,
)
from briefing.evaluation.comparison import ComparisonLabel, evaluate_comparison
from briefing.evaluation.metrics import balanced_accuracy, roc_auc, unsupported_precision_recall
from briefing.evaluation.report import (
    EvalError,
    Metric,
    Report,
    SuiteResult,
    compare,
    load_jsonl_models,
    load_report,
    report_markdown,
)

__all__ = [
    "AdversarialCase",
    "ComparisonLabel",
    "EvalError",
    "KeyFact",
    "LabelledPair",
    "Metric",
    "Report",
    "SuiteResult",
    "balanced_accuracy",
    "calibrate_blend",
    "calibration_with",
    "compare",
    "covers",
    "evaluate_adversarial",
    "evaluate_briefings",
    "evaluate_checker",
    "evaluate_comparison",
    "load_jsonl_models",
    "load_labelled",
    "load_report",
    "report_markdown",
    "roc_auc",
    "unsupported_precision_recall",
]
