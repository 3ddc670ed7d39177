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


def _inventions(path: Path | None, sources: Sequence[Any]) -> dict[str, list[tuple[int, int]]]:
    """The spans, by source id, of sentences hand-labelled as what no other source says or
    as contradicting it (evals/datasets/seeds_comparison.jsonl): a rewrite's inventions."""
    if path is None or not path.exists():
        return {}
    import json

    ids = {Path(s.path).name: s.id for s in sources if s.path}
    out: dict[str, list[tuple[int, int]]] = {}
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") in ("single_source", "contradicted") and row["source"] in ids:
            out.setdefault(ids[row["source"]], []).append((row["start"], row["end"]))
    return out


def _cites_invention(claim: Any, inventions: dict[str, list[tuple[int, int]]]) -> bool:
    return any(
        start < c.end and c.start < end
        for c in claim.citations
        for start, end in inventions.get(c.source_id, [])
    )


async def evaluate_briefings(
    sources_paths: Sequence[Path],
    keyfacts_path: Path,
    models: Sequence[str],
    settings: Settings,
    comparison_path: Path | None = None,
) -> SuiteResult:
    """Citation validity, share of claims supported, unsupported claims, key-fact coverage;
    which sources contributed claims, and whether claims resting on a rewrite's
    inventions (the hand labels of `comparison_path`) are labelled as one source's word."""
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
            rows.append(f"| {model} | failed: {exc} | | | | | | |")
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
        contributed = {s.id: 0 for s in briefing.sources}
        for claim in claims:
            if claim.citations and claim.citations[0].source_id in contributed:
                contributed[claim.citations[0].source_id] += 1
        contributing = sum(1 for n in contributed.values() if n) / max(1, len(contributed))
        inventions = _inventions(comparison_path, briefing.sources)
        resting = [c for c in claims if _cites_invention(c, inventions)]
        labelled = [
            c for c in resting if c.corroboration.status in ("single_source", "contradicted")
        ]
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
        result.metrics[f"{prefix}.sources_contributing"] = Metric(
            value=round(contributing, 4), gate=deterministic
        )
        if resting:
            result.metrics[f"{prefix}.inventions_labelled"] = Metric(
                value=round(len(labelled) / len(resting), 4), gate=deterministic
            )
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
            "claims_per_source": {
                next(s.title for s in briefing.sources if s.id == sid): n
                for sid, n in contributed.items()
            },
            "claims_on_inventions": [
                {"text": c.text, "corroboration": c.corroboration.status} for c in resting
            ],
            "briefing": [
                {
                    "part": part,
                    "text": c.text,
                    "verdict": c.verdict,
                    "corroboration": c.corroboration.status,
                }
                for part, group in (
                    ("summary", briefing.summary),
                    ("key point", briefing.key_points),
                )
                for c in group
            ],
            "keyfacts_covered": covered,
            "keyfacts_missed": [f.id for f in facts if f.id not in covered],
            "usage": briefing.usage.model_dump(),
            "seconds": round(elapsed, 2),
            "warnings": briefing.warnings,
        }
        per_source = " / ".join(str(n) for n in contributed.values())
        marked = f"{len(labelled)}/{len(resting)}" if resting else "none cited"
        rows.append(
            f"| {model} | {len(claims)} | {per_source} | {valid}/{len(citations)} "
            f"({validity:.3f}) | {len(supported)}/{len(claims)} ({share:.3f}) | {marked} | "
            f"{len(covered)}/{len(facts)} ({coverage:.3f}) | {elapsed:.1f} |"
        )
    table = [
        "### Briefings of the seeds",
        "",
        "Claims per source in the order of the sources; inventions labelled: of the claims "
        "that cite a sentence of a source hand-labelled as said by no other source (or "
        "contradicting it), those the briefing marks single-source or contradicted.",
        "",
        "| model | claims | claims per source | citations exact | claims supported | "
        "inventions labelled | key facts covered | seconds |",
        "|---|---|---|---|---|---|---|---|",
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
