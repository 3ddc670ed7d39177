"""The briefings suite: briefings of the seeds per model, their citations, verdicts and
coverage of the key facts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from briefing.config import Settings
from briefing.errors import BriefingError
from briefing.evaluation.report import Metric, SuiteResult, load_jsonl_models
from briefing.text.segment import sentence_spans

__all__ = ["KeyFact", "covers", "evaluate_briefings"]


class KeyFact(BaseModel):
    """A fact a good briefing of the seeds states, with words a sentence stating it contains."""

    id: str
    source: str
    fact: str
    keywords: list[str] = Field(min_length=1)


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
        # A fact counts where one sentence of a claim states it, sentences as the project
        # segments them ("St. Petersburg" does not end one; a quotation with its
        # attribution is one).
        sentences = [
            text[start:end]
            for text in _claims_text(briefing)
            for start, end in sentence_spans(text)
        ]
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
