"""/v1/compare: every sentence of every source judged against all the others."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from briefing.errors import LimitError
from briefing.faithfulness.checker import Checker, Method
from briefing.faithfulness.compare import compare_sources
from briefing.schema import Comparison, Source
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.routes.briefings import SourceText
from briefing.service.surrogates import reject_lone_surrogates
from briefing.text.sources import source_from_text

router = APIRouter(prefix="/v1", tags=["compare"])


class CompareRequest(BaseModel):
    """Sources to compare: stored ones (`source_ids`), inline ones (`sources`), or both, in
    that order; `method` overrides the check method setting. Inline sources are not stored."""

    model_config = ConfigDict(extra="forbid")

    source_ids: list[str] = Field(default_factory=list)
    sources: list[SourceText] = Field(default_factory=list)
    method: Method | None = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        return reject_lone_surrogates(data)

    @model_validator(mode="after")
    def _some_source(self) -> CompareRequest:
        if not self.source_ids and not self.sources:
            raise ValueError("give source_ids, sources, or both")
        return self


@router.post("/compare", response_model=Comparison)
async def compare(body: CompareRequest, settings: SettingsDep, store: StoreDep) -> Comparison:
    """What other sources back, what only one source says, and where they contradict."""
    given = len(body.source_ids) + len(body.sources)
    if given > settings.max_sources_per_compare:
        raise LimitError(
            f"{given} sources given; max_sources_per_compare is {settings.max_sources_per_compare}",
            limit="max_sources_per_compare",
            maximum=settings.max_sources_per_compare,
        )

    def run() -> Comparison:
        # Reading the store, segmenting and the offline checker are CPU-bound: on a worker
        # thread, with an event loop of its own for a judge's calls.
        sources: dict[str, Source] = {}
        for source_id in body.source_ids:
            stored = store.sources.get(source_id)
            sources.setdefault(stored.id, Source.model_validate(stored.model_dump()))
        for item in body.sources:
            source = source_from_text(item.text, title=item.title)
            if len(source.text) > settings.max_source_chars:
                raise LimitError(
                    f"a source has {len(source.text)} characters; max_source_chars is "
                    f"{settings.max_source_chars}",
                    limit="max_source_chars",
                    maximum=settings.max_source_chars,
                )
            sources.setdefault(source.id, source)
        checker = Checker(settings, body.method, fallback=True)
        checker.check_credentials()
        return asyncio.run(compare_sources(list(sources.values()), checker))

    return await run_in_threadpool(run)
