"""The comparison suite: `briefing compare` of the seeds against hand labels of one source's
sentences (corroborated, single-source or contradicted by what the other source says).

The labels are split into a dev half, on which the comparison's thresholds were chosen,
and a held-out half that no tuning saw; both are reported, and the held-out figures are
the ones to trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from briefing.config import Settings
from briefing.evaluation.metrics import balanced_accuracy
from briefing.evaluation.report import EvalError, Metric, SuiteResult, load_jsonl_models
from briefing.faithfulness.checker import Checker
from briefing.faithfulness.compare import compare_sources
from briefing.schema import Comparison, SentenceComparison

__all__ = ["ComparisonLabel", "evaluate_comparison"]

Status = Literal["corroborated", "single_source", "contradicted"]
SPLITS = ("heldout", "dev", "all")


class ComparisonLabel(BaseModel):
    """One labelled sentence of `source` (a file of the seeds), judged against `against`."""

    id: str
    source: str
    against: str
    start: int
    end: int
    text: str
    label: Status
    split: Literal["dev", "heldout"]
    note: str = ""


def _exact(comparison: Comparison) -> tuple[int, int]:
    """(exact, total) over every span the comparison hands out."""
    texts = {s.id: s.text for s in comparison.sources}
    spans = [(s.source_id, s.start, s.end, s.text) for s in comparison.sentences]
    spans += [
        (c.source_id, c.start, c.end, c.quote)
        for s in comparison.sentences
        for c in (*s.supporting, *s.contradicting)
    ]
    exact = sum(1 for sid, a, b, q in spans if sid in texts and texts[sid][a:b] == q)
    return exact, len(spans)


async def evaluate_comparison(
    labels_path: Path, seeds: Path, methods: Sequence[str], settings: Settings
) -> SuiteResult:
    """Balanced accuracy (corroborated or not) and three-way accuracy per split and method,
    and the exactness of every span the comparison cites."""
    from briefing.pipeline.build import load_sources

    result = SuiteResult()
    labels: list[ComparisonLabel] = load_jsonl_models(labels_path, ComparisonLabel)
    names = sorted({n for label in labels for n in (label.source, label.against)})
    sources = load_sources([seeds / name for name in names])
    by_name = dict(zip(names, sources, strict=True))
    rows = []
    for method in methods:
        checker = Checker(settings, method)  # type: ignore[arg-type]
        checker.check_credentials()
        comparison = await compare_sources(sources, checker)
        found: dict[tuple[str, int, int], SentenceComparison] = {
            (s.source_id, s.start, s.end): s for s in comparison.sentences
        }
        judged: list[tuple[ComparisonLabel, SentenceComparison]] = []
        for label in labels:
            got = found.get((by_name[label.source].id, label.start, label.end))
            if got is None or got.text != label.text:
                raise EvalError(
                    f"{labels_path}: {label.id}: no sentence at {label.start}-{label.end} of "
                    f"{label.source} reads {label.text[:60]!r}; relabel after a segmenter change"
                )
            judged.append((label, got))
        prefix = f"comparison.{method}"
        for split in SPLITS:
            pairs = [(lab, got) for lab, got in judged if split == "all" or lab.split == split]
            gold = [int(lab.label == "corroborated") for lab, _ in pairs]
            predicted = [int(got.status == "corroborated") for _, got in pairs]
            ba = balanced_accuracy(gold, predicted)
            three = sum(1 for lab, got in pairs if lab.label == got.status) / len(pairs)
            contradicted = [got for lab, got in pairs if lab.label == "contradicted"]
            caught = sum(1 for got in contradicted if got.status == "contradicted")
            result.metrics[f"{prefix}.{split}.balanced_accuracy"] = Metric(value=round(ba, 4))
            result.metrics[f"{prefix}.{split}.accuracy"] = Metric(value=round(three, 4))
            rows.append(
                f"| {split} | {checker.name} | {len(pairs)} | {ba:.3f} | {three:.3f} | "
                f"{caught}/{len(contradicted)} |"
            )
        exact, total = _exact(comparison)
        result.metrics[f"{prefix}.citations_exact"] = Metric(value=round(exact / total, 4))
        result.details.setdefault("misjudged", {})[method] = [
            {"id": lab.id, "split": lab.split, "label": lab.label, "got": got.status,
             "score": got.score, "text": lab.text}
            for lab, got in judged
            if lab.label != got.status
        ]  # fmt: skip
    result.tables.append(
        "\n".join(
            [
                "### Comparison of the seeds",
                "",
                f"`briefing compare` of {', '.join(names)}, against hand labels of "
                f"{len(labels)} sentences ({labels_path.name}). Balanced accuracy: corroborated "
                "or not; accuracy: all three labels. The thresholds were chosen on `dev`; "
                "`heldout` was never tuned on.",
                "",
                "| split | method | sentences | balanced accuracy | accuracy | contradictions found |",
                "|---|---|---|---|---|---|",
                *rows,
            ]
        )
    )
    return result
