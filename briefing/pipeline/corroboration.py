"""What the other sources say of a briefing's claims, for every engine.

Each claim gets its corroboration (`briefing.faithfulness.compare`); a contradicted claim
also becomes a disagreement found by code, the claim on one side and the other source's
sentence, verbatim and cited, on the other; key points that other sources back come first;
and the briefing gets each source's agreement figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from briefing.faithfulness.checker import Checker
from briefing.faithfulness.compare import Comparer, source_agreement
from briefing.schema import (
    Briefing,
    Citation,
    Claim,
    Corroboration,
    CorroborationStatus,
    Disagreement,
    SentenceComparison,
)

__all__ = ["STATUS_ORDER", "corroborate", "disagreement_of"]

#: Claims that other sources back first, contradicted ones last.
STATUS_ORDER: dict[CorroborationStatus, int] = {
    "corroborated": 0,
    "not_applicable": 1,
    "single_source": 2,
    "contradicted": 3,
}
#: Most disagreements found by code that one briefing lists.
MAX_DISAGREEMENTS = 8


def _span(claim: Claim) -> tuple[str, int, int] | None:
    # A claim that is exactly one sentence of a source (the extractive engine's) can take
    # that sentence's comparison as it is.
    if len(claim.citations) == 1 and claim.text == claim.citations[0].quote:
        c = claim.citations[0]
        return c.source_id, c.start, c.end
    return None


async def corroborate(
    briefing: Briefing,
    checker: Checker,
    *,
    known: Sequence[SentenceComparison] = (),
    comparer: Comparer | None = None,
    order_key_points: bool = True,
) -> Briefing:
    """Fill in every claim's corroboration, the code-found disagreements and the briefing's
    source agreement. `known`: sentences already compared (their verdicts are reused);
    `comparer`: one already built over these sources; `order_key_points`: put the key
    points other sources back first (the extractive engine keeps its reading order)."""
    claims = briefing.claims()
    if len(briefing.sources) < 2:
        for claim in claims:
            claim.corroboration = Corroboration(status="not_applicable")
    else:
        by_span: Mapping[tuple[str, int, int], SentenceComparison] = {
            (s.source_id, s.start, s.end): s for s in known
        }
        todo = []
        for claim in claims:
            span = _span(claim)
            hit = by_span.get(span) if span is not None else None
            if hit is None:
                todo.append(claim)
            else:
                claim.corroboration = Corroboration.model_validate(
                    hit.model_dump(include=set(Corroboration.model_fields))
                )
        if todo:
            comparer = comparer or Comparer(briefing.sources, checker)
            judged = await comparer.claims(todo)
            for claim in todo:
                claim.corroboration = judged[claim.id]
        _add_disagreements(briefing)
        if order_key_points:
            # Stable: within a status the engine's order (importance) stands.
            briefing.key_points.sort(key=lambda c: STATUS_ORDER[c.corroboration.status])
    briefing.source_agreement = source_agreement(
        briefing.sources,
        (
            (claim.citations[0].source_id, claim.corroboration.status)
            for claim in [*briefing.summary, *briefing.key_points]
            if claim.citations
        ),
    )
    return briefing


def disagreement_of(
    claim: Claim, other: Citation, conflict: str | None, number: int
) -> Disagreement:
    """A disagreement of `claim` with the sentence `other` of another source: both sides
    as claims with their citations (the other side quoted verbatim)."""
    side_a = claim.model_copy(deep=True, update={"id": f"d{number}a"})
    side_b = Claim(
        id=f"d{number}b",
        text=other.quote,
        citations=[other],
        corroboration=Corroboration(
            status="contradicted",
            contradicting=list(claim.citations),
            conflicts=[conflict] if conflict else [],
        ),
    )
    topic = (conflict or "the sources state this differently").strip()
    return Disagreement(topic=topic[:1].upper() + topic[1:], claims=[side_a, side_b])


def _add_disagreements(briefing: Briefing) -> None:
    seen = {
        tuple(sorted((c.source_id, c.start, c.end) for claim in d.claims for c in claim.citations))
        for d in briefing.disagreements
    }
    number = len(briefing.disagreements)
    for claim in [*briefing.summary, *briefing.key_points]:
        corroboration = claim.corroboration
        if corroboration.status != "contradicted":
            continue
        for n, other in enumerate(corroboration.contradicting):
            key = tuple(
                sorted(
                    [
                        *((c.source_id, c.start, c.end) for c in claim.citations),
                        (other.source_id, other.start, other.end),
                    ]
                )
            )
            if key in seen or number >= MAX_DISAGREEMENTS:
                continue
            seen.add(key)
            number += 1
            conflict = corroboration.conflicts[n] if n < len(corroboration.conflicts) else None
            briefing.disagreements.append(disagreement_of(claim, other, conflict, number))
