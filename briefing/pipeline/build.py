"""Build a briefing: pick the engine, run it, and check every citation before returning."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from briefing.config import Settings
from briefing.errors import BriefingError, SourceError
from briefing.faithfulness.checker import Checker
from briefing.faithfulness.claims import check_briefing
from briefing.faithfulness.compare import Comparer
from briefing.models.calllog import CallLog, CallRecorder
from briefing.models.prompts import CachedPromptLibrary
from briefing.models.ratelimit import RateLimiter
from briefing.pipeline.citations import citation_problems
from briefing.pipeline.corroboration import corroborate
from briefing.pipeline.mapcache import MapCache
from briefing.pipeline.mapreduce import MapReduce, Progress
from briefing.schema import Briefing, Claim, Corroboration, SentenceComparison, Source, Usage
from briefing.text.sources import load_source


def load_sources(paths: Sequence[str | Path]) -> list[Source]:
    """Load files in the given order; the same content given twice is kept once."""
    if not paths:
        raise SourceError("no source files given")
    sources: dict[str, Source] = {}
    for path in paths:
        source = load_source(path)
        sources.setdefault(source.id, source)
    return list(sources.values())


async def build_briefing(
    sources: list[Source],
    settings: Settings,
    *,
    progress: Progress | None = None,
    call_log: CallRecorder | None = None,
    map_cache: MapCache | None = None,
    limiter: RateLimiter | None = None,
) -> Briefing:
    """A briefing of `sources` with the engine the settings name; the LLM engine reuses
    the map results `map_cache` keeps (when given and `settings.map_cache` is on)."""
    if not sources:
        raise SourceError("no sources to brief")
    if (
        call_log is None
        and settings.log_calls
        and not (settings.is_extractive and settings.check_model is None)
    ):
        call_log = CallLog(settings.call_log_path)
    # Made first, so a misconfigured checker fails before any model is called.
    # A judge failure must not cost the briefing: that claim keeps its offline verdict.
    checker = Checker(settings, call_log=call_log, fallback=True)
    checker.check_credentials()
    known: list[SentenceComparison] = []
    comparer: Comparer | None = None
    if settings.is_extractive:
        from briefing.pipeline.extractive import build_extractive

        if len(sources) > 1:
            # Every sentence against the other sources, to rank by and to find conflicts
            # in. Offline: a judge call for each sentence is not worth it for a ranking; a
            # judge still weighs the claims chosen (below).
            ranking = checker if not checker.uses_model else Checker(settings, "offline")
            comparer = Comparer(sources, ranking, progress=progress)
            known = await comparer.sentences()
            if checker.uses_model:
                comparer = None
        briefing = build_extractive(sources, settings, known)
    else:
        from briefing.models.llm import LLMClient
        from briefing.models.local import with_model_defaults

        settings = with_model_defaults(settings)
        client = LLMClient(settings, call_log, limiter)
        client.check_credentials()
        # The sentence index of the comparison is built on a thread while the model calls
        # are out, not after them on the critical path.
        indexing = (
            asyncio.ensure_future(asyncio.to_thread(Comparer, sources, checker))
            if len(sources) > 1
            else None
        )

        ranker: Comparer | None = None
        # A claim's verdict depends on its text and citations alone; the engine asks for
        # each map answer's claims while later requests are out, then for all of them.
        verdicts: dict[tuple[str, tuple[tuple[str, int, int], ...]], Corroboration] = {}

        async def backing(claims: list[Claim]) -> dict[str, Corroboration]:
            # Before the reduce: which map claims another source backs, judged offline (a
            # judge call per map claim is not worth it for a ranking).
            nonlocal ranker
            assert indexing is not None
            # Shielded: cancelling a caller (the engine cancels its work ahead when it
            # ends) must not cancel the index the briefing's corroboration still needs.
            built = await asyncio.shield(indexing)
            if ranker is None:
                ranker = (
                    built
                    if not checker.uses_model
                    else built.with_checker(Checker(settings, "offline"))
                )
            keys = {c.id: _verdict_key(c) for c in claims}
            todo = [c for c in claims if keys[c.id] not in verdicts]
            if todo:
                judged = await ranker.claims(todo)
                for claim in todo:
                    verdicts[keys[claim.id]] = judged[claim.id]
            return {c.id: verdicts[keys[c.id]] for c in claims}

        engine = MapReduce(
            settings,
            client,
            CachedPromptLibrary(settings.prompts_dir),
            progress,
            cache=map_cache if settings.map_cache else None,
            backing=backing if indexing is not None else None,
        )
        try:
            briefing = await engine.run(sources)
        finally:
            if indexing is not None and not indexing.done():
                await asyncio.wait([indexing])
        comparer = indexing.result() if indexing is not None else None
    briefing = await corroborate(
        briefing,
        checker,
        known=known if comparer is not None else (),
        comparer=comparer,
        order_key_points=not settings.is_extractive,
    )
    problems = citation_problems(briefing)
    if problems:
        # Citations are built from spans, so this is a bug; refuse to hand out a briefing
        # whose quotes could mislead.
        raise BriefingError(
            "internal error: citations do not match their sources: " + "; ".join(problems[:5])
        )
    if progress is not None:
        progress("check", 0, len(briefing.claims()))
    briefing = await check_briefing(briefing, checker, settings.on_unsupported)
    if progress is not None:
        progress("check", len(briefing.claims()), len(briefing.claims()))
    return briefing


def _verdict_key(claim: Claim) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    return claim.text, tuple((c.source_id, c.start, c.end) for c in claim.citations)


async def map_ahead(
    sources: list[Source],
    settings: Settings,
    map_cache: MapCache,
    *,
    call_log: CallRecorder | None = None,
    limiter: RateLimiter | None = None,
) -> tuple[int, Usage, list[str]]:
    """The LLM engine's map step alone over `sources`, its results kept in `map_cache`:
    (claims found, usage, warnings). A later `build_briefing` with the same settings and
    cache finds them there and does not ask the model again."""
    from briefing.models.llm import LLMClient
    from briefing.models.local import with_model_defaults

    if settings.is_extractive:
        raise BriefingError("the extractive engine has no map step to run ahead")
    settings = with_model_defaults(settings)
    client = LLMClient(settings, call_log, limiter)
    client.check_credentials()
    engine = MapReduce(settings, client, CachedPromptLibrary(settings.prompts_dir), cache=map_cache)
    found = await engine.map_only(sources)
    return found, engine.usage, engine.warnings


def build_briefing_sync(
    sources: list[Source], settings: Settings, *, progress: Progress | None = None
) -> Briefing:
    """build_briefing for callers without an event loop."""
    return asyncio.run(build_briefing(sources, settings, progress=progress))
