"""The check of a briefing: every claim against exactly the spans it cites."""

from __future__ import annotations

from briefing.faithfulness.checker import Checker, CheckPair
from briefing.faithfulness.lexical import has_words
from briefing.schema import Briefing, Claim

__all__ = ["check_briefing", "claim_pair"]


def claim_pair(claim: Claim, texts: dict[str, str]) -> CheckPair | None:
    """The pair that tests a claim against exactly the spans it cites (None: it cites nothing).

    The promise is "supported by the span it cites", so the document is the cited quotes
    alone, not the whole source: a claim true elsewhere in the source but not where it points
    is a wrong citation, and is reported as unsupported.
    """
    quotes = [texts[c.source_id][c.start : c.end] for c in claim.citations if c.source_id in texts]
    quotes = [q for q in quotes if q.strip()]
    if not quotes or not has_words(claim.text):
        return None
    return CheckPair(id=claim.id, document="\n".join(quotes), claim=claim.text)


async def check_briefing(briefing: Briefing, checker: Checker, on_unsupported: str) -> Briefing:
    """Give every claim a verdict and score; drop the failing ones when asked, with a warning."""
    texts = {s.id: s.text for s in briefing.sources}
    claims = briefing.claims()
    pairs = {claim.id: claim_pair(claim, texts) for claim in claims}
    results = {r.id: r for r in await checker.check([p for p in pairs.values() if p is not None])}
    for claim in claims:
        result = results.get(claim.id)
        if result is None:  # no citation to check against: never presented as supported
            claim.verdict, claim.score = "unsupported", 0.0
        else:
            claim.verdict, claim.score = result.verdict, round(result.score, 4)
    briefing.usage = briefing.usage + checker.usage
    briefing.warnings.extend(checker.warnings)
    failing = [c for c in claims if c.verdict in ("unsupported", "contradicted")]
    if failing and on_unsupported == "drop":
        gone = {id(c) for c in failing}
        briefing.summary = [c for c in briefing.summary if id(c) not in gone]
        briefing.key_points = [c for c in briefing.key_points if id(c) not in gone]
        for item in briefing.disagreements:
            item.claims = [c for c in item.claims if id(c) not in gone]
        briefing.disagreements = [d for d in briefing.disagreements if len(d.claims) >= 2]
        listed = "; ".join(f'"{c.text}" ({c.verdict}, score {c.score:.2f})' for c in failing)
        briefing.warnings.append(
            f"dropped {len(failing)} claim(s) the checker ({checker.name}) found not supported "
            f"by their citations: {listed}"
        )
    elif failing:
        briefing.warnings.append(
            f"{len(failing)} claim(s) marked unsupported or contradicted by the checker "
            f"({checker.name})"
        )
    return briefing
