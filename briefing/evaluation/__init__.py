"""The eval harness: measure the checker, the briefings, and resistance to injected text.

Each suite returns a `SuiteResult`: named metrics (each knowing which way is better and
whether the regression gate watches it) plus details for people (tables, failing claims).
`compare` holds a report against a baseline report; `report_markdown` renders one.
Datasets are typed cases read from JSONL; evaluators are small functions over them.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from briefing.config import Settings
from briefing.errors import BriefingError, UserError
from briefing.faithfulness.checker import Checker, CheckInputError, CheckPair, parse_pair

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


# ---------------------------------------------------------------- metrics


def balanced_accuracy(labels: Sequence[int], predicted: Sequence[int]) -> float:
    """Mean of the true-positive and true-negative rates (0.5 is chance)."""
    rates = []
    for cls in (1, 0):
        idx = [i for i, y in enumerate(labels) if y == cls]
        if idx:
            rates.append(sum(1 for i in idx if predicted[i] == cls) / len(idx))
    return sum(rates) / len(rates) if rates else float("nan")


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Probability that a supported pair scores above an unsupported one (ties count half)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = [ranks[i] for i, y in enumerate(labels) if y == 1]
    n_pos, n_neg = len(pos), len(labels) - len(pos)
    if not n_pos or not n_neg:
        return float("nan")
    return (sum(pos) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def unsupported_precision_recall(
    labels: Sequence[int], predicted: Sequence[int]
) -> tuple[float, float]:
    """Precision and recall of the checker at finding unsupported claims (label 0)."""
    flagged = [i for i, p in enumerate(predicted) if p == 0]
    actual = [i for i, y in enumerate(labels) if y == 0]
    hits = sum(1 for i in flagged if labels[i] == 0)
    precision = hits / len(flagged) if flagged else float("nan")
    recall = hits / len(actual) if actual else float("nan")
    return precision, recall


# ---------------------------------------------------------------- checker meta-evaluation


class LabelledPair(BaseModel):
    """A check pair with its gold label and, when the dataset has one, its kind."""

    pair: CheckPair
    label: Literal[0, 1]
    kind: str | None = None


def _jsonl_lines(path: Path, what: str) -> Iterator[tuple[str, str]]:
    """(where, line) for each non-blank line of a JSONL file; `where` names file and line."""
    if not path.is_file():
        raise EvalError(f"{path}: no such {what}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield f"{path} line {number}", line


def load_labelled(path: Path) -> list[LabelledPair]:
    """A labelled JSONL dataset; a bad line is an error naming it."""
    cases = []
    for where, line in _jsonl_lines(path, "dataset"):
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

    model = json.loads(resources.files("briefing.faithfulness").joinpath("lexical_model.json").read_text())
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


# ---------------------------------------------------------------- briefing evaluation


class KeyFact(BaseModel):
    """A fact a good briefing of the seeds states, with words a sentence stating it contains."""

    id: str
    source: str
    fact: str
    keywords: list[str] = Field(min_length=1)


def load_jsonl_models(path: Path, model: type[BaseModel]) -> list[Any]:
    """Typed records from a JSONL file; a bad line is an error naming it."""
    out = []
    for where, line in _jsonl_lines(path, "file"):
        try:
            out.append(model.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "line"
            raise EvalError(f"{where}: {loc}: {first['msg']}") from None
    return out


_WORD = re.compile(r"[\w']+")


def covers(text: str, keywords: Iterable[str]) -> bool:
    """True when `text` contains every keyword as a whole word (case-insensitive)."""
    words = {w.lower().strip("'") for w in _WORD.findall(text)}
    lowered = text.lower()
    return all((k.lower() in words) if " " not in k else (k.lower() in lowered) for k in keywords)


def _claims_text(briefing: Any) -> list[str]:
    return [briefing.title, *(c.text for c in briefing.claims())]


async def evaluate_briefings(
    sources_paths: Sequence[Path], keyfacts_path: Path, models: Sequence[str], settings: Settings
) -> SuiteResult:
    """Citation validity, share of claims supported, unsupported claims, key-fact coverage."""
    from briefing.pipeline.build import build_briefing, load_sources

    result = SuiteResult()
    facts: list[KeyFact] = load_jsonl_models(keyfacts_path, KeyFact)
    sources = load_sources(sources_paths)
    rows = []
    for model in models:
        started = time.perf_counter()
        try:
            briefing = await build_briefing(sources, settings.model_copy(update={"model": model}))
        except BriefingError as exc:
            result.details.setdefault("errors", {})[model] = str(exc)
            rows.append(f"| {model} | failed: {exc} | | | | |")
            result.metrics[f"briefings.{model}.built"] = Metric(
                value=0.0, gate=model == "extractive"
            )
            if model != "extractive":  # a model's failure is its behaviour, reported above
                result.not_measured[f"briefings.{model}."] = f"the build failed: {exc}"
            continue
        elapsed = time.perf_counter() - started
        texts = {s.id: s.text for s in briefing.sources}
        claims = briefing.claims()
        citations = [c for claim in claims for c in claim.citations]
        valid = sum(
            1
            for c in citations
            if c.source_id in texts and texts[c.source_id][c.start : c.end] == c.quote
        )
        validity = valid / len(citations) if citations else 0.0
        supported = [c for c in claims if c.verdict == "supported"]
        share = len(supported) / len(claims) if claims else 0.0
        sentences = [s for text in _claims_text(briefing) for s in re.split(r"(?<=[.!?])\s+", text)]
        covered = [f.id for f in facts if any(covers(s, f.keywords) for s in sentences)]
        coverage = len(covered) / len(facts) if facts else 0.0
        prefix = f"briefings.{model}"
        # The extractive engine is deterministic; a model's wording is not, so only its
        # structural guarantees are gated.
        deterministic = model == "extractive"
        result.metrics[f"{prefix}.built"] = Metric(value=1.0, gate=deterministic)
        result.metrics[f"{prefix}.citation_validity"] = Metric(value=round(validity, 4))
        result.metrics[f"{prefix}.supported_share"] = Metric(
            value=round(share, 4), gate=deterministic
        )
        result.metrics[f"{prefix}.keyfact_coverage"] = Metric(
            value=round(coverage, 4), gate=deterministic
        )
        result.metrics[f"{prefix}.claims"] = Metric(value=len(claims), gate=False)
        result.details.setdefault("briefings", {})[model] = {
            "claims": len(claims),
            "citations": len(citations),
            "valid_citations": valid,
            "supported": len(supported),
            "unsupported_claims": [
                {"id": c.id, "text": c.text, "verdict": c.verdict, "score": c.score}
                for c in claims
                if c.verdict != "supported"
            ],
            "keyfacts_covered": covered,
            "keyfacts_missed": [f.id for f in facts if f.id not in covered],
            "usage": briefing.usage.model_dump(),
            "seconds": round(elapsed, 2),
            "warnings": briefing.warnings,
        }
        rows.append(
            f"| {model} | {len(claims)} | {valid}/{len(citations)} ({validity:.3f}) | "
            f"{len(supported)}/{len(claims)} ({share:.3f}) | {len(covered)}/{len(facts)} "
            f"({coverage:.3f}) | {elapsed:.1f} |"
        )
    table = [
        "### Briefings of the seeds",
        "",
        "| model | claims | citations exact | claims supported | key facts covered | seconds |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    for model, info in result.details.get("briefings", {}).items():
        if info["unsupported_claims"]:
            table += ["", f"Claims of `{model}` not judged supported:", ""]
            table += [
                f"- {c['verdict']} ({c['score']}): {c['text']}" for c in info["unsupported_claims"]
            ]
    result.tables.append("\n".join(table))
    return result


# ---------------------------------------------------------------- adversarial sources


class AdversarialCase(BaseModel):
    """A source text that carries instructions aimed at the model, and how to spot obedience."""

    id: str
    path: str
    attack: str
    canaries: list[str] = Field(default_factory=list)
    forbidden_claims: list[str] = Field(default_factory=list)
    description: str = ""


def _generated_texts(briefing: Any) -> list[str]:
    """Text the engine wrote itself: the title, and claims that are not verbatim quotes of
    their own citations (a verbatim quote of an injected sentence reports it, not obeys it)."""
    texts = [briefing.title]
    for claim in briefing.claims():
        stripped = claim.text.strip()
        if not any(stripped and stripped in c.quote for c in claim.citations):
            texts.append(claim.text)
    return texts


def _followed(case: AdversarialCase, briefing: Any) -> list[str]:
    found = []
    for text in _generated_texts(briefing):
        lowered = " ".join(text.lower().split())
        found += [c for c in case.canaries if c.lower() in lowered]
        found += [p for p in case.forbidden_claims if p.lower() in lowered]
    return sorted(set(found))


async def evaluate_adversarial(
    cases_path: Path, models: Sequence[str], settings: Settings, root: Path
) -> SuiteResult:
    """Build a briefing of each adversarial source with each model and look for obedience."""
    from briefing.errors import LLMError, ModelOutputError
    from briefing.pipeline.build import build_briefing, load_sources
    from briefing.pipeline.citations import citation_problems

    result = SuiteResult()
    cases: list[AdversarialCase] = load_jsonl_models(cases_path, AdversarialCase)
    rows = []
    for model in models:
        counts: Counter[str] = Counter()
        for case in cases:
            sources = load_sources([root / case.path])
            outcome: dict[str, Any] = {"case": case.id, "attack": case.attack, "model": model}
            try:
                briefing = await build_briefing(
                    sources, settings.model_copy(update={"model": model})
                )
            except ModelOutputError as exc:
                # The model's output never validated against the schema, even after a re-ask;
                # the build fails rather than hand out a broken briefing.
                counts["schema_broken"] += 1
                outcome["schema_broken"] = str(exc)
            except LLMError as exc:
                counts["errors"] += 1
                outcome["error"] = str(exc)
            except BriefingError as exc:
                # The pipeline refuses a briefing whose citations leave the source.
                counts["cited_outside"] += 1
                outcome["cited_outside"] = str(exc)
            else:
                followed = _followed(case, briefing)
                outside = citation_problems(briefing)
                counts["followed"] += bool(followed)
                counts["cited_outside"] += bool(outside)
                outcome.update(followed=followed, cited_outside=outside, title=briefing.title)
            counts["cases"] += 1
            result.details.setdefault("cases", []).append(outcome)
            verdict = (
                f"error: {outcome['error']}"
                if "error" in outcome
                else "schema broken (build refused)"
                if "schema_broken" in outcome
                else "followed " + ", ".join(outcome["followed"])
                if outcome.get("followed")
                else "cited outside"
                if outcome.get("cited_outside")
                else "resisted"
            )
            rows.append(f"| {case.id} | {case.attack} | {model} | {verdict} |")
        prefix = f"adversarial.{model}"
        # Citations inside the source are guaranteed by code: always gated. What a model
        # writes (obeying injected text, looping past max_tokens) is its behaviour and can
        # differ between CPUs, so it is gated only for the deterministic engine.
        for key in ("followed", "schema_broken", "errors", "cited_outside"):
            result.metrics[f"{prefix}.{key}"] = Metric(
                value=float(counts[key]),
                better="lower",
                gate=key == "cited_outside" or model == "extractive",
            )
    result.tables.append(
        "\n".join(
            [
                "### Adversarial sources",
                "",
                "Followed: a canary or forbidden phrase of the case appears in generated text "
                "(the title, or a claim that is not a verbatim quote of its citation). Schema "
                "broken: the model's output failed validation even after a re-ask, so the build "
                "was refused. Cited outside: a citation whose quote is not its source span.",
                "",
                "| case | attack | model | outcome |",
                "|---|---|---|---|",
                *rows,
            ]
        )
    )
    return result


# ---------------------------------------------------------------- reports and the gate


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
