"""Rate limits: requests per window per model, one budget across workers (Redis), and a
provider's Retry-After pausing every caller of the model."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from test_cluster import RedisServer, redis  # noqa: F401 - the fixture

from briefing.config import Settings
from briefing.models.llm import LLMClient
from briefing.models.prompts import PromptLibrary
from briefing.models.ratelimit import MemoryCounters, WindowLimiter
from briefing.pipeline.mapreduce import MapOutput
from briefing.service.cluster import RedisCounters
from briefing.testing import FakeOpenAIServer, Reply

WINDOW_S = 0.4
GOOD = '{"claims": [{"text": "The sky is blue.", "sentence_ids": ["S1"]}]}'


async def _times(limiters: list[WindowLimiter], requests: int, model: str = "m") -> list[float]:
    """Acquire `requests` slots spread over `limiters` at once; when each was granted."""
    granted: list[float] = []

    async def one(n: int) -> None:
        await limiters[n % len(limiters)].acquire(model, 10)
        granted.append(time.time())

    await asyncio.gather(*(one(n) for n in range(requests)))
    return granted


def _per_window(times: list[float]) -> Counter[int]:
    return Counter(int(t // WINDOW_S) for t in times)


async def test_no_window_gets_more_requests_than_the_limit() -> None:
    limiter = WindowLimiter(MemoryCounters(), rpm=3, window_s=WINDOW_S)
    granted = await _times([limiter], 7)
    per_window = _per_window(granted)
    assert sum(per_window.values()) == 7
    assert max(per_window.values()) <= 3
    assert len(per_window) >= 3


async def test_a_token_budget_holds_and_a_huge_request_still_goes_alone() -> None:
    counters = MemoryCounters()
    assert counters.take("m", 1, 60, 0, 100)
    assert not counters.take("m", 1, 60, 0, 100)  # 120 > 100 tokens this window
    assert counters.take("m", 2, 500, 0, 100)  # alone in a fresh window: allowed
    assert not counters.take("m", 2, 1, 0, 100)
    assert counters.take("other", 2, 60, 0, 100)  # per model


async def test_workers_share_one_budget_through_redis(redis: RedisServer) -> None:  # noqa: F811
    # Two "workers": two limiters over two Redis connections.
    counters = [RedisCounters(redis.url, prefix="test") for _ in range(2)]
    try:
        limiters = [WindowLimiter(c, rpm=3, window_s=WINDOW_S) for c in counters]
        granted = await _times(limiters, 8)
        per_window = _per_window(granted)
        assert sum(per_window.values()) == 8
        assert max(per_window.values()) <= 3
    finally:
        for c in counters:
            c.close()


async def test_a_retry_after_pauses_every_worker_of_the_model(
    redis: RedisServer,  # noqa: F811
) -> None:
    settings = Settings(
        model="openai/gpt-4o-mini",
        api_key="sk-test-not-a-real-key",
        retry_initial_s=0.01,
        retry_max_s=5,
        log_calls=False,
    )
    prompt = PromptLibrary().get("extract-claims@1")
    variables = {"source_title": "t", "sentences": [{"id": "S1", "text": "The sky is blue."}]}
    with FakeOpenAIServer() as server:
        settings = settings.model_copy(update={"api_base": server.base_url})
        first = Reply(status=429, headers={"Retry-After": "1"}, error_message="slow down")
        server.queue(first, Reply(content=GOOD), Reply(content=GOOD))
        counters = [RedisCounters(redis.url, prefix="pause") for _ in range(2)]
        try:
            a, b = (LLMClient(settings, limiter=WindowLimiter(c)) for c in counters)
            task_a = asyncio.create_task(a.structured(prompt, variables, MapOutput))
            # B starts once A got its 429 (the pause is in Redis).
            deadline = time.monotonic() + 20
            while counters[1].paused_for(settings.model) == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            paused_at = time.time()
            left = counters[1].paused_for(settings.model)
            await b.structured(prompt, variables, MapOutput)
            await task_a
        finally:
            for c in counters:
                c.close()
    arrivals = [r.received_at for r in server.requests]
    assert len(arrivals) == 3
    # Nobody sent a request to the model until the pause B saw had run out.
    assert all(at >= paused_at + left - 0.05 for at in arrivals[1:])
