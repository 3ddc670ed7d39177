"""Provider rate limits: requests and tokens per minute per model, and Retry-After pauses.

A `RateLimiter` is asked before every model request (`acquire`) and told when a provider
answered "slow down" with a Retry-After (`pause`). `WindowLimiter` keeps its counts in a
`Counters` store: in this process's memory (`MemoryCounters`), or in Redis so that every
worker of a cluster shares one budget and one pause (`briefing.service.cluster`).

The budget is a fixed window per model (a minute by default): a request goes out when the
window's requests and tokens, with it, stay within the limits; otherwise it waits for the
next window. A request larger than the whole token budget still goes out, alone in its
window, rather than wait forever.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Protocol

__all__ = ["Counters", "MemoryCounters", "RateLimiter", "WindowLimiter", "local_limiter"]


class RateLimiter(Protocol):
    @property
    def counts_tokens(self) -> bool:
        """Whether `acquire` needs a request's token count (it costs a tokenization)."""

    async def acquire(self, model: str, tokens: int) -> None:
        """Wait until a request of `tokens` tokens to `model` may go out."""

    async def pause(self, model: str, seconds: float) -> None:
        """The provider asked for `seconds` of quiet for `model`: every caller waits."""


class Counters(Protocol):
    """Where a WindowLimiter keeps its counts (calls may block briefly: run on a thread)."""

    def paused_for(self, model: str) -> float:
        """Seconds left of a pause of `model` (0 when none)."""

    def set_pause(self, model: str, seconds: float) -> None:
        """Pause `model` for `seconds` (a longer pause already set stays)."""

    def take(self, model: str, window: int, tokens: int, rpm: int, tpm: int) -> bool:
        """Count one request of `tokens` in `window` if it fits the limits (0: none);
        False, counting nothing, when it does not."""


class MemoryCounters:
    """Counts of this process only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pauses: dict[str, float] = {}
        self._windows: dict[tuple[str, int], tuple[int, int]] = {}

    def paused_for(self, model: str) -> float:
        with self._lock:
            return max(0.0, self._pauses.get(model, 0.0) - time.monotonic())

    def set_pause(self, model: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._pauses[model] = max(until, self._pauses.get(model, 0.0))

    def take(self, model: str, window: int, tokens: int, rpm: int, tpm: int) -> bool:
        with self._lock:
            for key in [k for k in self._windows if k[0] == model and k[1] < window]:
                del self._windows[key]
            requests, used = self._windows.get((model, window), (0, 0))
            if not fits(requests, used, tokens, rpm, tpm):
                return False
            self._windows[(model, window)] = (requests + 1, used + tokens)
            return True


def fits(requests: int, used: int, tokens: int, rpm: int, tpm: int) -> bool:
    """Whether one more request of `tokens` fits a window holding `requests` and `used`."""
    if rpm and requests + 1 > rpm:
        return False
    # A request bigger than the whole budget goes out alone in a fresh window.
    return not (tpm and used and used + tokens > tpm)


class WindowLimiter:
    """Requests and tokens per window per model, over `counters`."""

    def __init__(
        self, counters: Counters, *, rpm: int = 0, tpm: int = 0, window_s: float = 60.0
    ) -> None:
        self.counters = counters
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s

    @property
    def counts_tokens(self) -> bool:
        return bool(self.tpm)

    async def acquire(self, model: str, tokens: int) -> None:
        while True:
            paused = await asyncio.to_thread(self.counters.paused_for, model)
            if paused > 0:
                await asyncio.sleep(paused)
                continue
            if not (self.rpm or self.tpm):
                return
            now = time.time()
            window = int(now // self.window_s)
            took = await asyncio.to_thread(
                self.counters.take, model, window, tokens, self.rpm, self.tpm
            )
            if took:
                return
            # The next window, with a little jitter so that waiting workers do not all
            # ask in the same millisecond.
            await asyncio.sleep((window + 1) * self.window_s - now + random.uniform(0, 0.05))

    async def pause(self, model: str, seconds: float) -> None:
        await asyncio.to_thread(self.counters.set_pause, model, seconds)


def local_limiter(rpm: int, tpm: int) -> WindowLimiter | None:
    """A limiter of this process's own counts for the settings' limits; None without any."""
    return WindowLimiter(MemoryCounters(), rpm=rpm, tpm=tpm) if rpm or tpm else None
