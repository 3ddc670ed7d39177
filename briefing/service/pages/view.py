"""What the pages show of a briefing: its claims with citation chips, and a source with a
quoted span marked.

Everything here is plain data for the templates, which escape every string they print; no
HTML is built in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from briefing.errors import NotFoundError, UserError
from briefing.schema import Briefing, Citation, Claim, Source

__all__ = [
    "BriefingView",
    "Chip",
    "ClaimView",
    "SourceView",
    "briefing_view",
    "source_view",
]

STATUS_LABELS = {
    "corroborated": "corroborated",
    "single_source": "only one source",
    "contradicted": "contradicted",
    "not_applicable": "",
}


@dataclass(frozen=True)
class Chip:
    """One citation as a link that opens its source at the quoted span."""

    number: int
    source_title: str
    start: int
    end: int
    quote: str
    href: str
    fragment_href: str


@dataclass(frozen=True)
class ClaimView:
    """A claim with its verdict, corroboration and chips."""

    id: str
    text: str
    verdict: str
    score: str
    status: str
    status_label: str
    corroboration_score: str
    chips: list[Chip]
    supporting: list[Chip]
    contradicting: list[Chip]
    conflicts: list[str]


@dataclass(frozen=True)
class DisagreementView:
    """Both sides of a disagreement."""

    topic: str
    claims: list[ClaimView]


@dataclass(frozen=True)
class UpdateView:
    """One updated fact: the earlier claim, the later one, and what differs."""

    before: ClaimView
    after: ClaimView
    conflicts: list[str]


@dataclass(frozen=True)
class ChangesView:
    """What changed since an earlier briefing."""

    since: str
    since_date: str
    empty: bool
    new: list[ClaimView]
    updated: list[UpdateView]
    dropped: list[ClaimView]
    unchanged: int
    sources: list[tuple[str, str, str | None]]


@dataclass
class BriefingView:
    """A briefing as its page shows it."""

    id: str
    briefing_id: str
    title: str
    created_at: str
    engine: str
    model: str
    prompt: str
    usage: str
    sources: list[tuple[int, Source]]
    summary: list[ClaimView]
    key_points: list[ClaimView]
    disagreements: list[DisagreementView]
    single_source: list[ClaimView]
    warnings: list[str] = field(default_factory=list)
    changes: ChangesView | None = None
    earlier_sources: list[tuple[int, Source]] = field(default_factory=list)


@dataclass(frozen=True)
class SourceView:
    """A source's text cut around the marked span: before, marked, after."""

    number: int
    source: Source
    before: str
    marked: str
    after: str


def _all_sources(briefing: Briefing) -> list[Source]:
    """The briefing's sources, then the earlier briefing's that its changes cite."""
    earlier = briefing.changes.since_sources if briefing.changes is not None else []
    return [*briefing.sources, *earlier]


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


class _Linker:
    """Chips of one briefing's page (source numbers worked out once, not per chip)."""

    def __init__(self, briefing: Briefing, page_id: str) -> None:
        self.sources = _all_sources(briefing)
        self.numbers: dict[str, int] = {}
        for n, source in enumerate(self.sources, start=1):
            self.numbers.setdefault(source.id, n)
        self.base = f"/briefings/{quote(page_id, safe='')}/sources"

    def chips(self, citations: Sequence[Citation]) -> list[Chip]:
        out = []
        for citation in citations:
            number = self.numbers.get(citation.source_id)
            if number is None:  # a citation of a source the briefing does not hold
                continue
            # Offsets are ints, so the query needs no encoding.
            query = f"start={citation.start}&end={citation.end}"
            out.append(
                Chip(
                    number=number,
                    source_title=self.sources[number - 1].title,
                    start=citation.start,
                    end=citation.end,
                    quote=citation.quote,
                    href=f"{self.base}/{number}?{query}#mark",
                    fragment_href=f"{self.base}/{number}/fragment?{query}",
                )
            )
        return out


def _claim(links: _Linker, claim: Claim) -> ClaimView:
    corroboration = claim.corroboration
    return ClaimView(
        id=claim.id,
        text=claim.text,
        verdict=claim.verdict,
        score=_score(claim.score),
        status=corroboration.status,
        status_label=STATUS_LABELS.get(corroboration.status, corroboration.status),
        corroboration_score=_score(corroboration.score),
        chips=links.chips(claim.citations),
        supporting=links.chips(corroboration.supporting),
        contradicting=links.chips(corroboration.contradicting),
        conflicts=list(corroboration.conflicts),
    )


def briefing_view(briefing: Briefing, page_id: str) -> BriefingView:
    """The view of `briefing` on its page, /briefings/`page_id` (the id of its job)."""
    links = _Linker(briefing, page_id)
    summary = [_claim(links, c) for c in briefing.summary]
    key_points = [_claim(links, c) for c in briefing.key_points]
    seen: set[str] = set()
    single = []
    for claim in (*summary, *key_points):
        if claim.status == "single_source" and claim.id not in seen:
            seen.add(claim.id)
            single.append(claim)
    usage = briefing.usage
    cost = "" if usage.cost_usd is None else f", ${usage.cost_usd:.4f}"
    prompt = briefing.prompt
    return BriefingView(
        id=page_id,
        briefing_id=briefing.id,
        title=briefing.title,
        created_at=briefing.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        engine=briefing.engine,
        model=briefing.model,
        prompt="" if prompt is None else f"{prompt.name}@{prompt.version}",
        usage=f"{usage.calls} calls, {usage.input_tokens} input and "
        f"{usage.output_tokens} output tokens{cost}",
        sources=list(enumerate(briefing.sources, start=1)),
        summary=summary,
        key_points=key_points,
        disagreements=[
            DisagreementView(d.topic, [_claim(links, c) for c in d.claims])
            for d in briefing.disagreements
        ],
        single_source=single,
        warnings=list(briefing.warnings),
        changes=_changes(links, briefing),
        earlier_sources=list(enumerate(links.sources, start=1))[len(briefing.sources) :],
    )


def _changes(links: _Linker, briefing: Briefing) -> ChangesView | None:
    changes = briefing.changes
    if changes is None:
        return None
    return ChangesView(
        since=changes.since,
        since_date=changes.since_date.strftime("%Y-%m-%d %H:%M UTC"),
        empty=changes.empty,
        new=[_claim(links, c) for c in changes.new],
        updated=[
            UpdateView(_claim(links, u.before), _claim(links, u.after), list(u.conflicts))
            for u in changes.updated
        ],
        dropped=[_claim(links, c) for c in changes.dropped],
        unchanged=changes.unchanged,
        sources=[(s.status, s.title, s.path) for s in changes.sources if s.status != "unchanged"],
    )


def source_view(briefing: Briefing, number: int, start: int | None, end: int | None) -> SourceView:
    """Source `number` (1-based) of `briefing`, with [start, end) marked when given."""
    sources = _all_sources(briefing)
    if not 1 <= number <= len(sources):
        raise NotFoundError(f"briefing {briefing.id} has no source {number}")
    source = sources[number - 1]
    text = source.text
    if start is None and end is None:
        return SourceView(number, source, text, "", "")
    if start is None or end is None or not 0 <= start <= end <= len(text):
        raise UserError(
            f"start and end must both be given, with 0 <= start <= end <= {len(text)} "
            f"(the length of source {number})"
        )
    return SourceView(number, source, text[:start], text[start:end], text[end:])
