"""/v1/compare: every sentence of every source judged against all the others."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from briefing.faithfulness.checker import Checker, Method
from briefing.faithfulness.compare import compare_sources
from briefing.schema import Comparison, Source
from briefing.service.deps import SettingsDep, StoreDep
from briefing.service.inputs import SourcesGiven, check_source_count, inline_source

router = APIRouter(prefix="/v1", tags=["compare"])


class CompareRequest(SourcesGiven):
    """Sources to compare: stored ones (`source_ids`), inline ones (`sources`), or both, in
    that order; `method` overrides the check method setting. Inline sources are not stored."""

    method: Method | None = None


@router.post("/compare", response_model=Comparison)
async def compare(body: CompareRequest, settings: SettingsDep, store: StoreDep) -> Comparison:
    """What other sources back, what only one source says, and where they contradict."""
    check_source_count(
        len(body.source_ids) + len(body.sources), settings, "max_sources_per_compare"
    )

    def run() -> Comparison:
        # Reading the store, segmenting and the offline checker are CPU-bound: on a worker
        # thread, with an event loop of its own for a judge's calls.
        sources: dict[str, Source] = {}
        for source_id in body.source_ids:
            stored = store.sources.get(source_id)
            sources.setdefault(stored.id, Source.model_validate(stored.model_dump()))
        for item in body.sources:
            source = inline_source(item, settings)
            sources.setdefault(source.id, source)
        checker = Checker(settings, body.method, fallback=True)
        checker.check_credentials()
        return asyncio.run(compare_sources(list(sources.values()), checker))

    return await run_in_threadpool(run)
