"""The Briefing JSON contract (see DESIGN.md) as pydantic models.

Everything a briefing carries is defined here, its sources, prompt reference and usage
included, so every layer can speak the contract without importing the code that makes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_serializer


class Source(BaseModel):
    """A source text in canonical form; citation offsets index `text`."""

    id: str
    title: str
    path: str | None = None
    sha256: str
    text: str


class PromptRef(BaseModel):
    """Which template a briefing was made with: name, version and the file's sha256."""

    name: str
    version: int
    sha256: str


class Usage(BaseModel):
    """What a set of model calls consumed; `cost_usd` is None when no call's price is known."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    cache_hits: int = Field(
        default=0,
        description="Sources whose map step came from the cache instead of a model call.",
    )

    def __add__(self, other: Usage) -> Usage:
        if self.cost_usd is None and other.cost_usd is None:
            cost = None
        else:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=cost,
            cache_hits=self.cache_hits + other.cache_hits,
        )


Verdict = Literal["supported", "unsupported", "contradicted", "unverified"]
Engine = Literal["extractive", "llm"]
CorroborationStatus = Literal["corroborated", "single_source", "contradicted", "not_applicable"]


class Citation(BaseModel):
    """An exact span of a source: `source.text[start:end] == quote`."""

    source_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str


class Corroboration(BaseModel):
    """What the other sources say of a statement: another backs it (`corroborated`), none
    says it (`single_source`), or one states it otherwise (`contradicted`); with a single
    source there is nobody to ask (`not_applicable`)."""

    status: CorroborationStatus
    score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The best probability, over the other sources, that one of them supports "
        "the statement; null when there is no other source.",
    )
    supporting: list[Citation] = Field(default_factory=list)
    contradicting: list[Citation] = Field(default_factory=list)
    conflicts: list[str] = Field(
        default_factory=list,
        description='How each contradicting source differs, e.g. \'a different number: "five" '
        'vs "six"\'.',
    )


def _not_compared() -> Corroboration:
    return Corroboration(status="not_applicable")


class Claim(BaseModel):
    """One statement of the briefing with the spans it rests on."""

    id: str
    text: str
    citations: list[Citation]
    verdict: Verdict = "unverified"
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    corroboration: Corroboration = Field(default_factory=_not_compared)


class Disagreement(BaseModel):
    """A point on which sources differ, each side a cited claim."""

    topic: str
    claims: list[Claim]


class SourceAgreement(BaseModel):
    """How one source's statements fare against the other sources."""

    source_id: str
    claims: int = 0
    corroborated: int = 0
    single_source: int = 0
    contradicted: int = 0


class UpdatedClaim(BaseModel):
    """The same fact on two days with a changed detail; each side cites its own day's sources."""

    before: Claim
    after: Claim
    conflicts: list[str] = Field(
        default_factory=list,
        description='What changed, e.g. \'a different number: "five" vs "six"\'.',
    )


SourceChangeStatus = Literal["new", "edited", "removed", "unchanged"]


class SourceChange(BaseModel):
    """One source of either briefing, matched by its path (or title) and its content hash."""

    status: SourceChangeStatus
    source_id: str = Field(description="The source in the later briefing (removed: earlier).")
    previous_id: str | None = Field(
        default=None, description="An edited source's id in the earlier briefing."
    )
    title: str
    path: str | None = None


class Changes(BaseModel):
    """What changed from one briefing (`since`) to a later one, claim by claim.

    `new`, `updated[].after` cite the later briefing's sources; `dropped` and
    `updated[].before` cite the earlier one's, which `since_sources` holds where the later
    briefing does not.
    """

    since: str = Field(description="The earlier briefing's id.")
    since_date: datetime
    new: list[Claim] = Field(default_factory=list)
    updated: list[UpdatedClaim] = Field(default_factory=list)
    dropped: list[Claim] = Field(default_factory=list)
    unchanged: int = Field(default=0, description="Claims both briefings make.")
    sources: list[SourceChange] = Field(default_factory=list)
    since_sources: list[Source] = Field(default_factory=list)

    @field_serializer("since_date")
    def _iso_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @property
    def empty(self) -> bool:
        """Whether nothing at all changed."""
        return not (self.new or self.updated or self.dropped) and all(
            s.status == "unchanged" for s in self.sources
        )


class Briefing(BaseModel):
    """A structured briefing of one or more sources."""

    id: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    title: str
    engine: Engine
    model: str
    prompt: PromptRef | None
    prompts: list[PromptRef] = Field(
        default_factory=list, description="Every template used (map, condense, reduce)."
    )
    sources: list[Source]
    summary: list[Claim]
    key_points: list[Claim]
    disagreements: list[Disagreement] = Field(default_factory=list)
    source_agreement: list[SourceAgreement] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    warnings: list[str] = Field(default_factory=list)
    changes: Changes | None = Field(
        default=None,
        description="Scheduled runs: what changed since the schedule's previous briefing.",
    )

    @field_serializer("created_at")
    def _iso_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def claims(self) -> list[Claim]:
        """Every claim: summary, key points, then both sides of each disagreement."""
        out = [*self.summary, *self.key_points]
        for item in self.disagreements:
            out.extend(item.claims)
        return out


class SentenceComparison(BaseModel):
    """One sentence of one source, judged against all the other sources:
    `sources[i].text[start:end] == text`; the rest as in `Corroboration`."""

    source_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    status: CorroborationStatus
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    supporting: list[Citation] = Field(default_factory=list)
    contradicting: list[Citation] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)


class Comparison(BaseModel):
    """`briefing compare` and `POST /v1/compare`: every sentence of every source."""

    sources: list[Source]
    sentences: list[SentenceComparison]
    method: str = Field(description="The checker method that judged support.")
    source_agreement: list[SourceAgreement] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    warnings: list[str] = Field(default_factory=list)
