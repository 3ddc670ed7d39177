"""The Briefing JSON contract (see DESIGN.md) as pydantic models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_serializer

from briefing.prompts import PromptRef
from briefing.sources import Source
from briefing.usage import Usage

Verdict = Literal["supported", "unsupported", "contradicted", "unverified"]
Engine = Literal["extractive", "llm"]


class Citation(BaseModel):
    """An exact span of a source: `source.text[start:end] == quote`."""

    source_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    quote: str


class Claim(BaseModel):
    """One statement of the briefing with the spans it rests on."""

    id: str
    text: str
    citations: list[Citation]
    verdict: Verdict = "unverified"
    score: float | None = Field(default=None, ge=0.0, le=1.0)


class Disagreement(BaseModel):
    """A point on which sources differ, each side a cited claim."""

    topic: str
    claims: list[Claim]


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
    usage: Usage = Field(default_factory=Usage)
    warnings: list[str] = Field(default_factory=list)

    @field_serializer("created_at")
    def _iso_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def claims(self) -> list[Claim]:
        """Every claim: summary, key points, then both sides of each disagreement."""
        out = [*self.summary, *self.key_points]
        for item in self.disagreements:
            out.extend(item.claims)
        return out
